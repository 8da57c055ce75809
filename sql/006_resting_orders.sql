-- Limit and sniper orders rest in `waiting` until a slot fires them. The process that
-- watches them keeps them in memory and catches up with Postgres after each slot: it
-- asks for the orders changed by transactions it may not have seen yet, which the id of
-- the transaction that last changed a row tells (a snapshot's xmin is the oldest
-- transaction still running, so everything older was seen by that snapshot).
ALTER TABLE orders ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX orders_resting_changes_idx ON orders (changed_xid) WHERE type <> 'market';

-- The limit and sniper orders not yet fired or ended: counted per wallet at accept time
-- (MAX_RESTING_PER_WALLET), and read whole when the watcher builds its index.
CREATE INDEX orders_resting_wallet_idx ON orders (user_wallet)
    WHERE type <> 'market' AND status IN ('pending', 'waiting');
