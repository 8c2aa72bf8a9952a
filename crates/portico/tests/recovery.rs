//! Recovery: with `fleet.keep_replicas_on_exit`, replicas run on while Portico restarts
//! (stopped cleanly or killed) and the next start adopts them: no replica restarts, a
//! browser stays on its replica, and a dashboard's live channel works again at once.
//! A replica of an app that left the config is stopped instead.

use nix::sys::signal::Signal;
use portico_testkit::{
    eventually, fixtures_dir, is_alive, AppConfig, Portico, PorticoConfig, ShinySession,
};
use std::collections::BTreeSet;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

fn replicas(portico: &Portico, app: &str) -> BTreeSet<(String, u32)> {
    portico.ready_replicas(app).into_iter().collect()
}

/// Which replica answered this client (the echo app reports its `PORTICO_REPLICA`).
async fn replica_of(client: &reqwest::Client, url: &str) -> String {
    let echoed: serde_json::Value = client.get(url).send().await.unwrap().json().await.unwrap();
    echoed["replica"].as_str().unwrap().to_owned()
}

async fn shiny_round_trip(portico: &Portico, name: &str) {
    let url = format!("ws://r-shiny.localhost:{}/websocket/", portico.port);
    ShinySession::open(portico.port, &url)
        .await
        .greet(name, &format!("Hello, {name}, from R-Shiny!"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restarting_portico_restarts_no_replica_and_sessions_continue() {
    let config = PorticoConfig {
        fleet_extra: "keep_replicas_on_exit = true".into(),
        ..PorticoConfig::default()
    }
    .with_app(AppConfig::new("sales", fixtures_dir().join("echo")).with("scale = { min = 3 }"))
    .with_app(AppConfig::example("r-shiny"));
    let mut portico = Portico::start(BIN, config).await;
    let sales = eventually("three sales replicas", Duration::from_secs(60), || async {
        let ready = replicas(&portico, "sales");
        (ready.len() == 3).then_some(ready)
    })
    .await;
    let shiny = replicas(&portico, "r-shiny");
    assert_eq!(shiny.len(), 1);

    // A browser on its replica, and a live Shiny session.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .resolve("sales.localhost", ([127, 0, 0, 1], portico.port).into())
        .build()
        .unwrap();
    let url = portico.app_host_url("sales");
    let hers = replica_of(&browser, &url).await;
    shiny_round_trip(&portico, "Ada").await;

    for (how, signal) in [("stopped", Signal::SIGTERM), ("killed", Signal::SIGKILL)] {
        portico.signal(signal);
        portico.wait_exit(Duration::from_secs(30)).await;
        for (id, pid) in sales.iter().chain(&shiny) {
            assert!(is_alive(*pid), "replica {id} survived Portico being {how}");
        }
        portico.start_again().await;
        assert_eq!(
            replicas(&portico, "sales"),
            sales,
            "the same sales replicas after Portico was {how}"
        );
        assert_eq!(replicas(&portico, "r-shiny"), shiny);
        let log = portico.log();
        assert!(log.contains("adopted on 127.0.0.1:"), "{log}");
        assert!(
            !log.contains("started on 127.0.0.1:"),
            "nothing restarted: {log}"
        );
        // She is still on her replica, and the dashboard's channel works again.
        assert_eq!(replica_of(&browser, &url).await, hers);
        shiny_round_trip(&portico, "Grace").await;
    }

    // An app taken out of the config while Portico was down: its kept replica is stopped.
    portico.signal(Signal::SIGTERM);
    portico.wait_exit(Duration::from_secs(30)).await;
    let config = std::fs::read_to_string(&portico.config_path).unwrap();
    let without_shiny = config
        .split("[[apps]]")
        .filter(|table| !table.contains("name = \"r-shiny\""))
        .collect::<Vec<_>>()
        .join("[[apps]]");
    std::fs::write(&portico.config_path, without_shiny).unwrap();
    portico.start_again().await;
    let (_, shiny_pid) = shiny.first().unwrap().clone();
    eventually(
        "the r-shiny replica stopped",
        Duration::from_secs(30),
        || async { (!is_alive(shiny_pid)).then_some(()) },
    )
    .await;
    assert!(
        portico.log().contains("its app is no longer in the config"),
        "{}",
        portico.log()
    );
    assert_eq!(replicas(&portico, "sales"), sales);
}
