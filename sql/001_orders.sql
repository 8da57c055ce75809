-- Orders, their status history, and the simulated chain's record of settled swaps.

CREATE TABLE orders (
    id                uuid PRIMARY KEY,
    type              text NOT NULL CHECK (type IN ('market', 'limit', 'sniper')),
    status            text NOT NULL CHECK (status IN (
                          'pending', 'waiting', 'routing', 'building', 'submitted',
                          'confirmed', 'failed', 'cancelled', 'expired')),
    user_wallet       text NOT NULL,
    input_token       text NOT NULL,
    output_token      text NOT NULL,
    input_amount      numeric NOT NULL CHECK (input_amount > 0),
    slippage_bps      integer NOT NULL CHECK (slippage_bps BETWEEN 0 AND 5000),
    limit_price       numeric,
    expires_at        timestamptz,
    dex               text,
    quoted_amount_out numeric,
    min_amount_out    numeric,
    amount_out        numeric,
    executed_price    numeric,
    tx_hash           text UNIQUE,
    attempts          integer NOT NULL DEFAULT 0,
    failure_code      text,
    failure_reason    text,
    -- Set when the order is handed to the queue: a pending order with it set is queued,
    -- which is what lets the reconciler find orders whose queue entry was lost.
    queued_at         timestamptz,
    -- The seq of the order's newest event; the next event takes last_seq + 1 in the same
    -- UPDATE that changes the status, so seqs are gapless without a separate counter.
    last_seq          integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Newest-first listing of one wallet's orders, with (created_at, id) as the keyset.
CREATE INDEX orders_wallet_created_idx ON orders (user_wallet, created_at DESC, id DESC);
-- Non-terminal orders, for recovery sweeps; small because most orders are terminal.
CREATE INDEX orders_active_idx ON orders (updated_at)
    WHERE status NOT IN ('confirmed', 'failed', 'cancelled', 'expired');

CREATE TABLE order_events (
    order_id   uuid NOT NULL REFERENCES orders (id),
    seq        integer NOT NULL CHECK (seq > 0),
    status     text NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, seq)
);

-- What the simulated chain settled. No foreign key: the chain is another system and
-- outlives anything the engine does to its own tables. One swap per signature and,
-- because an order's retries reuse nothing but its id, at most one per order.
CREATE TABLE chain_swaps (
    signature      text PRIMARY KEY,
    order_id       uuid NOT NULL UNIQUE,
    dex            text NOT NULL,
    input_token    text NOT NULL,
    output_token   text NOT NULL,
    input_amount   numeric NOT NULL,
    amount_out     numeric NOT NULL,
    executed_price numeric NOT NULL,
    confirmed_at   timestamptz NOT NULL DEFAULT now()
);
