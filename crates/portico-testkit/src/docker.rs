//! A real Docker daemon for tests, and the images they run. No image can be pulled here, so
//! tests build their own: the test server, linked statically, in a `FROM scratch` image.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The image of the test server (see `crates/portico-test-server`).
pub const TEST_SERVER_IMAGE: &str = "portico-test/server:latest";

/// Whether a daemon answers `docker version`.
pub fn daemon_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure a Docker daemon answers, starting `dockerd` when none does (as
/// `scripts/test` does); panics with the fix when that is impossible.
pub fn ensure_daemon() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        if daemon_answers() {
            return;
        }
        let log = workspace_target().join("dockerd.log");
        let spawned = std::fs::File::create(&log).and_then(|file| {
            Command::new("dockerd")
                .stdin(Stdio::null())
                .stdout(file.try_clone()?)
                .stderr(file)
                .spawn()
        });
        if let Err(e) = spawned {
            panic!("no Docker daemon answers and `dockerd` cannot be started ({e}); install docker.io (scripts/test does) and run as root");
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !daemon_answers() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// The test server, statically linked (so that it runs alone in a `FROM scratch` image),
/// built once per test process.
pub fn test_server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_test_server).clone()
}

fn build_test_server() -> PathBuf {
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let output = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--package",
            "portico-test-server",
            "--target",
            &target,
            "--message-format=json",
        ])
        // With an explicit --target these flags reach only the test server, not build
        // scripts or proc macros (which cannot be static).
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "building the test server failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|message| message["executable"].as_str().map(PathBuf::from))
        .next_back()
        .expect("cargo names the test server's executable")
}

/// Builds an image from a Dockerfile text and files, with the host's docker CLI (the tests
/// check Portico's own builds through the API separately).
pub fn build_image(tag: &str, dockerfile: &str, files: &[(&str, &Path)]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, source) in files {
        std::fs::copy(source, dir.path().join(name)).unwrap();
    }
    let output = Command::new("docker")
        .args(["build", "--quiet", "--tag", tag])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker runs");
    assert!(
        output.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The test server's image, built (from the layer cache when nothing changed) once per test
/// process.
pub fn test_server_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        ensure_daemon();
        let binary = test_server_binary();
        build_image(
            TEST_SERVER_IMAGE,
            "FROM scratch\nCOPY portico-test-server /portico-test-server\nCMD [\"/portico-test-server\"]\n",
            &[("portico-test-server", &binary)],
        );
    });
    TEST_SERVER_IMAGE
}

/// Containers carrying a label (`portico.instance=/tmp/…/data`), by name.
pub fn containers_labelled(label: &str) -> Vec<String> {
    listed(&["ps", "--all", "--format", "{{.Names}}"], label)
}

/// Networks carrying a label, by id.
pub fn networks_labelled(label: &str) -> Vec<String> {
    listed(&["network", "ls", "--quiet"], label)
}

/// Volumes carrying a label, by name.
pub fn volumes_labelled(label: &str) -> Vec<String> {
    listed(&["volume", "ls", "--quiet"], label)
}

