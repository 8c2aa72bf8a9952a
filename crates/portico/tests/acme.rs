//! Certificates from a real ACME CA (Pebble): issued over HTTP-01 and over TLS-ALPN-01,
//! renewed before they expire, and ordered again for a new app's host after a reload.

use portico_testkit::{
    eventually, fixtures_dir, free_port, AcmeCa, AppConfig, Portico, PorticoConfig,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

fn acme_section(ca: &AcmeCa, challenge: &str) -> String {
    format!(
        "[tls]\n[tls.acme]\ndirectory = \"{}\"\nca_bundle = {:?}\ncontact = \"ops@example.com\"\n{challenge}",
        ca.directory(),
        ca.https_roots().to_string_lossy()
    )
}

/// The leaf certificate Portico serves for `name`, if it verifies against `root` (Pebble's
/// issuing root) for that name: a client trusting only the CA accepts it.
async fn verified_leaf(port: u16, name: &str, root: &[u8]) -> Option<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root) {
        roots.add(cert.ok()?).ok()?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let server_name = ServerName::try_from(name.to_owned()).ok()?;
    let tls = connector.connect(server_name, tcp).await.ok()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?.to_vec();
    Some(leaf)
}

async fn wait_for_certificate(
    portico: &Portico,
    ca: &AcmeCa,
    name: &str,
    not: Option<&[u8]>,
) -> Vec<u8> {
    let root = ca.issuing_root().await;
    let found = tokio::time::timeout(
        Duration::from_secs(120),
        eventually("a CA-issued certificate", Duration::from_secs(120), || {
            let root = root.clone();
            async move {
                verified_leaf(portico.port, name, &root)
                    .await
                    .filter(|leaf| Some(leaf.as_slice()) != not)
            }
        }),
    )
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "no certificate for {name} from the CA:\n{}\n--- pebble ---\n{}",
            portico.log(),
            ca.log()
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn http_01_issues_a_certificate_and_renews_it_before_it_expires() {
    let (port, redirect_port) = (free_port(), free_port());
    // Certificates valid for 45 s: renewal is due when 15 s remain.
    let ca = AcmeCa::start(redirect_port, port, 45).await;
    let config = PorticoConfig {
        port: Some(port),
        server_extra: format!("redirect_listen = \"127.0.0.1:{redirect_port}\""),
        sections: acme_section(&ca, "challenge = \"http-01\"\n"),
        ..PorticoConfig::default()
    }
    .with_app(AppConfig::new("sales", fixtures_dir().join("echo")));
    let portico = Portico::start(BIN, config).await;

    let first = wait_for_certificate(&portico, &ca, "localhost", None).await;
    let app = wait_for_certificate(&portico, &ca, "sales.localhost", None).await;
    assert_eq!(
        first, app,
        "one certificate covers the portal and the app host"
    );
    let kept = std::fs::read(portico.data_path("tls/acme/key.pem")).unwrap();
    assert!(kept.starts_with(b"-----BEGIN PRIVATE KEY"));
    let mode = std::fs::metadata(portico.data_path("tls/acme/key.pem"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o600, "the key is readable by its owner only");

    let renewed = wait_for_certificate(&portico, &ca, "localhost", Some(&first)).await;
    assert_ne!(first, renewed);
    assert!(portico.log().contains("(renewal)"), "{}", portico.log());
    // The redirect listener still redirects everything else.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirected = plain
        .get(format!("http://localhost:{redirect_port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), 308);
    let unknown = plain
        .get(format!(
            "http://localhost:{redirect_port}/.well-known/acme-challenge/nope"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unknown.status(),
        404,
        "no answer is made up for unknown tokens"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_alpn_01_issues_on_the_https_port_and_a_reload_orders_the_new_apps_name() {
    let port = free_port();
    let ca = AcmeCa::start(free_port(), port, 3600).await;
    let config = PorticoConfig {
        port: Some(port),
        server_extra: "watch_config = false".into(),
        sections: acme_section(&ca, ""),
        ..PorticoConfig::default()
    }
    .with_app(AppConfig::new("sales", fixtures_dir().join("echo")));
    let portico = Portico::start(BIN, config).await;
    let first = wait_for_certificate(&portico, &ca, "sales.localhost", None).await;

    let original = std::fs::read_to_string(&portico.config_path).unwrap();
    std::fs::write(
        &portico.config_path,
        format!(
            "{original}\n[[apps]]\nname = \"more\"\nsource = {:?}\naccess = \"public\"\n",
            fixtures_dir().join("echo").to_string_lossy()
        ),
    )
    .unwrap();
    let reloaded = portico.cli(&["reload"]);
    let stdout = String::from_utf8_lossy(&reloaded.stdout);
    assert!(stdout.contains("ACME: ordering a certificate"), "{stdout}");
    let second = wait_for_certificate(&portico, &ca, "more.localhost", None).await;
    assert_ne!(first, second, "a new certificate for the new name");
}
