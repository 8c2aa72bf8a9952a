//! Persistence for Portico: apps, releases, replicas and events.
//!
//! The store is the source of truth for the control path and for the CLI (`portico apps`
//! reads it while `portico up` writes it). The request path never touches it. SQLite is the
//! embedded default; the SQL is kept to what PostgreSQL also accepts so that a second backend
//! is a new pool type and a migrations folder, not new queries.

mod external;
mod identity;
mod links;
mod mfa;
mod releases;
mod rows;
mod sessions;
mod tokens;

pub use external::SsoSessionRow;
pub use identity::{AuditFilter, AuditRow, GroupRow, UserChange, UserRow};
pub use links::LinkRow;
pub use mfa::TotpRow;
pub use releases::{CreatedApp, NewRelease, ReleaseRow, ReleaseState};
pub use rows::{AppRow, EventRow, InstanceOwner, ReplicaRow};
pub use sessions::{SessionRow, SigningKeyRow};
pub use tokens::{TokenListing, TokenRow};

use portico_core::{AppStatus, Framework, ReplicaState};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data folder {}: {source}. Check server.data_dir and its permissions.", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database {}: {source}", path.display())]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot update the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

/// The database file inside a data folder.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("portico.db")
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir` and applies migrations.
    pub async fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = database_path(data_dir);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            // WAL lets `portico apps` read while `portico up` writes.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Opens an existing database for reading by the CLI; `None` when Portico never ran here.
    pub async fn open_existing(data_dir: &Path) -> Result<Option<Store>> {
        if !database_path(data_dir).is_file() {
            return Ok(None);
        }
        Store::open(data_dir).await.map(Some)
    }

    /// Records the apps of a config at start-up: known apps are updated, new ones added, and
    /// apps no longer in the config are forgotten (their events stay).
    pub async fn register_apps(
        &self,
        apps: &[(&str, &str, Option<Framework>, &Path)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let keep: Vec<&str> = apps.iter().map(|a| a.0).collect();
        let existing: Vec<(String,)> = sqlx::query_as("SELECT name FROM apps")
            .fetch_all(&mut *tx)
            .await?;
        for (name,) in existing {
            if !keep.contains(&name.as_str()) {
                sqlx::query("DELETE FROM apps WHERE name = ?")
                    .bind(&name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for app in apps {
            upsert_app(&mut tx, app, &at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A reload's changes in one transaction: `started` apps (new, or restarted with a new
    /// definition) are registered afresh, `removed` ones forgotten, `retitled` renamed.
    pub async fn change_apps(
        &self,
        started: &[(&str, &str, Option<Framework>, &Path)],
        retitled: &[(&str, &str)],
        removed: &[&str],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        for name in removed {
            sqlx::query("DELETE FROM apps WHERE name = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        for app in started {
            upsert_app(&mut tx, app, &at).await?;
        }
        for (name, title) in retitled {
            sqlx::query("UPDATE apps SET title = ?, updated_at = ? WHERE name = ?")
                .bind(title)
                .bind(&at)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_app_framework(&self, app: &str, framework: Framework) -> Result<()> {
        sqlx::query("UPDATE apps SET framework = ?, updated_at = ? WHERE name = ?")
            .bind(framework.config_name())
            .bind(now())
            .bind(app)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_app_status(&self, app: &str, status: &AppStatus) -> Result<()> {
        let reason = match status {
            AppStatus::Failed(reason) => Some(reason.as_str()),
            _ => None,
        };
        sqlx::query("UPDATE apps SET status = ?, status_reason = ?, updated_at = ? WHERE name = ?")
            .bind(status.label())
            .bind(reason)
            .bind(now())
            .bind(app)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts a restart of one of the app's replicas and remembers why.
    pub async fn record_restart(&self, app: &str, reason: &str) -> Result<()> {
        let at = now();
        sqlx::query(
            "UPDATE apps SET restarts = restarts + 1, last_restart_reason = ?, last_restart_at = ?, updated_at = ?
             WHERE name = ?",
        )
        .bind(reason)
        .bind(&at)
        .bind(&at)
        .bind(app)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn insert_replica(&self, replica: &ReplicaRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO replicas (id, app, release_id, runtime, pid, endpoint, state, exit_reason, log_path, started_at, updated_at, owner_id, owner_email)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&replica.id)
        .bind(&replica.app)
        .bind(replica.release_id)
        .bind(&replica.runtime)
        .bind(replica.pid.map(i64::from))
        .bind(&replica.endpoint)
        .bind(replica.state.as_str())
        .bind(&replica.exit_reason)
        .bind(&replica.log_path)
        .bind(&replica.started_at)
        .bind(&replica.started_at)
        .bind(replica.owner.as_ref().map(|o| o.id))
        .bind(replica.owner.as_ref().map(|o| o.email.as_str()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_replica_state(
        &self,
        id: &str,
        state: ReplicaState,
        exit_reason: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE replicas SET state = ?, exit_reason = COALESCE(?, exit_reason), updated_at = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(exit_reason)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replicas an earlier run left serving: the candidates for adoption at start-up.
    pub async fn serving_replicas(&self) -> Result<Vec<ReplicaRow>> {
        let rows: Vec<rows::ReplicaRecord> = sqlx::query_as(
            "SELECT id, app, release_id, runtime, pid, endpoint, state, exit_reason, log_path, started_at, owner_id, owner_email
             FROM replicas WHERE state = 'ready' ORDER BY started_at, rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ReplicaRow::from).collect())
    }

    /// Marks every replica that is not yet stopped as stopped, except those in `kept` (used
    /// at start-up, after a previous run's processes have been cleaned up or set aside for
    /// adoption).
    pub async fn close_stale_replicas(&self, kept: &[&str]) -> Result<u64> {
        let open: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM replicas WHERE state <> 'stopped' AND state <> 'exited'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut closed = 0;
        for (id,) in open.iter().filter(|(id,)| !kept.contains(&id.as_str())) {
            sqlx::query("UPDATE replicas SET state = 'stopped', updated_at = ? WHERE id = ?")
                .bind(now())
                .bind(id)
                .execute(&self.pool)
                .await?;
            closed += 1;
        }
        Ok(closed)
    }

    pub async fn add_event(
        &self,
        app: &str,
        replica: Option<&str>,
        kind: &str,
        message: &str,
    ) -> Result<()> {
        sqlx::query("INSERT INTO events (at, app, replica, kind, message) VALUES (?, ?, ?, ?, ?)")
            .bind(now())
            .bind(app)
            .bind(replica)
            .bind(kind)
            .bind(message)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn apps(&self) -> Result<Vec<AppRow>> {
        Ok(sqlx::query_as(
            "SELECT name, title, framework, source, status, status_reason, restarts, last_restart_reason, last_restart_at, updated_at
             FROM apps ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The app's replicas, newest first.
    pub async fn replicas(&self, app: &str, limit: i64) -> Result<Vec<ReplicaRow>> {
        let rows: Vec<rows::ReplicaRecord> = sqlx::query_as(
            "SELECT id, app, release_id, runtime, pid, endpoint, state, exit_reason, log_path, started_at, owner_id, owner_email
             FROM replicas WHERE app = ? ORDER BY started_at DESC, rowid DESC LIMIT ?",
        )
        .bind(app)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ReplicaRow::from).collect())
    }

    /// The app's most recent events, oldest first.
    pub async fn events(&self, app: &str, limit: i64) -> Result<Vec<EventRow>> {
        let mut rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, app, replica, kind, message FROM events WHERE app = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(app)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.reverse();
        Ok(rows)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Timestamps as stored: RFC 3339 in UTC.
pub fn timestamp() -> String {
    now()
}

#[cfg(test)]
mod tests;

/// Registers an app as building, clearing what its previous definition left (restarts).
async fn upsert_app(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    (name, title, framework, source): &(&str, &str, Option<Framework>, &Path),
    at: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO apps (name, title, framework, source, status, restarts, updated_at)
         VALUES (?, ?, ?, ?, 'building', 0, ?)
         ON CONFLICT (name) DO UPDATE SET title = excluded.title, framework = excluded.framework,
           source = excluded.source, status = 'building', status_reason = NULL, restarts = 0,
           last_restart_reason = NULL, last_restart_at = NULL, updated_at = excluded.updated_at",
    )
    .bind(*name)
    .bind(*title)
    .bind(framework.map(|f| f.config_name()))
    .bind(source.display().to_string())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
