//! A real OpenID Provider for tests: panva's `oidc-provider` from npm (OpenID-certified),
//! run by Node from `idp/oidc.mjs` on a loopback port, with its development login form.

use crate::visitor::{Landing, Visitor};
use crate::{free_port, wait_for_port};
use nix::fcntl::{Flock, FlockArg};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CLIENT_ID: &str = "portico";
pub const CLIENT_SECRET: &str = "portico-client-secret";

/// Someone the provider knows: the login typed on its form, and their claims.
pub struct IdpAccount<'a> {
    pub login: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub groups: &'a [&'a str],
}

pub struct OidcIdp {
    child: Child,
    pub port: u16,
}

/// `target/portico-test-node` with the providers' npm packages (installed once) and scripts.
pub(crate) fn node_dir() -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("idp");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/portico-test-node");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.join(".lock")).unwrap();
    let _lock = Flock::lock(lock, FlockArg::LockExclusive).expect("lock the node folder");
    let manifest = std::fs::read(source.join("package.json")).unwrap();
    let installed = std::fs::read(dir.join("package.json")).ok();
    if installed.as_deref() != Some(&manifest[..]) || !dir.join("node_modules").is_dir() {
        std::fs::write(dir.join("package.json"), &manifest).unwrap();
        let npm = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .expect("npm (Debian's nodejs and npm)");
        assert!(
            npm.success(),
            "npm could not install the test identity providers"
        );
    }
    for script in ["oidc.mjs", "saml.cjs"] {
        std::fs::copy(source.join(script), dir.join(script)).unwrap();
    }
    dir
}

impl OidcIdp {
    /// A port for a provider started later (Portico's config needs the issuer first, the
    /// provider needs Portico's redirect URI).
    pub fn reserve_port() -> u16 {
        free_port()
    }

    pub fn issuer_for(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    /// The `[[auth.oidc]]` table for a provider on `port`, plus `extra` lines.
    pub fn config(port: u16, id: &str, extra: &str) -> String {
        let scopes = if extra.contains("scopes") {
            ""
        } else {
            "scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n"
        };
        format!(
            "[[auth.oidc]]\nid = \"{id}\"\nname = \"Example IdP\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n{scopes}{extra}\n",
            Self::issuer_for(port)
        )
    }

    pub async fn start(port: u16, redirect_uri: &str, accounts: &[IdpAccount<'_>]) -> OidcIdp {
        let dir = node_dir();
        let accounts: serde_json::Map<String, serde_json::Value> = accounts
            .iter()
            .map(|a| {
                (
                    a.login.to_owned(),
                    serde_json::json!({"email": a.email, "name": a.name, "groups": a.groups}),
                )
            })
            .collect();
        // Back to Portico's sign-in page after signing out at the provider.
        let origin: String = redirect_uri
            .splitn(4, '/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/");
        let config = serde_json::json!({
            "port": port,
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [redirect_uri],
                "post_logout_redirect_uris": [format!("{origin}/_portico/sign-in")],
            }],
            "accounts": accounts,
        });
        let child = Command::new("node")
            .arg("oidc.mjs")
            .current_dir(&dir)
            .env("IDP_CONFIG", config.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node");
        wait_for_port("oidc-provider", port, Duration::from_secs(30)).await;
        OidcIdp { child, port }
    }

    /// Changes a person's groups at the provider, as its administrator would.
    pub async fn set_groups(&self, login: &str, groups: &[&str]) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/__accounts?login={login}",
                Self::issuer_for(self.port)
            ))
            .body(serde_json::to_string(groups).unwrap())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// Makes the token endpoint misbehave (see `idp/oidc.mjs`): "signature", "audience",
    /// "none".
    pub async fn tamper(&self, mode: &str) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/__tamper?mode={mode}",
                Self::issuer_for(self.port)
            ))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// Goes through the sign-in as a person would with `visitor`'s browser: from Portico's
    /// `start` URL to the provider's login form, types `login`, confirms consent, and follows
    /// the redirects back to Portico. Returns where it ended.
    pub async fn sign_in(&self, visitor: &Visitor, start: &str, login: &str) -> Landing {
        let login_page = visitor.open(start).await;
        assert_eq!(
            login_page.status, 200,
            "expected the provider's login form at {}: {}",
            login_page.url, login_page.body
        );
        let issuer = Self::issuer_for(self.port);
        let mut page = visitor
            .submit_form(&login_page, &[("login", login), ("password", "any")])
            .await;
        // Then the consent form (and nothing more), while still on the provider's pages.
        for _ in 0..3 {
            if !page.url.starts_with(&issuer) || !page.body.contains("<form") {
                break;
            }
            page = visitor.submit_form(&page, &[]).await;
        }
        page
    }
}

impl Drop for OidcIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
