//! TLS termination (rustls): certificates from PEM files or a development certificate made
//! here, chosen per connection by the name the client asks for (SNI), swappable while serving
//! so new certificates apply to new connections without a restart. TLS 1.2 and 1.3; ALPN
//! offers HTTP/2 and HTTP/1.1 (WebSockets use HTTP/1.1 upgrades).

use crate::acme::{Challenges, ACME_TLS_ALPN};
use arc_swap::ArcSwap;
use portico_core::{CertificateFiles, TlsConfig, TlsSource};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A development certificate is made again when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a development certificate is valid.
const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate (BEGIN CERTIFICATE); give the certificate chain file, leaf first")]
    NoCertificate { path: PathBuf },
    #[error(
        "{path} holds no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
    )]
    NoKey { path: PathBuf },
    #[error("the key {key} does not belong to the certificate {cert}, or is of a kind rustls cannot use: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot make the development certificate: {0}")]
    SelfSigned(String),
}

/// The certificates being served; `replace` swaps them for new connections.
#[derive(Debug)]
pub struct Certificates {
    keys: ArcSwap<Vec<Arc<CertifiedKey>>>,
}

impl Certificates {
    pub fn new(keys: Vec<Arc<CertifiedKey>>) -> Arc<Certificates> {
        Arc::new(Certificates {
            keys: ArcSwap::from_pointee(keys),
        })
    }

    pub fn replace(&self, keys: Vec<Arc<CertifiedKey>>) {
        self.keys.store(Arc::new(keys));
    }

    /// Replaces the certificates unless `keys` hold the same chains; says whether it did.
    pub fn replace_if_changed(&self, keys: Vec<Arc<CertifiedKey>>) -> bool {
        let same = {
            let current = self.keys.load();
            current.len() == keys.len() && current.iter().zip(&keys).all(|(a, b)| a.cert == b.cert)
        };
        if !same {
            self.replace(keys);
        }
        !same
    }

    /// The first certificate valid for `name` (wildcards as webpki matches them), else the
    /// first one, as nginx serves its default server's certificate.
    fn for_name(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let keys = self.keys.load();
        let wanted = name.and_then(|n| ServerName::try_from(n).ok());
        if let Some(wanted) = wanted {
            for key in keys.iter() {
                let Ok(leaf) = key.end_entity_cert() else {
                    continue;
                };
                let matches = webpki::EndEntityCert::try_from(leaf)
                    .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&wanted).is_ok());
                if matches {
                    return Some(key.clone());
                }
            }
        }
        keys.first().cloned()
    }
}

#[derive(Debug)]
struct SniResolver {
    certificates: Arc<Certificates>,
    /// With ACME's TLS-ALPN-01: the challenge certificates.
    challenges: Option<Arc<Challenges>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(challenges) = &self.challenges {
            let acme = hello
                .alpn()
                .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
            if acme {
                // Only the CA's validation handshake asks for acme-tls/1; it gets the
                // challenge certificate or nothing (never the real one).
                return challenges.alpn_certificate(hello.server_name()?);
            }
        }
        self.certificates.for_name(hello.server_name())
    }
}

