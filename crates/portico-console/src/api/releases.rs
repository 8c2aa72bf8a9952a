//! `/api/v1/apps/{app}/releases…`: deploying a bundle, following its build, listing releases
//! and rolling back.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /api/v1/apps/{app}/releases` | body: the `.tar.gz` bundle; `X-Portico-Commit` optional → 202, the queued release |
//! | `GET /api/v1/apps/{app}/releases` | the releases, newest first |
//! | `GET /api/v1/apps/{app}/releases/{n}` | one release |
//! | `GET /api/v1/apps/{app}/releases/{n}/log?follow=1[&from=end\|<offset>]` | its build log; with `follow`, streamed until the deploy is over; `from`: only what is added now, or from a byte offset (a rollback's `log_from`) |
//! | `POST /api/v1/apps/{app}/rollback` | `{"release": n}` or `{}` (the one before the live one) → 202 |

use super::{creator, deployer, internal, ApiError};
use crate::ConsoleState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use portico_fleet::deploy::BundleError;
use portico_fleet::DeployError;
use portico_store::{ReleaseRow, ReleaseState};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// A release as the API shows it.
#[derive(Debug, Serialize)]
pub struct ReleaseView {
    pub app: String,
    pub number: i64,
    pub state: ReleaseState,
    pub framework: String,
    /// What its build made: a Python environment's digest, `image <tag>`, or `system`.
    pub environment: String,
    pub origin: String,
    pub deployed_by: Option<String>,
    pub commit: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub reason: Option<String>,
    /// Where the app is served (host and path addresses).
    pub urls: [String; 2],
    /// A rollback's: where its output begins in the build log (`log?from=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_from: Option<u64>,
}

impl ReleaseView {
    fn of(state: &ConsoleState, row: ReleaseRow) -> ReleaseView {
        ReleaseView {
            urls: [state.urls.app_host(&row.app), state.urls.app_path(&row.app)],
            app: row.app,
            number: row.number,
            state: row.state,
            framework: row.framework,
            environment: row.environment,
            origin: row.origin,
            deployed_by: row.deployed_by,
            commit: row.commit_id,
            created_at: row.created_at,
            finished_at: row.finished_at,
            reason: row.reason,
            log_from: None,
        }
    }
}

/// A deploy refused before it was queued: the deployer's mistake (4xx) or Portico's (500).
fn refused(error: DeployError) -> ApiError {
    let status = match &error {
        DeployError::UnknownApp(_) | DeployError::NoSuchRelease { .. } => StatusCode::NOT_FOUND,
        DeployError::QueueFull(_) => StatusCode::TOO_MANY_REQUESTS,
        DeployError::Bundle(BundleError::TooLarge { .. })
        | DeployError::Bundle(BundleError::TooManyEntries { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        DeployError::Bundle(BundleError::Write { .. })
        | DeployError::Io(_)
        | DeployError::Store(_) => return internal("store the release", error),
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, error.to_string())
}

/// A commit id as git prints one (hex, 4 to 64 characters); anything else is refused.
fn commit_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("x-portico-commit") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let hex = text.chars().all(|c| c.is_ascii_hexdigit());
    if !hex || !(4..=64).contains(&text.len()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "X-Portico-Commit must be a git commit id (4 to 64 hex digits)",
        ));
    }
    Ok(Some(text.to_ascii_lowercase()))
}

/// `POST /api/v1/apps/{app}/releases`: the body is the bundle.
pub async fn upload(
    State(state): State<Arc<ConsoleState>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // A name no app has makes a new app, for those allowed to.
    let exists = state.routes.load().get(&app).is_some();
    let caller = if exists {
        deployer(&state, &headers, &app).await?
    } else {
        creator(&state, &headers, &app).await?
    };
    let commit = commit_of(&headers)?;
    let limit = state.deployments.config().max_upload_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is larger than deploy.max_upload_bytes ({limit} bytes); leave data files out of the app's folder (list them in .porticoignore) or ask an administrator to raise the limit"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let path = state
        .deployments
        .upload_path(&app)
        .map_err(|e| internal("store the upload", e))?;
    let written = save_upload(body, &path, limit).await;
    let size = match written {
        Ok(Some(size)) => size,
        Ok(None) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(too_large());
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the upload did not arrive whole ({e}); try again"),
            ));
        }
    };
    let deployed = if exists {
        state
            .deployments
            .deploy_bundle(&app, &path, &caller.user.email, "upload", commit.as_deref())
            .await
    } else {
        state
            .deployments
            .create_app(&app, &path, &caller.user.email, commit.as_deref())
            .await
    };
    let release = deployed.map_err(refused)?;
    audit(
        &state,
        &caller.user.email,
        "app.deploy",
        &app,
        &format!("release {} ({size} bytes uploaded)", release.number),
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(ReleaseView::of(&state, release))).into_response())
}

/// Writes the body to `path`; `None` when it grew past `limit` (writing stops there).
async fn save_upload(
    body: Body,
    path: &std::path::Path,
    limit: u64,
) -> Result<Option<u64>, String> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = body.into_data_stream();
    let mut size: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        size += chunk.len() as u64;
        if size > limit {
            return Ok(None);
        }
        file.write_all(&chunk).await.map_err(|e| e.to_string())?;
    }
    file.flush().await.map_err(|e| e.to_string())?;
    Ok(Some(size))
}

