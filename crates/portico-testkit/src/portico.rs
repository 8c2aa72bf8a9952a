//! A Portico process under test.

use crate::{eventually, free_port, is_alive};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One `[[apps]]` entry.
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub name: String,
    pub source: PathBuf,
    /// Extra TOML lines for this app (`framework = "command"`, …).
    pub extra: String,
}

impl AppConfig {
    pub fn new(name: &str, source: impl Into<PathBuf>) -> AppConfig {
        AppConfig {
            name: name.into(),
            source: source.into(),
            extra: String::new(),
        }
    }

    /// One of the repository's demo dashboards, under its own name.
    pub fn example(name: &str) -> AppConfig {
        AppConfig::new(name, crate::examples_dir().join(name))
    }

    pub fn with(mut self, toml_line: &str) -> AppConfig {
        self.extra.push_str(toml_line);
        self.extra.push('\n');
        self
    }
}

#[derive(Clone, Debug, Default)]
pub struct PorticoConfig {
    pub apps: Vec<AppConfig>,
    /// Extra TOML appended after `[server]`'s keys (e.g. `metrics_listen = …`).
    pub server_extra: String,
    /// `[fleet]` keys.
    pub fleet_extra: String,
    /// Extra top-level tables after `[fleet]`, e.g. `[auth]\nrequire_mfa = "everyone"`.
    pub sections: String,
    /// Environment variables for the Portico process (e.g. a `PATH` without R).
    pub env: Vec<(String, String)>,
    /// The port of `server.listen`; `None`: a free one.
    pub port: Option<u16>,
}

impl PorticoConfig {
    pub fn with_app(mut self, app: AppConfig) -> Self {
        self.apps.push(app);
        self
    }
}

/// A running `portico up`. Dropping it kills Portico and anything it started.
pub struct Portico {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    bin: PathBuf,
    apps: Vec<String>,
    /// `http` or `https` (with a `[tls]` table).
    scheme: &'static str,
    env: Vec<(String, String)>,
    /// Whether its apps run in containers, which dropping it removes.
    uses_docker: bool,
}

/// Environments are shared by all tests of a run (and across runs): building them is the
/// slow part, and what is under test is that Portico uses them, not that uv is fast.
fn shared_env_cache() -> PathBuf {
    std::env::var_os("PORTICO_TEST_ENV_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/portico-test-envs")
        })
}

