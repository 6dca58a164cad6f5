-- The function registry: workers publish their functions' triggers and options here,
-- so any process that sends events (even one without the functions' code) starts runs.
CREATE TABLE functions (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    config     TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX functions_by_app ON functions (app_id);
