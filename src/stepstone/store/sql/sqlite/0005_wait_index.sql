-- Waits whose condition is `event.x == async.y` are found by key, not by scanning every
-- wait for the event's name (see stepstone/waitkeys.py). NULL: matched by scanning.
ALTER TABLE waits ADD COLUMN match_path TEXT;
ALTER TABLE waits ADD COLUMN match_key TEXT;
DROP INDEX waits_by_event;
CREATE INDEX waits_by_key ON waits (event, match_path, match_key);

-- The incoming-event paths that some wait for an event name is keyed by (a handful).
CREATE TABLE wait_paths (
    event      TEXT NOT NULL,
    match_path TEXT NOT NULL,
    PRIMARY KEY (event, match_path)
);
