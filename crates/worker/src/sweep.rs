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
use celeriac_core::broker::{Anomaly, AnomalyKind};
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
                report_found(queue, &r.found);
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
                let p = shared.broker.promote(queue, self.batch()).await?;
                report_found(queue, &p.found);
                if p.moved > 0 {
                    debug!(queue, jobs = p.moved, "promoted due jobs");
                }
                // Ids handled without being moved count too: a full call means more to do.
                p.moved + p.found.len() as u64
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

/// Log, once each, what a script found that no Celeriac script writes: it is already counted
/// and kept where operators see it (`celeriac queues`, `jobs strays`, the dead set).
pub(crate) fn report_found(queue: &str, found: &[Anomaly]) {
    for a in found {
        let (job, index, detail) = (&a.id, &a.index, &a.detail);
        match a.what {
            AnomalyKind::DeadLettered => warn!(
                queue, job, index, error = %detail,
                "job id with no usable record dead-lettered (schema_error)"
            ),
            AnomalyKind::WrongType => warn!(
                queue, job, index, key_type = %detail,
                "stray: the job key is a Redis {detail}, not a hash (written with SET instead of HSET?); left alone and listed by `celeriac jobs strays --queue {queue}`"
            ),
            AnomalyKind::WrongIndex => warn!(
                queue, job, index, state = %detail,
                "stray: the record says {detail} but its id was in {index}, and it is in no index of its own state; left alone and listed by `celeriac jobs strays --queue {queue}`"
            ),
        }
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
