//! Retry delays: exponential backoff with full jitter.
//!
//! The delay before attempt `n + 1` (after `n` failed attempts) is uniform in
//! `[0, min(cap, base * 2^(n-1))]`. Full jitter spreads retries of jobs that failed together
//! (a downstream outage) so they do not come back as a thundering herd.

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    }
}
