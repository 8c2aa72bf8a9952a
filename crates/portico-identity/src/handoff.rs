//! The cross-host sign-in handshake (DESIGN.md, "Sign-in across hosts").
//!
//! Each app host (`sales.example.com`) gets its own host-only cookie; no cookie is ever set
//! for the parent domain, so one dashboard can never read or plant another's session. When a
//! signed-out request reaches an app host, the edge sends the browser to the portal; the
//! portal, where the person is signed in, issues a one-time code bound to that app host and
//! sends the browser back with it; the app host redeems the code for a session of its own.
//! Codes live in memory for 60 seconds and work once, on the host they were made for, and only
//! in the browser that started the handshake: the app host first sets a random `state` in a
//! host-only cookie and the code is bound to it (as OAuth's `state` is). Without that, someone
//! could get a code for their own account and make another person's browser redeem it, signing
//! that person in to the dashboard as someone else.

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
    state: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Handoffs {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Handoffs {
    /// A new code for `host` (as the browser names it, with port), bound to the `state` the
    /// app host gave the browser.
    pub fn issue(&self, user_id: i64, parent_cookie: &str, host: &str, state: &str) -> String {
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
            state: state.to_owned(),
            expires: now + CODE_LIFETIME,
        };
        pending.insert(code.clone(), entry);
        code
    }

    /// Redeems a code on `host` in a browser holding one of `states`: once, before it
    /// expires, on the host it was made for. A code presented wrongly is burnt.
    pub fn redeem<'a>(
        &self,
        code: &str,
        host: &str,
        mut states: impl Iterator<Item = &'a str>,
    ) -> Option<Pending> {
        use subtle::ConstantTimeEq;
        let found = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(code)?;
        let same_browser =
            states.any(|s| !s.is_empty() && bool::from(s.as_bytes().ct_eq(found.state.as_bytes())));
        (found.host == host && found.expires > Instant::now() && same_browser).then_some(found)
    }

    /// A new random state for a browser starting the handshake.
    pub fn new_state() -> String {
        let mut raw = [0u8; 16];
        rand::rng().fill_bytes(&mut raw);
        hex::encode(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_only_on_its_host_and_only_in_the_browser_that_asked() {
        let handoffs = Handoffs::default();
        let host = "sales.localhost:8080";
        let code = handoffs.issue(7, "cookie", host, "s1");
        assert!(handoffs
            .redeem(&code, "hr.localhost:8080", ["s1"].into_iter())
            .is_none());
        assert!(
            handoffs.redeem(&code, host, ["s1"].into_iter()).is_none(),
            "burnt by the wrong host"
        );
        let code = handoffs.issue(7, "cookie", host, "s1");
        assert!(
            handoffs
                .redeem(&code, host, ["other"].into_iter())
                .is_none(),
            "another browser's state"
        );
        let code = handoffs.issue(7, "cookie", host, "s1");
        assert!(
            handoffs.redeem(&code, host, std::iter::empty()).is_none(),
            "no state at all"
        );
        let code = handoffs.issue(7, "cookie", host, "s1");
        assert_eq!(
            handoffs
                .redeem(&code, host, ["x", "s1"].into_iter())
                .unwrap()
                .user_id,
            7
        );
        assert!(
            handoffs.redeem(&code, host, ["s1"].into_iter()).is_none(),
            "single use"
        );
        assert!(handoffs
            .redeem("forged", host, ["s1"].into_iter())
            .is_none());
    }
}
