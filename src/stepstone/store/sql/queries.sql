-- Named queries shared by SQLite and PostgreSQL, with named parameters (`:name`): a
-- parameter used twice is written twice and passed once (queries.py turns them into
-- psycopg's `%(name)s` for PostgreSQL).
-- A dialect folder may hold a queries.sql whose names override these.

-- name: insert_events
-- Many events in one statement, as a JSON array of rows (id, name, data, ts, user_data, v,
-- received_at, meta, trace, tracestate); returns the ids it stored (a repeated id is not
-- stored). `WHERE true`: SQLite would read `ON CONFLICT` as a join's ON without it.
INSERT INTO events (id, name, data, ts, user_data, v, received_at, meta, trace, tracestate)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
       json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'),
       json_extract(value, '$[9]')
FROM json_each(:rows) WHERE true
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: insert_runs
-- Runs without flow control: JSON rows (id, function_id, status, event_ids, created_at,
-- parent_run_id, parent_step, reason, started_at: set for a run handed off as it is sent).
INSERT INTO runs (id, function_id, status, event_ids, created_at, parent_run_id, parent_step,
                  reason, started_at)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
       json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]')
FROM json_each(:rows);

-- name: link_run_events
INSERT INTO run_events (event_id, run_id)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:rows) WHERE true
ON CONFLICT DO NOTHING;

-- name: insert_jobs
-- Jobs of runs without flow control: JSON rows (run_id, function_id, available_at, holds,
-- queued_at, owner, fence). A run handed off as it is sent is leased already: its owner,
-- fence 1, and available_at its lease's end, as a claim leaves it.
INSERT INTO jobs (run_id, function_id, available_at, queued_at, holds, owner, fence)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[4]'), json_extract(value, '$[3]'), json_extract(value, '$[5]'),
       json_extract(value, '$[6]')
FROM json_each(:rows);

-- name: insert_history_rows
-- JSON rows (run_id, at, kind, data).
INSERT INTO history (run_id, at, kind, data)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]')
FROM json_each(:rows);

-- name: insert_run
INSERT INTO runs (id, function_id, status, event_ids, created_at, parent_run_id, parent_step,
                  reason, ended_at)
VALUES (:id, :function_id, :status, :event_ids, :created_at, :parent_run_id, :parent_step,
        :reason, :ended_at);

-- name: link_run_event
INSERT INTO run_events (event_id, run_id) VALUES (:event_id, :run_id) ON CONFLICT DO NOTHING;

-- name: insert_job
INSERT INTO jobs (run_id, function_id, available_at, queued_at, ckey1, climit1, ckey2, climit2,
                  throttle, holds)
VALUES (:run_id, :function_id, :available_at, :queued_at, :ckey1, :climit1, :ckey2, :climit2,
        :throttle, :holds);

-- name: claim_due
-- Runs already started (a claim raised their fence) go first: a run waking from a sleep,
-- retrying or resuming after a wait is not held up behind a burst of runs not yet started.
-- A released run (sleeping, retrying) due by :due_by is taken a little early, and its
-- worker holds it until its time: its wake-up does not wait for a claim. A live lease is
-- taken over only once it has expired (by :now); `owner` is then the worker that lost it.
-- The second branch is read only if the first leaves room under the outer LIMIT.
SELECT * FROM (
    SELECT run_id, ckey1, climit1, ckey2, climit2, throttle, holds, available_at, owner
    FROM jobs
    WHERE fence > 0 AND available_at <= :due_by AND (owner IS NULL OR available_at <= :now)
    ORDER BY available_at LIMIT :limit
)
UNION ALL
SELECT * FROM (
    SELECT run_id, ckey1, climit1, ckey2, climit2, throttle, holds, available_at, owner
    FROM jobs WHERE fence = 0 AND available_at <= :now ORDER BY available_at LIMIT :new_limit
)
LIMIT :limit;

-- name: lease_many
-- A `Many` parameter is JSON text here, an array on PostgreSQL (see its overrides).
UPDATE jobs SET owner = :owner, fence = fence + 1, available_at = :until, wake = 0
WHERE run_id IN (SELECT value FROM json_each(:ids))
RETURNING run_id, fence, cancel;

