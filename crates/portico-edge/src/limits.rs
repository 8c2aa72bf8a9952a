//! Per-client request rates (governor's keyed GCRA limiters, one cell per address): one for
//! every request, a stricter one for sign-in attempts. A refused request learns when to come
//! back (`Retry-After`). Addresses not seen for a while are forgotten by a housekeeping task,
//! so a scan from many addresses does not grow memory for good.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use portico_core::LimitsConfig;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// How often idle addresses are dropped from the limiters.
const HOUSEKEEPING: Duration = Duration::from_secs(60);

pub struct RateLimits {
    all: Option<DefaultKeyedRateLimiter<IpAddr>>,
    sign_in: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(limits: &LimitsConfig) -> Arc<RateLimits> {
        let all = NonZeroU32::new(limits.requests_per_second).map(|rate| {
            let burst = NonZeroU32::new(limits.burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let sign_in = NonZeroU32::new(limits.sign_in_per_minute)
            .map(|rate| RateLimiter::keyed(Quota::per_minute(rate)));
        let rates = Arc::new(RateLimits {
            all,
            sign_in,
            clock: DefaultClock::default(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&rates);
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(HOUSEKEEPING);
                loop {
                    tick.tick().await;
                    let Some(rates) = weak.upgrade() else { return };
                    for limiter in [&rates.all, &rates.sign_in].into_iter().flatten() {
                        limiter.retain_recent();
                        limiter.shrink_to_fit();
                    }
                }
            });
        }
        rates
    }

    /// `Err(wait)` when `client` must wait before its next request.
    pub fn admit(&self, client: IpAddr) -> Result<(), Duration> {
        self.check(&self.all, client)
    }

    /// The same for a sign-in attempt.
    pub fn admit_sign_in(&self, client: IpAddr) -> Result<(), Duration> {
        self.check(&self.sign_in, client)
    }

    fn check(
        &self,
        limiter: &Option<DefaultKeyedRateLimiter<IpAddr>>,
        client: IpAddr,
    ) -> Result<(), Duration> {
        match limiter {
            Some(limiter) => limiter
                .check_key(&client.to_canonical())
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
            None => Ok(()),
        }
    }
}
