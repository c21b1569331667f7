//! The acker: records outcomes in batches. Whatever finished while the previous batch was being
//! written goes into the next one, so the number of Redis calls falls as throughput rises.
//! An outcome is retried until Redis takes it; the job's lease is kept alive meanwhile.

use crate::shared::{pause_after_error, Shared};
use celeriac_core::broker::Ack;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{error, warn};

/// Give up on an outcome after this many failed writes in a row (about two minutes); the job's
/// lease then expires and it runs again.
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
                let mut failures = 0;
                loop {
                    match shared
                        .broker
                        .ack(&queue, chunk, &shared.config.retention)
                        .await
                    {
                        Ok(rejected) => {
                            for id in &rejected {
                                warn!(job = %id, queue = %queue, "outcome rejected: the job was cancelled or its lease was taken back");
                            }
                            break;
                        }
                        Err(e) => {
                            failures += 1;
                            if failures >= MAX_FAILURES || shared.ack_deadline.is_cancelled() {
                                error!(queue = %queue, jobs = chunk.len(), error = %e, "giving up recording outcomes; these jobs will run again when their leases expire");
                                break;
                            }
                            error!(queue = %queue, jobs = chunk.len(), error = %e, "recording outcomes failed; retrying");
                            pause_after_error(failures, &shared.ack_deadline).await;
                        }
                    }
                }
                for ack in chunk {
                    shared.remove_lease(&queue, &ack.id);
                }
            }
        }
    }
}
