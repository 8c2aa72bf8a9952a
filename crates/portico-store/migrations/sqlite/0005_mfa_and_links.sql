-- Time-based one-time passwords (RFC 6238), at most one authenticator per user. The secret is
-- sealed with the instance's secret key (portico-identity `secrets`), so a copy of the
-- database alone does not yield it. `confirmed_at` is NULL while enrolment is pending.
CREATE TABLE totp (
    user_id        INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed  BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    confirmed_at   INTEGER,
    -- The newest time step accepted: each code is accepted once, never replayed.
    last_step      INTEGER NOT NULL DEFAULT 0
);

-- One-time recovery codes, SHA-256 of the code (the codes are random, 80 bits each).
CREATE TABLE recovery_codes (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- Single-use links sent by e-mail or printed by the CLI: invitations and password resets.
-- Only the SHA-256 of the token is kept.
CREATE TABLE account_links (
    token_hash  TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX account_links_by_user ON account_links (user_id);
