-- PostgreSQL overrides of ../queries.sql: row locks where several workers race, and
-- casts where PostgreSQL cannot infer a parameter's type (`:x IS NULL` with a NULL). Each
-- takes the same parameters as the query it overrides.
--
-- JSON rows joined to a table are read as `unnest(ARRAY(SELECT json_array_elements(..)))`,
-- not `json_array_elements(..)` alone: the planner takes a set-returning function for 100
-- rows, and 100 index probes cost more than a scan of a table of some thousands of rows,
-- so a batch of a dozen run ends scanned all of `steps` (4 ms at 30,000 steps, growing
-- with the table until the probes win). unnest of an array that is not a constant counts
-- as 10 rows, which keeps the index. Lists of ids are compared with `= ANY(ARRAY(..))`
-- for the same reason. tests/test_postgres_plans.py holds a worker's statements to it.

-- name: claim_due
-- As in ../queries.sql, each branch locking what it hands out; the executor pulls rows
-- from the second branch only while the outer LIMIT has room.
SELECT * FROM (
    SELECT run_id, ckey1, climit1, ckey2, climit2, throttle, holds, available_at, owner
    FROM jobs
    WHERE fence > 0 AND available_at <= :due_by AND (owner IS NULL OR available_at <= :now)
    ORDER BY available_at LIMIT :limit
    FOR UPDATE SKIP LOCKED
) AS resumes
UNION ALL
SELECT * FROM (
    SELECT run_id, ckey1, climit1, ckey2, climit2, throttle, holds, available_at, owner
    FROM jobs WHERE fence = 0 AND available_at <= :now ORDER BY available_at LIMIT :new_limit
    FOR UPDATE SKIP LOCKED
) AS starts
LIMIT :limit;

-- name: lease_many
UPDATE jobs SET owner = :owner, fence = fence + 1, available_at = :until, wake = 0
WHERE run_id = ANY(:ids::text[])
RETURNING run_id, fence, cancel;

-- name: mark_started_many
UPDATE runs SET status = 'running', started_at = COALESCE(started_at, :now)
WHERE id IN (SELECT run_id FROM jobs WHERE run_id = ANY(:ids::text[]) AND cancel = 0);

-- name: insert_started_many
INSERT INTO history (run_id, at, kind, data)
SELECT run_id, :now, 'started', :data FROM jobs WHERE run_id = ANY(:ids::text[]) AND cancel = 0;

-- name: get_run_events
-- = ANY of an array, not IN: see the top of this file.
SELECT id, name, data, ts, user_data, v, received_at, meta, trace, tracestate FROM events
WHERE id = ANY(ARRAY(
    SELECT json_array_elements_text(event_ids::json) FROM runs WHERE id = ANY(:ids::text[])
));

-- name: end_due_sleeps
UPDATE steps SET status = 'completed', output = 'null', ended_at = GREATEST(wake_at, :now)
WHERE run_id = ANY(:ids::text[]) AND status = 'sleeping'
    AND wake_at <= GREATEST(:now, (SELECT available_at FROM jobs WHERE jobs.run_id = steps.run_id));

-- name: get_runs
SELECT id, function_id, status, attempt, event_ids, output, error, created_at, started_at,
       ended_at
FROM runs WHERE id = ANY(:ids::text[]);

-- name: run_steps_many
SELECT run_id, id, hashed_id, status, attempts, output, error, started_at, ended_at, kind,
       wake_at, detail, occurrence
FROM steps WHERE run_id = ANY(:ids::text[])
ORDER BY run_id, started_at NULLS FIRST, ended_at NULLS FIRST;

-- name: insert_events
-- JSON rows as in ../queries.sql, read with json_array_elements.
INSERT INTO events (id, name, data, ts, user_data, v, received_at, meta, trace, tracestate)
SELECT r->>0, r->>1, r->>2, (r->>3)::bigint, r->>4, r->>5, (r->>6)::double precision, r->>7,
       r->>8, r->>9
FROM json_array_elements(:rows::json) AS r
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: insert_runs
INSERT INTO runs (id, function_id, status, event_ids, created_at, parent_run_id, parent_step,
                  reason, started_at)
SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::double precision, r->>5, r->>6, r->>7,
       (r->>8)::double precision
FROM json_array_elements(:rows::json) AS r;

-- name: link_run_events
INSERT INTO run_events (event_id, run_id)
SELECT r->>0, r->>1 FROM json_array_elements(:rows::json) AS r
ON CONFLICT DO NOTHING;

