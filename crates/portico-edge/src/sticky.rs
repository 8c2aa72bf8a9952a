//! Sticky sessions: a per-app cookie names the replica a client was sent to, so that all of a
//! dashboard session's requests and its WebSocket reach the process holding its state. The
//! cookie is signed (HMAC-SHA256 with a key derived from Portico's secret key, so it outlives
//! restarts) and a client cannot aim at a replica of its choosing. A cookie naming a replica
//! that is gone is ignored: the balancer picks another and the client gets a new cookie.

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use portico_identity::web::set_cookie;
use sha2::Sha256;

const COOKIE_PREFIX: &str = "portico_replica_";
/// Bytes of the MAC kept in the cookie: 128 bits.
const TAG_BYTES: usize = 16;

pub struct Sticky {
    key: [u8; 32],
    secure: bool,
}

impl Sticky {
    pub fn new(key: [u8; 32], secure: bool) -> Sticky {
        Sticky { key, secure }
    }

    /// `portico_replica_<app>`; under TLS with the `__Host-` prefix (Secure, Path=/, no
    /// Domain), like Portico's other cookies.
    fn cookie_name(&self, app: &str) -> String {
        if self.secure {
            format!("__Host-{COOKIE_PREFIX}{app}")
        } else {
            format!("{COOKIE_PREFIX}{app}")
        }
    }

    fn mac(&self, app: &str, replica: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(app.as_bytes());
        mac.update(b"\n");
        mac.update(replica.as_bytes());
        mac
    }

    /// The replica this client is stuck to, if its cookie for `app` is genuine.
    /// Runs on every proxied request, so it allocates nothing.
    pub fn replica<'a>(&self, headers: &'a HeaderMap, app: &str) -> Option<&'a str> {
        let is_ours = |key: &str| {
            let key = if self.secure {
                key.strip_prefix("__Host-")
            } else {
                Some(key)
            };
            key.and_then(|k| k.strip_prefix(COOKIE_PREFIX)) == Some(app)
        };
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(key, _)| is_ours(key))
            .find_map(|(_, value)| {
                let (replica, hex_tag) = value.rsplit_once('.')?;
                let mut tag = [0u8; TAG_BYTES];
                hex::decode_to_slice(hex_tag, &mut tag).ok()?;
                // Constant time: the check must not tell a forger how much was right.
                let genuine = self.mac(app, replica).verify_truncated_left(&tag).is_ok();
                genuine.then_some(replica)
            })
    }

    /// `Set-Cookie` sticking this client to `replica` for the browser session.
    pub fn set_cookie(&self, app: &str, replica: &str) -> Option<HeaderValue> {
        let tag = self.mac(app, replica).finalize().into_bytes();
        let value = format!("{replica}.{}", hex::encode(&tag[..TAG_BYTES]));
        HeaderValue::from_str(&set_cookie(
            &self.cookie_name(app),
            &value,
            "Lax",
            self.secure,
            None,
        ))
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_signed_cookie_is_believed_and_a_forged_or_foreign_one_is_not() {
        let sticky = Sticky::new([7; 32], false);
        let set = sticky.set_cookie("sales", "sales-00ab12").unwrap();
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        assert!(pair.starts_with("portico_replica_sales=sales-00ab12."));
        let headers = with_cookie(&format!("theme=dark; {pair}"));
        assert_eq!(sticky.replica(&headers, "sales"), Some("sales-00ab12"));

        let forged = pair.replace("sales-00ab12", "sales-ffffff");
        assert_eq!(sticky.replica(&with_cookie(&forged), "sales"), None);
        let other_app = pair.replace("portico_replica_sales", "portico_replica_ops");
        assert_eq!(
            sticky.replica(&with_cookie(&other_app), "ops"),
            None,
            "tags bind the app"
        );
        let other_key = Sticky::new([8; 32], false);
        assert_eq!(other_key.replica(&headers, "sales"), None);
        assert_eq!(
            sticky.replica(&with_cookie("portico_replica_sales=x"), "sales"),
            None
        );
    }

    #[test]
    fn under_tls_the_cookie_is_host_bound_and_secure() {
        let sticky = Sticky::new([7; 32], true);
        let set = sticky.set_cookie("sales", "sales-1").unwrap();
        let set = set.to_str().unwrap();
        assert!(set.starts_with("__Host-portico_replica_sales="), "{set}");
        assert!(set.contains("; Secure") && set.contains("HttpOnly") && set.contains("Path=/"));
    }
}
