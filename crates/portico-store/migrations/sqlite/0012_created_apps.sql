-- Apps made by a first deploy (`[deploy] creators`) rather than declared in the config. They
-- are served from their live release; an app of the same name in the config takes over.
CREATE TABLE created_apps (
    name        TEXT PRIMARY KEY,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
