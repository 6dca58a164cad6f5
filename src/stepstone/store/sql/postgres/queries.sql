-- PostgreSQL overrides of ../queries.sql: row locks where several workers race.

-- name: claim_candidates
SELECT run_id, ckey1, climit1, ckey2, climit2, throttle, holds
FROM jobs WHERE available_at <= ? ORDER BY available_at LIMIT ?
FOR UPDATE SKIP LOCKED;

-- name: lock_key
-- Serializes the decisions about one flow key across workers, until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended(?, 0));

-- name: check_fence
SELECT fence FROM jobs WHERE run_id = ? FOR SHARE;
