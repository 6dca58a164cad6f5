-- Retention: finished runs are found by when they ended, and a pruned run's links to its
-- events by the run.
CREATE INDEX runs_by_end ON runs (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX run_events_by_run ON run_events (run_id);
