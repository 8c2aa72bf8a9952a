//! `POST /api/v1/apps/{app}/webhook`: a forge (GitHub, GitLab, Gitea, Forgejo) says a branch
//! was pushed; when it is the deploy branch, Portico fetches it from the repository in the
//! app's `[apps.webhook]` (never from an address in the message) and deploys it.
//!
//! The message is believed only when it carries the app's secret: GitHub and Gitea sign the
//! body (`X-Hub-Signature-256: sha256=<HMAC-SHA256>`), GitLab sends the secret itself
//! (`X-Gitlab-Token`). Both are checked in constant time. The answer comes at once (forges
//! give up after ten seconds); the fetch and the deploy follow, in the audit log and
//! `portico releases`.

use super::git::ensure_repository;
use super::ApiError;
use crate::ConsoleState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::process::Command;

/// How long fetching the pushed branch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// What Portico reads of a push message (GitHub's, GitLab's and Gitea's share these).
#[derive(Debug, Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    reference: String,
}

/// Whether the message carries the secret, by either forge's convention.
fn authentic(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(signature) = header("x-hub-signature-256") {
        let tag = signature
            .strip_prefix("sha256=")
            .and_then(|hex_tag| hex::decode(hex_tag).ok())
            .unwrap_or_default();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(body);
        return mac.verify_slice(&tag).map_err(|_| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the signature does not match; the webhook's secret must be the one in the app's [apps.webhook] secret_env",
            )
        });
    }
    if let Some(token) = header("x-gitlab-token") {
        if bool::from(token.as_bytes().ct_eq(secret.as_bytes())) {
            return Ok(());
        }
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the token does not match; the webhook's secret token must be the one in the app's [apps.webhook] secret_env",
        ));
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unsigned: configure the webhook with the app's secret (GitHub: X-Hub-Signature-256; GitLab: X-Gitlab-Token)",
    ))
}

pub async fn receive(
    State(state): State<Arc<ConsoleState>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let webhook = state.deployments.webhook(&app).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("app \"{app}\" takes no webhooks; give it an [apps.webhook] table"),
        )
    })?;
    let secret = webhook.secret().map_err(|why| {
        tracing::error!(app = %app, "webhook: {why}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this app's webhook has no secret configured where Portico runs; its log says which variable to set",
        )
    })?;
    authentic(&headers, &body, secret.expose())?;
    let event = headers
        .get("x-github-event")
        .or_else(|| headers.get("x-gitea-event"))
        .or_else(|| headers.get("x-gitlab-event"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("push");
    if event == "ping" {
        return Ok(
            Json(serde_json::json!({ "ok": "the webhook reaches Portico" })).into_response(),
        );
    }
    if !matches!(event, "push" | "Push Hook") {
        return Ok(ignored(format!(
            "a {event} event; only pushes are deployed"
        )));
    }
    let push: Push = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("not a push message ({e}); send the forge's push event as JSON"),
        )
    })?;
    let branch = state.deployments.config().branch.clone();
    if push.reference != format!("refs/heads/{branch}") {
        return Ok(ignored(format!(
            "a push to {}; only {branch} is deployed",
            push.reference
        )));
    }
    let accepted = format!("fetching {branch} to deploy it");
    let task_state = state.clone();
    let task_app = app.clone();
    tokio::spawn(async move {
        let outcome = fetch_and_deploy(&task_state, &task_app, &webhook.repository, &branch).await;
        let detail = match &outcome {
            Ok(number) => format!("release {number} from {branch}"),
            Err(reason) => format!("not deployed: {reason}"),
        };
        if let Err(reason) = &outcome {
            tracing::warn!(app = %task_app, "webhook: {reason}");
        }
        super::releases::audit(&task_state, "webhook", "app.webhook", &task_app, &detail).await;
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "accepted": accepted })),
    )
        .into_response())
}

fn ignored(why: String) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "ignored": why })),
    )
        .into_response()
}

/// Fetches `branch` of `repository` into the app's repository (beside its branches, which
/// hold only what went live) and deploys its commit. Returns the release's number.
async fn fetch_and_deploy(
    state: &Arc<ConsoleState>,
    app: &str,
    repository: &str,
    branch: &str,
) -> Result<i64, String> {
    let git_root = state.deployments.git_root();
    let repo = ensure_repository(&git_root, app)
        .await
        .map_err(|e| e.message)?;
    let fetched = format!("refs/webhook/{branch}");
    let git = |args: &[&str]| {
        let mut command = Command::new("git");
        command
            .arg("--git-dir")
            .arg(&repo)
            .args(args)
            .env("HOME", &git_root)
            .env("GIT_TERMINAL_PROMPT", "0")
            // Never `ext::` or other transports that run programs.
            .env("GIT_ALLOW_PROTOCOL", "https:http:ssh:git:file")
            .kill_on_drop(true);
        command
    };
    let refspec = format!("+refs/heads/{branch}:{fetched}");
    let fetch = git(&["fetch", "--quiet", "--no-tags", "--", repository, &refspec]).output();
    let fetch = tokio::time::timeout(FETCH_TIMEOUT, fetch)
        .await
        .map_err(|_| {
            format!(
                "fetching {repository} took over {}s",
                FETCH_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !fetch.status.success() {
        return Err(format!(
            "cannot fetch {branch} from {repository}: {}",
            String::from_utf8_lossy(&fetch.stderr).trim()
        ));
    }
    let parsed = git(&["rev-parse", "--verify", &format!("{fetched}^{{commit}}")])
        .output()
        .await
        .map_err(|e| e.to_string())?;
    let commit = String::from_utf8_lossy(&parsed.stdout).trim().to_owned();
    if !parsed.status.success() || commit.is_empty() {
        return Err(format!("{branch} of {repository} names no commit"));
    }
    let upload = state
        .deployments
        .upload_path(app)
        .map_err(|e| e.to_string())?;
    let upload_arg = upload.to_string_lossy().into_owned();
    let packed = git(&["archive", "--format=tar.gz", "-o", &upload_arg, &commit])
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !packed.status.success() {
        let _ = std::fs::remove_file(&upload);
        return Err(format!(
            "cannot pack {commit}: {}",
            String::from_utf8_lossy(&packed.stderr).trim()
        ));
    }
    let release = state
        .deployments
        .deploy_bundle(app, &upload, "webhook", "webhook", Some(&commit))
        .await
        .map_err(|e| e.to_string())?;
    Ok(release.number)
}
