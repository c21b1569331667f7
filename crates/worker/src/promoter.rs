//! The promoter: moves delayed and retrying jobs whose time has come to the pending list.

use crate::shared::{every, Shared};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

const BATCH: usize = 1000;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let w = &shared.config.worker;
    every(w.promote_interval, stop, || async {
        for queue in &w.queues {
            loop {
                match shared.broker.promote(queue, BATCH).await {
                    Ok(n) => {
                        shared.health.ok();
                        if n > 0 {
                            debug!(queue = %queue, jobs = n, "promoted due jobs");
                        }
                        // Each index gives at most BATCH; fewer than that in total means done.
                        if (n as usize) < BATCH {
                            break;
                        }
                    }
                    Err(e) if e.is_unreachable() => {
                        shared.redis_failed("promote due jobs", &e);
                        break;
                    }
                    Err(e) => {
                        error!(queue = %queue, error = %e, "promotion failed; retrying at the next interval");
                        break;
                    }
                }
            }
        }
    })
    .await;
}
