//! The edge's guards that a reload may replace while requests are in flight: the firewall,
//! the per-client rate limits, the request limits and HSTS. Each request reads one snapshot,
//! so it is judged wholly by the old rules or wholly by the new ones.

use crate::limits::RateLimits;
use http::HeaderValue;
use portico_core::{FirewallConfig, LimitsConfig};
use std::sync::Arc;

/// What the guards are made from: `[firewall]`, `[limits]` and `[tls]`'s HSTS header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardConfig {
    pub firewall: FirewallConfig,
    pub limits: LimitsConfig,
    /// `Strict-Transport-Security` for every response on the main listener (HTTPS only).
    pub hsts: Option<String>,
}

pub(crate) struct Guards {
    pub(crate) firewall: FirewallConfig,
    pub(crate) limits: LimitsConfig,
    pub(crate) rates: Arc<RateLimits>,
    pub(crate) hsts: Option<HeaderValue>,
}

impl Guards {
    /// Builds the guards. The rate limiters of `previous` are kept when the rates did not
    /// change: a reload must not hand every client (a flooding one too) a fresh allowance.
    pub(crate) fn build(config: GuardConfig, previous: Option<&Guards>) -> Guards {
        let rates = match previous {
            Some(old) if same_rates(&old.limits, &config.limits) => old.rates.clone(),
            _ => RateLimits::new(&config.limits),
        };
        Guards {
            hsts: config
                .hsts
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok()),
            firewall: config.firewall,
            limits: config.limits,
            rates,
        }
    }
}

fn same_rates(a: &LimitsConfig, b: &LimitsConfig) -> bool {
    (a.requests_per_second, a.burst, a.sign_in_per_minute)
        == (b.requests_per_second, b.burst, b.sign_in_per_minute)
}
