//! The heartbeat: renews the leases of every job this worker holds and announces the worker.
//! A lease the renewal finds gone (operator cancel, or taken back after a freeze) stops its
//! handler.

use crate::shared::{every, Lease, Shared};
use celeriac_core::broker::Renewal;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let period = shared.config.worker.heartbeat_interval;
    every(period, stop, || async {
        check_epoch(&shared).await;
        renew(&shared).await;
        announce(&shared).await;
    })
    .await;
}

/// Detect a Redis that lost its data (restarted without persistence, failed over to an empty
/// replica, flushed): its epoch key is gone or different. Every lease this worker holds then
/// points at nothing, so they are all dropped and their handlers stopped.
async fn check_epoch(shared: &Shared) {
    let current = match shared.broker.epoch().await {
        Ok(e) => e,
        Err(_) => return, // Redis unreachable: the other loops report it
    };
    let ours = shared.epoch.lock().map(|e| e.clone()).unwrap_or_default();
    if current.as_deref() == Some(ours.as_str()) {
        return;
    }
    if ours.is_empty() {
        // Not known yet (it could not be set at start): adopt the dataset's epoch.
        if let Ok(e) = shared.broker.ensure_epoch().await {
            if let Ok(mut mine) = shared.epoch.lock() {
                *mine = e;
            }
        }
        return;
    }
    let dropped: Vec<Lease> = match shared.leases.lock() {
        Ok(mut l) => l.drain().map(|(_, lease)| lease).collect(),
        Err(_) => Vec::new(),
    };
    for lease in &dropped {
        lease.lost.cancel();
    }
    let new = match shared.broker.ensure_epoch().await {
        Ok(e) => e,
        Err(e) => {
            error!(error = %e, "could not set a new dataset epoch");
            return;
        }
    };
    error!(
        previous_epoch = %ours,
        epoch = %new,
        dropped_leases = dropped.len(),
        "REDIS LOST ITS DATA: the dataset epoch changed (Redis restarted without persistence, failed over to an empty replica, or was flushed). Jobs stored before are gone; this worker dropped every lease it held and goes on with the new dataset"
    );
    let _ = shared
        .broker
        .register_queues(&shared.config.worker.queues)
        .await;
    if let Err(e) = shared
        .broker
        .record_data_loss(&shared.worker_id, &ours, &new)
        .await
    {
        error!(error = %e, "could not record the data loss for operators");
    }
    if let Ok(mut e) = shared.epoch.lock() {
        *e = new;
    }
}

async fn renew(shared: &Shared) {
    let mut by_queue: BTreeMap<String, Vec<Renewal>> = BTreeMap::new();
    if let Ok(leases) = shared.leases.lock() {
        for ((queue, id), lease) in leases.iter() {
            by_queue.entry(queue.clone()).or_default().push(Renewal {
                id: id.clone(),
                token: lease.token,
                progress: lease.progress.take(),
            });
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
                        let sent = chunk.iter().find(|r| r.id == id).map(|r| r.token);
                        let key = (queue.clone(), id.clone());
                        if let Ok(mut l) = shared.leases.lock() {
                            // Only the delivery this renewal was about: the same job may have
                            // been fetched again (a new token) meanwhile.
                            if l.get(&key).is_some_and(|lease| Some(lease.token) == sent) {
                                if let Some(lease) = l.remove(&key) {
                                    warn!(job = %id, queue = %queue, "lease gone (cancelled or taken back); stopping the handler");
                                    lease.lost.cancel();
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    error!(queue = %queue, error = %e, "lease renewal failed; retrying at the next heartbeat");
                    // Progress not stored goes back, to be sent with the next renewal.
                    if let Ok(leases) = shared.leases.lock() {
                        for r in chunk {
                            if let (Some(lease), Some(p)) =
                                (leases.get(&(queue.clone(), r.id.clone())), &r.progress)
                            {
                                lease.progress.restore(p.clone());
                            }
                        }
                    }
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
