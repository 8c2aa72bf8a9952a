//! What containers add over processes, on a real Docker daemon: apps cannot reach each
//! other, limits hold (a dashboard over its memory is killed and restarted, and Portico says
//! why), the security options apply, containers carry Portico's labels and publish no port
//! on the host, and when the daemon goes away the app says so and comes back with it.

use portico_testkit::docker::{test_server_image, PrivateDaemon};
use portico_testkit::{eventually, fixtures_dir, AppConfig, Portico, PorticoConfig};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

fn container_app(name: &str) -> AppConfig {
    AppConfig::new(name, fixtures_dir())
        .with("runtime = \"docker\"")
        .with(&format!("image = \"{}\"", test_server_image()))
}

async fn get(portico: &Portico, app: &str, path: &str) -> (u16, String) {
    let url = format!("{}{path}", portico.app_host_url(app));
    let response = portico.client().get(&url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `docker inspect --format TEMPLATE NAME`.
fn inspect(name: &str, template: &str) -> String {
    let output = Command::new("docker")
        .args(["inspect", "--format", template, name])
        .output()
        .unwrap();
    assert!(output.status.success(), "docker inspect {name}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn endpoint_of(portico: &Portico, app: &str) -> String {
    let apps = portico.apps_json();
    let app = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == app)
        .unwrap()
        .clone();
    app["replicas"][0]["endpoint"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_apps_container_cannot_reach_anothers() {
    let config = PorticoConfig::default()
        .with_app(container_app("alpha"))
        .with_app(container_app("beta"));
    let portico = Portico::start(BIN, config).await;
    let alpha = endpoint_of(&portico, "alpha");
    let beta = endpoint_of(&portico, "beta");
    assert_ne!(alpha.split(':').next(), beta.split(':').next());

    // Portico reaches both.
    assert_eq!(get(&portico, "alpha", "").await.0, 200);
    assert_eq!(get(&portico, "beta", "").await.0, 200);
    // The probe works: alpha reaches its own address…
    let (_, own) = get(&portico, "alpha", &format!("connect?to={alpha}")).await;
    assert!(own.starts_with("connected"), "{own}");
    // …and not beta's, nor beta alpha's.
    let (_, across) = get(&portico, "alpha", &format!("connect?to={beta}")).await;
    assert!(across.starts_with("cannot connect"), "{across}");
    let (_, back) = get(&portico, "beta", &format!("connect?to={alpha}")).await;
    assert!(back.starts_with("cannot connect"), "{back}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dashboard_over_its_memory_limit_is_killed_and_restarted_with_the_reason() {
    let config = PorticoConfig::default()
        .with_app(container_app("greedy").with("[apps.container]\nmemory_mb = 64"));
    let portico = Portico::start(BIN, config).await;
    let before = portico.ready_replicas("greedy")[0].0.clone();
    let name = format!("portico-{before}");
    assert_eq!(inspect(&name, "{{.HostConfig.Memory}}"), "67108864");
    assert_eq!(get(&portico, "greedy", "alloc?mb=16").await.0, 200);
    // Far beyond the limit: the kernel kills it mid-request.
    let _ = get(&portico, "greedy", "alloc?mb=256").await;

    let app = eventually("a new ready replica", Duration::from_secs(60), || async {
        let apps = portico.apps_json();
        let app = apps["apps"][0].clone();
        let replica = &app["replicas"][0];
        (replica["state"] == "ready" && replica["id"] != before.as_str()).then_some(app)
    })
    .await;
    let reason = app["last_restart_reason"].as_str().unwrap();
    assert!(
        reason.contains("killed for using more than its memory limit (64 MiB)"),
        "{reason}"
    );
    let table = String::from_utf8(portico.cli(&["apps"]).stdout).unwrap();
    assert!(table.contains("out of memory"), "{table}");
    assert!(portico.log().contains("out of memory (OOM); restarting"));
    assert_eq!(get(&portico, "greedy", "").await.0, 200, "serving again");
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_are_labelled_unpublished_and_locked_down() {
    let config = PorticoConfig::default().with_app(container_app("locked").with(
        "[apps.container]\nuser = \"1000:1000\"\nread_only = true\ncpus = 0.5\npids_limit = 64",
    ));
    let portico = Portico::start(BIN, config).await;
    let (replica, _) = portico.ready_replicas("locked")[0].clone();
    let name = format!("portico-{replica}");

    let labels = inspect(&name, "{{json .Config.Labels}}");
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["portico.app"], "locked");
    assert_eq!(labels["portico.replica"], replica.as_str());
    assert_eq!(labels["portico.release"], "1");
    let instance = portico.instance_label();
    assert_eq!(
        labels["portico.instance"],
        instance.trim_start_matches("portico.instance=")
    );
    // Nothing on the host's ports; restarts are Portico's decision.
    let published = inspect(&name, "{{json .HostConfig.PortBindings}}");
    assert!(matches!(published.as_str(), "null" | "{}"), "{published}");
    assert_eq!(inspect(&name, "{{.HostConfig.RestartPolicy.Name}}"), "no");
    assert_eq!(inspect(&name, "{{.HostConfig.NanoCpus}}"), "500000000");
    assert_eq!(inspect(&name, "{{.HostConfig.PidsLimit}}"), "64");
    assert_eq!(inspect(&name, "{{json .HostConfig.CapDrop}}"), "[\"ALL\"]");

    assert_eq!(get(&portico, "locked", "uid").await.1, "1000");
    let (status, body) = get(&portico, "locked", "write?path=/note&text=x").await;
    assert_eq!(status, 500);
    assert!(body.contains("Read-only file system"), "{body}");
    let (status, body) = get(&portico, "locked", "write?path=/tmp/note&text=kept").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(&portico, "locked", "read?path=/tmp/note").await.1,
        "kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_fails_the_app_with_the_fix() {
    let config = PorticoConfig::default().with_app(
        AppConfig::new("ghost", fixtures_dir())
            .with("runtime = \"docker\"")
            .with("image = \"portico-test/no-such-image:1\""),
    );
    portico_testkit::docker::ensure_daemon();
    let portico = Portico::start_without_waiting_for_apps(BIN, config).await;
    let reason = eventually("the app marked failed", Duration::from_secs(60), || async {
        let apps = portico.apps_json();
        let app = apps["apps"][0].clone();
        (app["status"] == "failed").then(|| app["reason"].as_str().unwrap().to_owned())
    })
    .await;
    assert!(
        reason.contains("the image portico-test/no-such-image:1 is not on the Docker daemon"),
        "{reason}"
    );
    assert!(reason.contains("docker pull"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_daemon_goes_away_the_app_says_so_and_comes_back_with_it() {
    // A daemon of this test's own: stopping the machine's would stop the other tests'.
    let mut daemon = PrivateDaemon::start(&[test_server_image()]);
    let config = PorticoConfig {
        sections: format!("[docker]\nendpoint = \"{}\"\n", daemon.endpoint()),
        ..PorticoConfig::default()
    }
    .with_app(container_app("steady"));
    let portico = Portico::start(BIN, config).await;
    assert_eq!(get(&portico, "steady", "").await.0, 200);

    daemon.stop();
    let app = eventually(
        "the app to say the daemon is away",
        Duration::from_secs(60),
        || async {
            let apps = portico.apps_json();
            let app = apps["apps"][0].clone();
            (app["status"] == "failed").then_some(app)
        },
    )
    .await;
    let reason = app["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "the Docker daemon at {} does not answer",
            daemon.endpoint()
        )),
        "{app}"
    );
    assert!(reason.contains("Portico tries again every 5s"), "{reason}");
    let table = String::from_utf8(portico.cli(&["apps"]).stdout).unwrap();
    assert!(table.contains("does not answer"), "{table}");
    let (status, _) = get(&portico, "steady", "").await;
    assert_eq!(
        status, 503,
        "visitors are told the app is down, not kept waiting"
    );

    daemon.resume();
    eventually(
        "the app to serve again",
        Duration::from_secs(60),
        || async { (get(&portico, "steady", "").await.0 == 200).then_some(()) },
    )
    .await;
    assert_eq!(portico.apps_json()["apps"][0]["status"], "running");
    // Said once for the outage, not at every attempt.
    let log = portico.log();
    let said = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("Portico tries again"))
        .count();
    assert_eq!(said, 1, "{log}");
}
