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

pub(super) fn tls(raw: RawTls, base: &Path, problems: &mut Vec<Problem>) -> TlsConfig {
    let source = match (raw.self_signed, raw.certificates.is_empty()) {
        (true, true) => TlsSource::SelfSigned,
        (false, false) => {
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
        (true, false) => {
            problems.push(Problem::new(
                "tls.self_signed",
                "= true and tls.certificates are both set; keep one",
            ));
            TlsSource::SelfSigned
        }
        (false, true) => {
            problems.push(Problem::new(
                "tls",
                "names no certificate: add certificates = [{ cert = \"site.pem\", key = \"site.key\" }], or self_signed = true for development",
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
