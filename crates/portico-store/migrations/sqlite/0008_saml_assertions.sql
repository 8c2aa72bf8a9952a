-- SAML assertions already used to sign in, kept until they would have expired anyway, so a
-- captured assertion cannot be presented a second time (replay protection).
CREATE TABLE saml_assertions_used (
    provider      TEXT NOT NULL,
    assertion_id  TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (provider, assertion_id)
);
CREATE INDEX saml_assertions_used_by_expiry ON saml_assertions_used (expires_at);
