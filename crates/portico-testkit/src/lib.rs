//! Test harness: start a real Portico with real dashboards, talk to it like a browser or a
//! user at a terminal, and clean up every process afterwards, whatever the test did.
//!
//! Every wait here is bounded in time and waits on a readiness signal, never a fixed sleep.

mod acme_ca;
mod authenticator;
mod browser;
pub mod directory;
pub mod docker;
pub mod oidc_idp;
mod pki;
mod portico;
mod python;
pub mod saml_idp;
mod smtp_sink;
mod visitor;
mod websocket;

pub use acme_ca::AcmeCa;
pub use authenticator::Authenticator;
pub use browser::Browser;
pub use directory::Directory;
pub use oidc_idp::{IdpAccount, OidcIdp};
pub use portico::{AppConfig, Portico, PorticoConfig};
pub use python::python_with;
pub use saml_idp::{SamlAccount, SamlIdp};
pub use smtp_sink::{link_in, Mail, SmtpSink};
pub use visitor::{Landing, Visitor};
pub use websocket::{open_websocket, ShinySession};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repository's `examples/` folder.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .canonicalize()
        .expect("examples/ exists")
}

/// Test fixtures shipped with the portico crate's tests.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../portico/tests/fixtures")
        .canonicalize()
        .expect("fixtures exist")
}

/// A loopback port that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something (`what`: "slapd", "samlp", …) accepts connections on a loopback
/// `port`.
pub async fn wait_for_port(what: &str, port: u16, timeout: Duration) {
    eventually(&format!("{what} to listen"), timeout, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(drop)
    })
    .await;
}

/// Polls `check` every 100 ms until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `portico --config CONFIG ARGS…` with `stdin` on its standard input and `envs` added
/// to its environment; returns what it printed.
pub fn run_cli(
    bin: &Path,
    config: &Path,
    args: &[&str],
    stdin: &str,
    envs: &[(&str, &str)],
) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portico runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("portico finishes")
}

/// The `action` of each entry of `portico audit --json` output, oldest first.
pub fn audit_actions(audit_json: &[u8]) -> Vec<String> {
    let audit: serde_json::Value = serde_json::from_slice(audit_json).expect("audit JSON");
    audit
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["action"].as_str().map(str::to_owned))
        .collect()
}

/// Whether a process is alive (and not a zombie).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}