-- name: insert_jobs
INSERT INTO jobs (run_id, function_id, available_at, queued_at, holds, owner, fence)
SELECT r->>0, r->>1, (r->>2)::double precision, (r->>4)::double precision, (r->>3)::integer,
       r->>5, (r->>6)::integer
FROM json_array_elements(:rows::json) AS r;

-- name: insert_history_rows
INSERT INTO history (run_id, at, kind, data)
SELECT r->>0, (r->>1)::double precision, r->>2, r->>3
FROM json_array_elements(:rows::json) AS r;

-- name: renew_many
-- SKIP LOCKED: a job another transaction holds (the run's end, a checkpoint) is left for
-- the next renewal rather than waited for. Waiting could deadlock with a batch of run
-- ends taking the same rows in another order, and PostgreSQL breaks a deadlock only
-- after deadlock_timeout (1 s), stalling both writers.
UPDATE jobs SET available_at = :until
WHERE run_id IN (
    SELECT run_id FROM jobs
    WHERE owner IS NOT NULL AND (run_id, fence) IN (
        SELECT r->>0, (r->>1)::integer FROM unnest(ARRAY(SELECT json_array_elements(:leases::json))) AS r
    )
    FOR UPDATE SKIP LOCKED
)
RETURNING run_id, cancel;

-- name: leases_held
SELECT run_id FROM jobs
WHERE owner IS NOT NULL AND (run_id, fence) IN (
    SELECT r->>0, (r->>1)::integer FROM unnest(ARRAY(SELECT json_array_elements(:leases::json))) AS r
);

-- name: lock_key
-- Serializes the decisions about one flow key across workers, until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended(:key, 0));

-- name: check_fence
-- FOR SHARE: the lease cannot be taken over (claim skips the row, renew waits) until the
-- write it guards commits.
SELECT fence FROM jobs WHERE run_id = :run_id FOR SHARE;

-- name: save_step_fenced
-- FOR SHARE as in check_fence; casts because a parameter in a SELECT list has no type
-- of its own (a NULL would be taken for text).
INSERT INTO steps (run_id, hashed_id, id, kind, status, attempts, output, error, started_at,
                   ended_at, wake_at, detail, occurrence)
SELECT run_id, :hashed_id::text, :id::text, :kind::text, :status::text, :attempts::integer,
       :output::text, :error::text, :started_at::double precision,
       :ended_at::double precision, :wake_at::double precision, :detail::text,
       :occurrence::integer
FROM jobs WHERE run_id = :run_id AND fence = :fence FOR SHARE
ON CONFLICT (run_id, hashed_id) DO UPDATE SET
    status = excluded.status, attempts = excluded.attempts, output = excluded.output,
    error = excluded.error, started_at = excluded.started_at, ended_at = excluded.ended_at,
    wake_at = excluded.wake_at, detail = excluded.detail;

-- name: save_steps_fenced
-- Many lone step checkpoints in one statement: JSON rows (run_id, fence, then the columns
-- of save_step_fenced after the run id), each written only under its own lease: the rows
-- changed count those written.
INSERT INTO steps (run_id, hashed_id, id, kind, status, attempts, output, error, started_at,
                   ended_at, wake_at, detail, occurrence)
SELECT j.run_id, r->>2, r->>3, r->>4, r->>5, (r->>6)::integer, r->>7, r->>8,
       (r->>9)::double precision, (r->>10)::double precision, (r->>11)::double precision,
       r->>12, (r->>13)::integer
FROM unnest(ARRAY(SELECT json_array_elements(:rows::json))) AS r
JOIN jobs AS j ON j.run_id = r->>0 AND j.fence = (r->>1)::integer
FOR SHARE OF j
ON CONFLICT (run_id, hashed_id) DO UPDATE SET
    status = excluded.status, attempts = excluded.attempts, output = excluded.output,
    error = excluded.error, started_at = excluded.started_at, ended_at = excluded.ended_at,
    wake_at = excluded.wake_at, detail = excluded.detail;

-- name: end_jobs
DELETE FROM jobs WHERE (run_id, fence) IN (
    SELECT r->>0, (r->>1)::integer FROM unnest(ARRAY(SELECT json_array_elements(:leases::json))) AS r
)
RETURNING run_id;

-- name: finish_runs
UPDATE runs SET status = r->>1, output = r->>2, error = r->>3,
    ended_at = (r->>4)::double precision
FROM unnest(ARRAY(SELECT json_array_elements(:rows::json))) AS r
WHERE runs.id = r->>0
RETURNING runs.id, runs.parent_run_id, runs.parent_step;

