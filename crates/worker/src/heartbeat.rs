//! The heartbeat: renews the leases of every job this worker holds and announces the worker.
//! A lease the renewal finds gone (operator cancel, or taken back after a freeze) stops its
//! handler. Each call waits at most one heartbeat period (or `redis_timeout` if shorter), so a
//! stalled connection costs one renewal, not the lease: the next tick tries a fresh connection.

use crate::shared::{Lease, Shared};
use celeriac_core::broker::{Refusal, Renewal};
use celeriac_core::Broker;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// While Redis does not answer, renewals are tried again this often (not once per heartbeat),
/// and at once when another loop gets an answer: a lease must be renewed as soon as the link
/// is back.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let period = shared.config.worker.heartbeat_interval;
    let broker = shared
        .broker
        .with_timeout(period.min(shared.config.core.redis_timeout));
    loop {
        let started = Instant::now();
        shared.probe.beat("heartbeat", period);
        // Renewals first: they are what keeps running jobs on this worker. While Redis does not
        // answer, the rest waits.
        let answered = renew(&shared, &broker).await;
        if answered {
            check_epoch(&shared, &broker).await;
            announce_with(&shared, &broker).await;
        }
        let pause = if answered {
            period.saturating_sub(started.elapsed())
        } else {
            period.min(RETRY_PAUSE)
        };
        tokio::select! {
            _ = stop.cancelled() => {
                shared.probe.forget("heartbeat");
                return;
            }
            _ = tokio::time::sleep(pause) => {}
            _ = shared.health.back(), if !answered => {}
        }
    }
}

/// Detect a Redis that lost its data (restarted without persistence, failed over to an empty
/// replica, flushed): its epoch key is gone or different. Every lease this worker holds then
/// points at nothing, so they are all dropped and their handlers stopped.
async fn check_epoch(shared: &Shared, broker: &Broker) {
    let current = match broker.epoch().await {
        Ok(e) => {
            shared.health.ok();
            e
        }
        Err(e) => {
            shared.redis_failed("read the dataset epoch", &e);
            return;
        }
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
        Ok(mut l) => l
            .drain()
            .into_iter()
            .map(|(queue, lease)| {
                crate::metrics::in_flight(&queue, -1.0);
                lease
            })
            .collect(),
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

/// Renew every lease held; false if Redis did not answer.
async fn renew(shared: &Shared, broker: &Broker) -> bool {
    let mut by_queue: BTreeMap<String, Vec<Renewal>> = BTreeMap::new();
    if let Ok(leases) = shared.leases.lock() {
        for (queue, id, lease) in leases.iter() {
            by_queue
                .entry(queue.to_string())
                .or_default()
                .push(Renewal {
                    id: id.to_string(),
                    token: lease.token,
                    progress: lease.progress.take(),
                });
        }
    }
    let lease = shared.config.worker.lease;
    let mut answered = true;
    for (queue, leases) in by_queue {
        for chunk in leases.chunks(1000) {
            let sent = Instant::now();
            match broker.extend(&queue, chunk, lease).await {
                Ok(refused) => {
                    shared.health.ok();
                    for r in chunk {
                        if !refused.iter().any(|(id, _)| *id == r.id) {
                            if let Some(l) = shared.lease(&queue, &r.id, r.token) {
                                l.renewed(sent + lease);
                            }
                        }
                    }
                    for (id, why) in refused {
                        let Some(token) = chunk.iter().find(|r| r.id == id).map(|r| r.token) else {
                            continue;
                        };
                        // Only the delivery this renewal was about: the same job may have been
                        // fetched again (a new token) meanwhile.
                        let Some(l) = shared.remove_lease(&queue, &id, token) else {
                            continue;
                        };
                        l.lost.cancel();
                        if l.is_finished() {
                            // Its outcome is with the acker, which reports what Redis says.
                            debug!(job = %id, queue = %queue, "lease ended while the outcome was being recorded");
                        } else if why == Refusal::CutOff {
                            info!(job = %id, queue = %queue, "job taken back while this worker was cut off from Redis (not counted as a crash); stopping the handler");
                        } else {
                            warn!(job = %id, queue = %queue, "lease gone (cancelled or taken back); stopping the handler");
                        }
                    }
                }
                Err(e) => {
                    if e.is_unreachable() {
                        shared.redis_failed("renew leases", &e);
                        answered = false;
                    } else {
                        crate::metrics::redis_error("renew leases");
                        error!(queue = %queue, error = %e, "lease renewal failed; retrying at the next heartbeat");
                    }
                    // Progress not stored goes back, to be sent with the next renewal.
                    for r in chunk {
                        if let (Some(l), Some(_)) =
                            (shared.lease(&queue, &r.id, r.token), &r.progress)
                        {
                            l.progress.restore();
                        }
                    }
                }
            }
        }
    }
    answered
}

/// Write this worker's record (expires after three missed heartbeats).
pub(crate) async fn announce(shared: &Shared) {
    announce_with(shared, &shared.broker).await
}

async fn announce_with(shared: &Shared, broker: &Broker) {
    let w = &shared.config.worker;
    let fields = [
        ("host", shared.host.clone()),
        ("pid", std::process::id().to_string()),
        ("queues", w.queues.join(",")),
        ("concurrency", w.concurrency.to_string()),
        ("in_flight", shared.in_flight().to_string()),
        ("started_ms", shared.started_ms.to_string()),
    ];
    match broker
        .register_worker(&shared.worker_id, &fields, w.heartbeat_interval * 3)
        .await
    {
        Ok(()) => shared.health.ok(),
        Err(e) if e.is_unreachable() => shared.redis_failed("announce this worker", &e),
        Err(e) => {
            crate::metrics::redis_error("announce this worker");
            error!(error = %e, "could not announce this worker")
        }
    }
}
