//! Releases: the numbered versions of an app. The first comes from the app's folder in the
//! config; each deploy adds one. A release is immutable but for its state, and exactly one
//! per app is `live`: the one new sessions go to.

use crate::{now, Result, Store};
use portico_core::Framework;
use serde::Serialize;

/// Where a release is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseState {
    /// Waiting behind another deploy of the same app.
    Queued,
    /// Its environment or image is being built.
    Building,
    /// Its replicas are starting; the live release still takes every new session.
    Starting,
    /// New sessions go to it.
    Live,
    /// A later release took over; it can be rolled back to while its files are kept.
    Superseded,
    /// Its build or its replicas failed; the reason says why. The live release kept serving.
    Failed,
    /// Its files were removed (beyond `deploy.keep_releases`); it cannot be rolled back to.
    Pruned,
}

impl ReleaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Queued => "queued",
            ReleaseState::Building => "building",
            ReleaseState::Starting => "starting",
            ReleaseState::Live => "live",
            ReleaseState::Superseded => "superseded",
            ReleaseState::Failed => "failed",
            ReleaseState::Pruned => "pruned",
        }
    }

    pub fn parse(text: &str) -> Option<ReleaseState> {
        use ReleaseState::*;
        [Queued, Building, Starting, Live, Superseded, Failed, Pruned]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Whether the deploy that made it is over (live, or failed).
    pub fn is_settled(self) -> bool {
        !matches!(
            self,
            ReleaseState::Queued | ReleaseState::Building | ReleaseState::Starting
        )
    }
}

/// One release as the store has it.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseRow {
    /// Unique across apps; what replicas record.
    pub id: i64,
    pub app: String,
    /// 1, 2, 3, … per app: what people name it by.
    pub number: i64,
    /// `config`, `upload`, `git` or `webhook`.
    pub origin: String,
    pub framework: String,
    pub entrypoint: String,
    /// The Python environment's digest, `image <tag>`, or `system`; empty until built.
    pub environment: String,
    /// A deployed release's files; `None`: the app's folder in the config.
    pub source_dir: Option<String>,
    pub commit_id: Option<String>,
    pub deployed_by: Option<String>,
    pub build_log: Option<String>,
    pub state: ReleaseState,
    pub reason: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ReleaseRecord {
    id: i64,
    app: String,
    number: Option<i64>,
    origin: String,
    framework: String,
    entrypoint: String,
    environment: String,
    source_dir: Option<String>,
    commit_id: Option<String>,
    deployed_by: Option<String>,
    build_log: Option<String>,
    state: String,
    reason: Option<String>,
    created_at: String,
    finished_at: Option<String>,
}

