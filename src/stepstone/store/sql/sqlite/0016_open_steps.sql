-- The steps a run's end closes, by run, as on PostgreSQL (where the planner needs it: see
-- ../postgres/0016_open_steps.sql); the schemas stay alike. It holds open steps only.
CREATE INDEX steps_open ON steps (run_id)
WHERE status IN ('sleeping', 'waiting', 'invoking', 'retrying');
