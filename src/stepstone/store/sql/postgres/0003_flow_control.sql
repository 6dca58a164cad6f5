-- Flow control: what a job needs at claim time, and the state of flow keys.
ALTER TABLE jobs ADD COLUMN queued_at DOUBLE PRECISION;   -- its place in the queue, priority applied
ALTER TABLE jobs ADD COLUMN ckey1 TEXT;       -- concurrency keys and their limits
ALTER TABLE jobs ADD COLUMN climit1 INTEGER;
ALTER TABLE jobs ADD COLUMN ckey2 TEXT;
ALTER TABLE jobs ADD COLUMN climit2 INTEGER;
ALTER TABLE jobs ADD COLUMN parked_on TEXT;   -- the full concurrency key it waits for
ALTER TABLE jobs ADD COLUMN throttle TEXT;    -- [key, limit, period, burst] until it first starts
ALTER TABLE jobs ADD COLUMN holds INTEGER NOT NULL DEFAULT 0;  -- 1: debounce/batch key, 2: singleton key
CREATE INDEX jobs_by_ckey1 ON jobs (ckey1) WHERE ckey1 IS NOT NULL;
CREATE INDEX jobs_by_ckey2 ON jobs (ckey2) WHERE ckey2 IS NOT NULL;
CREATE INDEX jobs_parked ON jobs (parked_on, queued_at) WHERE parked_on IS NOT NULL;

-- One row per flow key: a throttle's or rate limit's theoretical arrival time (value),
-- the run holding an idempotency, singleton, debounce or batch key, a batch's size.
CREATE TABLE flow_keys (
    key    TEXT PRIMARY KEY,
    run_id TEXT,
    value  DOUBLE PRECISION,
    count  INTEGER NOT NULL DEFAULT 0,
    since  DOUBLE PRECISION
);
CREATE INDEX flow_keys_by_run ON flow_keys (run_id);
