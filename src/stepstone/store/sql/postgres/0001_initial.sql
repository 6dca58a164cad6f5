-- stepstone schema, version 1 (PostgreSQL)
-- Ids are COLLATE "C": they are compared and paginated byte by byte, as in SQLite, whatever
-- the database's locale (and byte comparison is the fastest).
CREATE TABLE events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    data        TEXT NOT NULL,
    ts          BIGINT NOT NULL,
    user_data   TEXT,
    v           TEXT,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX events_by_received ON events (received_at, id);
CREATE INDEX events_by_name ON events (name, received_at);

CREATE TABLE runs (
    id            TEXT COLLATE "C" PRIMARY KEY,
    function_id   TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempt       INTEGER NOT NULL DEFAULT 0,
    event_ids     TEXT NOT NULL,
    output        TEXT,
    error         TEXT,
    created_at    DOUBLE PRECISION NOT NULL,
    started_at    DOUBLE PRECISION,
    ended_at      DOUBLE PRECISION,
    parent_run_id TEXT,
    parent_step   TEXT,
    reason        TEXT
);
CREATE INDEX runs_by_function ON runs (function_id, id);
CREATE INDEX runs_by_status ON runs (status, id);

CREATE TABLE run_events (
    event_id TEXT COLLATE "C" NOT NULL,
    run_id   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (event_id, run_id)
);

CREATE TABLE steps (
    run_id     TEXT NOT NULL,
    hashed_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    status     TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    output     TEXT,
    error      TEXT,
    started_at DOUBLE PRECISION,
    ended_at   DOUBLE PRECISION,
    wake_at    DOUBLE PRECISION,
    detail     TEXT,
    PRIMARY KEY (run_id, hashed_id)
);

-- One job per unfinished run. available_at is when it may be claimed next: a timer's
-- due time, or, while a worker holds it, the end of that worker's lease.
CREATE TABLE jobs (
    run_id       TEXT PRIMARY KEY,
    function_id  TEXT NOT NULL,
    available_at DOUBLE PRECISION NOT NULL,
    owner        TEXT,
    fence        INTEGER NOT NULL DEFAULT 0,
    wake         INTEGER NOT NULL DEFAULT 0,
    cancel       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_time ON jobs (available_at);

CREATE TABLE waits (
    run_id        TEXT NOT NULL,
    hashed_id     TEXT NOT NULL,
    event         TEXT NOT NULL,
    condition     TEXT,
    trigger_event TEXT NOT NULL,
    expires_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, hashed_id)
);
CREATE INDEX waits_by_event ON waits (event);

CREATE TABLE history (
    seq    BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    at     DOUBLE PRECISION NOT NULL,
    kind   TEXT NOT NULL,
    data   TEXT
);
CREATE INDEX history_by_run ON history (run_id, seq);