-- name: lock_key
-- SQLite runs one write transaction at a time: nothing to lock.
SELECT :key;

-- name: count_active
SELECT COUNT(*) AS active FROM jobs
WHERE (ckey1 = :key OR ckey2 = :key) AND owner IS NOT NULL AND available_at > :now;

-- name: park
UPDATE jobs SET parked_on = :key, available_at = :available_at WHERE run_id = :run_id;

-- name: unpark
UPDATE jobs SET parked_on = NULL, available_at = :now
WHERE run_id IN (
    SELECT run_id FROM jobs WHERE parked_on = :key ORDER BY queued_at LIMIT :limit
);

-- name: delay_job
UPDATE jobs SET available_at = :available_at WHERE run_id = :run_id;

-- name: clear_throttle
UPDATE jobs SET throttle = NULL WHERE run_id = :run_id;

-- name: flow_get
SELECT run_id, value, count, since FROM flow_keys WHERE key = :key;

-- name: flow_put
INSERT INTO flow_keys (key, run_id, value, count, since)
VALUES (:key, :run_id, :value, :count, :since)
ON CONFLICT (key) DO UPDATE SET
    run_id = excluded.run_id, value = excluded.value, count = excluded.count,
    since = excluded.since;

-- name: flow_delete
DELETE FROM flow_keys WHERE key = :key;

-- name: flow_release
-- A run gives back the debounce, batch and singleton keys it holds.
DELETE FROM flow_keys WHERE run_id = :run_id AND substr(key, 1, 2) IN ('d:', 'b:', :prefix);

-- name: run_status
SELECT status FROM runs WHERE id = :id;

-- name: run_event_ids
SELECT event_ids FROM runs WHERE id = :id;

-- name: set_run_events
UPDATE runs SET event_ids = :event_ids WHERE id = :id;

-- name: move_queued_job
UPDATE jobs SET available_at = :available_at WHERE run_id = :run_id AND owner IS NULL;

-- name: mark_started_many
-- The claimed runs not asked to cancel (a run asked to cancel is ended, not started).
UPDATE runs SET status = 'running', started_at = COALESCE(started_at, :now)
WHERE id IN (
    SELECT run_id FROM jobs WHERE run_id IN (SELECT value FROM json_each(:ids)) AND cancel = 0
);

-- name: insert_started_many
-- Their "started" entries: (at, data, the claimed run ids).
INSERT INTO history (run_id, at, kind, data)
SELECT run_id, :now, 'started', :data FROM jobs
WHERE run_id IN (SELECT value FROM json_each(:ids)) AND cancel = 0;

-- name: get_run_events
-- The events of these runs (runs.event_ids), read in the same round trip as the runs.
SELECT id, name, data, ts, user_data, v, received_at, meta, trace, tracestate FROM events
WHERE id IN (
    SELECT e.value FROM runs, json_each(runs.event_ids) AS e
    WHERE runs.id IN (SELECT value FROM json_each(:ids))
);

-- name: renew_many
-- Leases as JSON rows (run_id, fence). owner: a job its worker released (the run sleeps
-- or waits) keeps its fence until the next claim, and a renewal racing the release must
-- not push its due time back.
UPDATE jobs SET available_at = :until
WHERE owner IS NOT NULL AND (run_id, fence) IN (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:leases)
)
RETURNING run_id, cancel;

-- name: leases_held
-- Which of these leases (JSON rows as in renew_many) still hold, without locking.
SELECT run_id FROM jobs
WHERE owner IS NOT NULL AND (run_id, fence) IN (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:leases)
);

-- name: next_due
SELECT MIN(available_at) AS due FROM jobs;

-- name: check_fence
SELECT fence FROM jobs WHERE run_id = :run_id;

-- name: upsert_step
INSERT INTO steps (run_id, hashed_id, id, kind, status, attempts, output, error, started_at,
                   ended_at, wake_at, detail, occurrence)
