//! Autoscaling on sessions: WebSocket sessions to an R-Shiny dashboard add replicas up to
//! `max`, every session keeps working, and when they end the app shrinks back to `min`.

use portico_testkit::{eventually, AppConfig, Portico, PorticoConfig, ShinySession, Visitor};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

fn ready_replicas(portico: &Portico) -> usize {
    portico.ready_replicas("r-shiny").len()
}

const NAMES: [&str; 5] = ["Ada", "Grace", "Linus", "Barbara", "Edsger"];

/// Five live Shiny sessions, each proven working by a greeting.
async fn open_sessions(portico: &Portico, url: &str) -> Vec<ShinySession> {
    let mut sessions = Vec::new();
    for name in NAMES {
        let mut session = ShinySession::open(portico.port, url).await;
        session
            .greet(name, &format!("Hello, {name}, from R-Shiny!"))
            .await;
        sessions.push(session);
    }
    sessions
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_add_replicas_up_to_max_and_their_end_shrinks_back_to_min() {
    let app = AppConfig::example("r-shiny").with(
        "scale = { min = 1, max = 3, sessions_per_replica = 2, target_utilization = 1.0, scale_down_delay_secs = 3 }",
    );
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    assert_eq!(ready_replicas(&portico), 1);
    let url = format!("ws://r-shiny.localhost:{}/websocket/", portico.port);

    let mut sessions = open_sessions(&portico, &url).await;
    eventually(
        "three replicas for five sessions",
        Duration::from_secs(60),
        || async { (ready_replicas(&portico) == 3).then_some(()) },
    )
    .await;
    assert!(
        portico
            .log()
            .contains("scaled out to 3 replicas: 5 sessions"),
        "{}",
        portico.log()
    );
    // Never more than max, and every session still answers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ready_replicas(&portico), 3);
    what_an_operator_sees(&portico).await;
    for (session, name) in sessions.iter_mut().zip(NAMES) {
        session
            .greet(
                &format!("{name}!"),
                &format!("Hello, {name}!, from R-Shiny!"),
            )
            .await;
    }

    drop(sessions);
    eventually("back to one replica", Duration::from_secs(60), || async {
        (ready_replicas(&portico) == 1).then_some(())
    })
    .await;
    assert!(
        portico.log().contains("scaled in to 1 replica: 0 sessions"),
        "{}",
        portico.log()
    );
}

/// `portico replicas` and the admin status page show the three replicas carrying the five
/// WebSocket sessions, and the decision that added them.
async fn what_an_operator_sees(portico: &Portico) {
    let output = portico.cli(&["replicas", "r-shiny", "--json"]);
    assert!(output.status.success());
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["running"], true);
    let replicas = listing["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 3, "{listing}");
    let websockets: u64 = replicas
        .iter()
        .map(|r| r["websockets"].as_u64().unwrap())
        .sum();
    assert_eq!(websockets, 5, "{listing}");
    let table = String::from_utf8(portico.cli(&["replicas"]).stdout).unwrap();
    assert!(
        table.contains("WEBSOCKETS") && table.contains("r-shiny-"),
        "{table}"
    );

    portico.add_user("root@example.com", "keeper-of-the-keys-7", &[]);
    assert!(portico
        .cli(&["users", "set-admin", "root@example.com"])
        .status
        .success());
    let root = Visitor::new(portico, &[]);
    root.sign_in("root@example.com", "keeper-of-the-keys-7")
        .await;
    let page = root.page("/_portico/admin/apps").await;
    assert_eq!(page.matches("<td>r-shiny-").count(), 3, "{page}");
    assert!(
        page.contains("scaled out to 3 replicas: 5 sessions"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_global_replica_cap_holds_across_apps() {
    let app = AppConfig::example("r-shiny").with(
        "scale = { min = 1, max = 3, sessions_per_replica = 2, target_utilization = 1.0, scale_down_delay_secs = 3 }",
    );
    let config = PorticoConfig {
        fleet_extra: "max_replicas = 3".into(),
        ..PorticoConfig::default()
    }
    .with_app(app)
    .with_app(AppConfig::new(
        "sales",
        portico_testkit::fixtures_dir().join("echo"),
    ));
    let portico = Portico::start(BIN, config).await;
    let url = format!("ws://r-shiny.localhost:{}/websocket/", portico.port);
    let _sessions = open_sessions(&portico, &url).await;
    eventually(
        "the refusal to grow past the cap",
        Duration::from_secs(60),
        || async {
            portico
                .log()
                .contains("not scaling out to 3 replicas: 5 sessions, but fleet.max_replicas (3)")
                .then_some(())
        },
    )
    .await;
    // 1 of sales + 2 of r-shiny = the cap; the second may still be starting.
    eventually("two r-shiny replicas", Duration::from_secs(60), || async {
        (ready_replicas(&portico) == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ready_replicas(&portico), 2, "no third one");
    assert_eq!(portico.ready_replicas("sales").len(), 1);
}

/// A browser-like client with its own cookie jar (a Dash or Flask user: no WebSocket).
fn http_client(portico: &Portico) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .resolve("sales.localhost", ([127, 0, 0, 1], portico.port).into())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_without_websockets_count_as_sessions_until_they_go_quiet() {
    let app = AppConfig::new("sales", portico_testkit::fixtures_dir().join("echo")).with(
        "scale = { min = 1, max = 3, sessions_per_replica = 2, target_utilization = 1.0, idle_timeout_secs = 4, scale_down_delay_secs = 1 }",
    );
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    let url = portico.app_host_url("sales");
    // Five people, each loading the page and then using it: five sessions.
    let people: Vec<reqwest::Client> = (0..5).map(|_| http_client(&portico)).collect();
    for person in &people {
        for _ in 0..2 {
            let response = person.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
    }
    eventually(
        "three replicas for five browsers",
        Duration::from_secs(60),
        || async { (portico.ready_replicas("sales").len() == 3).then_some(()) },
    )
    .await;
    assert!(
        portico
            .log()
            .contains("scaled out to 3 replicas: 5 sessions"),
        "{}",
        portico.log()
    );
    // Quiet for the idle timeout: their sessions end, and the app shrinks back.
    eventually("back to one replica", Duration::from_secs(60), || async {
        (portico.ready_replicas("sales").len() == 1).then_some(())
    })
    .await;
    assert!(
        portico.log().contains("scaled in to 1 replica: 0 sessions"),
        "{}",
        portico.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_scaling_rules_apply_on_reload_without_restarting_the_app() {
    let app = AppConfig::new("sales", portico_testkit::fixtures_dir().join("echo"))
        .with("scale = { min = 1 }");
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    let before = portico.ready_replicas("sales");
    assert_eq!(before.len(), 1);
    let config = std::fs::read_to_string(&portico.config_path).unwrap();
    std::fs::write(
        &portico.config_path,
        config.replace("scale = { min = 1 }", "scale = { min = 2 }"),
    )
    .unwrap();
    let reloaded = portico.cli(&["reload"]);
    let said = String::from_utf8_lossy(&reloaded.stdout);
    assert!(reloaded.status.success(), "{said}");
    assert!(said.contains("app \"sales\": new scaling rules"), "{said}");
    assert!(!said.contains("restarting"), "{said}");
    let after = eventually("two replicas", Duration::from_secs(60), || async {
        let ready = portico.ready_replicas("sales");
        (ready.len() == 2).then_some(ready)
    })
    .await;
    assert!(
        after.contains(&before[0]),
        "the first replica kept running: {before:?} → {after:?}"
    );
}
