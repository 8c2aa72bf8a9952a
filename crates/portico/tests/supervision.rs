//! Replicas are supervised: a killed replica is restarted and `portico apps` says why; an app
//! that cannot start fails alone; and Portico leaves no process behind however it stops.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use portico_testkit::{eventually, fixtures_dir, is_alive, AppConfig, Portico, PorticoConfig};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// The Flask example runs under gunicorn: a master and a worker, so a replica is a process
/// group with a child, which is what cleanup must cope with.
fn flask() -> AppConfig {
    AppConfig::example("flask")
}

/// A replica that starts in milliseconds: Python's own HTTP server.
fn static_site() -> AppConfig {
    AppConfig::new("files", fixtures_dir().join("echo"))
        .with("framework = \"command\"")
        .with("command = [\"python3\", \"-m\", \"http.server\", \"$PORT\", \"--bind\", \"127.0.0.1\"]")
}

async fn status_of(portico: &Portico, url: &str) -> u16 {
    portico
        .client()
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The reason `portico apps` gives for an app it reports as failed.
fn failure_reason(portico: &Portico, name: &str) -> String {
    let apps = portico.apps_json();
    let app = app(&apps, name);
    assert_eq!(app["status"], "failed", "{app}");
    app["reason"].as_str().unwrap().to_owned()
}

fn app<'a>(apps: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_replica_restarts_it_and_apps_shows_the_restart_and_its_reason() {
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(flask())).await;
    let url = portico.app_host_url("flask");
    assert_eq!(status_of(&portico, &url).await, 200);

    let before = portico.apps_json();
    let replica = &app(&before, "flask")["replicas"][0];
    assert_eq!(replica["state"], "ready");
    let pid = replica["pid"].as_u64().unwrap() as i32;
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();

    let after = eventually("a new ready replica", Duration::from_secs(60), || async {
        let apps = portico.apps_json();
        let flask = app(&apps, "flask");
        let ready = flask["replicas"][0]["state"] == "ready"
            && flask["replicas"][0]["pid"].as_u64() != Some(pid as u64);
        ready.then(|| flask.clone())
    })
    .await;
    assert_eq!(after["restarts"], 1);
    let reason = after["last_restart_reason"].as_str().unwrap();
    assert!(reason.contains("killed by signal 9 (SIGKILL)"), "{reason}");
    assert_eq!(status_of(&portico, &url).await, 200, "the app serves again");

    let table = String::from_utf8(portico.cli(&["apps"]).stdout).unwrap();
    assert!(table.contains("killed by signal 9 (SIGKILL)"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_stops_answering_is_replaced() {
    let config = PorticoConfig {
        fleet_extra: "probe_interval_secs = 1\nprobe_failures = 2".into(),
        ..PorticoConfig::default()
    }
    .with_app(static_site());
    let portico = Portico::start(BIN, config).await;
    let url = portico.app_host_url("files");
    assert_eq!(status_of(&portico, &url).await, 200);
    let before = portico.apps_json();
    let pid = app(&before, "files")["replicas"][0]["pid"]
        .as_u64()
        .unwrap() as u32;

    // Frozen, not dead: the process exists and its port accepts connections, but nothing
    // answers. Only the liveness probe can notice.
    kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
    let after = eventually("a replacement replica", Duration::from_secs(60), || async {
        let apps = portico.apps_json();
        let files = app(&apps, "files").clone();
        let replaced = files["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["state"] == "ready" && r["pid"].as_u64() != Some(pid as u64));
        replaced.then_some(files)
    })
    .await;
    let reason = after["last_restart_reason"].as_str().unwrap();
    assert!(reason.contains("stopped answering on /"), "{reason}");
    assert!(!is_alive(pid), "the frozen process was killed");
    assert_eq!(status_of(&portico, &url).await, 200, "the app serves again");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_that_keeps_crashing_is_marked_failed_with_its_last_output() {
    let crashing = AppConfig::new("crashy", fixtures_dir().join("echo"))
        .with("framework = \"command\"")
        .with("command = [\"sh\", \"-c\", \"echo 'cannot open data.csv' >&2; exit 3\"]");
    let config = PorticoConfig {
        fleet_extra: "max_restarts = 1".into(),
        ..Default::default()
    }
    .with_app(crashing)
    .with_app(static_site());
    let portico = Portico::start(BIN, config).await;

    let crashy = eventually("crashy to be failed", Duration::from_secs(30), || async {
        let apps = portico.apps_json();
        let crashy = app(&apps, "crashy").clone();
        (crashy["status"] == "failed").then_some(crashy)
    })
    .await;
    let reason = crashy["reason"].as_str().unwrap();
    assert!(reason.contains("exited with status 3"), "{reason}");
    assert!(reason.contains("cannot open data.csv"), "{reason}");

    let page = portico
        .client()
        .get(portico.app_host_url("crashy"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    let body = page.text().await.unwrap();
    assert!(body.contains("crashy app failed to start"), "{body}");
    assert!(
        !body.contains("data.csv"),
        "the app's output is for administrators, not visitors: {body}"
    );
    assert_eq!(
        status_of(&portico, &portico.app_host_url("files")).await,
        200,
        "the other app still runs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requirements_that_fail_to_install_show_the_installers_message_and_the_other_apps_still_run(
) {
    let broken = AppConfig::new("broken", fixtures_dir().join("broken-requirements"));
    let portico = Portico::start(
        BIN,
        PorticoConfig::default()
            .with_app(broken)
            .with_app(static_site()),
    )
    .await;

    let reason = failure_reason(&portico, "broken");
    assert!(
        reason.contains("installing the Python requirements failed"),
        "{reason}"
    );
    assert!(
        reason.contains("/nonexistent/portico-missing-package"),
        "the installer's own words: {reason}"
    );

    let build_log = portico.cli(&["logs", "broken", "--build"]);
    assert!(String::from_utf8_lossy(&build_log.stdout).contains("portico-missing-package"));
    assert_eq!(
        status_of(&portico, &portico.app_host_url("files")).await,
        200
    );
    assert_eq!(
        status_of(&portico, &portico.app_path_url("broken")).await,
        503
    );
}

async fn stop_leaves_no_process_behind(signal: Signal) {
    let mut portico = Portico::start(
        BIN,
        PorticoConfig::default()
            .with_app(flask())
            .with_app(static_site()),
    )
    .await;
    let pids = portico.replica_pids();
    assert!(
        pids.len() >= 3,
        "gunicorn master + worker and http.server: {pids:?}"
    );
    portico.signal(signal);
    let status = portico.wait_exit(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "portico exits cleanly on {signal}: {status}\n{}",
        portico.log()
    );
    let alive: Vec<u32> = pids.iter().copied().filter(|pid| is_alive(*pid)).collect();
    assert!(alive.is_empty(), "left behind after {signal}: {alive:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_leaves_no_process_behind() {
    stop_leaves_no_process_behind(Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_leaves_no_process_behind() {
    stop_leaves_no_process_behind(Signal::SIGINT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn even_sigkill_of_portico_leaves_no_process_behind() {
    let mut portico = Portico::start(
        BIN,
        PorticoConfig::default()
            .with_app(flask())
            .with_app(static_site()),
    )
    .await;
    let pids = portico.replica_pids();
    assert!(pids.len() >= 3, "{pids:?}");
    portico.signal(Signal::SIGKILL);
    portico.wait_exit(Duration::from_secs(10)).await;
    // The kernel kills each replica's main process (parent-death signal); gunicorn's worker
    // notices its master is gone within its one-second heartbeat.
    eventually(
        "every replica process to be gone",
        Duration::from_secs(15),
        || {
            let alive: Vec<u32> = pids.iter().copied().filter(|pid| is_alive(*pid)).collect();
            async move { alive.is_empty().then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_show_what_the_replica_printed() {
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(flask())).await;
    let response = portico
        .client()
        .get(format!("{}?from=logs-test", portico.app_host_url("flask")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // gunicorn writes its access log line after answering: wait for it to reach the file.
    let output = eventually("the access log line", Duration::from_secs(10), || async {
        let output = portico.cli(&["logs", "flask"]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.contains("from=logs-test").then_some(text)
    })
    .await;
    assert!(output.contains("[portico] started flask-"), "{output}");
    let unknown = portico.cli(&["logs", "nope"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("there is no app called \"nope\"; the apps are: flask"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_rscript_only_the_r_shiny_app_fails_and_says_how_to_fix_it() {
    // A PATH holding Python (for the other app) and nothing else: no Rscript.
    let bin = tempfile::tempdir().unwrap();
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8(python.stdout).unwrap();
    std::os::unix::fs::symlink(python.trim(), bin.path().join("python3")).unwrap();
    let config = PorticoConfig {
        env: vec![("PATH".into(), bin.path().display().to_string())],
        ..Default::default()
    }
    .with_app(AppConfig::example("r-shiny"))
    .with_app(static_site());
    let portico = Portico::start(BIN, config).await;

    let reason = failure_reason(&portico, "r-shiny");
    assert!(
        reason.contains("`Rscript` was not found on the PATH"),
        "{reason}"
    );
    assert!(
        reason.contains("apt-get install r-base-core r-cran-shiny"),
        "{reason}"
    );
    assert_eq!(
        status_of(&portico, &portico.app_host_url("files")).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_that_never_answers_fails_after_the_start_timeout_with_what_it_printed() {
    let silent = AppConfig::new("silent", fixtures_dir().join("echo"))
        .with("framework = \"command\"")
        .with("command = [\"sh\", \"-c\", \"echo 'loading 40 GB of parquet'; exec sleep 300\"]");
    let config = PorticoConfig {
        fleet_extra: "max_restarts = 0\nstart_timeout_secs = 2".into(),
        ..Default::default()
    }
    .with_app(silent);
    let mut portico = Portico::start(BIN, config).await;
    let reason = failure_reason(&portico, "silent");
    assert!(reason.contains("did not answer on / within 2s"), "{reason}");
    assert!(reason.contains("loading 40 GB of parquet"), "{reason}");
    assert!(
        portico.replica_pids().is_empty(),
        "the silent replica was stopped"
    );
    portico.signal(Signal::SIGTERM);
    portico.wait_exit(Duration::from_secs(30)).await;
}
