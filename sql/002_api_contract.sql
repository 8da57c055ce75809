-- What the full API contract needs: a wallet's orders filtered by status, and
-- Idempotency-Key records.

-- Newest-first listing of one wallet's orders in one status; the keyset is the same
-- (created_at, id) as orders_wallet_created_idx, so a filtered page is one index range.
CREATE INDEX orders_wallet_status_created_idx
    ON orders (user_wallet, status, created_at DESC, id DESC);
