-- A job inserted already leased (a run its sending process's worker takes as the event is
-- stored) is nobody else's work: it announces nothing, so other workers do not wake to
-- claim and find nothing. Every other insert still announces itself (0004).
DROP TRIGGER jobs_notify_insert ON jobs;
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
FOR EACH ROW WHEN (NEW.owner IS NULL)
EXECUTE FUNCTION stepstone_jobs_notify();