/// What a `docker … ls` command lists of the objects carrying a label.
fn listed(command: &[&str], label: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(command)
        .arg("--filter")
        .arg(format!("label={label}"))
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Removes containers carrying a label, whatever their state, then the networks (a daemon
/// has room for only about 30) and the volumes with that label.
pub fn remove_labelled(label: &str) {
    remove(&["rm", "--force"], &containers_labelled(label));
    remove(&["network", "rm"], &networks_labelled(label));
    remove(&["volume", "rm", "--force"], &volumes_labelled(label));
}

/// Runs a `docker … rm` command on `names`, if there are any; what is gone already is no
/// error.
fn remove(command: &[&str], names: &[String]) {
    if !names.is_empty() {
        let _ = Command::new("docker")
            .args(command)
            .args(names)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The owner and mode of a volume's top folder on this machine's daemon: `"1000:1000 700"`.
pub fn volume_owner_and_mode(name: &str) -> String {
    let output = Command::new("docker")
        .args(["volume", "inspect", "--format", "{{.Mountpoint}}", name])
        .output()
        .expect("docker runs");
    assert!(output.status.success(), "no volume {name}");
    let folder = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let output = Command::new("stat")
        .args(["--format", "%u:%g %a", &folder])
        .output()
        .expect("stat runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A container's state as `docker inspect` shows it (`running`, `exited`), or `None` when
/// there is no such container.
pub fn container_state(name: &str) -> Option<String> {
    let output = Command::new("docker")
        .args(["inspect", "--format", "{{.State.Status}}", name])
        .output()
        .expect("docker runs");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A Python base image made here, since none can be pulled: Debian's minimal system with
/// python3, venv and the CA certificates, from Debian's packages by debootstrap, imported
/// into the daemon. The root file system is cached between runs (under
/// `~/.cache/portico/images`, or `$PORTICO_CACHE/images`).
pub const PYTHON_BASE_IMAGE: &str = "portico-test/python-base:bookworm";

pub fn python_base_image() -> &'static str {
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        ensure_daemon();
        let present = Command::new("docker")
            .args(["image", "inspect", PYTHON_BASE_IMAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if present {
            return;
        }
        let cache = std::env::var_os("PORTICO_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/portico")
            })
            .join("images");
        std::fs::create_dir_all(&cache).unwrap();
        let archive = cache.join("python-base-bookworm.tar");
        if !archive.is_file() {
            let root = tempfile::tempdir().unwrap();
            let mirror = std::env::var("PORTICO_DEBIAN_MIRROR")
                .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
            let status = Command::new("debootstrap")
                .args([
                    "--variant=minbase",
                    "--include=python3,python3-venv,ca-certificates",
                    "bookworm",
                ])
                .arg(root.path())
                .arg(&mirror)
                .stdout(Stdio::null())
                .status()
                .expect("debootstrap runs (apt-get install debootstrap; scripts/test does)");
            assert!(status.success(), "debootstrap from {mirror} failed");
            let partial = cache.join("python-base-bookworm.tar.partial");
            let status = Command::new("tar")
                .arg("-C")
                .arg(root.path())
                .arg("-cf")
                .arg(&partial)
                .arg(".")
                .status()
                .unwrap();
            assert!(status.success(), "packing the base image failed");
            std::fs::rename(&partial, &archive).unwrap();
        }
        let status = Command::new("docker")
            .args(["import"])
            .arg(&archive)
            .arg(PYTHON_BASE_IMAGE)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "docker import of {} failed",
            archive.display()
        );
    });
    PYTHON_BASE_IMAGE
}

/// A Docker daemon of a test's own, which it may stop and start (the machine's daemon is
/// shared by every container test). Its files, socket and containers live in a temporary
/// folder; its networks come from an address pool of their own, its default bridge is an
/// interface of its own, and it leaves the machine's firewall rules alone.
///
/// Two quirks of dockerd shape it. `--bridge none` would be simpler, but a daemon started
/// so deletes `docker0`, the machine's daemon's bridge (every build there then fails until
/// that daemon restarts). And a daemon started again on its own network database deletes
/// `docker0` too, while clearing its stale default network: so [`stop`](Self::stop) forgets
/// the database, removing the bridges of the networks it held, and every start is a first.
pub struct PrivateDaemon {
    dir: tempfile::TempDir,
    process: Option<std::process::Child>,
    bridge: String,
}

/// The address pool of private daemons' networks (the machine's daemon uses 172.17-31 and
/// 192.168), and their default bridges' addresses.
const PRIVATE_POOL: &str = "base=10.213.0.0/16,size=24";
const PRIVATE_BRIDGE_NETS: &str = "10.214";

impl PrivateDaemon {
    /// Starts one and loads `images` into it from the machine's daemon.
    pub fn start(images: &[&str]) -> PrivateDaemon {
        ensure_daemon();
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 250;
        let bridge = format!("pd{}-{n}", std::process::id() % 100_000);
        let ip = |args: &[&str]| {
            let status = Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .status()
                .expect("ip runs");
            assert!(status.success(), "ip {}", args.join(" "));
        };
        let _ = Command::new("ip")
            .args(["link", "del", &bridge])
            .stderr(Stdio::null())
            .status();
        ip(&["link", "add", "name", &bridge, "type", "bridge"]);
        let address = format!("{PRIVATE_BRIDGE_NETS}.{n}.1/24");
        ip(&["addr", "add", &address, "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        let mut daemon = PrivateDaemon {
            dir: tempfile::Builder::new()
                .prefix("pd")
                .tempdir_in("/tmp")
                .unwrap(),
            process: None,
            bridge,
        };
        daemon.resume();
        for image in images {
            let mut save = Command::new("docker")
                .args(["save", image])
                .stdout(Stdio::piped())
                .spawn()
                .expect("docker save runs");
            let loaded = daemon
                .cli()
                .arg("load")
                .stdin(save.stdout.take().expect("docker save's output"))
                .stdout(Stdio::null())
                .status()
                .expect("docker load runs");
            let saved = save.wait().expect("docker save ends");
            assert!(
                saved.success() && loaded.success(),
                "cannot load {image} into the private daemon"
            );
        }
        daemon
    }

    /// Its endpoint, as `[docker] endpoint` takes it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// `docker` talking to this daemon.
    pub fn cli(&self) -> Command {
        let mut command = Command::new("docker");
        command.arg("--host").arg(self.endpoint());
        command
    }

    /// Whether it answers.
    pub fn answers(&self) -> bool {
        self.cli()
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts it (again) and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.process.is_none(), "the private daemon is running");
        let root = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("dockerd.log"))
            .unwrap();
        let process = Command::new("dockerd")
            .arg("--host")
            .arg(self.endpoint())
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .arg("--bridge")
            .arg(&self.bridge)
            .arg("--iptables=false")
            .args(["--default-address-pool", PRIVATE_POOL])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd runs");
        self.process = Some(process);
        for _ in 0..240 {
            if self.answers() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "the private dockerd did not answer within 60 s: {}",
            std::fs::read_to_string(root.join("dockerd.log")).unwrap_or_default()
        );
    }

    /// Stops it the way an operator would (its containers stop with it) and waits until it
    /// has exited.
    pub fn stop(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        let bridges = self.network_bridges();
        let pid = nix::unistd::Pid::from_raw(process.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let mut ended = false;
        for _ in 0..240 {
            if process.try_wait().ok().flatten().is_some() {
                ended = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if !ended {
            let _ = process.kill();
            let _ = process.wait();
        }
        for bridge in bridges {
            let _ = Command::new("ip")
                .args(["link", "del", &bridge])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_file(self.dir.path().join("data/network/files/local-kv.db"));
    }

    /// The host interfaces of the networks created on it (`br-<short id>`).
    fn network_bridges(&self) -> Vec<String> {
        let Ok(output) = self
            .cli()
            .args(["network", "ls", "--filter", "driver=bridge"])
            .args(["--format", "{{.ID}} {{.Name}}"])
            .output()
        else {
            return Vec::new();
        };
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once(' '))
            .filter(|(_, name)| *name != "bridge")
            .map(|(id, _)| format!("br-{}", &id[..id.len().min(12)]))
            .collect()
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        if self.process.is_some() {
            // Containers and networks first, so that nothing of them outlives the daemon.
            if let Ok(output) = self.cli().args(["ps", "--all", "--quiet"]).output() {
                let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                if !ids.is_empty() {
                    let _ = self
                        .cli()
                        .args(["rm", "--force"])
                        .args(&ids)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
            let _ = self
                .cli()
                .args(["network", "prune", "--force"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.stop();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        // Its layers are mounted while it runs and unmounted when it stops; what remains
        // can go with the folder.
    }
}
