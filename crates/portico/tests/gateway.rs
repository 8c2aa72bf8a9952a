//! What a dashboard receives through Portico, and what Portico serves itself.

use portico_testkit::{fixtures_dir, AppConfig, Portico, PorticoConfig};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

async fn readyz(portico: &Portico) -> Value {
    let url = format!("{}readyz", portico.portal_url());
    portico
        .client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn echo_portico() -> Portico {
    let echo = AppConfig::new("echo", fixtures_dir().join("echo"));
    Portico::start(BIN, PorticoConfig::default().with_app(echo)).await
}

async fn echo(portico: &Portico, request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let _ = portico;
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flask_app_sees_its_prefix_and_the_forwarded_headers_in_both_modes() {
    let portico = echo_portico().await;
    let client = portico.client();

    let by_path = echo(
        &portico,
        client.get(format!("{}report?q=1", portico.app_path_url("echo"))),
    )
    .await;
    assert_eq!(by_path["path"], "/report");
    assert_eq!(
        by_path["script_root"], "/apps/echo",
        "Flask's url_for builds prefixed links"
    );
    assert_eq!(by_path["query"], "q=1");
    assert_eq!(by_path["headers"]["x-forwarded-prefix"], "/apps/echo");
    assert_eq!(by_path["headers"]["x-forwarded-proto"], "http");
    assert_eq!(by_path["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        by_path["headers"]["x-forwarded-host"],
        format!("localhost:{}", portico.port)
    );
    assert_eq!(
        by_path["headers"]["host"],
        format!("localhost:{}", portico.port)
    );

    let by_host = echo(
        &portico,
        client.get(format!("{}report", portico.app_host_url("echo"))),
    )
    .await;
    assert_eq!(by_host["path"], "/report");
    assert_eq!(
        by_host["headers"]["host"],
        format!("echo.localhost:{}", portico.port)
    );
    assert!(by_host["headers"].get("x-forwarded-prefix").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_cannot_claim_an_identity_or_move_the_app() {
    let portico = echo_portico().await;
    let request = portico
        .client()
        .get(format!("{}whoami", portico.app_path_url("echo")))
        .header("X-Forwarded-User", "admin@example.com")
        .header("X-Forwarded-Groups", "admins")
        .header("X-Forwarded-For", "10.0.0.1")
        .header("Shiny-Server-Credentials", r#"{"user":"admin"}"#)
        .header("X-Portico-Assertion", "forged")
        // WSGI maps '_' and '-' to the same name: this must not become the real header.
        .header("X_Forwarded_User", "admin@example.com")
        // gunicorn honours a SCRIPT_NAME header: a client could move the app's prefix.
        .header("SCRIPT_NAME", "/evil");
    let seen = echo(&portico, request).await;
    let headers = seen["headers"].as_object().unwrap();
    for forbidden in [
        "x-forwarded-user",
        "x-forwarded-groups",
        "shiny-server-credentials",
        "x-portico-assertion",
        "x_forwarded_user",
        "script_name",
    ] {
        assert!(
            !headers.contains_key(forbidden),
            "{forbidden} reached the app: {headers:?}"
        );
    }
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "the real peer, not the claimed one"
    );
    assert_eq!(seen["environ_script_name"], "/apps/echo");
    assert_eq!(seen["path"], "/whoami");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_stream_through_and_hop_by_hop_headers_stop_at_portico() {
    let portico = echo_portico().await;
    let body = vec![b'x'; 5 * 1024 * 1024];
    let seen = echo(
        &portico,
        portico
            .client()
            .post(format!("{}upload", portico.app_host_url("echo")))
            .header("Connection", "keep-alive, X-Hop")
            .header("X-Hop", "secret")
            .body(body),
    )
    .await;
    assert_eq!(seen["body_length"], 5 * 1024 * 1024);
    assert!(
        seen["headers"].get("x-hop").is_none(),
        "{}",
        seen["headers"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_portal_lists_apps_and_portico_reports_health_and_metrics() {
    let portico = echo_portico().await;
    let client = portico.client();
    let portal = client
        .get(portico.portal_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(portal.contains("echo app"), "{portal}");
    assert!(portal.contains("Running"), "{portal}");
    assert!(portal.contains(&portico.app_host_url("echo")), "{portal}");
    assert!(portal.contains(&portico.app_path_url("echo")), "{portal}");

    let slashless = client
        .get(format!("{}apps/echo?x=1", portico.portal_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(slashless.status(), 308);
    assert_eq!(slashless.headers()["location"], "/apps/echo/?x=1");

    assert_eq!(
        client
            .get(format!("{}healthz", portico.portal_url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = readyz(&portico).await;
    assert_eq!(ready["apps"]["echo"], "running");

    client
        .get(portico.app_host_url("echo"))
        .send()
        .await
        .unwrap();
    let metrics = portico.metrics(&client).await;
    assert!(
        metrics.contains(r#"portico_requests_total{app="echo",class="2xx"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("portico_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"portico_replicas{app="echo",state="ready"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_have_a_listener_of_their_own() {
    let metrics_port = portico_testkit::free_port();
    let config = PorticoConfig {
        server_extra: format!("metrics_listen = \"127.0.0.1:{metrics_port}\""),
        ..Default::default()
    }
    .with_app(AppConfig::new("echo", fixtures_dir().join("echo")));
    let portico = Portico::start(BIN, config).await;
    let client = portico.client();
    let own = client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(own.text().await.unwrap().contains("portico_replicas"));
    let public = client
        .get(format!("{}metrics", portico.portal_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        public.status(),
        404,
        "metrics are not exposed on the public listener"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dashboard_that_is_starting_shows_a_page_that_waits_for_it_then_the_dashboard() {
    // A server that takes a few seconds to start listening, like a dashboard loading its data.
    let slow = AppConfig::new("slow", fixtures_dir().join("echo"))
        .with("framework = \"command\"")
        .with("command = [\"sh\", \"-c\", \"sleep 4; exec python3 -m http.server $PORT --bind 127.0.0.1\"]");
    let portico =
        Portico::start_without_waiting_for_apps(BIN, PorticoConfig::default().with_app(slow)).await;
    let client = portico.client();

    // Right after start-up the app may still be "being prepared" for a few milliseconds.
    let wait = std::time::Duration::from_secs(3);
    let (headers, page) = portico_testkit::eventually("the starting page", wait, || async {
        let response = client
            .get(portico.app_host_url("slow"))
            .header("accept", "text/html")
            .send()
            .await
            .ok()?;
        assert_eq!(response.status(), 503);
        let headers = response.headers().clone();
        let page = response.text().await.ok()?;
        page.contains("slow app is starting")
            .then_some((headers, page))
    })
    .await;
    assert_eq!(headers["retry-after"], "5");
    assert!(
        page.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#),
        "without JavaScript it refreshes itself: {page}"
    );
    assert!(page.contains("It opens here by itself"), "{page}");
    let ready = readyz(&portico).await;
    assert_eq!(
        ready["ready"], false,
        "not ready while an app is starting: {ready}"
    );

    // A program's request is held until the dashboard answers it.
    let held = client
        .get(portico.app_host_url("slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    assert!(held.text().await.unwrap().contains("Directory listing"));
}