/// The rustls configuration serving `certificates` (and, with `challenges`, answering
/// TLS-ALPN-01 challenges).
pub fn server_config(
    certificates: Arc<Certificates>,
    challenges: Option<Arc<Challenges>>,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver {
            certificates,
            challenges: challenges.clone(),
        }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if challenges.is_some() {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Arc::new(config)
}

/// Loads what `[tls]` names. `names` are the hosts a development certificate must cover
/// (`<domain>`, `*.<domain>`, each app's host); `data_dir` is where it is kept.
pub fn load(
    config: &TlsConfig,
    names: &[String],
    data_dir: &Path,
) -> Result<Vec<Arc<CertifiedKey>>, TlsError> {
    match &config.source {
        TlsSource::Files(files) => files.iter().map(load_files).collect(),
        TlsSource::SelfSigned => Ok(vec![self_signed(names, &data_dir.join("tls"))?]),
        // The kept certificate, else a stand-in until the first one arrives (acme::Manager).
        TlsSource::Acme(_) => match crate::acme::kept_certificate(data_dir) {
            Some(key) => Ok(vec![key]),
            None => Ok(vec![self_signed(names, &data_dir.join("tls"))?]),
        },
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

pub(crate) fn certified_key(
    chain_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoKey {
        path: key_path.to_owned(),
    })?;
    let mismatch = |reason: String| TlsError::Mismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        reason,
    };
    let provider = rustls::crypto::ring::default_provider();
    let certified =
        CertifiedKey::from_der(chain, key, &provider).map_err(|e| mismatch(e.to_string()))?;
    Ok(Arc::new(certified))
}

/// One certificate and key from PEM files (also what `portico check` reads).
pub fn load_files(files: &CertificateFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    certified_key(
        &read(&files.cert)?,
        &read(&files.key)?,
        &files.cert,
        &files.key,
    )
}

/// The development certificate for `names`, made (and kept in `dir`) when there is none for
/// exactly these names or it is about to expire, so a browser told to trust it keeps doing so.
fn self_signed(names: &[String], dir: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_path = dir.join("self-signed.pem");
    let key_path = dir.join("self-signed.key");
    let names_path = dir.join("self-signed.names");
    let wanted = names.join("\n");
    let fresh = std::fs::metadata(&cert_path)
        .and_then(|m| m.modified())
        .is_ok_and(|made| made + SELF_SIGNED_VALIDITY > SystemTime::now() + RENEW_BEFORE);
    if fresh && std::fs::read_to_string(&names_path).is_ok_and(|n| n == wanted) {
        if let (Ok(cert), Ok(key)) = (std::fs::read(&cert_path), std::fs::read(&key_path)) {
            if let Ok(key) = certified_key(&cert, &key, &cert_path, &key_path) {
                return Ok(key);
            }
        }
    }
    let failed = |e: &dyn std::fmt::Display| TlsError::SelfSigned(e.to_string());
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| failed(&e))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Portico development certificate");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + SELF_SIGNED_VALIDITY;
    let key = rcgen::KeyPair::generate().map_err(|e| failed(&e))?;
    let cert = params.self_signed(&key).map_err(|e| failed(&e))?;
    std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
    write_private(&key_path, key.serialize_pem().as_bytes()).map_err(|e| failed(&e))?;
    std::fs::write(&cert_path, cert.pem()).map_err(|e| failed(&e))?;
    std::fs::write(&names_path, &wanted).map_err(|e| failed(&e))?;
    tracing::info!(
        "made a development certificate for {} in {} (browsers warn until it is trusted)",
        names.join(", "),
        cert_path.display()
    );
    certified_key(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        &cert_path,
        &key_path,
    )
}

/// Writes a file only its owner can read (a private key).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    fn leaf(key: &CertifiedKey) -> Vec<u8> {
        key.end_entity_cert().unwrap().to_vec()
    }

    #[test]
    fn the_development_certificate_is_kept_until_the_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let first = self_signed(&names(&["localhost", "*.localhost"]), dir.path()).unwrap();
        let again = self_signed(&names(&["localhost", "*.localhost"]), dir.path()).unwrap();
        assert_eq!(
            leaf(&first),
            leaf(&again),
            "a restart serves the same certificate"
        );
        let other = self_signed(&names(&["localhost", "sales.localhost"]), dir.path()).unwrap();
        assert_ne!(leaf(&first), leaf(&other), "new names, new certificate");
    }

    #[test]
    fn certificates_are_chosen_by_name_with_wildcards_and_the_first_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let portal = self_signed(&names(&["example.com"]), &dir.path().join("a")).unwrap();
        let apps = self_signed(&names(&["*.example.com"]), &dir.path().join("b")).unwrap();
        let certificates = Certificates::new(vec![portal.clone(), apps.clone()]);
        let chosen = |name: Option<&str>| leaf(&certificates.for_name(name).unwrap());
        assert_eq!(chosen(Some("example.com")), leaf(&portal));
        assert_eq!(chosen(Some("sales.example.com")), leaf(&apps));
        assert_eq!(chosen(Some("elsewhere.org")), leaf(&portal));
        assert_eq!(chosen(None), leaf(&portal));
        certificates.replace(vec![apps.clone()]);
        assert_eq!(
            chosen(Some("example.com")),
            leaf(&apps),
            "replaced while serving"
        );
    }

    #[test]
    fn bad_certificate_files_are_named_with_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        self_signed(&names(&["a.example"]), &dir.path().join("a")).unwrap();
        self_signed(&names(&["b.example"]), &dir.path().join("b")).unwrap();
        let files = |cert: &str, key: &str| CertificateFiles {
            cert: dir.path().join(cert),
            key: dir.path().join(key),
        };
        let mismatch = load_files(&files("a/self-signed.pem", "b/self-signed.key")).unwrap_err();
        assert!(
            mismatch
                .to_string()
                .contains("does not belong to the certificate"),
            "{mismatch}"
        );
        let swapped = load_files(&files("a/self-signed.key", "a/self-signed.pem")).unwrap_err();
        assert!(
            swapped.to_string().contains("holds no PEM certificate"),
            "{swapped}"
        );
        let missing = load_files(&files("nope.pem", "a/self-signed.key")).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
        assert!(load_files(&files("a/self-signed.pem", "a/self-signed.key")).is_ok());
    }
}
