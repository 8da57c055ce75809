-- clientOrderId: the name a client gives its order, unique per wallet, so that a client
-- that lost an answer can find its order again, and a repeated submission is refused.

ALTER TABLE orders ADD COLUMN client_order_id text;

-- Unique per wallet; also serves the wallet listing's clientOrderId filter. Partial, as
-- most orders have none.
CREATE UNIQUE INDEX orders_wallet_client_order_id_key
    ON orders (user_wallet, client_order_id) WHERE client_order_id IS NOT NULL;
