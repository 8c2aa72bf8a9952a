//! `portico.toml`: the schema, loading, and validation with errors a person can act on.
//!
//! Loading happens in two steps. Serde reads the file into `raw` structs that reject unknown
//! keys (so a typo is an error, not a silently ignored setting). Validation then checks what
//! serde cannot (names, paths, addresses, duplicates) and collects *every* problem, each
//! naming the key, what is wrong and what to write instead.

mod containers;
mod deploy;
mod instances;
mod limits;
mod raw;
mod sso;
mod tls;
mod volumes;
pub use containers::{
    check_image, ContainerOptions, DockerConfig, DockerEndpoint, DockerTls, RuntimeKind,
};
pub use deploy::{DeployConfig, Owners, Secret, WebhookSpec};
pub use instances::{PerUserSpec, SizeProfile};
pub use limits::LimitsConfig;
pub use sso::{
    LdapConfig, LdapGroups, LdapSecurity, OidcConfig, SamlBinding, SamlConfig, SamlMetadata,
    SsoCommon,
};
pub use tls::{AcmeChallenge, AcmeConfig, CertificateFiles, TlsConfig, TlsSource, LETS_ENCRYPT};
pub use volumes::{drive_env, DriveMount, DriveSpec, VolumesSpec, DEFAULT_HOME_MOUNT};
mod validate;
pub use validate::is_dns_label;

use crate::model::Framework;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub build: BuildConfig,
    pub fleet: FleetConfig,
    pub auth: AuthConfig,
    /// `[smtp]`: where invitation and password-reset e-mails go; `None` when not set, and
    /// then the CLI prints links instead.
    pub smtp: Option<SmtpConfig>,
    /// `[tls]`: HTTPS on `server.listen`; `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
    /// `[firewall]`: addresses allowed and denied everywhere, and trusted proxies.
    pub firewall: crate::FirewallConfig,
    /// `[limits]`: request rates and sizes at the edge.
    pub limits: LimitsConfig,
    /// `[docker]`: the daemon that runs apps with `runtime = "docker"`.
    pub docker: DockerConfig,
    /// `[drives.<name>]`: team drives, by name.
    pub drives: BTreeMap<String, DriveSpec>,
    /// `[deploy]`: uploads, draining and kept releases.
    pub deploy: DeployConfig,
    pub apps: Vec<AppSpec>,
}

impl Config {
    /// Whether any app runs in containers (and so needs the Docker daemon).
    pub fn uses_docker(&self) -> bool {
        self.apps.iter().any(|a| a.runtime == RuntimeKind::Docker)
    }
}

/// `[auth]`: sign-in and sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub session_idle_timeout: Duration,
    pub session_lifetime: Duration,
    /// Named on the "no access" page: whom to ask.
    pub contact: String,
    pub require_mfa: MfaPolicy,
    /// How long an invitation link works.
    pub invitation_lifetime: Duration,
    /// How long a password-reset link works.
    pub password_reset_lifetime: Duration,
    /// Whether Portico's own accounts may sign in with a password. LDAP accounts use the same
    /// form either way; `false` suits organisations where everyone comes through SSO.
    pub password_sign_in: bool,
    pub ldap: Vec<LdapConfig>,
    pub oidc: Vec<OidcConfig>,
    pub saml: Vec<SamlConfig>,
}

/// `[auth] require_mfa`: who must have a second factor to sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MfaPolicy {
    /// MFA is optional: users who set it up are asked for it.
    #[default]
    Never,
    Admins,
    Everyone,
}

impl MfaPolicy {
    pub fn requires(self, admin: bool) -> bool {
        match self {
            MfaPolicy::Never => false,
            MfaPolicy::Admins => admin,
            MfaPolicy::Everyone => true,
        }
    }
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic); port 587.
    StartTls,
    /// TLS from the first byte; port 465.
    Tls,
    /// No encryption: only allowed to a loopback mail server (a local relay).
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// The password comes from `PORTICO_SMTP_PASSWORD`, never from the file.
    pub username: Option<String>,
    /// `Portico <portico@example.com>`.
    pub from: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub domain: String,
    /// Absolute: resolved against the config file's folder.
    pub data_dir: PathBuf,
    /// Where `/metrics`, `/healthz` and `/readyz` are also served; when set, `/metrics` is
    /// served only there.
    pub metrics_listen: Option<SocketAddr>,
    /// Requests whose header section is larger get `431 Request Header Fields Too Large`.
    pub max_header_bytes: usize,
    /// A plain-HTTP listener that redirects to HTTPS (with `[tls]`).
    pub redirect_listen: Option<SocketAddr>,
    /// Reload when the config file or a certificate file it names changes.
    pub watch_config: bool,
    /// How long in-flight requests may take to finish when Portico stops.
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BuildConfig {
    /// Where Python environments are cached, one per distinct requirements file.
    pub cache_dir: PathBuf,
    /// The interpreter environments are made from.
    pub python: String,
    pub installer: Installer,
}

