-- What the full API contract needs: a wallet's orders filtered by status, and
-- Idempotency-Key records.

-- Newest-first listing of one wallet's orders in one status; the keyset is the same
-- (created_at, id) as orders_wallet_created_idx, so a filtered page is one index range.
CREATE INDEX orders_wallet_status_created_idx
    ON orders (user_wallet, status, created_at DESC, id DESC);

-- One row per Idempotency-Key: the fingerprint of the request that claimed it and, once
-- that request succeeded, its response, replayed to every repeat until expires_at.
CREATE TABLE idempotency_keys (
    key             text PRIMARY KEY,
    fingerprint     text NOT NULL,
    state           text NOT NULL CHECK (state IN ('running', 'done')),
    response_status integer,
    response_body   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    CHECK ((state = 'done') = (response_status IS NOT NULL AND response_body IS NOT NULL))
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
