-- The steps a run's end closes (a sleep, a wait, an invoke, a retry still open), found by
-- run without reading the run's finished steps. The planner then never prefers a scan of
-- all of `steps` for a batch of run ends, whatever its statistics say of the table; the
-- index holds only open steps, so it costs the checkpoints nothing.
CREATE INDEX steps_open ON steps (run_id)
WHERE status IN ('sleeping', 'waiting', 'invoking', 'retrying');
