//! Several replicas of one app: new clients are spread over them, each client stays on its
//! replica (a signed cookie), and a client whose replica dies is moved to another at once.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use portico_testkit::{eventually, fixtures_dir, AppConfig, Portico, PorticoConfig};
use std::collections::HashSet;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// A browser-like client: its own cookie jar, the app's host resolved to Portico.
fn browser(portico: &Portico) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .resolve("sales.localhost", ([127, 0, 0, 1], portico.port).into())
        .build()
        .unwrap()
}

/// Which replica answered (the echo app reports its `PORTICO_REPLICA`).
async fn replica_of(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    let echoed: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{status} {body}: {e}"));
    echoed["replica"].as_str().unwrap().to_owned()
}

fn ready_replicas(portico: &Portico) -> Vec<(String, u32)> {
    portico.ready_replicas("sales")
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_stay_on_their_replica_and_move_when_it_dies() {
    let app = AppConfig::new("sales", fixtures_dir().join("echo")).with("scale = { min = 3 }");
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    let url = portico.app_host_url("sales");
    let replicas = eventually("three ready replicas", Duration::from_secs(60), || async {
        let ready = ready_replicas(&portico);
        (ready.len() == 3).then_some(ready)
    })
    .await;

    // One client: every request on the same replica.
    let ada = browser(&portico);
    let hers = replica_of(&ada, &url).await;
    for _ in 0..10 {
        assert_eq!(replica_of(&ada, &url).await, hers);
    }
    // New clients are spread over all three.
    let mut seen = HashSet::new();
    for _ in 0..6 {
        seen.insert(replica_of(&browser(&portico), &url).await);
    }
    assert_eq!(seen.len(), 3, "new sessions share the replicas: {seen:?}");

    // A forged cookie naming another replica is not believed.
    let other = replicas.iter().find(|(id, _)| *id != hers).unwrap();
    let forged = reqwest::Client::builder()
        .resolve("sales.localhost", ([127, 0, 0, 1], portico.port).into())
        .build()
        .unwrap();
    let mut landed = HashSet::new();
    for _ in 0..6 {
        let echoed: serde_json::Value = forged
            .get(&url)
            .header(
                "cookie",
                format!(
                    "portico_replica_sales={}.00112233445566778899aabbccddeeff",
                    other.0
                ),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        landed.insert(echoed["replica"].as_str().unwrap().to_owned());
    }
    assert!(
        landed.len() > 1,
        "a forged cookie does not pin a replica: {landed:?}"
    );

    // Her replica dies: her next request goes to another one, and she stays there.
    let (_, pid) = replicas.iter().find(|(id, _)| *id == hers).unwrap();
    kill(Pid::from_raw(*pid as i32), Signal::SIGKILL).unwrap();
    let moved = eventually(
        "her requests on another replica",
        Duration::from_secs(10),
        // Until Portico has seen the exit (milliseconds) a request may still meet the dying
        // replica: a 502, or (gunicorn's worker outlives its killed master until Portico ends
        // the group, and writes the head before the body) an answer cut off halfway. After
        // that, none does.
        || async {
            let response = ada.get(&url).send().await.unwrap();
            if response.status() == 502 {
                return None;
            }
            let echoed: serde_json::Value = response.json().await.ok()?;
            let now = echoed["replica"].as_str().unwrap().to_owned();
            (now != hers).then_some(now)
        },
    )
    .await;
    for _ in 0..5 {
        assert_eq!(replica_of(&ada, &url).await, moved);
    }
    // And the dead one is replaced: three ready again.
    eventually(
        "three ready replicas again",
        Duration::from_secs(60),
        || async { (ready_replicas(&portico).len() == 3).then_some(()) },
    )
    .await;
}
