//! The recoverer: takes back jobs whose lease expired `worker.lease_grace` ago (their worker
//! died, froze, or is cut off from Redis and has stopped the handler by then). A job lost
//! `worker.max_deliveries` times goes dead with reason `worker_lost` instead of looping; a
//! take-back whose worker comes back later does not count (see `absolve` in lib.lua).

use crate::shared::{every, Shared};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

const BATCH: usize = 500;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let w = &shared.config.worker;
    every(w.recover_interval, stop, || async {
        for queue in &w.queues {
            loop {
                match shared
                    .broker
                    .recover(
                        queue,
                        w.max_deliveries,
                        BATCH,
                        &shared.config.retention,
                        w.lease_grace(),
                        &shared.worker_id,
                        &shared.tokens(queue),
                    )
                    .await
                {
                    Ok(r) => {
                        shared.health.ok();
                        if r.requeued + r.buried > 0 {
                            warn!(queue = %queue, requeued = r.requeued, worker_lost = r.buried, "took back jobs of lost workers");
                        }
                        if ((r.requeued + r.buried) as usize) < BATCH {
                            break;
                        }
                    }
                    Err(e) if e.is_unreachable() => {
                        shared.redis_failed("sweep expired leases", &e);
                        break;
                    }
                    Err(e) => {
                        error!(queue = %queue, error = %e, "recovery sweep failed; retrying at the next interval");
                        break;
                    }
                }
            }
        }
    })
    .await;
}
