//! The janitor: deletes finished jobs past their retention (age and count per queue), so Redis
//! memory stays bounded at any throughput.

use crate::shared::{every, Shared};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

const BATCH: usize = 1000;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let w = &shared.config.worker;
    every(w.janitor_interval, stop, || async {
        for queue in &w.queues {
            loop {
                match shared.broker.janitor(queue, &shared.config.retention, BATCH).await {
                    Ok(n) => {
                        shared.health.ok();
                        if n > 0 {
                            debug!(queue = %queue, jobs = n, "retention: deleted finished jobs");
                        }
                        if (n as usize) < BATCH {
                            break;
                        }
                    }
                    Err(e) if e.is_unreachable() => {
                        shared.redis_failed("apply retention", &e);
                        break;
                    }
                    Err(e) => {
                        error!(queue = %queue, error = %e, "retention sweep failed; retrying at the next interval");
                        break;
                    }
                }
            }
        }
    })
    .await;
}
