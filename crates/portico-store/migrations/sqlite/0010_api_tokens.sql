-- API tokens: what `portico deploy`, `git push` and scripts authenticate with. A token acts
-- for its user, within its scopes. Only the SHA-256 of the token is kept (tokens are 256
-- random bits, so a fast hash is enough), with a short prefix to recognise it in lists.
-- Times are Unix seconds.
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- Space-separated: `deploy` (every app the user may deploy) or `deploy:<app>`.
    scopes        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);