/// Which tool installs Python requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installer {
    /// `uv` when it is on the PATH, otherwise `python -m venv` + pip.
    Auto,
    Uv,
    Pip,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// How long a replica may take to answer its readiness probe.
    pub start_timeout: Duration,
    /// How long a replica has to exit after SIGTERM before it is killed.
    pub stop_grace: Duration,
    /// Consecutive crashes after which an app is marked failed instead of restarted.
    pub max_restarts: u32,
    /// How often a serving replica's health path is probed (liveness).
    pub probe_interval: Duration,
    /// Probes failed in a row after which a serving replica is replaced.
    pub probe_failures: u32,
    /// Replicas across all apps beyond which the autoscaler adds none (each app's `min`
    /// always runs).
    pub max_replicas: u32,
    /// Whether replicas keep running when Portico stops or dies, to be adopted by its next
    /// start (users keep their sessions across a restart).
    pub keep_replicas_on_exit: bool,
    /// Private instances one person may run at once, across all per-user apps.
    pub max_instances_per_user: u32,
    /// The runtime of apps that do not name their own.
    pub runtime: RuntimeKind,
}

/// One dashboard, as declared in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    pub name: String,
    pub title: String,
    pub description: String,
    /// Absolute path of the app's folder (the config's folder for an `image` app without
    /// one).
    pub source: PathBuf,
    /// `None`: detected from the folder.
    pub framework: Option<Framework>,
    /// Relative to `source`; `None`: detected.
    pub entrypoint: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Only for `framework = "command"`: the program and its arguments.
    pub command: Vec<String>,
    /// Path probed for readiness; `None`: the framework's default.
    pub health_path: Option<String>,
    /// Who may open it (default: anyone signed in).
    pub access: crate::access::Access,
    /// Who may deploy it besides admins.
    pub owners: Owners,
    /// `[apps.webhook]`: deploys when a forge says the deploy branch was pushed.
    pub webhook: Option<WebhookSpec>,
    /// Made by someone's first deploy (`[deploy] creators`), not declared in the config:
    /// it has no folder of its own, only its releases.
    pub deployed_only: bool,
    /// Which addresses may reach it, on top of `[firewall]`.
    pub firewall: crate::IpRules,
    /// Largest request body; `None`: `[limits] max_body_bytes`.
    pub max_body_bytes: Option<u64>,
    /// Origins besides Portico's own that may frame the app; `["*"]`: any.
    pub frame_ancestors: Vec<String>,
    /// `[apps.scale]`: how many replicas, and when to add or remove one.
    pub scale: ScaleSpec,
    /// `mode = "per-user"`: one private instance per person instead of shared replicas.
    pub per_user: Option<PerUserSpec>,
    /// What runs its replicas.
    pub runtime: RuntimeKind,
    /// A ready-made image to run (Docker runtime); `None`: built from `source`.
    pub image: Option<String>,
    /// `[apps.container]` (Docker runtime).
    pub container: ContainerOptions,
    /// `[apps.volumes]`: storage that outlives its replicas.
    pub volumes: VolumesSpec,
}

