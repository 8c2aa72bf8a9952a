//! Sticky sessions: a per-app cookie names the replica a client was sent to, so that all of a
//! dashboard session's requests and its WebSocket reach the process holding its state. The
//! cookie is signed (HMAC-SHA256 with a key derived from Portico's secret key, so it outlives
//! restarts) and a client cannot aim at a replica of its choosing. A cookie naming a replica
//! that is gone is ignored: the balancer picks another and the client gets a new cookie.
//!
//! The cookie also carries a random client id, kept when the replica changes, by which the
//! autoscaler counts a browser's recent requests as one session.

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use portico_identity::web::set_cookie;
use sha2::Sha256;

const COOKIE_PREFIX: &str = "portico_replica_";
/// Bytes of the MAC kept in the cookie: 128 bits.
const TAG_BYTES: usize = 16;

pub struct Sticky {
    /// HMAC already keyed: cloning it skips hashing the key's pads on every request.
    keyed: Hmac<Sha256>,
    secure: bool,
}

/// What a genuine sticky cookie says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stuck<'a> {
    pub replica: &'a str,
    pub client: u64,
}

impl Sticky {
    pub fn new(key: [u8; 32], secure: bool) -> Sticky {
        let keyed = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
        Sticky { keyed, secure }
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

    fn mac(&self, app: &str, replica: &str, client: &str) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(app.as_bytes());
        mac.update(b"\n");
        mac.update(replica.as_bytes());
        mac.update(b"\n");
        mac.update(client.as_bytes());
        mac
    }

    /// The replica this client is stuck to and its id, if its cookie for `app` is genuine.
    /// Runs on every proxied request, so it allocates nothing.
    pub fn read<'a>(&self, headers: &'a HeaderMap, app: &str) -> Option<Stuck<'a>> {
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
                let (rest, hex_tag) = value.rsplit_once('.')?;
                let (replica, hex_client) = rest.rsplit_once('.')?;
                let mut tag = [0u8; TAG_BYTES];
                hex::decode_to_slice(hex_tag, &mut tag).ok()?;
                let mut client = [0u8; 8];
                hex::decode_to_slice(hex_client, &mut client).ok()?;
                // Constant time: the check must not tell a forger how much was right.
                let genuine = self
                    .mac(app, replica, hex_client)
                    .verify_truncated_left(&tag)
                    .is_ok();
                genuine.then_some(Stuck {
                    replica,
                    client: u64::from_be_bytes(client),
                })
            })
    }

    /// `Set-Cookie` sticking client `client` to `replica` for the browser session.
    pub fn set_cookie(&self, app: &str, replica: &str, client: u64) -> Option<HeaderValue> {
        let client = hex::encode(client.to_be_bytes());
        let tag = self.mac(app, replica, &client).finalize().into_bytes();
        let value = format!("{replica}.{client}.{}", hex::encode(&tag[..TAG_BYTES]));
        HeaderValue::from_str(&set_cookie(
            &self.cookie_name(app),
            &value,
            "Lax",
            self.secure,
            None,
        ))
        .ok()
    }

    /// `Set-Cookie` that removes the client's cookie for `app`.
    pub fn clear_cookie(&self, app: &str) -> Option<HeaderValue> {
        HeaderValue::from_str(&set_cookie(
            &self.cookie_name(app),
            "",
            "Lax",
            self.secure,
            Some(0),
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
        let set = sticky.set_cookie("sales", "sales-00ab12", 0xabc).unwrap();
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        assert!(pair.starts_with("portico_replica_sales=sales-00ab12.0000000000000abc."));
        let headers = with_cookie(&format!("theme=dark; {pair}"));
        assert_eq!(
            sticky.read(&headers, "sales"),
            Some(Stuck {
                replica: "sales-00ab12",
                client: 0xabc
            })
        );

        let forged = pair.replace("sales-00ab12", "sales-ffffff");
        assert_eq!(sticky.read(&with_cookie(&forged), "sales"), None);
        let other_client = pair.replace(".0000000000000abc.", ".0000000000000abd.");
        assert_eq!(sticky.read(&with_cookie(&other_client), "sales"), None);
        let other_app = pair.replace("portico_replica_sales", "portico_replica_ops");
        assert_eq!(
            sticky.read(&with_cookie(&other_app), "ops"),
            None,
            "tags bind the app"
        );
        let other_key = Sticky::new([8; 32], false);
        assert_eq!(other_key.read(&headers, "sales"), None);
        for junk in ["x", "a.b", "a.b.c", "sales-1..00"] {
            let cookie = format!("portico_replica_sales={junk}");
            assert_eq!(sticky.read(&with_cookie(&cookie), "sales"), None);
        }
    }

    #[test]
    fn under_tls_the_cookie_is_host_bound_and_secure() {
        let sticky = Sticky::new([7; 32], true);
        let set = sticky.set_cookie("sales", "sales-1", 1).unwrap();
        let set = set.to_str().unwrap();
        assert!(set.starts_with("__Host-portico_replica_sales="), "{set}");
        assert!(set.contains("; Secure") && set.contains("HttpOnly") && set.contains("Path=/"));
    }
}