VALUES (:run_id, :hashed_id, :id, :kind, :status, :attempts, :output, :error, :started_at,
        :ended_at, :wake_at, :detail, :occurrence)
ON CONFLICT (run_id, hashed_id) DO UPDATE SET
    status = excluded.status, attempts = excluded.attempts, output = excluded.output,
    error = excluded.error, started_at = excluded.started_at, ended_at = excluded.ended_at,
    wake_at = excluded.wake_at, detail = excluded.detail;

-- name: save_step_fenced
-- A step written only while the run's lease still carries this fencing token: the fence
-- check and the upsert in one statement. No row written: the lease is lost.
INSERT INTO steps (run_id, hashed_id, id, kind, status, attempts, output, error, started_at,
                   ended_at, wake_at, detail, occurrence)
SELECT run_id, :hashed_id, :id, :kind, :status, :attempts, :output, :error, :started_at,
       :ended_at, :wake_at, :detail, :occurrence
FROM jobs WHERE run_id = :run_id AND fence = :fence
ON CONFLICT (run_id, hashed_id) DO UPDATE SET
    status = excluded.status, attempts = excluded.attempts, output = excluded.output,
    error = excluded.error, started_at = excluded.started_at, ended_at = excluded.ended_at,
    wake_at = excluded.wake_at, detail = excluded.detail;

-- name: save_steps_fenced
-- Many lone step checkpoints in one statement (merges.py): JSON rows (run_id, fence, then
-- the columns of save_step_fenced after the run id), each written only under its own
-- lease: the rows changed count those written. `WHERE true`: see insert_events.
INSERT INTO steps (run_id, hashed_id, id, kind, status, attempts, output, error, started_at,
                   ended_at, wake_at, detail, occurrence)
SELECT j.run_id, json_extract(r.value, '$[2]'), json_extract(r.value, '$[3]'),
       json_extract(r.value, '$[4]'), json_extract(r.value, '$[5]'),
       json_extract(r.value, '$[6]'), json_extract(r.value, '$[7]'),
       json_extract(r.value, '$[8]'), json_extract(r.value, '$[9]'),
       json_extract(r.value, '$[10]'), json_extract(r.value, '$[11]'),
       json_extract(r.value, '$[12]'), json_extract(r.value, '$[13]')
FROM json_each(:rows) AS r
JOIN jobs AS j ON j.run_id = json_extract(r.value, '$[0]')
    AND j.fence = json_extract(r.value, '$[1]')
WHERE true
ON CONFLICT (run_id, hashed_id) DO UPDATE SET
    status = excluded.status, attempts = excluded.attempts, output = excluded.output,
    error = excluded.error, started_at = excluded.started_at, ended_at = excluded.ended_at,
    wake_at = excluded.wake_at, detail = excluded.detail;

-- name: expire_step
UPDATE steps SET status = :status, output = :output, error = :error, ended_at = :ended_at
WHERE run_id = :run_id AND hashed_id = :hashed_id AND status IN ('waiting', 'invoking');

-- name: resolve_step
UPDATE steps SET status = :status, output = :output, error = :error, ended_at = :ended_at
WHERE run_id = :run_id AND hashed_id = :hashed_id AND status = :from_status;

-- name: get_step
SELECT id, hashed_id, status, attempts, output, error, started_at, ended_at, kind, wake_at, detail,
       occurrence
FROM steps WHERE run_id = :run_id AND hashed_id = :hashed_id;

-- name: insert_wait
INSERT INTO waits (run_id, hashed_id, event, condition, trigger_event, expires_at, match_path,
                   match_key, kind)
VALUES (:run_id, :hashed_id, :event, :condition, :trigger_event, :expires_at, :match_path,
        :match_key, :kind)
ON CONFLICT (run_id, hashed_id) DO NOTHING;

-- name: insert_wait_path
INSERT INTO wait_paths (event, match_path) VALUES (:event, :match_path) ON CONFLICT DO NOTHING;

