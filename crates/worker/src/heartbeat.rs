//! The heartbeat: renews the leases of every job this worker holds and announces the worker.
//! A lease the renewal finds gone (operator cancel, or taken back after a freeze) stops its
//! handler.

use crate::shared::{every, Shared};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let period = shared.config.worker.heartbeat_interval;
    every(period, stop, || async {
        renew(&shared).await;
        announce(&shared).await;
    })
    .await;
}

async fn renew(shared: &Shared) {
    let mut by_queue: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    if let Ok(leases) = shared.leases.lock() {
        for ((queue, id), lease) in leases.iter() {
            by_queue
                .entry(queue.clone())
                .or_default()
                .push((id.clone(), lease.token));
        }
    }
    for (queue, leases) in by_queue {
        for chunk in leases.chunks(1000) {
            match shared
                .broker
                .extend(&queue, chunk, shared.config.worker.lease)
                .await
            {
                Ok(lost) => {
                    for id in lost {
                        warn!(job = %id, queue = %queue, "lease gone (cancelled or taken back); stopping the handler");
                        if let Ok(mut l) = shared.leases.lock() {
                            if let Some(lease) = l.remove(&(queue.clone(), id)) {
                                lease.lost.cancel();
                            }
                        }
                    }
                }
                Err(e) => {
                    error!(queue = %queue, error = %e, "lease renewal failed; retrying at the next heartbeat")
                }
            }
        }
    }
}

/// Write this worker's record (expires after three missed heartbeats).
pub(crate) async fn announce(shared: &Shared) {
    let w = &shared.config.worker;
    let fields = [
        ("host", shared.host.clone()),
        ("pid", std::process::id().to_string()),
        ("queues", w.queues.join(",")),
        ("concurrency", w.concurrency.to_string()),
        ("in_flight", shared.in_flight().to_string()),
        ("started_ms", shared.started_ms.to_string()),
    ];
    if let Err(e) = shared
        .broker
        .register_worker(&shared.worker_id, &fields, w.heartbeat_interval * 3)
        .await
    {
        error!(error = %e, "could not announce this worker");
    }
}
