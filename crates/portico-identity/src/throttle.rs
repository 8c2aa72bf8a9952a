//! Brute-force protection for sign-in.
//!
//! - **Per account**: after 5 failures in a row, the account is locked for 30 seconds, then
//!   twice as long after each further failure, up to 15 minutes; a success clears it. Accounts
//!   are tracked by the address typed, whether or not it exists, so a lockout says nothing
//!   about which addresses have accounts.
//! - **Per client address**: at most 20 attempts a minute (governor's keyed limiter), so one
//!   machine cannot spray many accounts.
//!
//! State is in memory: a restart clears it (the audit log keeps every failure).

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_FAILURES: u32 = 5;
const FIRST_LOCK: Duration = Duration::from_secs(30);
const LONGEST_LOCK: Duration = Duration::from_secs(15 * 60);
const PER_CLIENT_PER_MINUTE: u32 = 20;
const TRACKED_LIMIT: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This account is locked for this long.
    AccountLocked(Duration),
    /// This client tried too often.
    TooManyFromClient,
}

struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

pub struct Throttle {
    accounts: Mutex<HashMap<String, Failures>>,
    clients: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for Throttle {
    fn default() -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(PER_CLIENT_PER_MINUTE).expect("non-zero"));
        Throttle {
            accounts: Mutex::new(HashMap::new()),
            clients: RateLimiter::keyed(quota),
        }
    }
}

impl Throttle {
    /// Called before checking a password; `Err` means do not even check it.
    pub fn admit(&self, account: &str, client: IpAddr) -> Result<(), Refusal> {
        if self.clients.check_key(&client).is_err() {
            return Err(Refusal::TooManyFromClient);
        }
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        match accounts.get(account).and_then(|f| f.locked_until) {
            Some(until) if until > Instant::now() => {
                Err(Refusal::AccountLocked(until - Instant::now()))
            }
            _ => Ok(()),
        }
    }

    /// For forms that check no password (asking for a reset link): the per-client limit only.
    pub fn admit_client(&self, client: IpAddr) -> bool {
        self.clients.check_key(&client).is_ok()
    }

    /// Records a failed attempt; returns the lock it caused, if any.
    pub fn failed(&self, account: &str) -> Option<Duration> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if accounts.len() >= TRACKED_LIMIT {
            let now = Instant::now();
            accounts.retain(|_, f| f.locked_until.is_some_and(|u| u > now));
        }
        let entry = accounts.entry(account.to_owned()).or_insert(Failures {
            count: 0,
            locked_until: None,
        });
        entry.count += 1;
        if entry.count < FREE_FAILURES {
            return None;
        }
        let doublings = (entry.count - FREE_FAILURES).min(10);
        let lock = (FIRST_LOCK * 2u32.pow(doublings)).min(LONGEST_LOCK);
        entry.locked_until = Some(Instant::now() + lock);
        Some(lock)
    }

    /// A successful sign-in clears the account's failures.
    pub fn succeeded(&self, account: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn five_failures_lock_the_account_progressively_and_success_clears_it() {
        let throttle = Throttle::default();
        for _ in 0..4 {
            assert_eq!(throttle.failed("ada@example.com"), None);
        }
        assert_eq!(
            throttle.failed("ada@example.com"),
            Some(Duration::from_secs(30))
        );
        assert!(matches!(
            throttle.admit("ada@example.com", HOME),
            Err(Refusal::AccountLocked(_))
        ));
        assert_eq!(
            throttle.failed("ada@example.com"),
            Some(Duration::from_secs(60))
        );
        assert!(
            throttle.admit("bob@example.com", HOME).is_ok(),
            "other accounts are not affected"
        );
        throttle.succeeded("ada@example.com");
        assert!(throttle.admit("ada@example.com", HOME).is_ok());
    }

    #[test]
    fn the_lock_never_exceeds_fifteen_minutes() {
        let throttle = Throttle::default();
        let mut last = None;
        for _ in 0..30 {
            last = throttle.failed("x@example.com");
        }
        assert_eq!(last, Some(LONGEST_LOCK));
    }

    #[test]
    fn one_client_gets_twenty_attempts_a_minute() {
        let throttle = Throttle::default();
        let allowed = (0..30)
            .filter(|i| {
                throttle
                    .admit(&format!("user{i}@example.com"), HOME)
                    .is_ok()
            })
            .count();
        assert_eq!(allowed, PER_CLIENT_PER_MINUTE as usize);
        let elsewhere: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(throttle.admit("a@example.com", elsewhere).is_ok());
    }
}
