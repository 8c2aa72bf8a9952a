//! Certificates from an ACME certificate authority (Let's Encrypt, or a private CA such as
//! step-ca or Pebble), with instant-acme.
//!
//! At start the certificate kept in `<data_dir>/tls/acme/` serves at once; without one a
//! development certificate stands in while the first is ordered in the background (the
//! HTTPS listener must already be up to answer a TLS-ALPN-01 challenge). A certificate is
//! ordered again when a third of its lifetime remains (30 days of Let's Encrypt's 90), and
//! when the names change (a reload added an app). Failures are logged and retried with
//! backoff while the current certificate keeps serving.
//!
//! HTTP-01 answers are served by the port-80 listener (`Challenges::http_answer`); TLS-ALPN-01
//! answers are certificates chosen by the TLS resolver for `acme-tls/1` handshakes.

use crate::tls::{certified_key, write_private, Certificates};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use portico_core::{AcmeChallenge, AcmeConfig};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// Waits after a failed order: 1 min, doubling, at most 6 h (the CA's rate limits are tight).
const FIRST_RETRY: Duration = Duration::from_secs(60);
const LAST_RETRY: Duration = Duration::from_secs(6 * 3600);
/// The longest sleep between checks, so a changed clock or file is noticed.
const CHECK_AT_LEAST_EVERY: Duration = Duration::from_secs(3600);

/// Challenge answers being offered right now.
#[derive(Debug, Default)]
pub struct Challenges {
    /// HTTP-01: token → key authorization.
    http: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01: name → the challenge certificate.
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    /// The body for `/.well-known/acme-challenge/<token>`, while that challenge is open.
    pub fn http_answer(&self, token: &str) -> Option<String> {
        lock(&self.http).get(token).cloned()
    }

    pub(crate) fn alpn_certificate(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        lock(&self.alpn).get(&name.to_ascii_lowercase()).cloned()
    }

    fn clear(&self) {
        lock(&self.http).clear();
        lock(&self.alpn).clear();
    }
}

/// A poisoned lock only means another thread panicked mid-insert; the map is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the account and the certificate are kept.
fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("acme")
}

/// The certificate kept from an earlier run, if any (whatever its names and dates: serving
/// it while a new one is ordered beats serving none).
pub fn kept_certificate(data_dir: &Path) -> Option<Arc<CertifiedKey>> {
    let dir = store_dir(data_dir);
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let cert = std::fs::read(&cert_path).ok()?;
    let key = std::fs::read(&key_path).ok()?;
    certified_key(&cert, &key, &cert_path, &key_path).ok()
}

/// Orders and renews the certificate for the names on `names`, installing it in
/// `certificates`. Runs until the task is dropped.
pub struct Manager {
    pub config: AcmeConfig,
    pub data_dir: PathBuf,
    pub certificates: Arc<Certificates>,
    pub challenges: Arc<Challenges>,
    pub names: watch::Receiver<Vec<String>>,
}

impl Manager {
    pub async fn run(mut self) {
        let mut retry = FIRST_RETRY;
        loop {
            let names = self.names.borrow_and_update().clone();
            let wait = match self.due(&names) {
                None => self.until_renewal(),
                Some(reason) => match self.obtain(&names).await {
                    Ok(expires) => {
                        tracing::info!(
                            "ACME: certificate for {} installed ({reason}); valid until {}",
                            names.join(", "),
                            humantime(expires)
                        );
                        retry = FIRST_RETRY;
                        self.until_renewal()
                    }
                    Err(e) => {
                        tracing::error!(
                            "ACME: cannot obtain a certificate for {} from {} ({reason}): {e}; trying again in {}s",
                            names.join(", "),
                            self.config.directory,
                            retry.as_secs()
                        );
                        let wait = retry;
                        retry = (retry * 2).min(LAST_RETRY);
                        wait
                    }
                },
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = self.names.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Why a new certificate is needed now, if it is.
    fn due(&self, names: &[String]) -> Option<&'static str> {
        let Some(kept) = self.kept() else {
            return Some("no certificate yet");
        };
        if !names.iter().all(|n| kept.names.contains(n)) {
            return Some("the names changed");
        }
        (SystemTime::now() >= kept.renew_at).then_some("renewal")
    }

    fn until_renewal(&self) -> Duration {
        self.kept()
            .and_then(|kept| kept.renew_at.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::ZERO)
            .clamp(Duration::from_secs(1), CHECK_AT_LEAST_EVERY)
    }

    fn kept(&self) -> Option<Kept> {
        let pem = std::fs::read(store_dir(&self.data_dir).join("cert.pem")).ok()?;
        Kept::read(&pem)
    }

    /// One order: account, authorizations, challenges, finalization. Returns the expiry.
    async fn obtain(&self, names: &[String]) -> Result<SystemTime, String> {
        let dir = store_dir(&self.data_dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let account = self.account(&dir).await?;
        let identifiers: Vec<Identifier> =
            names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("new order: {e}"))?;
        let answered = self.answer_challenges(&mut order).await;
        let status = match answered {
            Ok(()) => order
                .poll_ready(&RetryPolicy::default())
                .await
                .map_err(|e| format!("waiting for validation: {e}")),
            Err(e) => Err(e),
        };
        let status = match status {
            Ok(status) => status,
            Err(e) => {
                self.challenges.clear();
                return Err(e);
            }
        };
        if status != OrderStatus::Ready {
            let why = validation_errors(&mut order).await;
            self.challenges.clear();
            return Err(format!(
                "the CA did not validate the names ({status:?}): {why}"
            ));
        }
        self.challenges.clear();
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| format!("finalizing: {e}"))?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::default())
            .await
            .map_err(|e| format!("downloading the certificate: {e}"))?;
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        let key = certified_key(
            chain_pem.as_bytes(),
            key_pem.as_bytes(),
            &cert_path,
            &key_path,
        )
        .map_err(|e| e.to_string())?;
        let kept = Kept::read(chain_pem.as_bytes())
            .ok_or("the CA sent a certificate Portico cannot read")?;
        // Key first: a crash between the two writes leaves a pair that does not match, which
        // `kept_certificate` refuses, and the next start orders again.
        write_private(&key_path, key_pem.as_bytes())
            .and_then(|()| std::fs::write(&cert_path, &chain_pem))
            .map_err(|e| format!("cannot keep the certificate in {}: {e}", dir.display()))?;
        self.certificates.replace(vec![key]);
        Ok(kept.not_after)
    }

