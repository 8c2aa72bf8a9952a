//! The cross-host sign-in handshake (DESIGN.md, "Sign-in across hosts").
//!
//! Each app host (`sales.example.com`) gets its own host-only cookie; no cookie is ever set
//! for the parent domain, so one dashboard can never read or plant another's session. When a
//! signed-out request reaches an app host, the edge sends the browser to the portal; the
//! portal, where the person is signed in, issues a one-time code bound to that app host and
//! sends the browser back with it; the app host redeems the code for a session of its own.
//! Codes live in memory for 60 seconds and work once, on the host they were made for.

use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Bounds memory if someone requests codes in a loop without redeeming them.
const MAX_PENDING: usize = 10_000;

/// What a code stands for.
#[derive(Debug, Clone)]
pub struct Pending {
    pub user_id: i64,
    /// The portal session's cookie value: the new session is ended with it.
    pub parent_cookie: String,
    host: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Handoffs {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Handoffs {
    /// A new code for `host` (as the browser names it, with port).
    pub fn issue(&self, user_id: i64, parent_cookie: &str, host: &str) -> String {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let code = hex::encode(raw);
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| p.expires > now);
        if pending.len() >= MAX_PENDING {
            pending.clear();
        }
        let entry = Pending {
            user_id,
            parent_cookie: parent_cookie.to_owned(),
            host: host.to_owned(),
            expires: now + CODE_LIFETIME,
        };
        pending.insert(code.clone(), entry);
        code
    }

    /// Redeems a code on `host`: once, before it expires, and only on the host it was made
    /// for. A code presented on the wrong host is burnt.
    pub fn redeem(&self, code: &str, host: &str) -> Option<Pending> {
        let found = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(code)?;
        (found.host == host && found.expires > Instant::now()).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_and_only_on_its_host() {
        let handoffs = Handoffs::default();
        let code = handoffs.issue(7, "cookie", "sales.localhost:8080");
        assert!(handoffs.redeem(&code, "hr.localhost:8080").is_none());
        assert!(
            handoffs.redeem(&code, "sales.localhost:8080").is_none(),
            "burnt by the wrong host"
        );
        let code = handoffs.issue(7, "cookie", "sales.localhost:8080");
        assert_eq!(
            handoffs
                .redeem(&code, "sales.localhost:8080")
                .unwrap()
                .user_id,
            7
        );
        assert!(
            handoffs.redeem(&code, "sales.localhost:8080").is_none(),
            "single use"
        );
        assert!(handoffs.redeem("forged", "sales.localhost:8080").is_none());
    }
}
