-- The simulated chain's own tables: pools, the transactions sent to it, and its slots.
-- No foreign keys into the engine's tables: the chain is another system, and outlives
-- anything the engine does to its own.

-- One row: the newest slot and the seed of the chain's randomness (fixed at genesis,
-- so that whichever process produces a slot draws the same numbers).
CREATE TABLE chain_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    slot bigint NOT NULL,
    seed bigint NOT NULL
);

CREATE TABLE chain_slots (
    slot        bigint PRIMARY KEY,
    producer    text NOT NULL,
    landed      integer NOT NULL DEFAULT 0,
    failed      integer NOT NULL DEFAULT 0,
    expired     integer NOT NULL DEFAULT 0,
    -- Time spent inside the slot's transaction before its commit.
    work_ms     double precision NOT NULL DEFAULT 0,
    closed_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE chain_pools (
    id              serial PRIMARY KEY,
    dex             text NOT NULL,
    token_a         text NOT NULL,
    token_b         text NOT NULL,
    reserve_a       numeric NOT NULL CHECK (reserve_a > 0),
    reserve_b       numeric NOT NULL CHECK (reserve_b > 0),
    kind            text NOT NULL CHECK (kind IN ('constant_product', 'dynamic_fee')),
    fee_bps         integer NOT NULL,
    max_fee_bps     integer NOT NULL,
    variable_factor numeric NOT NULL,
    -- Price of token_a in token_b at launch: where the price walk pulls it back to.
    start_price     numeric NOT NULL,
    -- NULL until the slot that launches it: a pool requested between two slots trades
    -- from the next one, on every process at once.
    launched_slot   bigint,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (token_a <> token_b)
);
-- One pool per pair and DEX, whichever way round its tokens are named.
CREATE UNIQUE INDEX chain_pools_pair_idx
    ON chain_pools (dex, least(token_a, token_b), greatest(token_a, token_b));

CREATE TABLE chain_transactions (
    signature      text PRIMARY KEY,
    order_id       uuid NOT NULL,
    attempt        integer NOT NULL,
    dex            text NOT NULL,
    input_token    text NOT NULL,
    output_token   text NOT NULL,
    input_amount   numeric NOT NULL,
    min_amount_out numeric NOT NULL,
    legs           jsonb NOT NULL,
    built_slot     bigint NOT NULL,
    -- Send order: transactions due in a slot are applied in it.
    seq            bigserial NOT NULL,
    sent_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'landed', 'failed', 'expired')),
    failure        text CHECK (failure IN ('slippage_exceeded', 'dex_error')),
    reason         text,
    amount_out     numeric,
    executed_price numeric,
    -- The slot that applied or expired it.
    slot           bigint,
    UNIQUE (order_id, attempt)
);
CREATE INDEX chain_transactions_pending_idx ON chain_transactions (seq) WHERE status = 'pending';
-- At most one swap of an order ever lands, whatever the engine does.
CREATE UNIQUE INDEX chain_transactions_landed_idx
    ON chain_transactions (order_id) WHERE status = 'landed';

-- What the earlier ledger settled, kept as landed transactions of the genesis slot.
INSERT INTO chain_transactions (signature, order_id, attempt, dex, input_token, output_token,
                                input_amount, min_amount_out, legs, built_slot, sent_at,
                                status, amount_out, executed_price, slot)
SELECT signature, order_id, 0, dex, input_token, output_token, input_amount, amount_out,
       '[]'::jsonb, 0, confirmed_at, 'landed', amount_out, executed_price, 0
FROM chain_swaps;
DROP TABLE chain_swaps;

-- The engine keeps what it needs to rebuild the exact transaction it sent: the route it
-- chose and the slot it built the transaction at.
ALTER TABLE orders ADD COLUMN route jsonb, ADD COLUMN tx_slot bigint;
