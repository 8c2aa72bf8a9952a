//! Containers: which runtime runs an app (`runtime = "docker"`), the Docker daemon Portico
//! talks to (`[docker]`), and each app's container settings (`image`, `[apps.container]`).

use super::Problem;
use crate::model::Framework;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What runs an app's replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeKind {
    /// Local processes on Portico's machine (the default).
    #[default]
    Process,
    /// Containers on a Docker daemon.
    Docker,
}

impl RuntimeKind {
    /// The name written in the config and recorded with each replica.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Process => "process",
            RuntimeKind::Docker => "docker",
        }
    }
}

/// `[docker]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDocker {
    pub endpoint: Option<String>,
    pub tls_ca: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    #[serde(default)]
    pub base_images: BTreeMap<Framework, String>,
    pub build_timeout_secs: Option<u64>,
    pub build_ca_bundle: Option<String>,
}

/// `[apps.container]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawContainer {
    pub memory_mb: Option<u64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<u32>,
    pub user: Option<String>,
    pub read_only: Option<bool>,
    pub drop_capabilities: Option<bool>,
    pub port: Option<u16>,
}

/// Where the Docker daemon answers.
#[derive(Debug, Clone, PartialEq)]
pub enum DockerEndpoint {
    /// `unix:///var/run/docker.sock`
    Unix(PathBuf),
    /// `tcp://host:2376` with client certificates (`tls`), or plain on loopback only.
    Tcp {
        address: String,
        tls: Option<DockerTls>,
    },
}

impl std::fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            DockerEndpoint::Tcp { address, .. } => write!(f, "tcp://{address}"),
        }
    }
}

/// The CA that signed the daemon's certificate, and Portico's client certificate and key.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[docker]`: the daemon, and what images are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerConfig {
    pub endpoint: DockerEndpoint,
    /// The image each framework's generated Dockerfile starts `FROM`.
    pub base_images: BTreeMap<Framework, String>,
    /// How long an image build may take.
    pub build_timeout: Duration,
    /// CA certificates that package installs inside a build trust (a company proxy that
    /// inspects TLS); copied into generated builds. `None`: the base image's own.
    pub build_ca_bundle: Option<PathBuf>,
}

/// Where Python dashboards start from when the operator names nothing else: Debian-based,
/// small, with pip.
pub const DEFAULT_PYTHON_IMAGE: &str = "python:3.12-slim";
/// R-Shiny dashboards: the Rocker project's image with R and Shiny Server's packages.
pub const DEFAULT_R_SHINY_IMAGE: &str = "rocker/shiny:4.4.1";

impl Default for DockerConfig {
    fn default() -> DockerConfig {
        DockerConfig {
            endpoint: DockerEndpoint::Unix(PathBuf::from("/var/run/docker.sock")),
            base_images: BTreeMap::new(),
            build_timeout: Duration::from_secs(1800),
            build_ca_bundle: None,
        }
    }
}

impl DockerConfig {
    /// The base image a framework's generated Dockerfile starts from.
    pub fn base_image(&self, framework: Framework) -> &str {
        match self.base_images.get(&framework) {
            Some(image) => image,
            None if framework == Framework::RShiny => DEFAULT_R_SHINY_IMAGE,
            None => DEFAULT_PYTHON_IMAGE,
        }
    }
}

/// An app's container settings (`[apps.container]`); the process runtime ignores them.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerOptions {
    /// Memory in MiB; the kernel kills the dashboard beyond it. `None`: no limit.
    pub memory_mb: Option<u64>,
    /// CPUs (fractions allowed); `None`: no limit.
    pub cpus: Option<f64>,
    /// Processes and threads at most (a fork bomb stops there).
    pub pids_limit: u32,
    /// `uid[:gid]` or a user name of the image; `None`: the image's own user.
    pub user: Option<String>,
    /// Read-only root file system (with a writable `/tmp`).
    pub read_only: bool,
    /// Drop every Linux capability (dashboards need none to serve a port above 1024).
    pub drop_capabilities: bool,
    /// The port the dashboard listens on inside its container (`PORT` says it).
    pub port: u16,
}

impl Default for ContainerOptions {
    fn default() -> ContainerOptions {
        ContainerOptions {
            memory_mb: None,
            cpus: None,
            pids_limit: 1024,
            user: None,
            read_only: false,
            drop_capabilities: true,
            port: 8080,
        }
    }
}

