//! Firewall rules at the edge, tested from several loopback addresses (127.0.0.2, .3, …, all
//! reaching Portico on 127.0.0.1): a global deny, a per-app allow list that applies to that
//! app only, and `X-Forwarded-For` believed from a trusted proxy and ignored from anyone else.

use portico_testkit::{fixtures_dir, AppConfig, Portico, PorticoConfig};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

async fn status(client: &reqwest::Client, url: &str, forwarded_for: Option<&str>) -> u16 {
    let mut request = client.get(url);
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    request.send().await.unwrap().status().as_u16()
}

/// What the echo app received for a request claiming `forwarded_for`.
async fn echoed(client: &reqwest::Client, url: &str, forwarded_for: &str) -> serde_json::Value {
    client
        .get(url)
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_addresses_get_403_and_per_app_rules_apply_to_that_app_only() {
    let config = PorticoConfig {
        sections: "[firewall]\ndeny = [\"127.0.0.2\"]\n".into(),
        ..PorticoConfig::default()
    }
    .with_app(
        AppConfig::new("sales", fixtures_dir().join("echo"))
            .with("firewall = { allow = [\"127.0.0.3/32\", \"::1\"] }"),
    )
    .with_app(AppConfig::new("open", fixtures_dir().join("echo")));
    let portico = Portico::start(BIN, config).await;
    let portal = format!("{}healthz", portico.portal_url());
    let sales = portico.app_host_url("sales");
    let open = portico.app_host_url("open");

    // Denied everywhere: the portal and every app.
    let denied = portico.client_from("127.0.0.2");
    for url in [&portal, &sales, &open] {
        assert_eq!(status(&denied, url, None).await, 403, "{url}");
    }
    let page = denied
        .get(&open)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Your network address may not reach this"),
        "{page}"
    );

    // 127.0.0.1 is not on sales' allow list: refused there, served elsewhere.
    let ordinary = portico.client_from("127.0.0.1");
    assert_eq!(status(&ordinary, &portal, None).await, 200);
    assert_eq!(status(&ordinary, &open, None).await, 200);
    assert_eq!(status(&ordinary, &sales, None).await, 403);
    assert_eq!(
        status(
            &ordinary,
            &format!("{}apps/sales/", portico.portal_url()),
            None
        )
        .await,
        403,
        "the app's rule holds at its path address too"
    );

    // 127.0.0.3 is on it.
    let allowed = portico.client_from("127.0.0.3");
    assert_eq!(status(&allowed, &sales, None).await, 200);

    // Claiming another address in X-Forwarded-For changes nothing without a trusted proxy.
    assert_eq!(status(&ordinary, &sales, Some("127.0.0.3")).await, 403);
    assert_eq!(status(&denied, &open, Some("192.0.2.1")).await, 403);

    let metrics = portico.metrics(&ordinary).await;
    assert!(
        metrics.contains("portico_refused_total{reason=\"firewall\"}")
            && metrics.contains("portico_refused_total{reason=\"app_firewall\"}"),
        "refusals are counted:\n{metrics}"
    );
    assert!(portico
        .log()
        .contains("refused a request from 127.0.0.2 (firewall)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let config = PorticoConfig {
        sections: "[firewall]\ndeny = [\"192.0.2.0/24\"]\ntrusted_proxies = [\"127.0.0.4\"]\n"
            .into(),
        ..PorticoConfig::default()
    }
    .with_app(AppConfig::new("sales", fixtures_dir().join("echo")));
    let portico = Portico::start(BIN, config).await;
    let sales = portico.app_host_url("sales");

    // The load balancer at 127.0.0.4 says who the client is: believed.
    let balancer = portico.client_from("127.0.0.4");
    assert_eq!(status(&balancer, &sales, Some("192.0.2.9")).await, 403);
    let seen = echoed(&balancer, &sales, "6.6.6.6, 198.51.100.7").await;
    assert_eq!(
        seen["headers"]["x-forwarded-for"], "198.51.100.7",
        "the app is told the client's address, not what the client wrote: {seen}"
    );

    // Anyone else: their X-Forwarded-For is ignored, both ways.
    let stranger = portico.client_from("127.0.0.5");
    assert_eq!(status(&stranger, &sales, Some("192.0.2.9")).await, 200);
    let seen = echoed(&stranger, &sales, "198.51.100.7").await;
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.5", "{seen}");
}
