-- Per-user apps: whose private instance a replica is (the user's id and, for listings that
-- must not depend on the account still existing, their e-mail when it started).
ALTER TABLE replicas ADD COLUMN owner_id INTEGER;
ALTER TABLE replicas ADD COLUMN owner_email TEXT;
