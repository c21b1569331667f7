//! Retry delays: exponential backoff with full jitter, or a fixed schedule.
//!
//! [`Backoff`]: the delay before attempt `n + 1` (after `n` failed attempts) is uniform in
//! `[0, min(cap, base * 2^(n-1))]`. Full jitter spreads retries of jobs that failed together
//! (a downstream outage) so they do not come back as a thundering herd.
//!
//! [`Schedule`]: the delay before attempt `n + 1` is entry `n` of a list (entry 0 is the first
//! attempt's, `0s`), moved by up to `jitter` of itself either way — Standard Webhooks' way, for
//! receivers that may be down for hours, where full jitter would spread retries too thinly.

use std::sync::Arc;
use std::time::Duration;

/// Backoff parameters for one job kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Upper bound of the first retry's delay.
    pub base: Duration,
    /// Upper bound of any delay.
    pub cap: Duration,
}

impl Backoff {
    /// The largest delay after `failed` failed attempts (1-based).
    pub fn ceiling(&self, failed: u32) -> Duration {
        let exp = failed.saturating_sub(1).min(63);
        let factor = 1u128 << exp;
        let base_ms = self.base.as_millis();
        let ms = base_ms.saturating_mul(factor).min(self.cap.as_millis());
        Duration::from_millis(ms.min(u64::MAX as u128) as u64)
    }

    /// A random delay in `[0, ceiling(failed)]`.
    pub fn delay(&self, failed: u32) -> Duration {
        let ceiling = self.ceiling(failed).as_millis() as u64;
        Duration::from_millis(fastrand::u64(0..=ceiling))
    }
}

/// A fixed retry schedule: when each attempt runs after the previous one failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Entry `n` (from 0) is the delay before attempt `n + 1`; entry 0, the first attempt's, is
    /// zero. Its length is the attempts a job gets.
    pub delays: Arc<[Duration]>,
    /// Fraction (0 to 1) by which each delay is moved either way at random.
    pub jitter: f64,
}

impl Schedule {
    /// The attempts the schedule gives: one per entry.
    pub fn attempts(&self) -> u32 {
        self.delays.len().min(u32::MAX as usize) as u32
    }

    /// The unjittered delay after `failed` failed attempts (1-based): entry `failed`, or the
    /// last entry when a job is allowed more attempts than the schedule lists.
    pub fn base(&self, failed: u32) -> Duration {
        self.delays
            .get(failed as usize)
            .or(self.delays.last())
            .copied()
            .unwrap_or_default()
    }

    /// The delay after `failed` failed attempts, moved by up to ±`jitter` of itself.
    pub fn delay(&self, failed: u32) -> Duration {
        let jitter = (fastrand::f64() * 2.0 - 1.0) * self.jitter.clamp(0.0, 1.0);
        self.base(failed).mul_f64((1.0 + jitter).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_schedule_runs_its_entries_then_repeats_the_last() {
        let s = Schedule {
            delays: [0, 5, 300].map(Duration::from_secs).into(),
            jitter: 0.0,
        };
        assert_eq!(s.attempts(), 3);
        assert_eq!(s.delay(1), Duration::from_secs(5));
        assert_eq!(s.delay(2), Duration::from_secs(300));
        assert_eq!(
            s.delay(9),
            Duration::from_secs(300),
            "past the end: the last entry"
        );
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        let c: Vec<u64> = (1..=6).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(c, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
    }

    proptest! {
        #[test]
        fn delay_is_within_bounds(base_ms in 0u64..100_000, cap_ms in 0u64..10_000_000, failed in 0u32..200) {
            let b = Backoff { base: Duration::from_millis(base_ms), cap: Duration::from_millis(cap_ms) };
            let d = b.delay(failed);
            prop_assert!(d <= b.ceiling(failed));
            prop_assert!(d <= b.cap);
        }

        #[test]
        fn ceiling_never_decreases(base_ms in 1u64..100_000, cap_ms in 1u64..10_000_000, failed in 1u32..100) {
            let b = Backoff { base: Duration::from_millis(base_ms), cap: Duration::from_millis(cap_ms) };
            prop_assert!(b.ceiling(failed) <= b.ceiling(failed + 1));
        }

        #[test]
        fn a_schedule_delay_is_within_its_jitter(entries in proptest::collection::vec(0u64..100_000_000, 1..20), jitter in 0.0f64..=1.0, failed in 1u32..30) {
            let s = Schedule { delays: entries.iter().map(|ms| Duration::from_millis(*ms)).collect(), jitter };
            let base = s.base(failed).as_secs_f64();
            let d = s.delay(failed).as_secs_f64();
            prop_assert!(d >= base * (1.0 - jitter) - 1e-6 && d <= base * (1.0 + jitter) + 1e-6, "{} not within {} ± {}", d, base, jitter);
        }
    }
}
