//! Deploys of a container app on a real Docker daemon: each release is an image built from
//! the uploaded folder (its own Dockerfile here), rolled out like any release. A sticky
//! session stays on the old container while new sessions reach the new one; an image that
//! fails to build leaves the live release serving (a deploy never falls back to an older
//! image silently); rollback runs the earlier image again without building.

use portico_testkit::docker::test_server_image;
use portico_testkit::{eventually, AppConfig, Portico, PorticoConfig};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// A folder whose Dockerfile makes the test server say `version`.
fn version(parent: &Path, version: &str, extra: &str) -> PathBuf {
    let dir = parent.join(version);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nENV VERSION={version}\n{extra}",
            test_server_image()
        ),
    )
    .unwrap();
    dir
}

fn deploy(portico: &Portico, token: &str, args: &[&str]) -> (bool, String) {
    let output: Output = portico_testkit::run_cli(
        Path::new(BIN),
        &portico.config_path,
        args,
        "",
        &[("PORTICO_TOKEN", token)],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The version a client with `cookie` (or a new one) reaches, and the sticky cookie it gets.
async fn version_seen(portico: &Portico, cookie: Option<&str>) -> (String, Option<String>) {
    let mut request = portico
        .client()
        .get(format!("{}env?name=VERSION", portico.app_host_url("own")));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let sticky = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("portico_replica_own="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    (response.text().await.unwrap().trim().to_owned(), sticky)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_app_is_deployed_as_images_rolled_out_and_rolled_back() {
    let work = tempfile::tempdir().unwrap();
    let app = AppConfig::new("own", version(work.path(), "v1", "")).with(
        // The default idle timeout (5 minutes) keeps a sticky session's replica draining
        // until the drain deadline.
        "runtime = \"docker\"\nowners = { users = [\"ada@example.com\"] }",
    );
    let config = PorticoConfig {
        // One release kept ready to roll back to, besides the live one.
        // Old replicas drain for 5 s at most, so that releases stop being in use.
        sections: "[deploy]\nkeep_releases = 1\ndrain_timeout_secs = 5\n".into(),
        ..PorticoConfig::default()
    };
    let portico = Portico::start(BIN, config.with_app(app)).await;
    portico.add_user("ada@example.com", "a-long-enough-password-1", &[]);
    let made = portico.cli(&["tokens", "create", "ada@example.com", "--name", "t"]);
    let token = String::from_utf8_lossy(&made.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("portico_"))
        .unwrap()
        .to_owned();

    let (seen, cookie) = version_seen(&portico, None).await;
    assert_eq!(seen, "v1");
    let cookie = cookie.expect("a sticky cookie");

    let v2 = version(work.path(), "v2", "");
    let (ok, output) = deploy(
        &portico,
        &token,
        &["deploy", v2.to_str().unwrap(), "--app", "own"],
    );
    assert!(ok, "{output}");
    assert!(output.contains("Release 2 of own is live"), "{output}");
    assert_eq!(version_seen(&portico, None).await.0, "v2");
    assert_eq!(
        version_seen(&portico, Some(&cookie)).await.0,
        "v1",
        "the open session stays on its container"
    );

    let broken = version(work.path(), "v3", "COPY analysts-typo.csv /data/\n");
    let (ok, output) = deploy(
        &portico,
        &token,
        &["deploy", broken.to_str().unwrap(), "--app", "own"],
    );
    assert!(!ok, "{output}");
    assert!(
        output.contains("analysts-typo.csv"),
        "the build's error: {output}"
    );
    assert_eq!(
        version_seen(&portico, None).await.0,
        "v2",
        "release 2 serves on"
    );

    let (ok, output) = deploy(&portico, &token, &["rollback", "own", "1"]);
    assert!(ok, "{output}");
    assert!(
        output.contains("is up to date"),
        "nothing is rebuilt: {output}"
    );
    assert_eq!(version_seen(&portico, None).await.0, "v1");

    // Two more releases: release 2 falls out of the one kept, and so does its image.
    let (_, listed) = deploy(&portico, &token, &["releases", "own", "--json"]);
    let releases: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let image_of_2 = releases
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["number"] == 2)
        .and_then(|r| r["environment"].as_str()?.strip_prefix("image "))
        .expect("release 2 ran an image")
        .to_owned();
    for v in ["v4", "v5"] {
        // A release still draining is in use, and is never pruned.
        eventually(
            "earlier releases to drain",
            Duration::from_secs(30),
            || async { (portico.ready_replicas("own").len() == 1).then_some(()) },
        )
        .await;
        let folder = version(work.path(), v, "");
        let (ok, output) = deploy(
            &portico,
            &token,
            &["deploy", folder.to_str().unwrap(), "--app", "own"],
        );
        assert!(ok, "{output}");
    }
    let (ok, output) = deploy(&portico, &token, &["rollback", "own", "2"]);
    assert!(!ok);
    assert!(output.contains("it is pruned"), "{output}");
    let inspected = std::process::Command::new("docker")
        .args(["image", "inspect", &image_of_2])
        .output()
        .unwrap();
    assert!(
        !inspected.status.success(),
        "the image of release 2 was removed"
    );
    let (ok, output) = deploy(&portico, &token, &["rollback", "own"]);
    assert!(ok, "the kept release still rolls back: {output}");
    assert_eq!(version_seen(&portico, None).await.0, "v4");
}
