//! What queries return.

use portico_core::ReplicaState;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AppRow {
    pub name: String,
    pub title: String,
    pub framework: Option<String>,
    pub source: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub restarts: i64,
    pub last_restart_reason: Option<String>,
    pub last_restart_at: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaRow {
    pub id: String,
    pub app: String,
    pub release_id: i64,
    pub runtime: String,
    pub pid: Option<u32>,
    pub endpoint: Option<String>,
    pub state: ReplicaState,
    pub exit_reason: Option<String>,
    pub log_path: String,
    pub started_at: String,
    /// Per-user apps: whose instance it is.
    pub owner: Option<InstanceOwner>,
}

/// The person a private instance belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceOwner {
    pub id: i64,
    pub email: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReplicaRecord {
    id: String,
    app: String,
    release_id: i64,
    runtime: String,
    pid: Option<i64>,
    endpoint: Option<String>,
    state: String,
    exit_reason: Option<String>,
    log_path: String,
    started_at: String,
    owner_id: Option<i64>,
    owner_email: Option<String>,
}

impl From<ReplicaRecord> for ReplicaRow {
    fn from(r: ReplicaRecord) -> ReplicaRow {
        ReplicaRow {
            id: r.id,
            app: r.app,
            release_id: r.release_id,
            runtime: r.runtime,
            pid: r.pid.and_then(|p| u32::try_from(p).ok()),
            endpoint: r.endpoint,
            // A state written by a newer Portico reads as stopped rather than failing the query.
            state: ReplicaState::parse(&r.state).unwrap_or(ReplicaState::Stopped),
            exit_reason: r.exit_reason,
            log_path: r.log_path,
            started_at: r.started_at,
            owner: r.owner_id.map(|id| InstanceOwner {
                id,
                email: r.owner_email.unwrap_or_default(),
            }),
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub at: String,
    pub app: String,
    pub replica: Option<String>,
    pub kind: String,
    pub message: String,
}
