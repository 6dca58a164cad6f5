-- Queries only PostgreSQL has (queries.py, `own`): the claim in one round trip
-- (scripts/claim.py, claim_runs_at_once), where SQLite, with no data-modifying WITH and
-- no round trips to save, runs claim_due and the statements after it one by one.
-- `{{name}}` stands for the dialect's query of that name (queries.py, `named`).

-- name: claim_at_once
-- claim_due's rows (both branches, locked as there), and those without flow control
-- leased, started, logged and woken from a sleep that is over, all in this statement:
-- every part sees the jobs as they were before it, as when end_due_sleeps ran before
-- lease_many. A row with flow control comes back unleased (fence NULL), still locked,
-- for the gate to decide in Python.
WITH picked AS (
    {{claim_due}}
), plain AS (
    SELECT run_id, available_at FROM picked
    WHERE COALESCE(ckey1, '') = '' AND COALESCE(ckey2, '') = ''
        AND COALESCE(throttle, '') = '' AND holds & 1 = 0  -- flow.HOLDS_START_KEY
), leased AS (
    UPDATE jobs SET owner = :owner, fence = jobs.fence + 1, available_at = :until, wake = 0
    FROM plain WHERE jobs.run_id = plain.run_id
    RETURNING jobs.run_id, jobs.fence, jobs.cancel
), started AS (
    UPDATE runs SET status = 'running', started_at = COALESCE(started_at, :now)
    WHERE id IN (SELECT run_id FROM leased WHERE cancel = 0)
), logged AS (
    INSERT INTO history (run_id, at, kind, data)
    SELECT run_id, :now, 'started', :data FROM leased WHERE cancel = 0
), woken AS (
    UPDATE steps SET status = 'completed', output = 'null',
        ended_at = GREATEST(steps.wake_at, :now)
    FROM plain
    WHERE steps.run_id = plain.run_id AND steps.status = 'sleeping'
        AND steps.wake_at <= GREATEST(:now, plain.available_at)
)
SELECT picked.*, leased.fence, leased.cancel
FROM picked LEFT JOIN leased ON leased.run_id = picked.run_id;


-- name: claimed_runs
-- The runs claim_at_once leased, read in the same round trip: the jobs this transaction
-- updated (xmin) with this lease's end and owner (jobs_by_time finds them).
SELECT id, function_id, status, attempt, event_ids, output, error, created_at, started_at,
       ended_at
FROM runs WHERE id IN (
    SELECT run_id FROM jobs
    WHERE available_at = :until AND owner = :owner
        AND xmin::text = (txid_current() % 4294967296)::text
);


-- name: claimed_steps
SELECT run_id, id, hashed_id, status, attempts, output, error, started_at, ended_at, kind,
       wake_at, detail, occurrence
FROM steps WHERE run_id IN (
    SELECT run_id FROM jobs
    WHERE available_at = :until AND owner = :owner
        AND xmin::text = (txid_current() % 4294967296)::text
)
ORDER BY run_id, started_at NULLS FIRST, ended_at NULLS FIRST;


-- name: claimed_events
-- = ANY of an array, not IN: see the top of queries.sql.
SELECT id, name, data, ts, user_data, v, received_at, meta, trace, tracestate FROM events
WHERE id = ANY(ARRAY(
    SELECT json_array_elements_text(event_ids::json) FROM runs WHERE id IN (
        SELECT run_id FROM jobs
        WHERE available_at = :until AND owner = :owner
            AND xmin::text = (txid_current() % 4294967296)::text
    )
));