impl From<ReleaseRecord> for ReleaseRow {
    fn from(r: ReleaseRecord) -> ReleaseRow {
        ReleaseRow {
            id: r.id,
            app: r.app,
            number: r.number.unwrap_or_default(),
            origin: r.origin,
            framework: r.framework,
            entrypoint: r.entrypoint,
            environment: r.environment,
            source_dir: r.source_dir,
            commit_id: r.commit_id,
            deployed_by: r.deployed_by,
            build_log: r.build_log,
            // A state written by a newer Portico reads as superseded rather than failing.
            state: ReleaseState::parse(&r.state).unwrap_or(ReleaseState::Superseded),
            reason: r.reason,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

const COLUMNS: &str = "id, app, number, origin, framework, entrypoint, environment, source_dir, commit_id, deployed_by, build_log, state, reason, created_at, finished_at";

/// A deploy's release, before it is built.
#[derive(Debug, Clone)]
pub struct NewRelease<'a> {
    pub app: &'a str,
    pub origin: &'a str,
    pub framework: Framework,
    pub entrypoint: &'a str,
    pub source_dir: &'a str,
    pub commit_id: Option<&'a str>,
    pub deployed_by: &'a str,
    pub build_log: &'a str,
}

impl Store {
    /// The release of the app's folder in the config for this (framework, entrypoint,
    /// environment): its latest such release when that matches, else a new one. Either way
    /// it becomes the live release.
    pub async fn release_for(
        &self,
        app: &str,
        framework: Framework,
        entrypoint: &str,
        environment: &str,
    ) -> Result<i64> {
        let latest: Option<(i64, String, String, String)> = sqlx::query_as(
            "SELECT id, framework, entrypoint, environment FROM releases WHERE app = ? AND origin = 'config' ORDER BY id DESC LIMIT 1",
        )
        .bind(app)
        .fetch_optional(&self.pool)
        .await?;
        let id = match latest {
            Some((id, f, e, env))
                if f == framework.config_name() && e == entrypoint && env == environment =>
            {
                id
            }
            _ => {
                let mut tx = self.pool.begin().await?;
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO releases (app, number, framework, entrypoint, environment, created_at, state, origin)
                     VALUES (?, (SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE app = ?), ?, ?, ?, ?, 'superseded', 'config')
                     RETURNING id",
                )
                .bind(app)
                .bind(app)
                .bind(framework.config_name())
                .bind(entrypoint)
                .bind(environment)
                .bind(now())
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                id
            }
        };
        self.make_live(id).await?;
        Ok(id)
    }

    /// Records a deploy's release (`queued`), numbered after the app's latest.
    pub async fn add_release(&self, new: &NewRelease<'_>) -> Result<ReleaseRow> {
        let record: ReleaseRecord = sqlx::query_as(&format!(
            "INSERT INTO releases (app, number, origin, framework, entrypoint, environment, source_dir, commit_id, deployed_by, build_log, state, created_at)
             VALUES (?, (SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE app = ?), ?, ?, ?, '', ?, ?, ?, ?, 'queued', ?)
             RETURNING {COLUMNS}"
        ))
        .bind(new.app)
        .bind(new.app)
        .bind(new.origin)
        .bind(new.framework.config_name())
        .bind(new.entrypoint)
        .bind(new.source_dir)
        .bind(new.commit_id)
        .bind(new.deployed_by)
        .bind(new.build_log)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        Ok(record.into())
    }

    /// Moves a release on; `reason` says why it failed (or what happened).
    pub async fn set_release_state(
        &self,
        id: i64,
        state: ReleaseState,
        reason: Option<&str>,
    ) -> Result<()> {
        let finished = state.is_settled().then(now);
        sqlx::query(
            "UPDATE releases SET state = ?, reason = COALESCE(?, reason), finished_at = COALESCE(?, finished_at) WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(finished)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records what a release's build made (environment digest, `image <tag>`, `system`).
    pub async fn set_release_environment(&self, id: i64, environment: &str) -> Result<()> {
        sqlx::query("UPDATE releases SET environment = ? WHERE id = ?")
            .bind(environment)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes a release the live one of its app; the one live before is superseded.
    pub async fn make_live(&self, id: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        sqlx::query(
            "UPDATE releases SET state = 'superseded' WHERE state = 'live' AND id <> ? AND app = (SELECT app FROM releases WHERE id = ?)",
        )
        .bind(id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE releases SET state = 'live', finished_at = COALESCE(finished_at, ?) WHERE id = ?",
        )
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The app's live release.
    pub async fn live_release(&self, app: &str) -> Result<Option<ReleaseRow>> {
        let record: Option<ReleaseRecord> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM releases WHERE app = ? AND state = 'live'"
        ))
        .bind(app)
        .fetch_optional(&self.pool)
        .await?;
        Ok(record.map(Into::into))
    }

    /// An app's release by its number.
    pub async fn release(&self, app: &str, number: i64) -> Result<Option<ReleaseRow>> {
        let record: Option<ReleaseRecord> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM releases WHERE app = ? AND number = ?"
        ))
        .bind(app)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        Ok(record.map(Into::into))
    }

    /// An app's releases, newest first.
    pub async fn releases(&self, app: &str) -> Result<Vec<ReleaseRow>> {
        let records: Vec<ReleaseRecord> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM releases WHERE app = ? ORDER BY number DESC"
        ))
        .bind(app)
        .fetch_all(&self.pool)
        .await?;
        Ok(records.into_iter().map(Into::into).collect())
    }

    /// The environment (or image) of an app's latest built release, if it has one.
    pub async fn latest_environment(&self, app: &str) -> Result<Option<String>> {
        let latest: Option<(String,)> = sqlx::query_as(
            "SELECT environment FROM releases WHERE app = ? AND environment <> '' ORDER BY state = 'live' DESC, id DESC LIMIT 1",
        )
        .bind(app)
        .fetch_optional(&self.pool)
        .await?;
        Ok(latest.map(|(environment,)| environment))
    }

    /// Settles releases queued, building or starting when Portico stopped: their deploy was
    /// interrupted and will not resume by itself. A new release is failed; one being rolled
    /// back to (it was live before, so it has finished) is superseded again.
    pub async fn fail_interrupted_releases(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE releases SET
                state = CASE WHEN finished_at IS NULL THEN 'failed' ELSE 'superseded' END,
                reason = 'Portico stopped during the deploy; deploy again',
                finished_at = COALESCE(finished_at, ?)
             WHERE state IN ('queued', 'building', 'starting')",
        )
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// An app made by a first deploy.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CreatedApp {
    pub name: String,
    pub created_by: String,
    pub created_at: String,
}

impl Store {
    /// Records an app made by `creator`'s first deploy; `false` if it exists already.
    pub async fn add_created_app(&self, name: &str, creator: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO created_apps (name, created_by, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(creator)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn remove_created_app(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM created_apps WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Apps made by deploys, by name.
    pub async fn created_apps(&self) -> Result<Vec<CreatedApp>> {
        Ok(
            sqlx::query_as("SELECT name, created_by, created_at FROM created_apps ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