pub(super) fn docker(raw: RawDocker, base: &Path, problems: &mut Vec<Problem>) -> DockerConfig {
    let defaults = DockerConfig::default();
    let files = [
        ("tls_ca", &raw.tls_ca),
        ("tls_cert", &raw.tls_cert),
        ("tls_key", &raw.tls_key),
    ];
    let given = files.iter().filter(|(_, v)| v.is_some()).count();
    let tls = match (&raw.tls_ca, &raw.tls_cert, &raw.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Some(DockerTls {
            ca: base.join(ca),
            cert: base.join(cert),
            key: base.join(key),
        }),
        _ => {
            if given > 0 {
                problems.push(Problem::new(
                    "docker",
                    "needs all three of tls_ca, tls_cert and tls_key for a TLS connection (the daemon's CA, Portico's client certificate and its key); add the missing ones",
                ));
            }
            None
        }
    };
    let endpoint = match raw.endpoint.as_deref() {
        None => defaults.endpoint.clone(),
        Some(text) => match endpoint(text, tls.clone()) {
            Ok(endpoint) => endpoint,
            Err(message) => {
                problems.push(Problem::new("docker.endpoint", message));
                defaults.endpoint.clone()
            }
        },
    };
    if tls.is_some() && matches!(endpoint, DockerEndpoint::Unix(_)) {
        problems.push(Problem::new(
            "docker",
            "tls_ca, tls_cert and tls_key are for a tcp:// endpoint; remove them or set docker.endpoint = \"tcp://HOST:2376\"",
        ));
    }
    for (framework, image) in &raw.base_images {
        if let Err(why) = check_image(image) {
            problems.push(Problem::new(
                format!("docker.base_images.{}", framework.config_name()),
                format!("= \"{image}\" {why}"),
            ));
        }
    }
    let build_ca_bundle = raw.build_ca_bundle.map(|path| base.join(path));
    if let Some(path) = &build_ca_bundle {
        if !path.is_file() {
            problems.push(Problem::new(
                "docker.build_ca_bundle",
                format!("= \"{}\" is not a file; point it at a PEM bundle, e.g. \"/etc/ssl/certs/ca-certificates.crt\"", path.display()),
            ));
        }
    }
    DockerConfig {
        endpoint,
        build_ca_bundle,
        base_images: raw.base_images,
        build_timeout: super::limits::seconds(
            "docker.build_timeout_secs",
            raw.build_timeout_secs,
            defaults.build_timeout,
            10..=86_400,
            problems,
        ),
    }
}

fn endpoint(text: &str, tls: Option<DockerTls>) -> Result<DockerEndpoint, String> {
    if let Some(path) = text.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!(
                "= \"{text}\" needs an absolute socket path, e.g. \"unix:///var/run/docker.sock\""
            ));
        }
        return Ok(DockerEndpoint::Unix(PathBuf::from(path)));
    }
    if let Some(address) = text.strip_prefix("tcp://") {
        let address = address.trim_end_matches('/');
        let host = address.rsplit_once(':').map(|(h, _)| h);
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0));
        if !port_ok || host.is_none_or(str::is_empty) {
            return Err(format!(
                "= \"{text}\" needs a host and a port, e.g. \"tcp://docker.internal:2376\""
            ));
        }
        let loopback = matches!(
            host.map(|h| h.trim_start_matches('[').trim_end_matches(']')),
            Some("localhost" | "127.0.0.1" | "::1")
        );
        if tls.is_none() && !loopback {
            return Err(format!(
                "= \"{text}\" without TLS would give anyone on the network root on that machine; set tls_ca, tls_cert and tls_key (the daemon run with --tlsverify), or use a unix:// socket"
            ));
        }
        return Ok(DockerEndpoint::Tcp {
            address: address.to_owned(),
            tls,
        });
    }
    Err(format!(
        "= \"{text}\" is not a Docker endpoint; write \"unix:///var/run/docker.sock\" or \"tcp://HOST:2376\""
    ))
}

