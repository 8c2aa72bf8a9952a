//! `git push` to deploy: Portico serves each app's repository over git's smart HTTP at
//! `/git/<app>.git`, authenticated with API tokens (the token as the password; any user
//! name), for the app's owners.
//!
//! The protocol is git's own: each request runs `git http-backend` (git's CGI program) on a
//! bare repository under `<data dir>/git/`. A push runs the repository's `pre-receive` hook,
//! which is `portico git-hook`: it tells this process, over a Unix socket made for that one
//! push, which refs arrived and where their objects wait (git's quarantine); Portico packs
//! the pushed commit of the deploy branch (`git archive`), deploys it as a release and
//! streams the build log back, which git shows as `remote:` lines. The push is accepted
//! only when the release went live, so a push that failed to deploy can simply be pushed
//! again, and the repository's branch is always what was last deployed from it.

use super::releases::follow_log;
use super::{deployer, ApiError};
use crate::ConsoleState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use portico_store::ReleaseState;
use serde::{Deserialize, Serialize};
use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::process::Command;

/// The environment variable that tells the hook where to reach this process.
pub const HOOK_SOCKET_VAR: &str = "PORTICO_GIT_HOOK_SOCKET";
/// The last line the hook reads: how the push ends.
pub const RESULT_PREFIX: &str = "portico-result: ";

/// What the hook sends: the refs pushed (`<old> <new> <ref>` lines, as git gives them) and
/// where their objects are until the push is accepted.
#[derive(Debug, Serialize, Deserialize)]
pub struct HookRequest {
    pub refs: String,
    pub object_directory: Option<String>,
    pub alternate_object_directories: Option<String>,
}

/// `ANY /git/{repo}/{*rest}`: one request of git's smart HTTP protocol.
pub async fn serve(
    State(state): State<Arc<ConsoleState>>,
    Path((repo, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match bridge(&state, &repo, &rest, query, method, headers, body).await {
        Ok(response) => response,
        // git shows the body of an error answer to the person pushing.
        Err(error) => {
            let mut response = (error.status, format!("{}\n", error.message)).into_response();
            if error.status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Basic realm=\"Portico (an API token as the password)\"",
                    ),
                );
            }
            response
        }
    }
}

/// A Basic `user:token` header becomes the Bearer token the API checks.
fn bearer_from_basic(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok());
    if let Some(credentials) = basic {
        let token = credentials.split_once(':').map_or("", |(_, t)| t);
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert(header::AUTHORIZATION, value);
        }
    }
    headers
}

/// Which git service a request is for, from its path and query; `None`: not git's.
fn service(rest: &str, query: Option<&str>, method: &Method) -> Option<&'static str> {
    match (method, rest) {
        (&Method::GET, "info/refs") => match query? {
            "service=git-receive-pack" => Some("git-receive-pack"),
            "service=git-upload-pack" => Some("git-upload-pack"),
            _ => None,
        },
        (&Method::POST, "git-receive-pack") => Some("git-receive-pack"),
        (&Method::POST, "git-upload-pack") => Some("git-upload-pack"),
        _ => None,
    }
}

async fn bridge(
    state: &Arc<ConsoleState>,
    repo: &str,
    rest: &str,
    query: Option<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app = repo.strip_suffix(".git").unwrap_or(repo);
    let Some(service) = service(rest, query.as_deref(), &method) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Portico serves git's smart HTTP protocol here; push with `git push {}git/{app}.git main`", state.urls.portal()),
        ));
    };
    let caller = deployer(state, &bearer_from_basic(&headers), app).await?;
    let git_root = state.deployments.git_root();
    let repository = ensure_repository(&git_root, app).await?;
    let mut command = Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &git_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{app}.git/{rest}"))
        .env("QUERY_STRING", query.as_deref().unwrap_or(""))
        .env("REQUEST_METHOD", method.as_str())
        .env("REMOTE_USER", &caller.user.email)
        // The hook finds HOME-relative git config harmlessly empty.
        .env("HOME", &git_root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, variable) in [
        (header::CONTENT_TYPE.as_str(), "CONTENT_TYPE"),
        (header::CONTENT_LENGTH.as_str(), "CONTENT_LENGTH"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            command.env(variable, value);
        }
    }
    // A push gets its own socket for its hook; it lives as long as the request.
    let hook = if service == "git-receive-pack" && method == Method::POST {
        let socket = hook_socket(&git_root)?;
        command.env(HOOK_SOCKET_VAR, &socket.path);
        Some(socket)
    } else {
        None
    };
    let mut child = command.spawn().map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Portico cannot run git ({e}); git must be installed where Portico runs"),
        )
    })?;
    if let Some(socket) = hook {
        let pusher = Pusher {
            state: state.clone(),
            app: app.to_owned(),
            email: caller.user.email.clone(),
            repository: repository.clone(),
        };
        tokio::spawn(socket.serve(pusher));
    }

    // The request body goes to git's stdin, bounded like an upload.
    let limit = state.deployments.config().max_upload_bytes;
    let mut stdin = child.stdin.take().expect("piped");
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut size = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            size += chunk.len() as u64;
            if size > limit || stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let stderr = child.stderr.take().expect("piped");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!("git http-backend: {line}");
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let response = cgi_response(&mut stdout).await?;
    let stream = futures_util::stream::unfold((stdout, child), |(mut out, child)| async move {
        let mut buffer = vec![0u8; 32 * 1024];
        match out.read(&mut buffer).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)),
                    (out, child),
                ))
            }
        }
    });
    let mut response = response;
    *response.body_mut() = Body::from_stream(stream);
    Ok(response)
}

