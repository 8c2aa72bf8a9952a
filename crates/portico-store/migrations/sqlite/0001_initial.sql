-- Apps as last declared in the config, with their current status as the fleet sees it.
CREATE TABLE apps (
    name            TEXT PRIMARY KEY,
    title           TEXT NOT NULL,
    framework       TEXT,
    source          TEXT NOT NULL,
    status          TEXT NOT NULL,
    status_reason   TEXT,
    restarts        INTEGER NOT NULL DEFAULT 0,
    last_restart_reason TEXT,
    last_restart_at TEXT,
    updated_at      TEXT NOT NULL
);

-- A release is one runnable version of an app: framework, entrypoint and environment.
CREATE TABLE releases (
    id          INTEGER PRIMARY KEY,
    app         TEXT NOT NULL,
    framework   TEXT NOT NULL,
    entrypoint  TEXT NOT NULL,
    environment TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX releases_by_app ON releases (app, id);

-- Replicas started by a runtime. `pid` and `endpoint` let the CLI and recovery find them.
CREATE TABLE replicas (
    id          TEXT PRIMARY KEY,
    app         TEXT NOT NULL,
    release_id  INTEGER NOT NULL,
    runtime     TEXT NOT NULL,
    pid         INTEGER,
    endpoint    TEXT,
    state       TEXT NOT NULL,
    exit_reason TEXT,
    log_path    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX replicas_by_app ON replicas (app, started_at);

-- What happened and why: every start, readiness, exit, restart and failure.
CREATE TABLE events (
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    app      TEXT NOT NULL,
    replica  TEXT,
    kind     TEXT NOT NULL,
    message  TEXT NOT NULL
);
CREATE INDEX events_by_app ON events (app, id);
