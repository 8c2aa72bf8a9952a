//! The control socket: how `portico reload` asks the running Portico to reload and hears the
//! outcome. A Unix socket in the data folder, readable and writable by its owner only (the
//! folder's owner runs Portico), so no token is needed: whoever may open it may also edit the
//! config and send signals. One request per connection, one JSON answer line.

use crate::reload::{Outcome, Reloader};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Longest a request line may be (`reload`, `replicas`).
const MAX_REQUEST: u64 = 64;
/// How long `portico reload` waits: stopping changed apps takes up to their stop grace.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// The answer to a request.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default)]
    pub applied: Vec<String>,
    #[serde(default)]
    pub needs_restart: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl From<Result<Outcome, String>> for Reply {
    fn from(result: Result<Outcome, String>) -> Reply {
        match result {
            Ok(outcome) => Reply {
                ok: true,
                applied: outcome.applied,
                needs_restart: outcome.needs_restart,
                error: None,
            },
            Err(error) => Reply {
                ok: false,
                applied: Vec::new(),
                needs_restart: Vec::new(),
                error: Some(error),
            },
        }
    }
}

/// Binds the socket (replacing one a crashed Portico left; the instance lock is held, so
/// no live Portico owns it) with owner-only permissions.
pub fn bind(data_dir: &Path) -> Result<UnixListener, String> {
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .map_err(|e| format!("cannot create the control socket {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    Ok(listener)
}

/// Answers requests until the task is dropped.
pub async fn serve(listener: UnixListener, reloader: Arc<Reloader>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let reloader = reloader.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &reloader).await {
                tracing::debug!("control socket: {e}");
            }
        });
    }
}

async fn answer(stream: UnixStream, reloader: &Reloader) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let mut json = match line.trim() {
        "reload" => serde_json::to_vec(&Reply::from(reloader.reload("portico reload").await)),
        "replicas" => serde_json::to_vec(&reloader.live()),
        other => serde_json::to_vec(&Reply::from(Err(format!(
            "unknown request {other:?}; the control socket understands \"reload\" and \"replicas\""
        )))),
    }
    .unwrap_or_default();
    json.push(b'\n');
    write.write_all(&json).await
}

/// Sends `reload` to the Portico running on `data_dir` and returns its answer.
pub async fn request_reload(data_dir: &Path) -> Result<Reply, String> {
    request(data_dir, "reload").await
}

/// Asks the Portico running on `data_dir` what its replicas are doing now.
pub async fn request_live(data_dir: &Path) -> Result<Vec<portico_core::LiveApp>, String> {
    request(data_dir, "replicas").await
}

/// Sends one request line and reads the one JSON line that answers it.
async fn request<T: serde::de::DeserializeOwned>(data_dir: &Path, what: &str) -> Result<T, String> {
    let path = socket_path(data_dir);
    let not_running = |e: std::io::Error| {
        format!(
            "no Portico is running with the data folder {} ({}: {e}); start it with `portico up`",
            data_dir.display(),
            path.display()
        )
    };
    let stream = UnixStream::connect(&path).await.map_err(not_running)?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{what}\n").as_bytes())
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut line = String::new();
    tokio::time::timeout(REPLY_TIMEOUT, BufReader::new(read).read_line(&mut line))
        .await
        .map_err(|_| format!("Portico did not answer within {}s", REPLY_TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("unreadable answer {line:?}: {e}"))
}

/// `portico reload`: asks the running Portico to read its config file again and prints what
/// changed. Exit status 0 when applied, 2 when refused (the old config stays), 1 when no
/// Portico answers.
pub async fn run(explicit: Option<PathBuf>) -> std::process::ExitCode {
    use std::process::ExitCode;
    let config = match crate::config_path::resolve(explicit)
        .and_then(|path| portico_core::Config::load(&path).map_err(|e| e.to_string()))
    {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}\nNothing was reloaded: the running config stays in force.");
            return ExitCode::from(2);
        }
    };
    let data_dir = std::fs::canonicalize(&config.server.data_dir)
        .unwrap_or_else(|_| config.server.data_dir.clone());
    match request_reload(&data_dir).await {
        Ok(reply) if reply.ok => {
            if reply.applied.is_empty() {
                println!("reloaded {}: nothing changed", config.path.display());
            } else {
                println!("reloaded {}:", config.path.display());
                for change in &reply.applied {
                    println!("  {change}");
                }
            }
            for setting in &reply.needs_restart {
                println!("  not applied: {setting}");
            }
            ExitCode::SUCCESS
        }
        Ok(reply) => {
            eprintln!(
                "reload refused, the running config stays in force:\n{}",
                reply.error.unwrap_or_default()
            );
            ExitCode::from(2)
        }
        Err(message) => {
            eprintln!("portico: {message}");
            ExitCode::FAILURE
        }
    }
}
