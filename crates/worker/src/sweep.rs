//! The sweeps, one loop each, run by every worker for the queues it serves:
//!
//! - **recover**: takes back jobs whose lease expired `worker.lease_grace` ago (their worker
//!   died, froze, or is cut off from Redis and has stopped the handler by then). A job lost
//!   `worker.max_deliveries` times goes dead with reason `worker_lost` instead of looping; a
//!   take-back whose worker comes back later does not count (see `absolve` in lib.lua). A
//!   worker never takes back the leases it holds itself.
//! - **promote**: moves delayed and retrying jobs whose time has come to the pending list.
//! - **janitor**: deletes finished jobs past their retention (age and count per queue), so
//!   Redis memory stays bounded at any throughput.

use crate::shared::{every, Shared};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

/// Which sweep.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sweep {
    Recover,
    Promote,
    Janitor,
}

impl Sweep {
    /// Most jobs one call handles (per index): a call that handles fewer means done for now.
    fn batch(self) -> usize {
        match self {
            Sweep::Recover => 500,
            Sweep::Promote | Sweep::Janitor => 1000,
        }
    }

    fn interval(self, shared: &Shared) -> Duration {
        let w = &shared.config.worker;
        match self {
            Sweep::Recover => w.recover_interval,
            Sweep::Promote => w.promote_interval,
            Sweep::Janitor => w.janitor_interval,
        }
    }

    fn operation(self) -> &'static str {
        match self {
            Sweep::Recover => "sweep expired leases",
            Sweep::Promote => "promote due jobs",
            Sweep::Janitor => "apply retention",
        }
    }

    /// One call for `queue`: how many jobs it handled.
    async fn once(self, shared: &Shared, queue: &str) -> celeriac_core::Result<usize> {
        let (w, core) = (&shared.config.worker, &shared.config.core);
        let n = match self {
            Sweep::Recover => {
                let r = shared
                    .broker
                    .recover(
                        queue,
                        w.max_deliveries,
                        self.batch(),
                        &core.retention,
                        w.lease_grace(),
                        &shared.worker_id,
                        &shared.tokens(queue),
                    )
                    .await?;
                if r.requeued + r.buried > 0 {
                    crate::metrics::recovered(queue, r.requeued, r.buried);
                    warn!(
                        queue,
                        requeued = r.requeued,
                        worker_lost = r.buried,
                        "took back jobs of lost workers"
                    );
                }
                r.requeued + r.buried
            }
            Sweep::Promote => {
                let n = shared.broker.promote(queue, self.batch()).await?;
                if n > 0 {
                    debug!(queue, jobs = n, "promoted due jobs");
                }
                n
            }
            Sweep::Janitor => {
                let n = shared
                    .broker
                    .janitor(queue, &core.retention, self.batch())
                    .await?;
                if n > 0 {
                    debug!(queue, jobs = n, "retention: deleted finished jobs");
                }
                n
            }
        };
        Ok(n as usize)
    }
}

pub(crate) async fn run(shared: Arc<Shared>, sweep: Sweep, stop: CancellationToken) {
    let period = sweep.interval(&shared);
    every(period, stop, || async {
        shared.probe.beat(sweep.operation(), period);
        for queue in &shared.config.worker.queues {
            loop {
                match sweep.once(&shared, queue).await {
                    Ok(n) => {
                        shared.health.ok();
                        if n < sweep.batch() {
                            break;
                        }
                    }
                    Err(e) if e.is_unreachable() => {
                        shared.redis_failed(sweep.operation(), &e);
                        break;
                    }
                    Err(e) => {
                        crate::metrics::redis_error(sweep.operation());
                        error!(queue = %queue, error = %e, "{} failed; retrying at the next interval", sweep.operation());
                        break;
                    }
                }
            }
        }
    })
    .await;
    // Stopped on purpose (shutdown): not a stalled loop.
    shared.probe.forget(sweep.operation());
}
