//! Sign-ins in flight at a provider: between sending the browser away and its return. Keyed by
//! the `state` Portico sent, bound to the browser by a cookie holding the same value (so a
//! callback link made in another browser does nothing), used once, and forgotten after ten
//! minutes. In memory: a restart asks people to start again, which is harmless.

use super::oidc::OidcPending;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LIFETIME: Duration = Duration::from_secs(600);
const MAX_PENDING: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Flow {
    /// The provider's id (`corp`).
    pub provider: String,
    pub return_to: String,
    pub oidc: OidcPending,
    expires: Instant,
}

#[derive(Default)]
pub struct SsoFlows {
    pending: Mutex<HashMap<String, Flow>>,
}

impl SsoFlows {
    pub fn start(&self, state: &str, provider: &str, return_to: &str, oidc: OidcPending) {
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, f| f.expires > now);
        if pending.len() >= MAX_PENDING {
            pending.clear();
        }
        pending.insert(
            state.to_owned(),
            Flow {
                provider: provider.to_owned(),
                return_to: return_to.to_owned(),
                oidc,
                expires: now + LIFETIME,
            },
        );
    }

    /// Takes the flow of `state` if this browser started it (one of `cookie_states` matches)
    /// and it has not expired. A state presented wrongly is burnt.
    pub fn take<'a>(
        &self,
        state: &str,
        mut cookie_states: impl Iterator<Item = &'a str>,
    ) -> Option<Flow> {
        use subtle::ConstantTimeEq;
        let flow = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(state)?;
        let same_browser = cookie_states
            .any(|c| !c.is_empty() && bool::from(c.as_bytes().ct_eq(state.as_bytes())));
        (same_browser && flow.expires > Instant::now()).then_some(flow)
    }
}
