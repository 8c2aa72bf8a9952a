-- Portal sessions made by an OpenID Connect sign-in: the provider's tokens, sealed with the
-- instance key, to refresh the person's groups while the session lasts and to end their
-- session at the provider on sign-out.
CREATE TABLE sso_sessions (
    session_hash     TEXT PRIMARY KEY REFERENCES sessions (id_hash) ON DELETE CASCADE,
    provider         TEXT NOT NULL,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id_token_sealed  BLOB,
    refresh_sealed   BLOB,
    next_refresh_at  INTEGER NOT NULL
);
CREATE INDEX sso_sessions_by_refresh ON sso_sessions (next_refresh_at);
