//! When to add or remove a replica (the autoscaler's decision, kept free of I/O so it can be
//! tested by itself). Out as soon as the sessions need more replicas than run — before they
//! are full, by `target_utilization` — and in only after fewer replicas have sufficed for the
//! whole `scale_down_delay`, one replica at a time, never outside [min, max].

use portico_core::ScaleSpec;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Hold,
    /// Start replicas until this many run.
    Out(u32),
    /// Stop one idle replica.
    In,
}

pub struct Scaler {
    spec: ScaleSpec,
    /// Since when fewer replicas would have done.
    surplus_since: Option<Instant>,
}

impl Scaler {
    pub fn new(spec: ScaleSpec) -> Scaler {
        Scaler {
            spec,
            surplus_since: None,
        }
    }

    pub fn spec(&self) -> &ScaleSpec {
        &self.spec
    }

    pub fn decide(&mut self, sessions: usize, running: u32, now: Instant) -> Decision {
        let needed = self.spec.replicas_for(sessions);
        if needed > running {
            self.surplus_since = None;
            return Decision::Out(needed);
        }
        if needed == running {
            self.surplus_since = None;
            return Decision::Hold;
        }
        let since = *self.surplus_since.get_or_insert(now);
        if now.duration_since(since) >= self.spec.scale_down_delay {
            // The next step down waits a whole delay again.
            self.surplus_since = Some(now);
            Decision::In
        } else {
            Decision::Hold
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec() -> ScaleSpec {
        ScaleSpec {
            min: 1,
            max: 3,
            sessions_per_replica: 2,
            target_utilization: 1.0,
            scale_down_delay: Duration::from_secs(60),
            warm: 0,
            idle_timeout: Duration::from_secs(300),
            start_wait: Duration::from_secs(60),
        }
    }

    #[test]
    fn an_app_may_sleep_and_wakes_on_demand_or_keeps_warm_spares() {
        let sleeping = ScaleSpec {
            min: 0,
            max: 1,
            ..spec()
        };
        let mut scaler = Scaler::new(sleeping.clone());
        let t0 = Instant::now();
        assert_eq!(
            scaler.decide(0, 0, t0),
            Decision::Hold,
            "asleep, nobody there"
        );
        assert_eq!(
            scaler.decide(1, 0, t0),
            Decision::Out(1),
            "a request wakes it"
        );
        assert_eq!(scaler.decide(0, 1, t0), Decision::Hold);
        assert_eq!(
            scaler.decide(0, 1, t0 + Duration::from_secs(60)),
            Decision::In,
            "back to sleep after the delay"
        );

        let mut warm = Scaler::new(ScaleSpec {
            warm: 1,
            max: 3,
            ..sleeping
        });
        assert_eq!(warm.decide(0, 0, t0), Decision::Out(1), "a spare at once");
        assert_eq!(
            warm.decide(1, 1, t0),
            Decision::Out(2),
            "a session takes it: another spare"
        );
        assert_eq!(warm.decide(6, 3, t0), Decision::Hold, "never above max");
    }

    #[test]
    fn out_at_once_in_after_the_delay_one_at_a_time_within_bounds() {
        let mut scaler = Scaler::new(spec());
        let t0 = Instant::now();
        assert_eq!(scaler.decide(0, 1, t0), Decision::Hold);
        assert_eq!(scaler.decide(3, 1, t0), Decision::Out(2));
        assert_eq!(scaler.decide(5, 2, t0), Decision::Out(3));
        assert_eq!(scaler.decide(50, 3, t0), Decision::Hold, "never above max");
        assert_eq!(scaler.decide(0, 3, t0), Decision::Hold, "the delay starts");
        let later = t0 + Duration::from_secs(59);
        assert_eq!(scaler.decide(0, 3, later), Decision::Hold);
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(scaler.decide(0, 3, t1), Decision::In);
        assert_eq!(
            scaler.decide(0, 2, t1 + Duration::from_secs(1)),
            Decision::Hold
        );
        assert_eq!(
            scaler.decide(0, 2, t1 + Duration::from_secs(60)),
            Decision::In
        );
        assert_eq!(
            scaler.decide(0, 1, t1 + Duration::from_secs(600)),
            Decision::Hold,
            "never below min"
        );
    }

    #[test]
    fn a_returning_session_cancels_the_pending_scale_in() {
        let mut scaler = Scaler::new(spec());
        let t0 = Instant::now();
        assert_eq!(scaler.decide(1, 2, t0), Decision::Hold);
        assert_eq!(
            scaler.decide(3, 2, t0 + Duration::from_secs(30)),
            Decision::Hold
        );
        assert_eq!(
            scaler.decide(1, 2, t0 + Duration::from_secs(61)),
            Decision::Hold,
            "the delay started again"
        );
    }

    #[test]
    fn target_utilization_scales_out_before_replicas_are_full() {
        let spec = ScaleSpec {
            target_utilization: 0.5,
            max: 10,
            ..spec()
        };
        // 2 sessions per replica at 50 %: one session fills a replica's share.
        assert_eq!(spec.replicas_for(3), 3);
        assert_eq!(spec.replicas_for(0), 1);
    }
}
