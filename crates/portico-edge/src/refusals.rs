//! Requests the edge refuses on purpose (firewall, and later rate and size limits): counted
//! per reason in `portico_refused_total{reason}`, and logged at most once per second per
//! reason with how many were refused meanwhile, so a flood cannot flood the log too.

use metrics::Counter;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a request was refused (the metric's `reason` label).
#[derive(Debug, Clone, Copy)]
pub enum Reason {
    /// `[firewall]` allow/deny.
    Firewall,
    /// An app's `firewall` rules.
    AppFirewall,
    /// Too many requests from one address.
    Rate,
    /// Too many sign-in attempts from one address.
    SignInRate,
    /// A body, URL or header over its limit.
    Size,
    /// A connection beyond `max_connections`.
    Connections,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::Firewall => "firewall",
            Reason::AppFirewall => "app_firewall",
            Reason::Rate => "rate",
            Reason::SignInRate => "sign_in_rate",
            Reason::Size => "size",
            Reason::Connections => "connections",
        }
    }

    const ALL: [Reason; 6] = [
        Reason::Firewall,
        Reason::AppFirewall,
        Reason::Rate,
        Reason::SignInRate,
        Reason::Size,
        Reason::Connections,
    ];
}

struct Tally {
    counter: Counter,
    /// The second of the last log line.
    logged_at: AtomicU64,
    /// Refusals since that line.
    unlogged: AtomicU64,
}

pub struct Refusals {
    tallies: Vec<Tally>,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals {
            tallies: Reason::ALL
                .iter()
                .map(|r| Tally {
                    counter: metrics::counter!("portico_refused_total", "reason" => r.label()),
                    logged_at: AtomicU64::new(0),
                    unlogged: AtomicU64::new(0),
                })
                .collect(),
        }
    }
}

impl Refusals {
    /// `what` is formatted only when a log line is written, so a flood costs no allocations.
    pub fn record(&self, reason: Reason, client: IpAddr, what: std::fmt::Arguments<'_>) {
        let tally = &self.tallies[reason as usize];
        tally.counter.increment(1);
        let unlogged = tally.unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = tally.logged_at.load(Ordering::Relaxed);
        if now > last
            && tally
                .logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tally.unlogged.fetch_sub(unlogged, Ordering::Relaxed);
            if unlogged > 1 {
                tracing::warn!(
                    "refused {what} from {client} ({}); {} refused for that reason in the last second",
                    reason.label(),
                    unlogged
                );
            } else {
                tracing::warn!("refused {what} from {client} ({})", reason.label());
            }
        }
    }
}
