-- PostgreSQL overrides of ../queries.sql: row locks where several workers race, and
-- casts where PostgreSQL cannot infer a parameter's type (`? IS NULL` with a NULL).

-- name: claim_resumes
SELECT run_id, ckey1, climit1, ckey2, climit2, throttle, holds
FROM jobs WHERE fence > 0 AND available_at <= ? ORDER BY available_at LIMIT ?
FOR UPDATE SKIP LOCKED;

-- name: claim_starts
SELECT run_id, ckey1, climit1, ckey2, climit2, throttle, holds
FROM jobs WHERE fence = 0 AND available_at <= ? ORDER BY available_at LIMIT ?
FOR UPDATE SKIP LOCKED;

-- name: lock_key
-- Serializes the decisions about one flow key across workers, until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended(?, 0));

-- name: check_fence
-- FOR SHARE: the lease cannot be taken over (claim skips the row, renew waits) until the
-- write it guards commits.
SELECT fence FROM jobs WHERE run_id = ? FOR SHARE;

-- name: save_step_fenced
-- FOR SHARE as in check_fence; casts because a parameter in a SELECT list has no type
-- of its own (a NULL would be taken for text).
INSERT INTO steps (run_id, hashed_id, id, kind, status, attempts, output, error, started_at,
                   ended_at, wake_at, detail)
SELECT run_id, ?::text, ?::text, ?::text, ?::text, ?::integer, ?::text, ?::text,
       ?::double precision, ?::double precision, ?::double precision, ?::text
FROM jobs WHERE run_id = ? AND fence = ? FOR SHARE
ON CONFLICT (run_id, hashed_id) DO UPDATE SET
    status = excluded.status, attempts = excluded.attempts, output = excluded.output,
    error = excluded.error, started_at = excluded.started_at, ended_at = excluded.ended_at,
    wake_at = excluded.wake_at, detail = excluded.detail;

-- name: run_steps
-- NULLS FIRST: the order SQLite gives (a step that has not started sorts first).
SELECT id, hashed_id, status, attempts, output, error, started_at, ended_at, kind, wake_at, detail
FROM steps WHERE run_id = ? ORDER BY started_at NULLS FIRST, ended_at NULLS FIRST;

-- name: list_runs
SELECT id, function_id, status, attempt, event_ids, output, error, created_at, started_at,
       ended_at
FROM runs
WHERE (?::text IS NULL OR function_id = ?) AND (?::text IS NULL OR status = ?)
  AND (?::text IS NULL OR id < ?)
  AND (?::double precision IS NULL OR created_at >= ?)
  AND (?::double precision IS NULL OR created_at < ?)
ORDER BY id DESC LIMIT ?;

-- name: list_events
SELECT id, name, data, ts, user_data, v, received_at FROM events
WHERE (?::text IS NULL OR name = ?)
  AND (?::double precision IS NULL OR received_at < ? OR (received_at = ? AND id < ?::text))
ORDER BY received_at DESC, id DESC LIMIT ?;
