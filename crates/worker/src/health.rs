//! Whether Redis answers, as seen by all of this worker's loops. A change is logged once, when
//! it happens (with what it means for the leases held); a long outage is recalled with growing
//! pauses instead of a line per failed call; and loops that back off are woken as soon as any
//! loop gets an answer again.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{error, info, warn};

/// First reminder of an ongoing outage; the pause doubles up to [`MAX_REMINDER_GAP`].
const FIRST_REMINDER_GAP: Duration = Duration::from_secs(5);
const MAX_REMINDER_GAP: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct RedisHealth {
    state: Mutex<State>,
    back: Notify,
    /// Told whether Redis answers (readiness).
    probe: celeriac_core::probe::Probe,
}

#[derive(Default)]
struct State {
    /// When the first failed call of the current outage happened.
    down_since: Option<Instant>,
    failures: u64,
    next_reminder: Option<Instant>,
    gap: Duration,
}

impl RedisHealth {
    /// A tracker that tells `probe` whether Redis answers.
    pub fn new(probe: celeriac_core::probe::Probe) -> RedisHealth {
        RedisHealth {
            probe,
            ..RedisHealth::default()
        }
    }

    /// A call succeeded.
    pub fn ok(&self) {
        let was_down = {
            let Ok(mut s) = self.state.lock() else { return };
            let since = s.down_since.take();
            let failures = std::mem::take(&mut s.failures);
            since.map(|t| (t.elapsed(), failures))
        };
        if let Some((down, failures)) = was_down {
            self.probe.set_redis_up(true);
            info!(
                down_s = format!("{:.1}", down.as_secs_f64()),
                failed_calls = failures,
                "Redis answers again"
            );
            self.back.notify_waiters();
        }
    }

    /// A call failed. `leases` is how many leases this worker holds and `left` how long until
    /// the first of them expires unless renewed.
    pub fn failed(
        &self,
        operation: &str,
        err: &celeriac_core::Error,
        leases: usize,
        left: Option<Duration>,
    ) {
        let Ok(mut s) = self.state.lock() else { return };
        s.failures += 1;
        let now = Instant::now();
        let Some(since) = s.down_since else {
            self.probe.set_redis_up(false);
            s.down_since = Some(now);
            s.gap = FIRST_REMINDER_GAP;
            s.next_reminder = Some(now + s.gap);
            drop(s);
            match left {
                Some(left) => error!(
                    operation,
                    error = %err,
                    leases_held = leases,
                    lease_left_ms = left.as_millis() as u64,
                    "Redis does not answer; the leases held expire unless one renewal gets through in time, and their handlers are then stopped"
                ),
                None => error!(operation, error = %err, "Redis does not answer; retrying"),
            }
            return;
        };
        if s.next_reminder.is_some_and(|t| now >= t) {
            s.gap = (s.gap * 2).min(MAX_REMINDER_GAP);
            s.next_reminder = Some(now + s.gap);
            let failures = s.failures;
            drop(s);
            warn!(
                down_s = format!("{:.0}", since.elapsed().as_secs_f64()),
                failed_calls = failures,
                operation,
                error = %err,
                leases_held = leases,
                "Redis still does not answer"
            );
        }
    }

    /// Whether the last call failed.
    pub fn is_down(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.down_since.is_some())
    }

    /// Resolves when Redis answers again (at once if the last call succeeded).
    pub async fn back(&self) {
        let notified = self.back.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_down() {
            return;
        }
        notified.await
    }
}
