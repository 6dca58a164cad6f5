-- The steps a run's end closes (a sleep, a wait, an invoke, a retry still open), found by
-- run without reading the run's finished steps. A batch of run ends then keeps off a scan
-- of all of `steps` even before autovacuum has analyzed the table; the index holds open
-- steps only, so a step checkpointed as completed never enters it.
CREATE INDEX steps_open ON steps (run_id)
WHERE status IN ('sleeping', 'waiting', 'invoking', 'retrying');
