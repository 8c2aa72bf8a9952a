//! `[tls]`: HTTPS on `server.listen`, with certificates from files (several, chosen by the name
//! the browser asks for) or a development certificate Portico makes itself.

use super::Problem;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    #[serde(default)]
    pub self_signed: bool,
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
    pub hsts_max_age_secs: Option<u64>,
    pub hsts_include_subdomains: Option<bool>,
    pub acme: Option<RawAcme>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    pub directory: Option<String>,
    pub contact: Option<String>,
    pub challenge: Option<String>,
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// Made by Portico for `<domain>`, `*.<domain>` and each app's host, kept in the data
    /// folder: for development and trials; browsers warn until it is trusted.
    SelfSigned,
    /// The first whose names cover the requested host serves it; the first one also serves
    /// clients that name no host.
    Files(Vec<CertificateFiles>),
    /// Obtained and renewed from an ACME certificate authority (Let's Encrypt by default).
    Acme(AcmeConfig),
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The CA's directory URL.
    pub directory: String,
    /// An e-mail address the CA may write to about expiring certificates.
    pub contact: Option<String>,
    pub challenge: AcmeChallenge,
    /// PEM roots trusted for the CA's own HTTPS (a private CA); `None`: the system's.
    pub ca_bundle: Option<PathBuf>,
}

/// How the CA checks that Portico answers for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// A file under `/.well-known/acme-challenge/` on port 80 (`server.redirect_listen`).
    Http01,
    /// A special certificate on the HTTPS port itself (`acme-tls/1`): nothing on port 80.
    TlsAlpn01,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub source: TlsSource,
    /// `Strict-Transport-Security` on every HTTPS response; `None`: not sent.
    pub hsts_max_age: Option<Duration>,
    pub hsts_include_subdomains: bool,
}

impl TlsConfig {
    /// The `Strict-Transport-Security` value, if any.
    pub fn hsts_header(&self) -> Option<String> {
        self.hsts_max_age.map(|age| {
            let subdomains = if self.hsts_include_subdomains {
                "; includeSubDomains"
            } else {
                ""
            };
            format!("max-age={}{subdomains}", age.as_secs())
        })
    }
}

pub(super) fn tls(
    raw: RawTls,
    base: &Path,
    redirect_listen: bool,
    problems: &mut Vec<Problem>,
) -> TlsConfig {
    let sources = [
        raw.self_signed,
        !raw.certificates.is_empty(),
        raw.acme.is_some(),
    ];
    if sources.iter().filter(|set| **set).count() > 1 {
        problems.push(Problem::new(
            "tls",
            "sets more than one of self_signed, certificates and [tls.acme]; keep one",
        ));
    }
    let source = match (raw.self_signed, raw.certificates.is_empty(), raw.acme) {
        (_, _, Some(acme)) => TlsSource::Acme(acme_config(acme, base, redirect_listen, problems)),
        (true, true, None) => TlsSource::SelfSigned,
        (false, false, None) => {
            let mut files = Vec::new();
            for (i, c) in raw.certificates.into_iter().enumerate() {
                for (what, path) in [("cert", &c.cert), ("key", &c.key)] {
                    let path = base.join(path);
                    if !path.is_file() {
                        problems.push(Problem::new(
                            format!("tls.certificates[{i}].{what}"),
                            format!("= \"{}\" is not a readable file; give the PEM file's path (relative to the config file)", path.display()),
                        ));
                    }
                }
                files.push(CertificateFiles {
                    cert: base.join(c.cert),
                    key: base.join(c.key),
                });
            }
            TlsSource::Files(files)
        }
        (true, false, None) => TlsSource::SelfSigned,
        (false, true, None) => {
            problems.push(Problem::new(
                "tls",
                "names no certificate: add certificates = [{ cert = \"site.pem\", key = \"site.key\" }], a [tls.acme] table for Let's Encrypt, or self_signed = true for development",
            ));
            TlsSource::SelfSigned
        }
    };
    let max_age = raw.hsts_max_age_secs.unwrap_or(365 * 24 * 3600);
    TlsConfig {
        source,
        hsts_max_age: (max_age > 0).then(|| Duration::from_secs(max_age)),
        hsts_include_subdomains: raw.hsts_include_subdomains.unwrap_or(true),
    }
}

fn acme_config(
    raw: RawAcme,
    base: &Path,
    redirect_listen: bool,
    problems: &mut Vec<Problem>,
) -> AcmeConfig {
    let directory = raw.directory.unwrap_or_else(|| LETS_ENCRYPT.to_owned());
    if !directory.starts_with("https://") {
        problems.push(Problem::new(
            "tls.acme.directory",
            format!("= \"{directory}\" is not an https:// URL; write the CA's directory URL, e.g. \"{LETS_ENCRYPT}\""),
        ));
    }
    let challenge = match raw.challenge.as_deref() {
        None if redirect_listen => AcmeChallenge::Http01,
        None => AcmeChallenge::TlsAlpn01,
        Some("http-01") => AcmeChallenge::Http01,
        Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
        Some(other) => {
            problems.push(Problem::new(
                "tls.acme.challenge",
                format!("= \"{other}\" is not a challenge Portico answers; write \"http-01\" or \"tls-alpn-01\""),
            ));
            AcmeChallenge::TlsAlpn01
        }
    };
    if challenge == AcmeChallenge::Http01 && !redirect_listen {
        problems.push(Problem::new(
            "tls.acme.challenge",
            "= \"http-01\" is answered on port 80, which needs server.redirect_listen (e.g. \"0.0.0.0:80\"); set it, or use \"tls-alpn-01\"",
        ));
    }
    if let Some(contact) = &raw.contact {
        if !contact.contains('@') || contact.contains(char::is_whitespace) {
            problems.push(Problem::new(
                "tls.acme.contact",
                format!(
                    "= \"{contact}\" is not an e-mail address; write one, e.g. \"ops@example.com\""
                ),
            ));
        }
    }
    let ca_bundle = raw.ca_bundle.map(|path| base.join(path));
    if let Some(path) = &ca_bundle {
        if !path.is_file() {
            problems.push(Problem::new(
                "tls.acme.ca_bundle",
                format!("= \"{}\" is not a readable file; give the PEM file of the roots the CA's HTTPS certificate chains to", path.display()),
            ));
        }
    }
    AcmeConfig {
        directory,
        contact: raw.contact,
        challenge,
        ca_bundle,
    }
}