impl Portico {
    /// Writes a config for these apps and returns it without starting anything.
    pub fn prepare(config: &PorticoConfig) -> (tempfile::TempDir, PathBuf, u16) {
        let dir = tempfile::tempdir().unwrap();
        let port = config.port.unwrap_or_else(free_port);
        // The harness's fleet defaults, unless the test sets the key itself.
        let mut fleet = config.fleet_extra.clone();
        for (key, value) in [("start_timeout_secs", "120"), ("stop_grace_secs", "5")] {
            if !fleet.contains(key) {
                fleet.push_str(&format!("\n{key} = {value}"));
            }
        }
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndomain = \"localhost\"\ndata_dir = \"data\"\n{}\n[build]\ncache_dir = {:?}\n[fleet]\n{fleet}\n{}\n",
            config.server_extra,
            shared_env_cache().to_string_lossy(),
            config.sections,
        );
        for app in &config.apps {
            // Tests about dashboards are not about sign-in: their apps are public unless the
            // test sets an access rule itself.
            let access = if app.extra.contains("access") {
                ""
            } else {
                "access = \"public\"\n"
            };
            toml.push_str(&format!(
                "\n[[apps]]\nname = \"{}\"\ntitle = \"{} app\"\nsource = {:?}\n{access}{}",
                app.name,
                app.name,
                app.source.to_string_lossy(),
                app.extra
            ));
        }
        let path = dir.path().join("portico.toml");
        std::fs::write(&path, toml).unwrap();
        (dir, path, port)
    }

    /// Starts Portico and waits until `/readyz` says every app has settled.
    pub async fn start(bin: &str, config: PorticoConfig) -> Portico {
        let mut portico = Portico::spawn(bin, config);
        portico.wait_ready(Duration::from_secs(240)).await;
        portico
    }

    /// Starts Portico and waits only until it answers `/healthz`, while apps may still be
    /// building or starting.
    pub async fn start_without_waiting_for_apps(bin: &str, config: PorticoConfig) -> Portico {
        let portico = Portico::spawn(bin, config);
        let url = format!("{}healthz", portico.portal_url());
        eventually(
            "portico to answer /healthz",
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    let client = reqwest::Client::builder()
                        .danger_accept_invalid_certs(true)
                        .build()
                        .unwrap();
                    client
                        .get(&url)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ())
                }
            },
        )
        .await;
        portico
    }

    fn spawn(bin: &str, config: PorticoConfig) -> Portico {
        let (dir, config_path, port) = Portico::prepare(&config);
        let uses_docker =
            std::fs::read_to_string(&config_path).is_ok_and(|text| text.contains("\"docker\""));
        let data_dir = dir.path().join("data");
        let mut portico = Portico {
            child: None,
            port,
            dir,
            config_path,
            data_dir,
            bin: bin.into(),
            apps: config.apps.iter().map(|a| a.name.clone()).collect(),
            scheme: if config.sections.contains("[tls]") {
                "https"
            } else {
                "http"
            },
            env: config.env,
            uses_docker,
        };
        portico.launch();
        portico
    }

    /// Runs `portico up` with this instance's config; its output replaces the log.
    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("portico.log")).unwrap();
        let child = Command::new(&self.bin)
            .args(["up", "--config"])
            .arg(&self.config_path)
            .env("PORTICO_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("portico starts");
        self.child = Some(child);
    }

    /// Starts Portico again, after it exited, on the same config and data folder, and waits
    /// until it is ready. [`Portico::log`] then shows the new run.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "Portico is still running");
        self.launch();
        self.wait_ready(Duration::from_secs(240)).await;
    }

    async fn wait_ready(&mut self, timeout: Duration) {
        let url = format!("{}readyz", self.portal_url());
        // Readiness only: tests check certificates themselves.
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("portico exited early ({status}):\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "portico not ready after {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything Portico printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("portico.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn portal_url(&self) -> String {
        format!("{}://localhost:{}/", self.scheme, self.port)
    }

    pub fn app_host_url(&self, app: &str) -> String {
        format!("{}://{app}.localhost:{}/", self.scheme, self.port)
    }

    pub fn app_path_url(&self, app: &str) -> String {
        format!("{}://localhost:{}/apps/{app}/", self.scheme, self.port)
    }

    /// `"https"` when the config has a `[tls]` section, else `"http"`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The development certificate of `[tls] self_signed = true`, once Portico made it.
    pub fn self_signed_certificate(&self) -> reqwest::Certificate {
        let pem = std::fs::read(self.data_dir.join("tls/self-signed.pem"))
            .expect("Portico's development certificate");
        reqwest::Certificate::from_pem(&pem).unwrap()
    }

    /// An HTTP client that resolves every app's host name to loopback.
    /// Over HTTPS it trusts Portico's development certificate (and nothing else).
    pub fn client(&self) -> reqwest::Client {
        let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if self.scheme == "https" {
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(self.self_signed_certificate());
        }
        for app in &self.apps {
            builder = builder.resolve(
                &format!("{app}.localhost"),
                ([127, 0, 0, 1], self.port).into(),
            );
        }
        builder
            .resolve("localhost", ([127, 0, 0, 1], self.port).into())
            .build()
            .unwrap()
    }

    /// A plain-HTTP client whose connections come from `source` (another loopback address,
    /// such as 127.0.0.2, to play a different client), resolving every app's host.
    pub fn client_from(&self, source: &str) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .local_address(source.parse::<std::net::IpAddr>().expect("an IP address"))
            .redirect(reqwest::redirect::Policy::none())
            .resolve("localhost", ([127, 0, 0, 1], self.port).into());
        for app in &self.apps {
            builder = builder.resolve(
                &format!("{app}.localhost"),
                ([127, 0, 0, 1], self.port).into(),
            );
        }
        builder.build().unwrap()
    }

    /// Runs a `portico` subcommand against this instance's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .unwrap()
    }

    /// Creates a user through the CLI, with this password and these groups.
    pub fn add_user(&self, email: &str, password: &str, groups: &[&str]) {
        let args = ["users", "add", email, "--password-stdin"];
        let added = crate::run_cli(
            &self.bin,
            &self.config_path,
            &args,
            &format!("{password}\n"),
            &[],
        );
        assert!(
            added.status.success(),
            "could not add {email}: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        for group in groups {
            let _ = self.cli(&["groups", "add", group]);
            assert!(self
                .cli(&["groups", "add-member", group, email])
                .status
                .success());
        }
    }

    /// `portico apps --json`, parsed.
    pub fn apps_json(&self) -> serde_json::Value {
        let output = self.cli(&["apps", "--json"]);
        assert!(
            output.status.success(),
            "portico apps failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Portico's `/metrics` text, fetched with `client` (on the main listener).
    pub async fn metrics(&self, client: &reqwest::Client) -> String {
        client
            .get(format!("{}metrics", self.portal_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `app`'s ready replicas as `portico apps --json` lists them: id and pid.
    pub fn ready_replicas(&self, app: &str) -> Vec<(String, u32)> {
        let apps = self.apps_json();
        apps["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["name"] == app)
            .flat_map(|a| a["replicas"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["state"] == "ready")
            .map(|r| {
                (
                    r["id"].as_str().unwrap_or_default().to_owned(),
                    r["pid"].as_u64().unwrap_or_default() as u32,
                )
            })
            .collect()
    }

    /// The pids of every process Portico started for this instance (replicas and their
    /// children), found by the instance mark in their environment.
    pub fn replica_pids(&self) -> Vec<u32> {
        let instance = std::fs::canonicalize(&self.data_dir).unwrap_or(self.data_dir.clone());
        let marker = format!(
            "{}={}",
            portico_fleet::process::INSTANCE_VAR,
            instance.display()
        );
        portico_fleet::process::processes_with_env(&marker)
            .into_iter()
            .filter(|pid| is_alive(*pid))
            .collect()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Waits for Portico to exit; returns its exit status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let status = eventually("portico to exit", timeout, || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await;
        self.child = None;
        status
    }

    /// The label on every container this Portico starts (`portico.instance=<data dir>`).
    pub fn instance_label(&self) -> String {
        let data = std::fs::canonicalize(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        format!("portico.instance={}", data.display())
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn data_path(&self, relative: &str) -> PathBuf {
        Path::new(&self.data_dir).join(relative)
    }
}

impl Drop for Portico {
    fn drop(&mut self) {
        let leftovers = self.replica_pids();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in leftovers {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        if self.uses_docker {
            crate::docker::remove_labelled(&self.instance_label());
        }
    }
}
