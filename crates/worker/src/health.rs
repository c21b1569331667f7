//! Whether Redis answers, as seen by all of this worker's loops. A change is logged once, when
//! it happens (with what it means for the leases held); a long outage is recalled with growing
//! pauses instead of a line per failed call; and loops that back off are woken as soon as any
//! loop gets an answer again. When to log is decided by [`celeriac_core::outage::Outage`],
//! shared with `celeriac cron`.

use celeriac_core::outage::{Outage, Report};
use std::time::Duration;
use tracing::{error, info, warn};

#[derive(Default)]
pub(crate) struct RedisHealth {
    outage: Outage,
    /// Told whether Redis answers (readiness).
    probe: celeriac_core::probe::Probe,
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
        if let Some(ended) = self.outage.ok() {
            self.probe.set_redis_up(true);
            info!(
                down_s = format!("{:.1}", ended.down.as_secs_f64()),
                failed_calls = ended.failures,
                "Redis answers again"
            );
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
        match self.outage.failed() {
            Report::Started => {
                self.probe.set_redis_up(false);
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
            }
            Report::Ongoing { down, failures } => warn!(
                down_s = format!("{:.0}", down.as_secs_f64()),
                failed_calls = failures,
                operation,
                error = %err,
                leases_held = leases,
                "Redis still does not answer"
            ),
            Report::Quiet => {}
        }
    }

    /// Whether the last call failed.
    pub fn is_down(&self) -> bool {
        self.outage.is_down()
    }

    /// Resolves when Redis answers again (at once if the last call succeeded).
    pub async fn back(&self) {
        self.outage.back().await
    }
}