/// Reads a CGI program's header lines (`Status:`, `Content-Type:`, …, then a blank line)
/// into a response whose body the caller fills.
async fn cgi_response(
    stdout: &mut BufReader<tokio::process::ChildStdout>,
) -> Result<Response, ApiError> {
    let mut response = Response::new(Body::empty());
    let broken = || {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "git http-backend gave no answer; Portico's log has its output",
        )
    };
    for _ in 0..64 {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(120), stdout.read_line(&mut line))
            .await
            .map_err(|_| broken())?
            .map_err(|_| broken())?;
        let line = line.trim_end_matches(['\r', '\n']);
        if read == 0 {
            return Err(broken());
        }
        if line.is_empty() {
            return Ok(response);
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(broken());
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            *response.status_mut() = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
        } else if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Err(broken())
}

/// The app's bare repository, made on first use with Portico's hook.
pub(crate) async fn ensure_repository(git_root: &FsPath, app: &str) -> Result<PathBuf, ApiError> {
    let repository = git_root.join(format!("{app}.git"));
    let hook = repository.join("hooks").join("pre-receive");
    if hook.is_file() {
        return Ok(repository);
    }
    let failed = |e: String| super::internal("create the app's git repository", e);
    std::fs::create_dir_all(git_root).map_err(|e| failed(e.to_string()))?;
    let made = Command::new("git")
        .args(["init", "--quiet", "--bare", "--initial-branch=main"])
        .arg(&repository)
        .env("HOME", git_root)
        .output()
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Portico cannot run git ({e}); git must be installed where Portico runs"),
            )
        })?;
    if !made.status.success() {
        return Err(failed(String::from_utf8_lossy(&made.stderr).into_owned()));
    }
    for (key, value) in [
        ("http.receivepack", "true"),
        ("receive.denyDeletes", "true"),
    ] {
        let _ = Command::new("git")
            .arg("--git-dir")
            .arg(&repository)
            .args(["config", key, value])
            .env("HOME", git_root)
            .status()
            .await;
    }
    let exe = std::env::current_exe().map_err(|e| failed(e.to_string()))?;
    let quoted = exe.to_string_lossy().replace('\'', r"'\''");
    let script = format!(
        "#!/bin/sh\n# Portico deploys what is pushed here; see docs/deploying.md.\nexec '{quoted}' git-hook\n"
    );
    std::fs::write(&hook, script).map_err(|e| failed(e.to_string()))?;
    set_executable(&hook).map_err(|e| failed(e.to_string()))?;
    Ok(repository)
}

fn set_executable(path: &FsPath) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// A push's hook socket, in a folder only Portico's user can enter.
struct HookSocket {
    path: PathBuf,
    listener: UnixListener,
}

fn hook_socket(git_root: &FsPath) -> Result<HookSocket, ApiError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = git_root.join(".hooks");
    let failed = |e: std::io::Error| super::internal("prepare the push", e);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(failed)?;
    let path = dir.join(format!("{:016x}.sock", rand::random::<u64>()));
    let listener = UnixListener::bind(&path).map_err(failed)?;
    Ok(HookSocket { path, listener })
}

/// Who pushed what where, for the hook's one connection.
struct Pusher {
    state: Arc<ConsoleState>,
    app: String,
    email: String,
    repository: PathBuf,
}

/// How long a push may wait for its hook to call (git runs it after receiving the pack).
const HOOK_WAIT: Duration = Duration::from_secs(3600);