    /// Publishes each pending authorization's answer and tells the CA to check it.
    async fn answer_challenges(&self, order: &mut instant_acme::Order) -> Result<(), String> {
        let kind = match self.config.challenge {
            AcmeChallenge::Http01 => ChallengeType::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| format!("authorization: {e}"))?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("an authorization is {other:?}")),
            }
            let mut challenge = authorization
                .challenge(kind.clone())
                .ok_or_else(|| format!("the CA offers no {kind:?} challenge"))?;
            let Identifier::Dns(name) = challenge.identifier().identifier.clone() else {
                return Err("the CA asked about something other than a DNS name".into());
            };
            let key_authorization = challenge.key_authorization();
            match self.config.challenge {
                AcmeChallenge::Http01 => {
                    lock(&self.challenges.http).insert(
                        challenge.token.clone(),
                        key_authorization.as_str().to_owned(),
                    );
                }
                AcmeChallenge::TlsAlpn01 => {
                    let certificate = alpn_certificate(&name, key_authorization.digest().as_ref())?;
                    lock(&self.challenges.alpn).insert(name.to_ascii_lowercase(), certificate);
                }
            }
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge for {name}: {e}"))?;
        }
        Ok(())
    }

    /// The ACME account, created on first use and kept (its key is a secret: mode 0600).
    async fn account(&self, dir: &Path) -> Result<Account, String> {
        let builder = match &self.config.ca_bundle {
            Some(roots) => Account::builder_with_root(roots),
            None => Account::builder(),
        }
        .map_err(|e| format!("cannot set up the HTTPS client: {e}"))?;
        let path = dir.join("account.json");
        if let Ok(saved) = std::fs::read(&path) {
            if let Ok(kept) = serde_json::from_slice::<KeptAccount>(&saved) {
                if kept.directory == self.config.directory {
                    return builder
                        .from_credentials(kept.credentials)
                        .await
                        .map_err(|e| format!("cannot use the kept account: {e}"));
                }
            }
        }
        let contact = self.config.contact.as_ref().map(|c| format!("mailto:{c}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory.clone(),
                None,
            )
            .await
            .map_err(|e| format!("cannot create an account: {e}"))?;
        let kept = KeptAccount {
            directory: self.config.directory.clone(),
            credentials,
        };
        let json = serde_json::to_vec(&kept).map_err(|e| e.to_string())?;
        write_private(&path, &json)
            .map_err(|e| format!("cannot keep the account in {}: {e}", path.display()))?;
        tracing::info!("ACME: created an account at {}", self.config.directory);
        Ok(account)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// What Portico needs to know of a kept certificate.
struct Kept {
    names: Vec<String>,
    not_after: SystemTime,
    /// When a third of its lifetime remains.
    renew_at: SystemTime,
}

impl Kept {
    fn read(chain_pem: &[u8]) -> Option<Kept> {
        use rustls::pki_types::pem::PemObject;
        let leaf = rustls::pki_types::CertificateDer::pem_slice_iter(chain_pem)
            .next()?
            .ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).ok()?;
        let validity = cert.validity();
        let time = |t: x509_parser::time::ASN1Time| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
        };
        let (not_before, not_after) = (time(validity.not_before), time(validity.not_after));
        let lifetime = not_after.duration_since(not_before).unwrap_or_default();
        let names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(name) => {
                            Some(name.to_ascii_lowercase())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Kept {
            names,
            not_after,
            renew_at: not_after - lifetime / 3,
        })
    }
}

/// The self-signed certificate that answers a TLS-ALPN-01 challenge for `name`: its only
/// name is `name`, and it carries the critical acmeIdentifier extension with the digest.
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let failed = |e: rcgen::Error| format!("cannot make the TLS-ALPN-01 certificate: {e}");
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(failed)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    // Built without rustls' key-matches-certificate check: that check parses the certificate
    // with webpki, which rightly refuses the unknown critical extension. Only the CA sees it.
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing_key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("cannot load the TLS-ALPN-01 key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing_key,
    )))
}

/// What the CA said about each failed challenge, for the log.
async fn validation_errors(order: &mut instant_acme::Order) -> String {
    let mut errors = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authorization)) = authorizations.next().await {
        for challenge in &authorization.challenges {
            if let Some(problem) = &challenge.error {
                errors.push(problem.to_string());
            }
        }
    }
    if errors.is_empty() {
        "no reason given".into()
    } else {
        errors.join("; ")
    }
}

fn humantime(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        })
        .unwrap_or_default()
}
