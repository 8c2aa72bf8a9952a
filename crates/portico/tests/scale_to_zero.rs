//! Scale to zero: an app with `scale.min = 0` runs no replica until it is wanted. A person's
//! first visit gets a "starting" page that waits for the app (one held request, no polling)
//! and then shows it; a program's request is simply held until the app answers; when nobody
//! has used it for a while it goes back to sleep. With `warm = 1` an idle replica is kept
//! ready, so a new session never waits for a start.

use portico_testkit::{eventually, fixtures_dir, AppConfig, Browser, Portico, PorticoConfig};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

fn app_status(portico: &Portico, app: &str) -> String {
    let apps = portico.apps_json();
    apps["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == app)
        .map(|a| a["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// A client with its own cookies, the app's host resolved to Portico.
fn browser_like(portico: &Portico) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .resolve("sales.localhost", ([127, 0, 0, 1], portico.port).into())
        .build()
        .unwrap()
}

async fn wait_until_asleep(portico: &Portico) {
    eventually("the app asleep again", Duration::from_secs(60), || async {
        (portico.ready_replicas("sales").is_empty() && app_status(portico, "sales") == "sleeping")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sleeping_app_starts_on_the_first_request_and_sleeps_again_when_unused() {
    let app = AppConfig::new("sales", fixtures_dir().join("echo"))
        .with("scale = { min = 0, idle_timeout_secs = 2, scale_down_delay_secs = 1 }");
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    assert_eq!(app_status(&portico, "sales"), "sleeping");
    assert!(portico.ready_replicas("sales").is_empty(), "no replica yet");
    let url = portico.app_host_url("sales");
    let client = browser_like(&portico);

    // A person's first visit: the waiting page at once, its script allowed by hash only.
    let page = client
        .get(&url)
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let scripts = policy
        .split(';')
        .find(|directive| directive.trim().starts_with("script-src"))
        .unwrap();
    assert!(
        scripts.contains("'sha256-") && !scripts.contains("unsafe-inline"),
        "{policy}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("is starting"), "{html}");
    assert!(
        html.contains("Portico-Wait"),
        "the page waits by itself: {html}"
    );

    // The page's wait: held until a replica is ready, then 204 (the page reloads).
    let wait = client
        .get(&url)
        .header("portico-wait", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(wait.status(), 204);
    let app_page = client.get(&url).send().await.unwrap();
    assert_eq!(app_page.status(), 200);
    let echoed: serde_json::Value = app_page.json().await.unwrap();
    assert!(echoed["replica"].as_str().unwrap().starts_with("sales-"));
    assert!(
        portico
            .log()
            .contains("waking up: a request arrived while it slept"),
        "{}",
        portico.log()
    );

    // Unused for idle_timeout + scale_down_delay: asleep again, and said so.
    wait_until_asleep(&portico).await;
    assert!(
        portico.log().contains("asleep: nobody used it for 3s"),
        "{}",
        portico.log()
    );

    // A program's request (no page wanted) is held and answered by the app itself.
    let held = reqwest::Client::new()
        .get(portico.app_path_url("sales") + "api/data")
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    let echoed: serde_json::Value = held.json().await.unwrap();
    assert_eq!(echoed["path"], "/api/data");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_held_longer_than_start_wait_gets_a_clear_answer() {
    // The app cannot start (its module does not exist), so no replica ever becomes ready.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.py"),
        "raise SystemExit('no dashboard here')\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "flask\n").unwrap();
    let app = AppConfig::new("sales", dir.path())
        .with("scale = { min = 0, start_wait_secs = 2 }")
        .with("framework = \"flask\"");
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .get(portico.app_path_url("sales"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains("is still starting") || text.contains("failed to start"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded by start_wait"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_warm_spare_a_new_session_does_not_wait_for_a_start() {
    let app = AppConfig::new("sales", fixtures_dir().join("echo")).with(
        "scale = { min = 0, warm = 1, max = 3, sessions_per_replica = 1, target_utilization = 1.0 }",
    );
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    // The spare starts without anyone asking.
    let spare = eventually("a warm spare", Duration::from_secs(60), || async {
        let ready = portico.ready_replicas("sales");
        (ready.len() == 1).then(|| ready[0].0.clone())
    })
    .await;

    // A new person: answered by the spare that was already running, not a starting page.
    let client = browser_like(&portico);
    let url = portico.app_host_url("sales");
    let first = client
        .get(&url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let echoed: serde_json::Value = first.json().await.unwrap();
    assert_eq!(echoed["replica"], spare.as_str());
    // Their next request counts them as a session (the sticky cookie): a new spare is
    // started beside the replica they use.
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    eventually(
        "a second replica as the new spare",
        Duration::from_secs(60),
        || async { (portico.ready_replicas("sales").len() == 2).then_some(()) },
    )
    .await;
    assert!(
        portico.log().contains(
            "scaled out to 2 replicas: 1 sessions, 1 per replica at 100 % target, 1 kept warm"
        ),
        "{}",
        portico.log()
    );
    assert!(!portico.log().contains("waking up"), "it never slept");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_opening_a_sleeping_streamlit_dashboard_sees_it_start_then_the_dashboard() {
    let app = AppConfig::example("streamlit").with("scale = { min = 0 }");
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    assert_eq!(app_status(&portico, "streamlit"), "sleeping");
    let browser = Browser::start().await;
    browser
        .open_and_wait_for(&portico.app_host_url("streamlit"), "is starting")
        .await;
    // No reload by hand: the page's script waits for the app and then shows it.
    browser.wait_for_text("Hello from Streamlit").await;
    browser
        .type_into("input[aria-label='Your name']", "Ada\n")
        .await;
    browser.wait_for_text("Hello, Ada, from Streamlit!").await;
}
