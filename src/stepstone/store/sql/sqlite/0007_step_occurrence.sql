-- A step id used more than once in a run is recorded under the id as the user wrote it,
-- with the use it is (0, 1, 2, ...) here; hashed_id still tells the uses apart.
ALTER TABLE steps ADD COLUMN occurrence INTEGER NOT NULL DEFAULT 0;