impl AppSpec {
    /// An app made by `creator`'s first deploy, its files in `source`: only the creator
    /// may open and deploy it (and admins), until an operator declares it in the config
    /// with the rules they want. Everything else is the config's defaults.
    pub fn deployed(name: &str, creator: &str, source: PathBuf, runtime: RuntimeKind) -> AppSpec {
        let only_creator = || vec![creator.to_owned()];
        AppSpec {
            name: name.to_owned(),
            title: name.to_owned(),
            description: String::new(),
            source,
            framework: None,
            entrypoint: None,
            env: BTreeMap::new(),
            command: Vec::new(),
            health_path: None,
            access: crate::access::Access::Only {
                users: only_creator(),
                groups: Vec::new(),
            },
            owners: Owners {
                users: only_creator(),
                groups: Vec::new(),
            },
            webhook: None,
            deployed_only: true,
            firewall: Default::default(),
            max_body_bytes: None,
            frame_ancestors: Vec::new(),
            scale: ScaleSpec::default(),
            per_user: None,
            runtime,
            image: None,
            container: Default::default(),
            volumes: Default::default(),
        }
    }

    /// How long a request waits for a replica (its owner's instance, in per-user mode).
    pub fn start_wait(&self) -> Duration {
        self.per_user
            .as_ref()
            .map_or(self.scale.start_wait, |p| p.start_wait)
    }
}

/// `[apps.scale]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSpec {
    /// Replicas always running (each restarted on its own when it dies); 0: the app sleeps
    /// while nobody uses it and starts on the first request.
    pub min: u32,
    /// Replicas at most; above `min`, the autoscaler decides.
    pub max: u32,
    /// Sessions (open WebSockets, or browsers active within `idle_timeout`) one replica
    /// serves well.
    pub sessions_per_replica: u32,
    /// Scale out when sessions exceed this fraction of the replicas' capacity.
    pub target_utilization: f64,
    /// How long fewer replicas must suffice before an idle one is stopped.
    pub scale_down_delay: Duration,
    /// Idle replicas kept ready beyond what the sessions need, so that a new session never
    /// waits for a start.
    pub warm: u32,
    /// A browser without a WebSocket counts as a session until it has been quiet this long.
    pub idle_timeout: Duration,
    /// How long a request for a sleeping or starting app is held for a replica to be ready.
    pub start_wait: Duration,
}

/// The defaults `[apps.scale]` documents: one replica, always.
impl Default for ScaleSpec {
    fn default() -> ScaleSpec {
        ScaleSpec {
            min: 1,
            max: 1,
            sessions_per_replica: 20,
            target_utilization: 0.8,
            scale_down_delay: Duration::from_secs(300),
            warm: 0,
            idle_timeout: Duration::from_secs(300),
            start_wait: Duration::from_secs(60),
        }
    }
}

impl ScaleSpec {
    /// Replicas needed for `sessions`, with the warm spares, within [min, max].
    pub fn replicas_for(&self, sessions: usize) -> u32 {
        let capacity = f64::from(self.sessions_per_replica) * self.target_utilization;
        let needed = (sessions as f64 / capacity).ceil() as u32;
        needed.saturating_add(self.warm).clamp(self.min, self.max)
    }
}

/// One thing wrong with a config: the key, and what is wrong with it including the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `apps[2].name`, `server.listen`, …
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Why a config cannot be used. Its `Display` is what `portico check` prints.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the config file: {source}. Pass the right file with --config FILE.", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", file.display())]
    Syntax { file: PathBuf, message: String },
    #[error("{}", ProblemList { file, problems })]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The individual problems (one for read and syntax errors).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Invalid { problems, .. } => problems.clone(),
            other => vec![Problem::new("", other.to_string())],
        }
    }
}

struct ProblemList<'a> {
    file: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            // `key = value …` and `key is …` read as one phrase; other messages follow a colon.
            let phrase = problem.message.starts_with("= ") || problem.message.starts_with("is ");
            let joiner = if phrase { " " } else { ": " };
            let file = self.file.display();
            write!(f, "{file}: {}{joiner}{}", problem.key, problem.message)?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Validates config text as if read from `path` (relative paths resolve against its folder).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: raw::ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: path.to_owned(),
            message: raw::explain_syntax_error(&e),
        })?;
        let base = absolute_parent(path);
        validate::validate(raw, &base)
            .map(|mut config| {
                config.path = path.to_owned();
                config
            })
            .map_err(|problems| ConfigError::Invalid {
                file: path.to_owned(),
                problems,
            })
    }

    pub fn app(&self, name: &str) -> Option<&AppSpec> {
        self.apps.iter().find(|a| a.name == name)
    }
}

/// The folder relative config paths resolve against.
fn absolute_parent(path: &Path) -> PathBuf {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_owned())
}

#[cfg(test)]
mod tests;
