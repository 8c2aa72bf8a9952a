//! Sign-ins in flight at a provider: between sending the browser away and its return. Keyed by
//! the `state` Portico sent, bound to the browser by a cookie holding the same value (so a
//! callback link made in another browser does nothing), used once, and forgotten after ten
//! minutes. In memory: a restart asks people to start again, which is harmless.
//!
//! A SAML provider answers with a cross-site POST, which carries no SameSite cookie; so that
//! answer is checked and attached to its flow (`complete`, found by the RelayState), and the
//! browser is sent on to the callback, a same-site GET that brings the cookie and takes the
//! flow as OIDC's callback does.

use super::oidc::OidcPending;
use super::saml::SamlPending;
use super::ExternalProfile;
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
    pub pending: Pending,
    /// A SAML provider's checked answer, waiting for the browser to come to the callback.
    pub completed: Option<ExternalProfile>,
    expires: Instant,
}

/// What the protocol needs remembered.
#[derive(Debug, Clone)]
pub enum Pending {
    Oidc(OidcPending),
    Saml(SamlPending),
}

#[derive(Default)]
pub struct SsoFlows {
    pending: Mutex<HashMap<String, Flow>>,
}

impl SsoFlows {
    pub fn start(&self, state: &str, provider: &str, return_to: &str, pending: Pending) {
        let now = Instant::now();
        let mut flows = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        flows.retain(|_, f| f.expires > now);
        if flows.len() >= MAX_PENDING {
            flows.clear();
        }
        flows.insert(
            state.to_owned(),
            Flow {
                provider: provider.to_owned(),
                return_to: return_to.to_owned(),
                pending,
                completed: None,
                expires: now + LIFETIME,
            },
        );
    }

    /// The flow of `state`, still open (not expired, not answered), without taking it.
    pub fn peek(&self, state: &str) -> Option<Flow> {
        let flows = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        flows
            .get(state)
            .filter(|f| f.expires > Instant::now() && f.completed.is_none())
            .cloned()
    }

    /// Attaches the provider's checked answer; `false` when the flow is gone or was answered
    /// already (only the first answer counts).
    pub fn complete(&self, state: &str, profile: ExternalProfile) -> bool {
        let mut flows = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match flows.get_mut(state) {
            Some(flow) if flow.completed.is_none() && flow.expires > Instant::now() => {
                flow.completed = Some(profile);
                true
            }
            _ => false,
        }
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
