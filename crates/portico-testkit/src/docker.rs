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
    let output = Command::new("docker")
        .args(["ps", "--all", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label={label}"))
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Removes containers carrying a label, whatever their state, then the networks (a daemon
/// has room for only about 30) and the volumes with that label.
pub fn remove_labelled(label: &str) {
    let names = containers_labelled(label);
    if !names.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "--force"])
            .args(&names)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let networks = networks_labelled(label);
    if !networks.is_empty() {
        let _ = Command::new("docker")
            .args(["network", "rm"])
            .args(&networks)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let volumes = volumes_labelled(label);
    if !volumes.is_empty() {
        let _ = Command::new("docker")
            .args(["volume", "rm", "--force"])
            .args(&volumes)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Volumes carrying a label, by name.
pub fn volumes_labelled(label: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["volume", "ls", "--quiet", "--filter"])
        .arg(format!("label={label}"))
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
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

/// Networks carrying a label, by id.
pub fn networks_labelled(label: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["network", "ls", "--quiet", "--filter"])
        .arg(format!("label={label}"))
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
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
