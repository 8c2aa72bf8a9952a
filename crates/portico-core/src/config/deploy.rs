//! `[deploy]` and each app's `owners`: who may push a new version of an app, how large an
//! upload may be, how long sessions may stay on the release they began on, and how many
//! earlier releases stay ready for an instant rollback.

use super::Problem;
use crate::model::User;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDeploy {
    pub max_upload_bytes: Option<u64>,
    pub max_unpacked_bytes: Option<u64>,
    pub drain_timeout_secs: Option<u64>,
    pub keep_releases: Option<u32>,
    pub branch: Option<String>,
    pub creators: Option<toml::Value>,
}

/// `[deploy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// Largest upload (the compressed bundle) accepted; larger ones get 413.
    pub max_upload_bytes: u64,
    /// Largest a bundle may be once unpacked (an archive bomb is refused at this size).
    pub max_unpacked_bytes: u64,
    /// How long a session may stay on the replica of an earlier release after a new one
    /// took over; then the old replica is stopped even if someone is still on it.
    pub drain_timeout: Duration,
    /// Earlier releases kept ready to roll back to (their files; environments and images
    /// are shared by content); older ones are pruned.
    pub keep_releases: u32,
    /// The branch whose pushes (`git push portico main`) are deployed.
    pub branch: String,
    /// Who may make a new app by deploying to a name no app has (admins always may).
    pub creators: Owners,
}

impl Default for DeployConfig {
    fn default() -> DeployConfig {
        DeployConfig {
            max_upload_bytes: 256 * 1024 * 1024,
            max_unpacked_bytes: 1024 * 1024 * 1024,
            drain_timeout: Duration::from_secs(3600),
            keep_releases: 5,
            branch: "main".to_owned(),
            creators: Owners::default(),
        }
    }
}

const MAX_KEPT: u32 = 100;
const MAX_DRAIN_SECS: u64 = 7 * 24 * 3600;

pub(super) fn deploy(raw: RawDeploy, problems: &mut Vec<Problem>) -> DeployConfig {
    let defaults = DeployConfig::default();
    let max_upload_bytes = raw.max_upload_bytes.unwrap_or(defaults.max_upload_bytes);
    if max_upload_bytes < 1024 {
        problems.push(Problem::new(
            "deploy.max_upload_bytes",
            format!("= {max_upload_bytes} is too small for any app; write at least 1024, e.g. 268435456 (256 MiB)"),
        ));
    }
    let max_unpacked_bytes = raw
        .max_unpacked_bytes
        .unwrap_or(defaults.max_unpacked_bytes.max(max_upload_bytes));
    if max_unpacked_bytes < max_upload_bytes {
        problems.push(Problem::new(
            "deploy.max_unpacked_bytes",
            format!("= {max_unpacked_bytes} is smaller than deploy.max_upload_bytes ({max_upload_bytes}); an unpacked bundle is at least as large as its upload"),
        ));
    }
    let drain = raw
        .drain_timeout_secs
        .unwrap_or(defaults.drain_timeout.as_secs());
    if drain > MAX_DRAIN_SECS {
        problems.push(Problem::new(
            "deploy.drain_timeout_secs",
            format!("= {drain} is more than a week; write 0 (cut sessions over at once) to {MAX_DRAIN_SECS}, e.g. 3600"),
        ));
    }
    let keep_releases = raw.keep_releases.unwrap_or(defaults.keep_releases);
    if keep_releases > MAX_KEPT {
        problems.push(Problem::new(
            "deploy.keep_releases",
            format!("= {keep_releases} is out of range; write 0 to {MAX_KEPT}, e.g. 5"),
        ));
    }
    let branch = raw.branch.unwrap_or(defaults.branch);
    let branch_ok = !branch.is_empty()
        && branch.len() <= 200
        && !branch.starts_with(['-', '/'])
        && !branch.ends_with(['/', '.'])
        && !branch.contains("..")
        && branch
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if !branch_ok {
        problems.push(Problem::new(
            "deploy.branch",
            format!("= \"{branch}\" is not a branch name Portico deploys; write letters, digits, '-', '_', '.' and '/', e.g. \"main\""),
        ));
    }
    let creators = owners("deploy.creators", raw.creators.as_ref(), problems);
    DeployConfig {
        max_upload_bytes,
        max_unpacked_bytes,
        drain_timeout: Duration::from_secs(drain),
        keep_releases,
        branch,
        creators,
    }
}

