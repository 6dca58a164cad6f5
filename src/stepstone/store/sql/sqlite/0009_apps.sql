-- Apps synced by the official SDKs (POST /fn/register): where they are served, what they
-- run, and how their last sync went. Their functions are rows of `functions` (app_id).
CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    sdk         TEXT NOT NULL,
    framework   TEXT,
    app_version TEXT,
    synced_at   REAL NOT NULL,
    error       TEXT
);
