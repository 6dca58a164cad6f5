-- An event's `meta` object, as the npm SDK sends it (session propagation), kept as JSON.
ALTER TABLE events ADD COLUMN meta TEXT;