-- name: waits_of_names
-- For the names of an intake batch's events, in one statement: the waits matched by
-- scanning (match_path NULL), and the key paths keyed waits of each name are found by.
WITH names AS (SELECT value AS name FROM json_each(:names))
SELECT event, run_id, hashed_id, condition, trigger_event, expires_at, kind, NULL AS match_path
FROM waits WHERE event IN (SELECT name FROM names) AND match_path IS NULL
UNION ALL
SELECT event, NULL, NULL, NULL, NULL, NULL, NULL, match_path
FROM wait_paths WHERE event IN (SELECT name FROM names);

-- name: waits_of_name
-- waits_of_names for a batch of one name, the usual send. On PostgreSQL a list's plan is
-- made again for every call once some waits exist (the plan for a list of unknown length
-- is costed at ten names, so the server keeps planning for the actual one: 0.14 ms a
-- send, more than the statement's work); a plan for one name is made once.
SELECT event, run_id, hashed_id, condition, trigger_event, expires_at, kind, NULL AS match_path
FROM waits WHERE event = :name AND match_path IS NULL
UNION ALL
SELECT event, NULL, NULL, NULL, NULL, NULL, NULL, match_path
FROM wait_paths WHERE event = :name;

-- name: waits_by_key
SELECT run_id, hashed_id, event, condition, trigger_event, expires_at, kind
FROM waits WHERE event = :event AND match_path = :match_path AND match_key = :match_key;

-- name: delete_wait
DELETE FROM waits WHERE run_id = :run_id AND hashed_id = :hashed_id;

-- name: delete_run_waits
DELETE FROM waits WHERE run_id = :run_id;

-- name: nudge
UPDATE jobs SET wake = 1,
    available_at = CASE WHEN owner IS NULL AND available_at > :now THEN :now ELSE available_at END
WHERE run_id = :run_id;

-- name: release
-- :woken_at is when a run woken meanwhile (wake = 1) is due, else :available_at.
UPDATE jobs SET owner = NULL,
    available_at = CASE WHEN wake = 1 THEN :woken_at ELSE :available_at END, wake = 0
WHERE run_id = :run_id;

-- name: set_run_status
UPDATE runs SET status = :status, attempt = COALESCE(:attempt, attempt) WHERE id = :id;

-- name: finish_run
UPDATE runs SET status = :status, output = :output, error = :error, ended_at = :ended_at
WHERE id = :id
RETURNING parent_run_id, parent_step;

-- name: close_open_steps
-- A run's end closes the steps it left open (a sleep, a wait, an invoke, a retry).
UPDATE steps SET status = 'cancelled', ended_at = :ended_at
WHERE run_id = :run_id AND status IN ('sleeping', 'waiting', 'invoking', 'retrying');

-- name: close_open_steps_many
-- Many run ends (merges.py): JSON rows (run_id, ended_at), as close_open_steps.
UPDATE steps SET status = 'cancelled', ended_at = r.ended_at
FROM (
    SELECT json_extract(value, '$[0]') AS run_id, json_extract(value, '$[1]') AS ended_at
    FROM json_each(:rows)
) AS r
WHERE steps.run_id = r.run_id AND steps.status IN ('sleeping', 'waiting', 'invoking', 'retrying');

-- name: delete_job
DELETE FROM jobs WHERE run_id = :run_id;

-- name: end_job
-- A run's end, by the worker whose lease carries this fencing token (no row: not ours).
DELETE FROM jobs WHERE run_id = :run_id AND fence = :fence;

-- name: end_jobs
-- Many run ends (merges.py): JSON rows (run_id, fence); returns the runs whose job went,
-- which are those whose lease held.
DELETE FROM jobs WHERE (run_id, fence) IN (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:leases)
)
RETURNING run_id;

-- name: finish_runs
-- JSON rows (id, status, output, error, ended_at), as finish_run sets them.
UPDATE runs SET status = r.status, output = r.output, error = r.error, ended_at = r.ended_at
FROM (
    SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS status,
           json_extract(value, '$[2]') AS output, json_extract(value, '$[3]') AS error,
           json_extract(value, '$[4]') AS ended_at
    FROM json_each(:rows)
) AS r
WHERE runs.id = r.id
RETURNING runs.id, runs.parent_run_id, runs.parent_step;

