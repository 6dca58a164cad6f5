-- What a wait is for, as a value rather than read back from its id: a step waiting for
-- an event ('step'), or a cancel_on rule of its run ('cancel').
ALTER TABLE waits ADD COLUMN kind TEXT NOT NULL DEFAULT 'step';
UPDATE waits SET kind = 'cancel' WHERE hashed_id LIKE 'cancel:%';
