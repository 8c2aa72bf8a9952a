//! A real ACME certificate authority for tests: Let's Encrypt's Pebble (Debian's `pebble`),
//! with `pebble-challtestsrv` as its DNS server answering 127.0.0.1 for every name. Pebble
//! validates HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port` of 127.0.0.1, where the
//! Portico under test listens. Pebble's own HTTPS certificate is made by openssl for the run,
//! from a CA whose certificate Portico is told to trust (`ca_bundle`).

use crate::{free_port, wait_for_port};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

pub struct AcmeCa {
    pebble: Child,
    dns: Child,
    dir: tempfile::TempDir,
    port: u16,
    management_port: u16,
}

impl AcmeCa {
    /// Starts Pebble; certificates it issues are valid for `validity_secs`.
    pub async fn start(http_port: u16, tls_port: u16, validity_secs: u64) -> AcmeCa {
        let dir = tempfile::tempdir().unwrap();
        crate::pki::make_server_certificate(dir.path(), "DNS:localhost,IP:127.0.0.1");
        let (port, management_port, dns_port, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_secs,
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(log("dns.log"))
            .stderr(log("dns.err"))
            .spawn()
            .expect("pebble-challtestsrv (apt-get install pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No random sleep before validating, no deliberately rejected nonces.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble (apt-get install pebble)");
        let ca = AcmeCa {
            pebble,
            dns,
            dir,
            port,
            management_port,
        };
        wait_for_port("pebble", port, Duration::from_secs(20)).await;
        wait_for_port(
            "pebble's management",
            management_port,
            Duration::from_secs(20),
        )
        .await;
        ca
    }

    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The CA certificate Pebble's HTTPS certificate chains to.
    pub fn https_roots(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The root Pebble signs issued certificates with (made afresh each run).
    pub async fn issuing_root(&self) -> Vec<u8> {
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(self.https_roots()).unwrap())
                    .unwrap(),
            )
            .tls_built_in_root_certs(false)
            .build()
            .unwrap();
        client
            .get(format!(
                "https://127.0.0.1:{}/roots/0",
                self.management_port
            ))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    /// Pebble's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for AcmeCa {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
