-- Accounts made or linked by single sign-on: which provider (`ldap:corp`, `oidc:okta`, …)
-- knows the person by which stable subject (an LDAP DN or entryUUID, an OIDC `sub`, a SAML
-- NameID).
CREATE TABLE external_identities (
    provider    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX external_identities_by_user ON external_identities (user_id);

-- Where a membership came from: 'local' (an administrator) or a provider, whose sign-ins
-- replace the memberships it gave and leave the others alone.
ALTER TABLE group_members ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
