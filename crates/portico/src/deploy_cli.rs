//! `portico deploy`, `portico releases` and `portico rollback`: the analyst's side of a
//! deploy, over Portico's REST API with an API token, so they work from a laptop against a
//! server as well as on the server itself.

use portico_core::{Config, PublicUrls};
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Where and as whom: `--server`/`PORTICO_SERVER` (default: the portal of the config found
/// here) and `--token`/`PORTICO_TOKEN`.
#[derive(clap::Args, Clone)]
pub struct Connection {
    /// Portico's address, e.g. https://dash.example.com. Default: the portal of the config.
    #[arg(long, env = "PORTICO_SERVER")]
    server: Option<String>,
    /// An API token (`portico tokens create`). Prefer the environment variable: a token on
    /// the command line is seen by other users of the machine.
    #[arg(long, env = "PORTICO_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A PEM file with the certificate authority Portico's certificate is signed by (a
    /// development or company CA), trusted besides the system's.
    #[arg(long, env = "PORTICO_CA_FILE")]
    ca_file: Option<PathBuf>,
}

/// A release as the API answers.
#[derive(Debug, Deserialize)]
struct ReleaseView {
    number: i64,
    state: String,
    framework: String,
    origin: String,
    deployed_by: Option<String>,
    commit: Option<String>,
    created_at: String,
    reason: Option<String>,
    urls: Vec<String>,
    /// A rollback's: where its part of the build log begins.
    #[serde(default)]
    log_from: Option<u64>,
}

struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

/// How long a deploy may take before `portico deploy` stops waiting (the deploy goes on).
const WAIT_AT_MOST: Duration = Duration::from_secs(2 * 3600);

impl Api {
    fn connect(config: Option<PathBuf>, connection: &Connection) -> Result<Api, String> {
        let token = connection.token.clone().filter(|t| !t.is_empty()).ok_or(
            "no API token: set PORTICO_TOKEN to one (an administrator makes it with `portico tokens create EMAIL --name NAME`)",
        )?;
        let base = match &connection.server {
            Some(server) => server.trim_end_matches('/').to_owned(),
            None => {
                let path = crate::config_path::resolve(config)?;
                let config = Config::load(&path).map_err(|e| e.to_string())?;
                let urls = PublicUrls::new(
                    &config.server.domain,
                    config.server.listen.port(),
                    config.tls.is_some(),
                );
                urls.portal().trim_end_matches('/').to_owned()
            }
        };
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(format!(
                "--server \"{base}\" is not an address; write it like https://dash.example.com"
            ));
        }
        let mut client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("portico-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &connection.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read --ca-file {}: {e}", ca.display()))?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("--ca-file {} is not a PEM certificate: {e}", ca.display()))?;
            client = client.add_root_certificate(certificate);
        }
        let client = client
            .build()
            .map_err(|e| format!("cannot set up HTTPS: {e}"))?;
        Ok(Api {
            base,
            token,
            client,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/{path}", self.base)
    }

    fn unreachable(&self, e: reqwest::Error) -> String {
        format!("cannot reach Portico at {}: {e}", self.base)
    }

    /// The body of a successful answer; an error answer becomes its message.
    async fn answer(&self, response: reqwest::Response) -> Result<reqwest::Response, String> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("Portico answered {status}"));
        Err(message)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let response = self.answer(response).await?;
        response
            .json()
            .await
            .map_err(|e| format!("Portico's answer could not be read: {e}"))
    }

    async fn post(
        &self,
        path: &str,
        body: reqwest::Body,
        commit: Option<&str>,
    ) -> Result<ReleaseView, String> {
        let mut request = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .body(body);
        if let Some(commit) = commit {
            request = request.header("x-portico-commit", commit);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let response = self.answer(response).await?;
        response
            .json()
            .await
            .map_err(|e| format!("Portico's answer could not be read: {e}"))
    }

    /// Prints the release's build log as it is written, until the deploy is over, then
    /// returns how it ended.
    /// `from`: the byte of the log to start at (a rollback's log holds earlier builds).
    async fn follow(&self, app: &str, number: i64, from: u64) -> Result<ReleaseView, String> {
        let from = format!("&from={from}");
        let path = format!("apps/{app}/releases/{number}/log?follow=1{from}");
        let response = self
            .client
            .get(self.url(&path))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let mut response = self.answer(response).await?;
        let deadline = tokio::time::Instant::now() + WAIT_AT_MOST;
        let mut stdout = std::io::stdout();
        loop {
            let chunk = tokio::time::timeout_at(deadline, response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => {
                    let _ = stdout.write_all(&bytes);
                    let _ = stdout.flush();
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(format!("the build log stopped arriving: {e}")),
                Err(_) => {
                    return Err(format!(
                        "gave up waiting after {}s; `portico releases {app}` shows how the deploy goes on",
                        WAIT_AT_MOST.as_secs()
                    ))
                }
            }
        }
        // The log ends when the deploy settles; the release says how.
        self.get_json(&format!("apps/{app}/releases/{number}"))
            .await
    }
}

/// The app a folder deploys to when `--app` is not given: the folder's name.
fn app_name(dir: &Path, app: Option<String>) -> Result<String, String> {
    if let Some(app) = app {
        return Ok(app);
    }
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_lowercase()))
        .unwrap_or_default();
    if portico_core::config::is_dns_label(&name) {
        Ok(name)
    } else {
        Err(format!(
            "cannot tell which app {} is for; name it with --app NAME",
            dir.display()
        ))
    }
}

