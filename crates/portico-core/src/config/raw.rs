//! The config file exactly as written. Every struct denies unknown keys.

use crate::model::Framework;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub build: Build,
    #[serde(default)]
    pub fleet: Fleet,
    #[serde(default)]
    pub auth: Auth,
    pub smtp: Option<Smtp>,
    pub tls: Option<super::tls::RawTls>,
    #[serde(default)]
    pub firewall: Firewall,
    #[serde(default)]
    pub limits: super::limits::RawLimits,
    /// `[profiles.<name>]`: sizes per-user instances are started with.
    #[serde(default)]
    pub profiles: BTreeMap<String, super::instances::RawProfile>,
    /// `[docker]`: the daemon container apps run on.
    #[serde(default)]
    pub docker: super::containers::RawDocker,
    /// `[drives.<name>]`: team drives apps may mount.
    #[serde(default)]
    pub drives: BTreeMap<String, super::volumes::RawDrive>,
    /// `[deploy]`: uploads, draining and kept releases.
    #[serde(default)]
    pub deploy: super::deploy::RawDeploy,
    #[serde(default)]
    pub apps: Vec<App>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub session_idle_timeout_secs: Option<u64>,
    pub session_lifetime_secs: Option<u64>,
    pub contact: Option<String>,
    pub require_mfa: Option<String>,
    /// `false` hides the e-mail and password form (single sign-on only).
    pub password_sign_in: Option<bool>,
    #[serde(default)]
    pub ldap: Vec<super::sso::RawLdap>,
    #[serde(default)]
    pub oidc: Vec<super::sso::RawOidc>,
    #[serde(default)]
    pub saml: Vec<super::sso::RawSaml>,
    pub invitation_lifetime_secs: Option<u64>,
    pub password_reset_lifetime_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    pub port: Option<u16>,
    pub security: Option<String>,
    pub username: Option<String>,
    pub from: String,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_domain")]
    pub domain: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    pub metrics_listen: Option<String>,
    /// A plain-HTTP listener that sends everyone to HTTPS (needs `[tls]`).
    pub redirect_listen: Option<String>,
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Reload when the config file (or a certificate file) changes.
    pub watch_config: Option<bool>,
    /// How long in-flight requests may take to finish when Portico stops.
    pub shutdown_timeout_secs: Option<u64>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: default_listen(),
            domain: default_domain(),
            data_dir: default_data_dir(),
            metrics_listen: None,
            redirect_listen: None,
            max_header_bytes: default_max_header_bytes(),
            watch_config: None,
            shutdown_timeout_secs: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_domain() -> String {
    "localhost".into()
}
fn default_data_dir() -> String {
    ".portico".into()
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub cache_dir: Option<String>,
    pub python: Option<String>,
    pub installer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    #[serde(default = "default_start_timeout")]
    pub start_timeout_secs: u64,
    #[serde(default = "default_stop_grace")]
    pub stop_grace_secs: u64,
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    pub probe_interval_secs: Option<u64>,
    pub probe_failures: Option<u32>,
    pub max_replicas: Option<u32>,
    #[serde(default)]
    pub keep_replicas_on_exit: bool,
    pub max_instances_per_user: Option<u32>,
    /// The runtime of apps that do not name one.
    #[serde(default)]
    pub runtime: super::containers::RuntimeKind,
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet {
            start_timeout_secs: default_start_timeout(),
            stop_grace_secs: default_stop_grace(),
            max_restarts: default_max_restarts(),
            probe_interval_secs: None,
            probe_failures: None,
            max_replicas: None,
            keep_replicas_on_exit: false,
            max_instances_per_user: None,
            runtime: Default::default(),
        }
    }
}

fn default_start_timeout() -> u64 {
    120
}
fn default_stop_grace() -> u64 {
    10
}
fn default_max_restarts() -> u32 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: String,
    pub title: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Required unless `image` is set.
    pub source: Option<String>,
    pub framework: Option<Framework>,
    pub entrypoint: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub command: Vec<String>,
    pub health_path: Option<String>,
    /// `"public"`, `"signed-in"` or `{ users = […], groups = […] }`; checked in validation
    /// so that a wrong shape gets a precise message.
    pub access: Option<toml::Value>,
    /// `{ users = […], groups = […] }`: who may deploy it besides admins.
    pub owners: Option<toml::Value>,
    /// `[apps.webhook]`: deploys on a forge's push message.
    pub webhook: Option<super::deploy::RawWebhook>,
    /// `{ allow = [...], deny = [...] }`: who may reach this app, by address.
    pub firewall: Option<IpLists>,
    /// Overrides `[limits] max_body_bytes` for this app (uploads).
    pub max_body_bytes: Option<u64>,
    /// Other sites allowed to show this app in a frame (`"*"`: any).
    #[serde(default)]
    pub frame_ancestors: Vec<String>,
    /// `[apps.scale]`: how many replicas.
    pub scale: Option<Scale>,
    /// `"shared"` (the default) or `"per-user"`.
    #[serde(default)]
    pub mode: super::instances::RawMode,
    /// `[apps.per_user]`: private instances.
    pub per_user: Option<super::instances::RawPerUser>,
    /// `"process"` or `"docker"`; default `[fleet] runtime`.
    pub runtime: Option<super::containers::RuntimeKind>,
    /// A ready-made image to run instead of building one from `source`.
    pub image: Option<String>,
    /// `[apps.container]`: limits and security of its containers.
    pub container: Option<super::containers::RawContainer>,
    /// `[apps.volumes]`: its data volume, where homes go, which drives it mounts.
    pub volumes: Option<super::volumes::RawVolumes>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub sessions_per_replica: Option<u32>,
    pub target_utilization: Option<f64>,
    pub scale_down_delay_secs: Option<u64>,
    pub warm: Option<u32>,
    pub idle_timeout_secs: Option<u64>,
    pub start_wait_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IpLists {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// toml's message already shows the line, a caret and the offending key; we add the fix for
/// the most common mistake, a misspelt or unsupported key.
pub fn explain_syntax_error(error: &toml::de::Error) -> String {
    let message = error.to_string();
    if message.contains("unknown field") {
        format!(
            "{}\nFix: remove the key or correct its spelling; docs/configuration.md lists every key.",
            message.trim_end()
        )
    } else {
        message.trim_end().to_owned()
    }
}
