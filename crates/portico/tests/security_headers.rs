//! Security headers: Portico's own pages forbid framing and inline scripts; each app may be
//! framed by Portico's hosts and by the origins its `frame_ancestors` names, or by anyone.

use portico_testkit::{fixtures_dir, AppConfig, Portico, PorticoConfig};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

#[tokio::test(flavor = "multi_thread")]
async fn portico_pages_and_apps_carry_the_right_framing_and_content_policies() {
    let config = PorticoConfig::default()
        .with_app(AppConfig::new("sales", fixtures_dir().join("echo")))
        .with_app(
            AppConfig::new("intranet", fixtures_dir().join("echo"))
                .with("frame_ancestors = [\"https://intranet.example.com\"]"),
        )
        .with_app(
            AppConfig::new("anywhere", fixtures_dir().join("echo"))
                .with("frame_ancestors = [\"*\"]"),
        );
    let portico = Portico::start(BIN, config).await;
    let client = portico.client();

    for path in ["_portico/sign-in", "no-such-page", "apps/nope/"] {
        let page = client
            .get(format!("{}{path}", portico.portal_url()))
            .send()
            .await
            .unwrap();
        let headers = page.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("script-src 'self' 'unsafe-inline'"),
            "{path}: {csp}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }

    let policies = |response: &reqwest::Response| -> Vec<String> {
        response
            .headers()
            .get_all("content-security-policy")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let portal_origin = portico.portal_url().trim_end_matches('/').to_owned();
    let sales = client
        .get(portico.app_host_url("sales"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        policies(&sales),
        vec![format!("frame-ancestors 'self' {portal_origin}")]
    );
    let intranet = client
        .get(portico.app_host_url("intranet"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        policies(&intranet),
        vec![format!(
            "frame-ancestors 'self' {portal_origin} https://intranet.example.com"
        )]
    );
    let anywhere = client
        .get(portico.app_host_url("anywhere"))
        .send()
        .await
        .unwrap();
    assert!(policies(&anywhere).is_empty());
    assert!(!anywhere.headers().contains_key("x-frame-options"));
}
