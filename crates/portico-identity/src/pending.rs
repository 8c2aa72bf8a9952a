//! Sign-ins between the password and the second factor. After a correct password the browser
//! holds only a random token (cookie `portico_mfa`) naming this pending state, never a session;
//! the session is made once the second factor is proved. A pending sign-in lasts ten minutes
//! (time to set up an authenticator app) and allows five wrong codes, after which the password
//! must be typed again. Kept in memory: a restart asks for the password again, which is safe.

use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LIFETIME: Duration = Duration::from_secs(600);
const MAX_ATTEMPTS: u32 = 5;
/// Bounds memory if someone types passwords in a loop and never the code.
const MAX_PENDING: usize = 10_000;

/// A password was right; what is still needed.
#[derive(Debug, Clone)]
pub struct PendingSignIn {
    pub user_id: i64,
    /// Where to go once signed in (already checked to be a local path).
    pub return_to: String,
    /// The user has no authenticator but policy requires one: they set it up now.
    pub must_enrol: bool,
    attempts: u32,
    expires: Instant,
}

#[derive(Default)]
pub struct PendingSignIns {
    pending: Mutex<HashMap<String, PendingSignIn>>,
}

impl PendingSignIns {
    pub fn start(&self, user_id: i64, return_to: &str, must_enrol: bool) -> String {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| p.expires > now);
        if pending.len() >= MAX_PENDING {
            pending.clear();
        }
        pending.insert(
            token.clone(),
            PendingSignIn {
                user_id,
                return_to: return_to.to_owned(),
                must_enrol,
                attempts: 0,
                expires: now + LIFETIME,
            },
        );
        token
    }

    /// The pending sign-in of one of the browser's tokens, if still valid.
    pub fn get<'a>(
        &self,
        mut tokens: impl Iterator<Item = &'a str>,
    ) -> Option<(String, PendingSignIn)> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tokens.find_map(|token| {
            pending
                .get(token)
                .filter(|p| p.expires > now)
                .map(|p| (token.to_owned(), p.clone()))
        })
    }

    /// Counts a wrong code; `false` when that was the last allowed (the sign-in is dropped).
    pub fn failed(&self, token: &str) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = pending.get_mut(token) else {
            return false;
        };
        entry.attempts += 1;
        if entry.attempts >= MAX_ATTEMPTS {
            pending.remove(token);
            return false;
        }
        true
    }

    /// Ends the pending sign-in (it succeeded, or was abandoned).
    pub fn finish(&self, token: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_wrong_codes_drop_the_pending_sign_in() {
        let pending = PendingSignIns::default();
        let token = pending.start(3, "/", false);
        assert!(pending.get(["nope"].into_iter()).is_none());
        assert_eq!(
            pending.get([token.as_str()].into_iter()).unwrap().1.user_id,
            3
        );
        for _ in 0..4 {
            assert!(pending.failed(&token));
        }
        assert!(!pending.failed(&token));
        assert!(pending.get([token.as_str()].into_iter()).is_none());
    }
}
