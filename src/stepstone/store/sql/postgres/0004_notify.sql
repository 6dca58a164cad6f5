-- Wake-ups: the jobs table announces work with NOTIFY, in the transaction that creates it.
-- A trigger rather than calls in the write scripts: every path that makes a job due (new
-- run, resumed wait, released lease, cancel) is covered, including ones added later, and
-- SQLite runs the same scripts without paying for it. NOTIFY is delivered at commit, and
-- identical notifications of one transaction are merged, so a batch of 1,000 new runs
-- sends one message.
--   stepstone_work    (no payload): a job was created or made due sooner; claim now.
--   stepstone_cancel  (run id):     a run was asked to stop; its holder stops it at once.
CREATE FUNCTION stepstone_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.cancel <> OLD.cancel THEN
        PERFORM pg_notify('stepstone_cancel', NEW.run_id);
    END IF;
    PERFORM pg_notify('stepstone_work', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
FOR EACH ROW EXECUTE FUNCTION stepstone_jobs_notify();

-- Claims and lease renewals (owner set) do not wake anyone: only a release, a nudge of an
-- idle job, or a cancel does.
CREATE TRIGGER jobs_notify_update AFTER UPDATE ON jobs
FOR EACH ROW WHEN (
    (NEW.owner IS NULL AND (OLD.owner IS NOT NULL OR NEW.available_at < OLD.available_at))
    OR NEW.cancel <> OLD.cancel
)
EXECUTE FUNCTION stepstone_jobs_notify();
