-- The claim takes runs already started (fence > 0) before runs not started yet, each
-- lane in due order: this index is the first lane; jobs_by_time serves the second.
CREATE INDEX jobs_resumes_by_time ON jobs (available_at) WHERE fence > 0;