-- name: delete_waits_many
DELETE FROM waits WHERE run_id IN (SELECT value FROM json_each(:ids));

-- name: run_parent
SELECT parent_run_id, parent_step FROM runs WHERE id = :id;

-- name: cancel_run_now
UPDATE runs SET status = 'cancelled', ended_at = :ended_at
WHERE id = :id AND status NOT IN ('completed', 'failed', 'cancelled', 'skipped');

-- name: job_owner
SELECT owner FROM jobs WHERE run_id = :run_id;

-- name: flag_cancel
-- The owner stops the run after its steps in flight are saved; should it die, the run
-- is finalized by whoever claims it when the lease runs out.
UPDATE jobs SET cancel = 1 WHERE run_id = :run_id AND owner IS NOT NULL;

-- name: insert_history
INSERT INTO history (run_id, at, kind, data) VALUES (:run_id, :at, :kind, :data);

-- name: get_run
SELECT id, function_id, status, attempt, event_ids, output, error, created_at, started_at,
       ended_at
FROM runs WHERE id = :id;

-- name: end_due_sleeps
-- Run before the lease, while each job still says when its run is due: the sleeps due by
-- then end, at their own time when the run was claimed ahead of it (claim_due).
UPDATE steps SET status = 'completed', output = 'null', ended_at = max(wake_at, :now)
WHERE run_id IN (SELECT value FROM json_each(:ids)) AND status = 'sleeping'
    AND wake_at <= max(:now, (SELECT available_at FROM jobs WHERE jobs.run_id = steps.run_id));

-- name: get_runs
SELECT id, function_id, status, attempt, event_ids, output, error, created_at, started_at,
       ended_at
FROM runs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: run_steps_many
SELECT run_id, id, hashed_id, status, attempts, output, error, started_at, ended_at, kind,
       wake_at, detail, occurrence
FROM steps WHERE run_id IN (SELECT value FROM json_each(:ids))
ORDER BY run_id, started_at, ended_at;

-- name: run_steps
SELECT id, hashed_id, status, attempts, output, error, started_at, ended_at, kind, wake_at, detail,
       occurrence
FROM steps WHERE run_id = :run_id ORDER BY started_at, ended_at;

-- name: run_history
SELECT at, kind, data FROM history WHERE run_id = :run_id ORDER BY seq;

-- name: list_runs
SELECT id, function_id, status, attempt, event_ids, output, error, created_at, started_at,
       ended_at
FROM runs
WHERE (:function_id IS NULL OR function_id = :function_id) AND (:status IS NULL OR status = :status)
  AND (:cursor IS NULL OR id < :cursor)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND (:event_name IS NULL OR EXISTS (
      SELECT 1 FROM json_each(runs.event_ids) AS j JOIN events e ON e.id = j.value
      WHERE e.name GLOB :event_name
  ))
ORDER BY id DESC LIMIT :limit;

-- name: reruns_of
-- The runs started by App.rerun of this run: they share its events (history says "rerun").
SELECT DISTINCT h.run_id FROM runs r, json_each(r.event_ids) AS j
JOIN run_events e ON e.event_id = j.value
JOIN history h ON h.run_id = e.run_id
WHERE r.id = :run_id AND h.kind = 'rerun' AND json_extract(h.data, '$.of') = :run_id
ORDER BY h.run_id;

-- name: runs_for_event
SELECT r.id, r.function_id, r.status, r.attempt, r.event_ids, r.output, r.error, r.created_at,
       r.started_at, r.ended_at
FROM run_events e JOIN runs r ON r.id = e.run_id
WHERE e.event_id = :event_id ORDER BY r.id;

-- name: get_event
SELECT id, name, data, ts, user_data, v, received_at, meta, trace, tracestate FROM events WHERE id = :id;

-- name: event_runs
SELECT run_id FROM run_events WHERE event_id = :event_id ORDER BY run_id;

-- name: list_events
SELECT id, name, data, ts, user_data, v, received_at, meta, trace, tracestate FROM events
WHERE (:name IS NULL OR name = :name)
  AND (:before IS NULL OR received_at < :before OR (received_at = :before AND id < :cursor))
