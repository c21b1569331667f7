//! The acker: records outcomes in batches. Whatever finished while the previous batch was being
//! written goes into the next one, so the number of Redis calls falls as throughput rises.
//! An outcome is retried until Redis takes it; the job's lease is kept alive meanwhile. Each
//! write carries a deadline (ADR 0011), so a try abandoned on a timeout never lands after the
//! next one.

use crate::shared::{pause_after_error, Shared};
use celeriac_core::broker::{Ack, Refusal};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, error, info, warn};

/// Give up on an outcome after this many writes in a row that Redis answered with an error
/// (not counting calls that got no answer: those are retried for as long as the process
/// lives, so an outage loses no outcome). The job's lease then expires and it runs again.
const MAX_FAILURES: u32 = 30;

/// One outcome to record.
#[derive(Debug)]
pub(crate) struct AckMsg {
    pub queue: String,
    pub ack: Ack,
}

pub(crate) async fn run(shared: Arc<Shared>, mut rx: UnboundedReceiver<AckMsg>) {
    let max = shared.config.worker.batch_size;
    while let Some(first) = rx.recv().await {
        let mut by_queue: BTreeMap<String, Vec<Ack>> = BTreeMap::new();
        by_queue.entry(first.queue).or_default().push(first.ack);
        let mut n = 1;
        while n < max * 4 {
            match rx.try_recv() {
                Ok(m) => {
                    by_queue.entry(m.queue).or_default().push(m.ack);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        for (queue, acks) in by_queue {
            for chunk in acks.chunks(max) {
                record(&shared, &queue, chunk).await;
                for ack in chunk {
                    shared.remove_lease(&queue, &ack.id, ack.token);
                }
            }
        }
    }
}

async fn record(shared: &Shared, queue: &str, chunk: &[Ack]) {
    let (mut failures, mut tries) = (0, 0);
    loop {
        let result = shared
            .broker
            .ack(queue, chunk, &shared.config.core.retention)
            .await;
        match result {
            Ok(refused) => {
                shared.health.ok();
                for (id, why) in &refused {
                    match why {
                        Refusal::Gone => {
                            warn!(job = %id, queue = %queue, "outcome rejected: the job was cancelled or its lease was taken back")
                        }
                        Refusal::CutOff => {
                            info!(job = %id, queue = %queue, "outcome rejected: the job was taken back while this worker was cut off from Redis (not counted as a crash)")
                        }
                        Refusal::Already => {
                            debug!(job = %id, queue = %queue, "outcome already recorded by an earlier try")
                        }
                    }
                }
                return;
            }
            Err(e) => {
                if shared.ack_deadline.is_cancelled() {
                    error!(queue = %queue, jobs = chunk.len(), error = %e, "giving up recording outcomes at exit; these jobs will run again when their leases expire");
                    return;
                }
                if e.is_unreachable() {
                    shared.redis_failed("record outcomes", &e);
                } else {
                    failures += 1;
                    if failures >= MAX_FAILURES {
                        error!(queue = %queue, jobs = chunk.len(), error = %e, "giving up recording outcomes; these jobs will run again when their leases expire");
                        return;
                    }
                    crate::metrics::redis_error("record outcomes");
                    error!(queue = %queue, jobs = chunk.len(), error = %e, "recording outcomes failed; retrying");
                }
                tries += 1;
                pause_after_error(tries, &shared.health, &shared.ack_deadline).await;
            }
        }
    }
}
