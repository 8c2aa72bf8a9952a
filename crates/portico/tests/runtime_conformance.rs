//! The runtime conformance suite: the same checks against every runtime, through a real
//! Portico, with the same dashboard (the test server, `crates/portico-test-server`) run as a
//! local process and as a container from a `FROM scratch` image on a real Docker daemon.
//!
//! What a runtime must do: start a replica that Portico reaches (HTTP and WebSocket), report
//! a crash with its reason so the supervisor restarts it, stop every replica when Portico
//! stops, leave none behind when Portico is killed, and let the next start adopt the
//! replicas it was told to keep.

use nix::sys::signal::Signal;
use portico_testkit::docker::{
    container_state, networks_labelled, test_server_binary, test_server_image,
};
use portico_testkit::PorticoConfig;
use portico_testkit::{eventually, fixtures_dir, is_alive, open_websocket, AppConfig, Portico};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

#[derive(Clone, Copy, Debug)]
enum Kind {
    Process,
    Docker,
}

/// The test server as an app of this runtime.
fn probe(kind: Kind) -> AppConfig {
    let app = AppConfig::new("probe", fixtures_dir());
    match kind {
        Kind::Process => app.with("framework = \"command\"").with(&format!(
            "command = [{:?}, \"--listen\", \"127.0.0.1:$PORT\"]",
            test_server_binary()
        )),
        Kind::Docker => app
            .with("runtime = \"docker\"")
            .with(&format!("image = \"{}\"", test_server_image())),
    }
}

fn config(kind: Kind, fleet: &str) -> PorticoConfig {
    PorticoConfig {
        fleet_extra: fleet.into(),
        ..PorticoConfig::default()
    }
    .with_app(probe(kind))
}

/// Whether the replica (its process, or its container) still runs.
fn replica_runs(kind: Kind, id: &str, pid: u32) -> bool {
    match kind {
        Kind::Process => is_alive(pid),
        Kind::Docker => container_state(&format!("portico-{id}")).as_deref() == Some("running"),
    }
}

/// The one ready replica of the probe app.
async fn the_replica(portico: &Portico) -> (String, u32) {
    eventually("one ready replica", Duration::from_secs(60), || async {
        let ready = portico.ready_replicas("probe");
        (ready.len() == 1).then(|| ready[0].clone())
    })
    .await
}

async fn page(portico: &Portico, path: &str) -> String {
    let url = format!("{}{path}", portico.app_host_url("probe"));
    let response = portico.client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.text().await.unwrap()
}

async fn serves_http_and_websocket(kind: Kind) {
    let portico = Portico::start(BIN, config(kind, "")).await;
    let (id, _) = the_replica(&portico).await;
    let body = page(&portico, "reports/q3?x=1").await;
    assert!(body.contains(&format!("replica={id}")), "{body}");
    assert!(body.contains("path=/reports/q3"), "{body}");

    use futures_util::{SinkExt, StreamExt};
    let url = format!("ws://probe.localhost:{}/live", portico.port);
    let mut socket = open_websocket(portico.port, &url).await;
    for text in ["one", "two"] {
        socket.send(text.into()).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an echo within 10 s")
            .expect("the socket stays open")
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
}

async fn restarts_a_crash_and_says_why(kind: Kind) {
    let portico = Portico::start(BIN, config(kind, "")).await;
    let (crashed, _) = the_replica(&portico).await;
    assert!(page(&portico, "exit?code=3").await.contains("exiting"));
    let app = eventually("a new ready replica", Duration::from_secs(60), || async {
        let apps = portico.apps_json();
        let app = apps["apps"][0].clone();
        let replica = &app["replicas"][0];
        (replica["state"] == "ready" && replica["id"] != crashed.as_str()).then_some(app)
    })
    .await;
    assert_eq!(app["restarts"], 1, "{app}");
    let reason = app["last_restart_reason"].as_str().unwrap();
    assert!(reason.contains("exited with status 3"), "{reason}");
    assert!(page(&portico, "").await.contains("replica=probe-"));
}

async fn stopping_portico_stops_every_replica(kind: Kind) {
    let mut portico = Portico::start(BIN, config(kind, "")).await;
    let (id, pid) = the_replica(&portico).await;
    assert!(replica_runs(kind, &id, pid));
    portico.signal(Signal::SIGTERM);
    assert!(portico.wait_exit(Duration::from_secs(30)).await.success());
    assert!(!replica_runs(kind, &id, pid), "{id} outlived Portico");
    if let Kind::Docker = kind {
        assert_eq!(container_state(&format!("portico-{id}")), None, "removed");
        // Its network goes too: a daemon has room for about 30.
        assert_eq!(
            networks_labelled(&portico.instance_label()),
            Vec::<String>::new()
        );
    }
}

async fn leaves_nothing_behind_when_killed(kind: Kind) {
    let mut portico = Portico::start(BIN, config(kind, "")).await;
    let (id, pid) = the_replica(&portico).await;
    portico.signal(Signal::SIGKILL);
    portico.wait_exit(Duration::from_secs(30)).await;
    // A process dies with Portico; a container is removed by the next start at the latest.
    portico.start_again().await;
    let (new_id, _) = the_replica(&portico).await;
    assert_ne!(new_id, id);
    eventually("the old replica gone", Duration::from_secs(30), || async {
        (!replica_runs(kind, &id, pid)).then_some(())
    })
    .await;
}

async fn adopts_kept_replicas_after_a_restart(kind: Kind) {
    let mut portico = Portico::start(BIN, config(kind, "keep_replicas_on_exit = true")).await;
    let (id, pid) = the_replica(&portico).await;
    portico.signal(Signal::SIGTERM);
    assert!(portico.wait_exit(Duration::from_secs(30)).await.success());
    assert!(replica_runs(kind, &id, pid), "{id} kept running");
    portico.start_again().await;
    assert_eq!(the_replica(&portico).await.0, id, "the same replica");
    let log = portico.log();
    assert!(log.contains(&format!("replica {id} (pid")), "{log}");
    assert!(log.contains("adopted on"), "{log}");
    assert!(page(&portico, "again")
        .await
        .contains(&format!("replica={id}")));
}

macro_rules! conformance {
    ($($kind:ident => $module:ident),*) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn serves_http_and_websocket_through_portico() {
                serves_http_and_websocket(Kind::$kind).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn a_crashed_replica_is_restarted_with_its_reason() {
                restarts_a_crash_and_says_why(Kind::$kind).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn stopping_portico_stops_every_replica() {
                super::stopping_portico_stops_every_replica(Kind::$kind).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn killing_portico_leaves_no_replica_behind() {
                leaves_nothing_behind_when_killed(Kind::$kind).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn kept_replicas_are_adopted_after_a_restart() {
                adopts_kept_replicas_after_a_restart(Kind::$kind).await
            }
        }
    )*};
}

conformance!(Process => process, Docker => docker);
