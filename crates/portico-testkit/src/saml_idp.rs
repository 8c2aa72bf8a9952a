//! A real SAML 2.0 identity provider for tests: Auth0's `samlp` from npm on express, run by
//! Node from `idp/saml.cjs` on a loopback port, with a login form and a signing certificate
//! made by openssl for the run.

use crate::oidc_idp::node_dir;
use crate::visitor::{Landing, Visitor};
use crate::{free_port, wait_for_port};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Someone the provider knows: login and password on its form, and their attributes.
pub struct SamlAccount<'a> {
    pub login: &'a str,
    pub password: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub groups: &'a [&'a str],
}

pub struct SamlIdp {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl SamlIdp {
    /// A port for a provider started later (Portico's config names its metadata URL, the
    /// provider needs Portico's ACS URL).
    pub fn reserve_port() -> u16 {
        free_port()
    }

    pub fn issuer_for(port: u16) -> String {
        format!("http://127.0.0.1:{port}/idp")
    }

    pub fn metadata_url(port: u16) -> String {
        format!("http://127.0.0.1:{port}/metadata")
    }

    /// The `[[auth.saml]]` table for a provider on `port`, plus `extra` lines.
    pub fn config(port: u16, id: &str, extra: &str) -> String {
        format!(
            "[[auth.saml]]\nid = \"{id}\"\nname = \"Example SAML\"\nmetadata_url = \"{}\"\n{extra}\n",
            Self::metadata_url(port)
        )
    }

    pub async fn start(port: u16, acs_url: &str, accounts: &[SamlAccount<'_>]) -> SamlIdp {
        let node = node_dir();
        let dir = tempfile::tempdir().unwrap();
        for (key, cert) in [("key.pem", "cert.pem"), ("other-key.pem", "other-cert.pem")] {
            let openssl = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=Portico test IdP",
                    "-keyout",
                    key,
                    "-out",
                    cert,
                ])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl");
            assert!(
                openssl.success(),
                "openssl could not make the IdP's certificate"
            );
        }
        let accounts: serde_json::Map<String, serde_json::Value> = accounts
            .iter()
            .map(|a| {
                (
                    a.login.to_owned(),
                    serde_json::json!({"password": a.password, "email": a.email, "name": a.name, "groups": a.groups}),
                )
            })
            .collect();
        let config = serde_json::json!({
            "port": port,
            "issuer": Self::issuer_for(port),
            "acs_url": acs_url,
            "cert_file": dir.path().join("cert.pem"),
            "key_file": dir.path().join("key.pem"),
            "other_cert_file": dir.path().join("other-cert.pem"),
            "other_key_file": dir.path().join("other-key.pem"),
            "accounts": accounts,
        });
        let child = Command::new("node")
            .arg("saml.cjs")
            .current_dir(&node)
            .env("IDP_CONFIG", config.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node");
        wait_for_port("samlp", port, Duration::from_secs(30)).await;
        SamlIdp {
            child,
            port,
            _dir: dir,
        }
    }

    /// Makes the provider's next answers faulty (see `idp/saml.cjs`): "unsigned", "expired",
    /// "tampered", "foreign-key", "audience", "sign-response", "normal".
    pub async fn mode(&self, mode: &str) {
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/__mode?mode={mode}", self.port))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// The provider's last answer: (SAMLResponse, RelayState), to replay.
    pub async fn last_answer(&self) -> (String, String) {
        let last: serde_json::Value =
            reqwest::get(format!("http://127.0.0.1:{}/__last", self.port))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        (
            last["SAMLResponse"]
                .as_str()
                .expect("an answer was given")
                .to_owned(),
            last["RelayState"].as_str().unwrap_or("").to_owned(),
        )
    }

    /// Goes through the sign-in as a person would with `visitor`'s browser: from Portico's
    /// `start` URL to the provider's login form, types the login and password, and submits
    /// the answer the provider hands back (what its page's script does). Returns where it
    /// ended.
    pub async fn sign_in(
        &self,
        visitor: &Visitor,
        start: &str,
        login: &str,
        password: &str,
    ) -> Landing {
        let mut page = visitor.open(start).await;
        // The POST binding's page carries the request onwards in a form.
        if page.body.contains("name=\"SAMLRequest\"") && !page.body.contains("name=\"username\"") {
            page = visitor.submit_form(&page, &[]).await;
        }
        assert_eq!(
            page.status, 200,
            "expected the provider's login form at {}: {}",
            page.url, page.body
        );
        let answer = visitor
            .submit_form(&page, &[("username", login), ("password", password)])
            .await;
        if answer.body.contains("name=\"SAMLResponse\"") {
            visitor.submit_form(&answer, &[]).await
        } else {
            answer
        }
    }
}

impl Drop for SamlIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