/// `owners = { users = [...], groups = [...] }`: who may deploy an app besides admins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners {
    /// Lowercased e-mails.
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

impl Owners {
    /// Whether `user` may deploy the app: an admin, a named owner, or in an owning group.
    pub fn may_deploy(&self, user: &User) -> bool {
        user.admin
            || self.users.contains(&user.email)
            || user.groups.iter().any(|g| self.groups.contains(g))
    }
}

pub(super) fn owners(
    key: &str,
    value: Option<&toml::Value>,
    problems: &mut Vec<Problem>,
) -> Owners {
    let fix = "write { users = [\"ada@example.com\"], groups = [\"analysts\"] }";
    match value {
        None => Owners::default(),
        Some(toml::Value::Table(table)) => {
            let (users, groups) = super::validate::people(key, table, "the owners", fix, problems);
            Owners { users, groups }
        }
        Some(_) => {
            problems.push(Problem::new(key, format!("has the wrong type; {fix}")));
            Owners::default()
        }
    }
}

/// `[apps.webhook]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub repository: String,
    pub secret_env: String,
}

/// A secret read from the environment; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// `[apps.webhook]`: a forge (GitHub, GitLab, Gitea) tells Portico of pushes, and Portico
/// fetches the deploy branch from `repository` and deploys it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    /// Where Portico fetches from (never the address in the forge's message).
    pub repository: String,
    /// The environment variable of `portico up` holding what the forge signs its messages
    /// with (GitHub's `X-Hub-Signature-256`) or sends (GitLab's `X-Gitlab-Token`). Read when
    /// a message arrives, so that the config (in git) holds no secret and other commands
    /// need none.
    pub secret_env: String,
}

/// The shortest webhook secret accepted: it is all that stands between the internet and a
/// deploy.
pub const MIN_SECRET_BYTES: usize = 16;

impl WebhookSpec {
    /// The secret, or why there is none to check messages with.
    pub fn secret(&self) -> Result<Secret, String> {
        match std::env::var(&self.secret_env) {
            Ok(secret) if secret.len() >= MIN_SECRET_BYTES => Ok(Secret(secret)),
            Ok(_) => Err(format!(
                "the secret in {} is shorter than {MIN_SECRET_BYTES} characters; use a long random one (openssl rand -hex 32)",
                self.secret_env
            )),
            Err(_) => Err(format!(
                "{} is not set in Portico's environment; set it to the webhook's secret and restart Portico",
                self.secret_env
            )),
        }
    }
}

pub(super) fn webhook(
    key: &str,
    raw: Option<RawWebhook>,
    problems: &mut Vec<Problem>,
) -> Option<WebhookSpec> {
    let raw = raw?;
    if raw.repository.trim().is_empty() || raw.repository.starts_with('-') {
        problems.push(Problem::new(
            format!("{key}.repository"),
            "must name the repository Portico fetches, e.g. \"https://github.com/acme/sales.git\"",
        ));
    }
    if !super::validate::is_env_name(&raw.secret_env) {
        problems.push(Problem::new(
            format!("{key}.secret_env"),
            format!("= \"{}\" is not an environment variable name; name the variable holding the webhook's secret, e.g. \"SALES_WEBHOOK_SECRET\"", raw.secret_env),
        ));
    }
    Some(WebhookSpec {
        repository: raw.repository,
        secret_env: raw.secret_env,
    })
}
