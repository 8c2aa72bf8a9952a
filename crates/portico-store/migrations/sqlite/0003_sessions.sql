-- Server-side sessions. The cookie holds a random 256-bit id; only its SHA-256 is stored, so
-- a copy of the database does not let anyone sign in.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The host the cookie belongs to (the portal, or an app's own host).
    host         TEXT NOT NULL,
    -- Sessions made by the cross-host handshake point at the portal session they came from,
    -- so that signing out there ends them too.
    parent_hash  TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_revocation ON sessions (revoked_at);

-- A feed of changed users (flags, password, groups), in order: a running Portico polls it to
-- learn within seconds what another process (the CLI) changed, e.g. a user was disabled.
CREATE TABLE user_changes (
    seq      INTEGER PRIMARY KEY,
    user_id  INTEGER NOT NULL
);