/// The commit the folder is at, when it is a git work tree (recorded with the release).
fn commit_of(dir: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !commit.is_empty()).then_some(commit)
}

pub async fn deploy(
    config: Option<PathBuf>,
    dir: PathBuf,
    app: Option<String>,
    no_wait: bool,
    connection: Connection,
) -> ExitCode {
    crate::output::finish(deploy_folder(config, &dir, app, no_wait, &connection).await)
}

async fn deploy_folder(
    config: Option<PathBuf>,
    dir: &Path,
    app: Option<String>,
    no_wait: bool,
    connection: &Connection,
) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    let app = app_name(dir, app)?;
    let api = Api::connect(config, connection)?;
    let bundle = portico_build::bundle::pack(dir)
        .map_err(|e| format!("cannot pack {}: {e}", dir.display()))?;
    let commit = commit_of(dir);
    println!(
        "Uploading {} ({}) to {} as a new release of {app}",
        dir.display(),
        human_size(bundle.len() as u64),
        api.base
    );
    let release = api
        .post(
            &format!("apps/{app}/releases"),
            bundle.into(),
            commit.as_deref(),
        )
        .await?;
    println!("Release {} of {app} is queued", release.number);
    if no_wait {
        return Ok(());
    }
    settle(&api, &app, release.number, 0).await
}

/// Follows a deploy or rollback to its end: `Ok` when its release went live.
async fn settle(api: &Api, app: &str, number: i64, from: u64) -> Result<(), String> {
    let release = api.follow(app, number, from).await?;
    match release.state.as_str() {
        "live" => {
            println!(
                "Release {number} of {app} is live: {}",
                release.urls.join(" and ")
            );
            Ok(())
        }
        state => Err(format!(
            "release {number} of {app} did not go live ({state}): {}",
            release
                .reason
                .as_deref()
                .unwrap_or("no reason was recorded")
        )),
    }
}

pub async fn releases(
    config: Option<PathBuf>,
    app: String,
    json: bool,
    connection: Connection,
) -> ExitCode {
    crate::output::finish(list(config, &app, json, &connection).await)
}

async fn list(
    config: Option<PathBuf>,
    app: &str,
    json: bool,
    connection: &Connection,
) -> Result<(), String> {
    let api = Api::connect(config, connection)?;
    if json {
        let value: serde_json::Value = api.get_json(&format!("apps/{app}/releases")).await?;
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(());
    }
    let releases: Vec<ReleaseView> = api.get_json(&format!("apps/{app}/releases")).await?;
    println!(
        "{:<8} {:<11} {:<10} {:<8} {:<26} {:<10} {:<24} REASON",
        "RELEASE", "STATE", "FRAMEWORK", "ORIGIN", "BY", "COMMIT", "CREATED"
    );
    for r in releases {
        let commit = r
            .commit
            .as_deref()
            .map(|c| &c[..c.len().min(10)])
            .unwrap_or("-");
        let reason = r
            .reason
            .as_deref()
            .and_then(|r| r.lines().next())
            .unwrap_or("");
        println!(
            "{:<8} {:<11} {:<10} {:<8} {:<26} {:<10} {:<24} {reason}",
            r.number,
            r.state,
            r.framework,
            r.origin,
            r.deployed_by.as_deref().unwrap_or("(config)"),
            commit,
            r.created_at,
        );
    }
    Ok(())
}

pub async fn rollback(
    config: Option<PathBuf>,
    app: String,
    release: Option<i64>,
    no_wait: bool,
    connection: Connection,
) -> ExitCode {
    crate::output::finish(roll_back(config, &app, release, no_wait, &connection).await)
}

async fn roll_back(
    config: Option<PathBuf>,
    app: &str,
    release: Option<i64>,
    no_wait: bool,
    connection: &Connection,
) -> Result<(), String> {
    let api = Api::connect(config, connection)?;
    let body = match release {
        Some(number) => serde_json::json!({ "release": number }),
        None => serde_json::json!({}),
    };
    let target = api
        .post(
            &format!("apps/{app}/rollback"),
            body.to_string().into(),
            None,
        )
        .await?;
    println!("Rolling {app} back to release {}", target.number);
    if no_wait {
        return Ok(());
    }
    settle(&api, app, target.number, target.log_from.unwrap_or(0)).await
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}