ORDER BY received_at DESC, id DESC LIMIT :limit;

-- name: upsert_function
INSERT INTO functions (id, app_id, config, updated_at)
VALUES (:id, :app_id, :config, :updated_at)
ON CONFLICT (id) DO UPDATE SET
    app_id = excluded.app_id, config = excluded.config, updated_at = excluded.updated_at;

-- name: app_functions
SELECT id FROM functions WHERE app_id = :app_id;

-- name: app_url
-- An SDK app's row (a Python app has none).
SELECT url FROM apps WHERE id = :app_id;

-- name: delete_function
DELETE FROM functions WHERE id = :id;

-- name: list_functions
SELECT config FROM functions ORDER BY id;

-- name: upsert_app
INSERT INTO apps (id, url, sdk, framework, app_version, synced_at, error)
VALUES (:id, :url, :sdk, :framework, :app_version, :synced_at, :error)
ON CONFLICT (id) DO UPDATE SET
    url = excluded.url, sdk = excluded.sdk, framework = excluded.framework,
    app_version = excluded.app_version, synced_at = excluded.synced_at, error = excluded.error;

-- name: app_sync_failed
INSERT INTO apps (id, url, sdk, framework, app_version, synced_at, error)
VALUES (:id, :url, :sdk, :framework, :app_version, :synced_at, :error)
ON CONFLICT (id) DO UPDATE SET synced_at = excluded.synced_at, error = excluded.error;

-- name: list_apps
SELECT id, url, sdk, framework, app_version, synced_at, error FROM apps ORDER BY id;

-- name: applied_migrations
-- The versions of the schema's migrations, for the readiness probe.
SELECT version FROM schema_migrations;

-- name: release_leases
-- A stopping worker hands its runs back: JSON rows (run_id, fence, at). Each job whose
-- lease still holds is freed and due at its `at`, or at once (the second parameter) when
-- something woke it meanwhile; returns the run ids released.
UPDATE jobs SET owner = NULL, wake = 0,
    available_at = CASE WHEN jobs.wake = 1 THEN :woken_at ELSE json_extract(l.value, '$[2]') END
FROM json_each(:rows) AS l
WHERE jobs.owner IS NOT NULL
  AND jobs.run_id = json_extract(l.value, '$[0]')
  AND jobs.fence = json_extract(l.value, '$[1]')
RETURNING jobs.run_id;

-- name: backlog
-- Jobs due now and not leased (a lease that expired is due), and the oldest due time.
SELECT count(*) AS due, min(available_at) AS oldest FROM jobs WHERE available_at <= :now;

-- name: prune_pick_runs
-- Retention: a batch of runs that ended before the first parameter, oldest first.
SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at < :before ORDER BY ended_at LIMIT :limit;

-- name: prune_steps
DELETE FROM steps WHERE run_id IN (SELECT value FROM json_each(:ids));

-- name: prune_history
DELETE FROM history WHERE run_id IN (SELECT value FROM json_each(:ids));

-- name: prune_waits
DELETE FROM waits WHERE run_id IN (SELECT value FROM json_each(:ids));

-- name: prune_flow_keys
-- The keys a pruned run held (an idempotency key: its 24 hours are over by then).
DELETE FROM flow_keys WHERE run_id IN (SELECT value FROM json_each(:ids));

-- name: prune_run_links
-- The links of pruned runs to their events; returns the events linked.
DELETE FROM run_events WHERE run_id IN (SELECT value FROM json_each(:ids)) RETURNING event_id;

-- name: prune_runs
DELETE FROM runs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: prune_events
-- Events received before the first parameter that no run needs any more (their runs
-- pruned, or none ever started), a batch at a time, oldest first.
DELETE FROM events WHERE id IN (
    SELECT id FROM events
    WHERE received_at < :before AND NOT EXISTS (SELECT 1 FROM run_events l WHERE l.event_id = events.id)
    ORDER BY received_at LIMIT :limit
)
RETURNING id;
