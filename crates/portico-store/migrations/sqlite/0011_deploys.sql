-- Releases become numbered versions of an app: the first from its folder in the config,
-- the next from each `portico deploy`, git push or webhook. A release is immutable but for
-- its state: queued → building → starting → live (the one new sessions go to; one per
-- app) → superseded, or failed with the reason; pruned once its files are removed.
ALTER TABLE releases ADD COLUMN number INTEGER;
-- `config` (the app's folder), `upload`, `git`, `webhook`.
ALTER TABLE releases ADD COLUMN origin TEXT NOT NULL DEFAULT 'config';
-- Where a deployed release's files are; NULL: the app's folder in the config.
ALTER TABLE releases ADD COLUMN source_dir TEXT;
ALTER TABLE releases ADD COLUMN commit_id TEXT;
-- The e-mail of who deployed it; NULL for the config's.
ALTER TABLE releases ADD COLUMN deployed_by TEXT;
ALTER TABLE releases ADD COLUMN build_log TEXT;
ALTER TABLE releases ADD COLUMN state TEXT NOT NULL DEFAULT 'superseded';
ALTER TABLE releases ADD COLUMN reason TEXT;
ALTER TABLE releases ADD COLUMN finished_at TEXT;

UPDATE releases SET number = (
    SELECT COUNT(*) FROM releases AS earlier
    WHERE earlier.app = releases.app AND earlier.id <= releases.id
);
UPDATE releases SET state = 'live' WHERE id IN (SELECT MAX(id) FROM releases GROUP BY app);

CREATE UNIQUE INDEX releases_by_number ON releases (app, number);
CREATE UNIQUE INDEX one_live_release ON releases (app) WHERE state = 'live';