/// `GET /api/v1/apps/{app}/releases`.
pub async fn list(
    State(state): State<Arc<ConsoleState>>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    deployer(&state, &headers, &app).await?;
    let rows = state
        .deployments
        .releases(&app)
        .await
        .map_err(|e| internal("list the releases", e))?;
    let views: Vec<ReleaseView> = rows
        .into_iter()
        .map(|r| ReleaseView::of(&state, r))
        .collect();
    Ok(Json(views).into_response())
}

async fn release_of(state: &ConsoleState, app: &str, number: i64) -> Result<ReleaseRow, ApiError> {
    state
        .deployments
        .release(app, number)
        .await
        .map_err(|e| internal("read the release", e))?
        .ok_or_else(|| {
            refused(DeployError::NoSuchRelease {
                app: app.to_owned(),
                number,
            })
        })
}

/// `GET /api/v1/apps/{app}/releases/{number}`.
pub async fn show(
    State(state): State<Arc<ConsoleState>>,
    Path((app, number)): Path<(String, i64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    deployer(&state, &headers, &app).await?;
    let row = release_of(&state, &app, number).await?;
    Ok(Json(ReleaseView::of(&state, row)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    follow: Option<String>,
    /// `end`: follow only what is written from now on; a number: from that byte.
    #[serde(default)]
    from: Option<String>,
}

/// How long a followed log is streamed at most (a build and a rollout end well before).
const FOLLOW_AT_MOST: Duration = Duration::from_secs(2 * 3600);
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// `GET /api/v1/apps/{app}/releases/{number}/log[?follow=1]`: the build log as text; with
/// `follow`, what is written to it until the deploy is over.
pub async fn log(
    State(state): State<Arc<ConsoleState>>,
    Path((app, number)): Path<(String, i64)>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    deployer(&state, &headers, &app).await?;
    let row = release_of(&state, &app, number).await?;
    let path = state.deployments.build_log(&row);
    let follow = query.follow.is_some_and(|f| f != "0" && f != "false");
    if !follow {
        let bytes = tokio::fs::read(&path).await.unwrap_or_default();
        return Ok(text(Body::from(bytes)));
    }
    // A rollback follows what its build adds to a log that already holds earlier builds.
    let offset = match query.from.as_deref() {
        Some("end") => tokio::fs::metadata(&path).await.map_or(0, |m| m.len()),
        Some(at) => at.parse().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "from must be `end` or a byte offset, such as a rollback's log_from",
            )
        })?,
        None => 0,
    };
    let stream = follow_log(state.clone(), app, number, path, offset).map(Ok::<_, std::io::Error>);
    Ok(text(Body::from_stream(stream)))
}

fn text(body: Body) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// A release's build log from `offset`, as it is written, until its deploy is over.
pub(crate) fn follow_log(
    state: Arc<ConsoleState>,
    app: String,
    number: i64,
    path: std::path::PathBuf,
    offset: u64,
) -> impl futures_util::Stream<Item = bytes::Bytes> {
    let tail = LogTail {
        state,
        app,
        number,
        path,
        offset,
        done: false,
        deadline: tokio::time::Instant::now() + FOLLOW_AT_MOST,
    };
    futures_util::stream::unfold(tail, |mut tail| async move {
        let chunk = tail.next_chunk().await?;
        Some((chunk, tail))
    })
}

/// A build log being followed: read from `offset` until the release settles and the file
/// holds nothing more, or the deadline passes.
struct LogTail {
    state: Arc<ConsoleState>,
    app: String,
    number: i64,
    path: std::path::PathBuf,
    offset: u64,
    done: bool,
    deadline: tokio::time::Instant,
}

impl LogTail {
    /// The next piece of the log; `None` at the end.
    async fn next_chunk(&mut self) -> Option<bytes::Bytes> {
        loop {
            if self.done || tokio::time::Instant::now() >= self.deadline {
                return None;
            }
            // Read the state first: what was written before it settled is then read below.
            let settled = self
                .state
                .deployments
                .release(&self.app, self.number)
                .await
                .ok()
                .flatten()
                .is_none_or(|r| r.state.is_settled());
            let chunk = self.read_more().await;
            if !chunk.is_empty() {
                return Some(chunk.into());
            }
            if settled {
                self.done = true;
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }

    async fn read_more(&mut self) -> Vec<u8> {
        let Ok(mut file) = tokio::fs::File::open(&self.path).await else {
            return Vec::new();
        };
        if file
            .seek(std::io::SeekFrom::Start(self.offset))
            .await
            .is_err()
        {
            return Vec::new();
        }
        let mut buffer = Vec::new();
        let _ = (&mut file).take(256 * 1024).read_to_end(&mut buffer).await;
        self.offset += buffer.len() as u64;
        buffer
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    #[serde(default)]
    release: Option<i64>,
}

/// `POST /api/v1/apps/{app}/rollback`.
pub async fn rollback(
    State(state): State<Arc<ConsoleState>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let caller = deployer(&state, &headers, &app).await?;
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"release\": <number>}} or empty ({e})"),
            )
        })?
    };
    let rolled = state
        .deployments
        .rollback(&app, request.release)
        .await
        .map_err(refused)?;
    let release = rolled.release;
    audit(
        &state,
        &caller.user.email,
        "app.rollback",
        &app,
        &format!("to release {}", release.number),
    )
    .await;
    let mut view = ReleaseView::of(&state, release);
    view.log_from = Some(rolled.log_from);
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

pub(crate) async fn audit(
    state: &ConsoleState,
    actor: &str,
    action: &str,
    app: &str,
    detail: &str,
) {
    if let Err(e) = state
        .accounts
        .store()
        .add_audit(actor, action, Some(app), detail)
        .await
    {
        tracing::error!("cannot write the audit log: {e}");
    }
}