-- name: close_open_steps_many
UPDATE steps SET status = 'cancelled', ended_at = (r->>1)::double precision
FROM unnest(ARRAY(SELECT json_array_elements(:rows::json))) AS r
WHERE steps.run_id = r->>0 AND steps.status IN ('sleeping', 'waiting', 'invoking', 'retrying');

-- name: delete_waits_many
DELETE FROM waits WHERE run_id = ANY(:ids::text[]);

-- name: run_steps
-- NULLS FIRST: the order SQLite gives (a step that has not started sorts first).
SELECT id, hashed_id, status, attempts, output, error, started_at, ended_at, kind, wake_at, detail,
       occurrence
FROM steps WHERE run_id = :run_id ORDER BY started_at NULLS FIRST, ended_at NULLS FIRST;

-- name: list_runs
SELECT id, function_id, status, attempt, event_ids, output, error, created_at, started_at,
       ended_at
FROM runs
WHERE (:function_id::text IS NULL OR function_id = :function_id)
  AND (:status::text IS NULL OR status = :status)
  AND (:cursor::text IS NULL OR id < :cursor)
  AND (:created_after::double precision IS NULL OR created_at >= :created_after)
  AND (:created_before::double precision IS NULL OR created_at < :created_before)
  AND (:event_name::text IS NULL OR EXISTS (
      SELECT 1 FROM json_array_elements_text(runs.event_ids::json) AS j(id)
      JOIN events e ON e.id = j.id
      WHERE e.name LIKE :event_name ESCAPE '\'
  ))
ORDER BY id DESC LIMIT :limit;

-- name: reruns_of
SELECT DISTINCT h.run_id FROM runs r, json_array_elements_text(r.event_ids::json) AS j(id)
JOIN run_events e ON e.event_id = j.id
JOIN history h ON h.run_id = e.run_id
WHERE r.id = :run_id AND h.kind = 'rerun' AND h.data::json->>'of' = :run_id
ORDER BY h.run_id;

-- name: list_events
SELECT id, name, data, ts, user_data, v, received_at, meta, trace, tracestate FROM events
WHERE (:name::text IS NULL OR name = :name)
  AND (:before::double precision IS NULL OR received_at < :before
       OR (received_at = :before AND id < :cursor::text))
ORDER BY received_at DESC, id DESC LIMIT :limit;

-- name: waits_of_names
WITH names AS (SELECT unnest(:names::text[]) AS name)
SELECT event, run_id, hashed_id, condition, trigger_event, expires_at, kind, NULL AS match_path
FROM waits WHERE event IN (SELECT name FROM names) AND match_path IS NULL
UNION ALL
SELECT event, NULL, NULL, NULL, NULL, NULL, NULL, match_path
FROM wait_paths WHERE event IN (SELECT name FROM names);

-- name: release_leases
UPDATE jobs SET owner = NULL, wake = 0,
    available_at = CASE WHEN jobs.wake = 1 THEN :woken_at ELSE l.at END
FROM (
    SELECT r->>0 AS run_id, (r->>1)::integer AS fence, (r->>2)::double precision AS at
    FROM unnest(ARRAY(SELECT json_array_elements(:rows::json))) AS r
) AS l
WHERE jobs.owner IS NOT NULL AND jobs.run_id = l.run_id AND jobs.fence = l.fence
RETURNING jobs.run_id;

-- name: prune_pick_runs
-- SKIP LOCKED: workers pruning at once take different batches.
SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at < :before ORDER BY ended_at LIMIT :limit
FOR UPDATE SKIP LOCKED;

-- name: prune_steps
DELETE FROM steps WHERE run_id = ANY(:ids::text[]);

-- name: prune_history
DELETE FROM history WHERE run_id = ANY(:ids::text[]);

-- name: prune_waits
DELETE FROM waits WHERE run_id = ANY(:ids::text[]);

-- name: prune_flow_keys
DELETE FROM flow_keys WHERE run_id = ANY(:ids::text[]);

-- name: prune_run_links
DELETE FROM run_events WHERE run_id = ANY(:ids::text[]) RETURNING event_id;

-- name: prune_runs
DELETE FROM runs WHERE id = ANY(:ids::text[]);

-- name: prune_events
DELETE FROM events WHERE id IN (
    SELECT id FROM events
    WHERE received_at < :before AND NOT EXISTS (SELECT 1 FROM run_events l WHERE l.event_id = events.id)
    ORDER BY received_at LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING id;