/// A loose check of an image reference (`registry:5000/team/sales:1.2`): the daemon has
/// the last word, this catches what cannot be one.
pub fn check_image(image: &str) -> Result<(), &'static str> {
    if image.is_empty() {
        return Err("is empty; write an image name, e.g. \"python:3.12-slim\"");
    }
    if image.starts_with(['-', '/', ':', '@']) || image.ends_with([':', '/', '@']) {
        return Err("is not an image name; write e.g. \"registry.example.com/team/sales:1.2\"");
    }
    if image
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
    {
        return Err("contains spaces or quotes; an image name has none");
    }
    let repository = image.split('@').next().unwrap_or(image);
    let name = match repository.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => repository,
    };
    // The registry host may have capitals; the path after it may not.
    let path = name.split_once('/').map_or(name, |(first, rest)| {
        if first.contains(['.', ':']) || first == "localhost" {
            rest
        } else {
            name
        }
    });
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("has capital letters; image names are lowercase");
    }
    Ok(())
}

/// `[apps.container]` of one app (`key` is `apps[i]`).
pub(super) fn container(
    key: &str,
    raw: Option<RawContainer>,
    problems: &mut Vec<Problem>,
) -> ContainerOptions {
    let defaults = ContainerOptions::default();
    let raw = raw.unwrap_or_default();
    let key = |field: &str| format!("{key}.container.{field}");
    if let Some(memory) = raw.memory_mb {
        if memory < 32 {
            problems.push(Problem::new(
                key("memory_mb"),
                format!("= {memory} is too little for any dashboard; write the MiB a replica may use, at least 32, e.g. 1024"),
            ));
        }
    }
    if let Some(cpus) = raw.cpus {
        if !(0.01..=1024.0).contains(&cpus) {
            problems.push(Problem::new(
                key("cpus"),
                format!("= {cpus} is out of range; write the CPUs a replica may use, 0.01 or more, e.g. 1 or 0.5"),
            ));
        }
    }
    let pids_limit = raw.pids_limit.unwrap_or(defaults.pids_limit);
    if !(16..=1_000_000).contains(&pids_limit) {
        problems.push(Problem::new(
            key("pids_limit"),
            format!("= {pids_limit} is out of range; write 16 to 1000000, e.g. 1024"),
        ));
    }
    if let Some(user) = &raw.user {
        if !is_container_user(user) {
            problems.push(Problem::new(
                key("user"),
                format!("= \"{user}\" is not a user; write a user id (\"1000\"), id and group (\"1000:1000\") or a user name of the image"),
            ));
        }
    }
    let port = raw.port.unwrap_or(defaults.port);
    if port == 0 {
        problems.push(Problem::new(
            key("port"),
            "= 0 is not a port; write the port the dashboard listens on in its container, e.g. 8080",
        ));
    }
    ContainerOptions {
        memory_mb: raw.memory_mb,
        cpus: raw.cpus,
        pids_limit,
        user: raw.user,
        read_only: raw.read_only.unwrap_or(defaults.read_only),
        drop_capabilities: raw.drop_capabilities.unwrap_or(defaults.drop_capabilities),
        port,
    }
}

fn is_container_user(user: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 32
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            && !p.starts_with('-')
    };
    match user.split_once(':') {
        Some((name, group)) => part(name) && part(group),
        None => part(user),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_checked_loosely() {
        for good in [
            "python:3.12-slim",
            "portico/sales:7",
            "registry.example.com:5000/team/sales:1.2",
            "Registry.Example.com/team/sales",
            "sales@sha256:0123abcd",
        ] {
            assert_eq!(check_image(good), Ok(()), "{good}");
        }
        for bad in ["", "-x", "a b", "team/Sales:1", "x:", "\"x\""] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_tcp_is_only_allowed_on_loopback() {
        assert!(endpoint("tcp://127.0.0.1:2375", None).is_ok());
        let message = endpoint("tcp://docker.internal:2375", None).unwrap_err();
        assert!(message.contains("tls_ca"), "{message}");
        assert!(endpoint("tcp://docker.internal", None).is_err());
        assert!(endpoint("unix://docker.sock", None).is_err());
        assert!(endpoint("http://x:1", None).is_err());
        assert_eq!(
            endpoint("unix:///run/docker.sock", None)
                .unwrap()
                .to_string(),
            "unix:///run/docker.sock"
        );
    }

    #[test]
    fn container_users_are_ids_or_names() {
        for good in ["1000", "1000:1000", "shiny", "app-user:staff"] {
            assert!(is_container_user(good), "{good}");
        }
        for bad in ["", ":", "a b", "-x", "1000:"] {
            assert!(!is_container_user(bad), "{bad}");
        }
    }
}