impl HookSocket {
    async fn serve(self, pusher: Pusher) {
        let accepted = tokio::time::timeout(HOOK_WAIT, self.listener.accept()).await;
        let _ = std::fs::remove_file(&self.path);
        let Ok(Ok((stream, _))) = accepted else {
            return;
        };
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = BufReader::new(read).take(1024 * 1024);
        if reader.read_line(&mut line).await.is_err() {
            return;
        }
        let outcome = match serde_json::from_str::<HookRequest>(&line) {
            Ok(request) => pusher.deploy(request, &mut write).await,
            Err(e) => Err(format!("the hook's message could not be read ({e})")),
        };
        let last = match outcome {
            Ok(message) => format!("{message}\n{RESULT_PREFIX}ok\n"),
            Err(message) => format!("{message}\n{RESULT_PREFIX}failed\n"),
        };
        let _ = write.write_all(last.as_bytes()).await;
    }
}

impl Pusher {
    /// Deploys the deploy branch's new commit, if the push has one, streaming its build to
    /// `out`. `Err` rejects the push.
    async fn deploy(
        &self,
        request: HookRequest,
        out: &mut tokio::net::unix::OwnedWriteHalf,
    ) -> Result<String, String> {
        let branch = &self.state.deployments.config().branch;
        let wanted = format!("refs/heads/{branch}");
        let mut commit = None;
        for line in request.refs.lines() {
            let mut parts = line.split_whitespace();
            let (Some(_old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if name == wanted {
                if new.chars().all(|c| c == '0') {
                    return Err(format!(
                        "the {branch} branch cannot be deleted: it is what serves"
                    ));
                }
                commit = Some(new.to_owned());
            }
        }
        let Some(commit) = commit else {
            return Ok(format!(
                "Only pushes to {branch} are deployed; nothing was deployed."
            ));
        };
        if !commit.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("the pushed commit id is not one".into());
        }
        let upload = self
            .state
            .deployments
            .upload_path(&self.app)
            .map_err(|e| e.to_string())?;
        let mut archive = Command::new("git");
        archive
            .arg("--git-dir")
            .arg(&self.repository)
            .args(["archive", "--format=tar.gz", "-o"])
            .arg(&upload)
            .arg(&commit)
            .env("HOME", self.state.deployments.git_root());
        // The pushed objects are in git's quarantine until the push is accepted.
        if let Some(dir) = &request.object_directory {
            archive.env("GIT_OBJECT_DIRECTORY", dir);
        }
        if let Some(dirs) = &request.alternate_object_directories {
            archive.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", dirs);
        }
        let packed = archive.output().await.map_err(|e| e.to_string())?;
        if !packed.status.success() {
            let _ = std::fs::remove_file(&upload);
            return Err(format!(
                "cannot pack commit {commit}: {}",
                String::from_utf8_lossy(&packed.stderr).trim()
            ));
        }
        let release = self
            .state
            .deployments
            .deploy_bundle(&self.app, &upload, &self.email, "git", Some(&commit))
            .await
            .map_err(|e| e.to_string())?;
        super::releases::audit(
            &self.state,
            &self.email,
            "app.deploy",
            &self.app,
            &format!("release {} (git push of {commit})", release.number),
        )
        .await;
        let short = &commit[..commit.len().min(10)];
        let _ = out
            .write_all(
                format!(
                    "Deploying {short} as release {} of {}\n",
                    release.number, self.app
                )
                .as_bytes(),
            )
            .await;
        let log = self.state.deployments.build_log(&release);
        let mut stream = std::pin::pin!(follow_log(
            self.state.clone(),
            self.app.clone(),
            release.number,
            log,
            0
        ));
        while let Some(chunk) = stream.next().await {
            if out.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let settled = self
            .state
            .deployments
            .release(&self.app, release.number)
            .await
            .map_err(|e| e.to_string())?;
        match settled {
            Some(r) if r.state == ReleaseState::Live => {
                let [host, path] = [
                    self.state.urls.app_host(&self.app),
                    self.state.urls.app_path(&self.app),
                ];
                Ok(format!(
                    "Release {} of {} is live: {host} and {path}",
                    r.number, self.app
                ))
            }
            Some(r) => Err(format!(
                "release {} did not go live ({}): {}\nThe push is refused; fix it and push again.",
                r.number,
                r.state.as_str(),
                r.reason.as_deref().unwrap_or("no reason was recorded")
            )),
            None => Err("the release disappeared".into()),
        }
    }
}
