//! HTTPS at the edge: the development certificate for the portal and app hosts, certificates
//! chosen by SNI, HTTP/2 by ALPN, HSTS, secure cookies, the HTTP → HTTPS redirect, and a
//! dashboard's WebSocket through TLS.

use futures_util::{SinkExt, StreamExt};
use portico_testkit::{fixtures_dir, free_port, AppConfig, Portico, PorticoConfig, Visitor};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

fn echo() -> AppConfig {
    AppConfig::new("sales", fixtures_dir().join("echo"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_development_certificate_serves_the_portal_and_app_hosts_over_http2_with_hsts() {
    let redirect_port = free_port();
    let config = PorticoConfig {
        server_extra: format!("redirect_listen = \"127.0.0.1:{redirect_port}\""),
        sections: "[tls]\nself_signed = true\n".into(),
        ..PorticoConfig::default()
    }
    .with_app(echo());
    let portico = Portico::start(BIN, config).await;
    // The client trusts only Portico's development certificate, so every success below is
    // a verified certificate for the name asked.
    let client = portico.client();

    let portal = client
        .get(format!("{}healthz", portico.portal_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(portal.status(), 200);
    assert_eq!(
        portal.version(),
        reqwest::Version::HTTP_2,
        "ALPN chose HTTP/2"
    );
    assert_eq!(
        portal.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );

    let app = client
        .get(format!("{}?q=1", portico.app_host_url("sales")))
        .send()
        .await
        .unwrap();
    assert_eq!(app.status(), 200);
    assert!(app.headers().contains_key("strict-transport-security"));
    let echoed: serde_json::Value = app.json().await.unwrap();
    assert_eq!(
        echoed["headers"]["x-forwarded-proto"], "https",
        "the dashboard is told it is served over HTTPS: {echoed}"
    );

    // Cookies over TLS are Secure and host-bound (__Host-).
    let sign_in = client
        .get(format!("{}_portico/sign-in", portico.portal_url()))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = sign_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .collect();
    assert!(!cookies.is_empty());
    for cookie in &cookies {
        assert!(
            cookie.starts_with("__Host-")
                && cookie.contains("Secure")
                && cookie.contains("HttpOnly"),
            "{cookie}"
        );
    }

    // Plain HTTP is sent to the same place over HTTPS; hosts Portico does not serve are not.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirected = plain
        .get(format!("http://127.0.0.1:{redirect_port}/apps/sales/?q=1"))
        .header("host", format!("localhost:{redirect_port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), 308);
    assert_eq!(
        redirected.headers()["location"],
        format!("https://localhost:{}/apps/sales/?q=1", portico.port).as_str()
    );
    let elsewhere = plain
        .get(format!("http://127.0.0.1:{redirect_port}/"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 421);
    assert!(!elsewhere.headers().contains_key("location"));

    // The development key is readable by Portico's user only.
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::metadata(portico.data_dir.join("tls/self-signed.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
}

/// Browsers speak HTTP/2 over TLS and send the host only as `:authority`, never as `Host`.
/// Signing in that way must give a session that works on the portal and on the dashboards
/// (sessions are bound to the host: a sign-in that recorded no host would never work).
#[tokio::test(flavor = "multi_thread")]
async fn signing_in_over_http2_gives_a_session_that_opens_the_dashboards() {
    let config = PorticoConfig {
        sections: "[tls]\nself_signed = true\n".into(),
        ..PorticoConfig::default()
    }
    .with_app(echo().with("access = \"signed-in\""));
    let portico = Portico::start(BIN, config).await;
    portico.add_user("ana@example.com", "correct-horse-battery-9", &[]);
    let visitor = Visitor::new(&portico, &["sales"]);

    let form = visitor
        .get(&format!("{}/_portico/sign-in", visitor.portal()))
        .await;
    assert_eq!(
        form.version(),
        reqwest::Version::HTTP_2,
        "ALPN chose HTTP/2"
    );
    visitor
        .sign_in("ana@example.com", "correct-horse-battery-9")
        .await;
    assert!(visitor.session_cookie("localhost").is_some());

    let account = visitor.get(&format!("{}/", visitor.portal())).await;
    assert_eq!(account.status(), 200);
    let page = account.text().await.unwrap();
    assert!(
        page.contains("Signed in as <a href=\"/_portico/account\"><strong>ana</strong>"),
        "the portal knows her: {page}"
    );

    let app = visitor.get(&portico.app_path_url("sales")).await;
    assert_eq!(app.version(), reqwest::Version::HTTP_2);
    assert_eq!(app.status(), 200);
    let echoed: serde_json::Value = app.json().await.unwrap();
    assert_eq!(echoed["headers"]["x-forwarded-user"], "ana@example.com");
    assert_eq!(
        echoed["headers"]["host"],
        format!("localhost:{}", portico.port).as_str(),
        "the dashboard sees the host the browser used"
    );
}

/// A certificate (self-signed, for `names`) and its key, written to `dir` as `<stem>.pem` and
/// `<stem>.key`.
fn certificate(dir: &Path, stem: &str, names: &[&str]) -> reqwest::Certificate {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_name_gets_its_own_certificate_by_sni() {
    let certs = tempfile::tempdir().unwrap();
    let portal_cert = certificate(certs.path(), "portal", &["localhost"]);
    let app_cert = certificate(certs.path(), "sales", &["sales.localhost"]);
    let dir = certs.path().display();
    let config = PorticoConfig {
        sections: format!(
            "[tls]\ncertificates = [{{ cert = \"{dir}/portal.pem\", key = \"{dir}/portal.key\" }}, {{ cert = \"{dir}/sales.pem\", key = \"{dir}/sales.key\" }}]\n"
        ),
        ..PorticoConfig::default()
    }
    .with_app(echo());
    let portico = Portico::start(BIN, config).await;
    let trusting = |cert: &reqwest::Certificate| {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert.clone())
            .resolve("localhost", ([127, 0, 0, 1], portico.port).into())
            .resolve("sales.localhost", ([127, 0, 0, 1], portico.port).into())
            .build()
            .unwrap()
    };
    let portal_url = format!("{}healthz", portico.portal_url());
    let app_url = portico.app_host_url("sales");
    // Trusting only the app's certificate: the app's host verifies, the portal's does not
    // (it is served the portal's certificate).
    let only_app = trusting(&app_cert);
    assert_eq!(only_app.get(&app_url).send().await.unwrap().status(), 200);
    assert!(only_app.get(&portal_url).send().await.is_err());
    let only_portal = trusting(&portal_cert);
    assert_eq!(
        only_portal.get(&portal_url).send().await.unwrap().status(),
        200
    );
    assert!(only_portal.get(&app_url).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dashboards_websocket_works_over_tls() {
    let config = PorticoConfig {
        sections: "[tls]\nself_signed = true\n".into(),
        ..PorticoConfig::default()
    }
    .with_app(AppConfig::example("r-shiny"));
    let portico = Portico::start(BIN, config).await;
    let pem = std::fs::read(portico.data_dir.join("tls/self-signed.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));

    for (host, path) in [
        ("r-shiny.localhost", "/websocket/"),
        ("localhost", "/apps/r-shiny/websocket/"),
    ] {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", portico.port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
        let stream = connector.connect(name, tcp).await.expect("TLS handshake");
        let url = format!("wss://{host}:{}{path}", portico.port);
        let request = url.as_str().into_client_request().unwrap();
        let (mut socket, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .expect("websocket handshake through Portico over TLS");
        assert_eq!(response.status(), 101);
        // Shiny's own protocol: `init` with the inputs; the server answers with outputs.
        let init = serde_json::json!({"method": "init", "data": {"name": "Ada", ".clientdata_output_greeting_hidden": false}});
        socket.send(Message::text(init.to_string())).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let message = tokio::time::timeout_at(deadline, socket.next())
                .await
                .unwrap_or_else(|_| panic!("no greeting over {url} within 30s"))
                .expect("socket open")
                .unwrap();
            if message
                .to_text()
                .unwrap_or_default()
                .contains("Hello, Ada, from R-Shiny!")
            {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_does_not_match_its_certificate_stops_check_and_up_with_the_file_names() {
    let certs = tempfile::tempdir().unwrap();
    certificate(certs.path(), "portal", &["localhost"]);
    certificate(certs.path(), "other", &["localhost"]);
    let dir = certs.path().display();
    let config = PorticoConfig {
        sections: format!(
            "[tls]\ncertificates = [{{ cert = \"{dir}/portal.pem\", key = \"{dir}/other.key\" }}]\n"
        ),
        ..PorticoConfig::default()
    };
    let (_workspace, path, _port) = Portico::prepare(&config);
    for command in ["check", "up"] {
        let output = std::process::Command::new(BIN)
            .arg(command)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{command} refuses");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("other.key does not belong to the certificate")
                && stderr.contains("portal.pem"),
            "{command}: {stderr}"
        );
    }
}
