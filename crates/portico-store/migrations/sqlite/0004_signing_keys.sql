-- Keys that sign the identity assertions Portico sends to dashboards (X-Portico-Assertion).
-- The newest key signs; every key not retired is published in the JWKS, so that assertions
-- signed just before a rotation still verify.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    -- PKCS#8 DER of the P-256 private key.
    private_der  BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    retired_at   INTEGER
);
