//! Group commit of delivery attempts: the deliveries running at once in a worker record their
//! attempts through one task that writes whatever has queued up in one transaction (one
//! commit, one fsync, for up to [`MAX_GROUP`] of them). Each handler still waits for its own
//! row to be written before its job is acknowledged; if a group's transaction fails, each of
//! its attempts is written on its own, so an error reaches the handler that caused it.

use crate::error::Result;
use crate::model::DeliveryState;
use crate::store::{AttemptRecord, Store};
use tokio::sync::{mpsc, oneshot};

/// Attempts written in one transaction at most.
pub const MAX_GROUP: usize = 256;

/// One attempt to record.
#[derive(Debug)]
pub struct Attempt {
    /// The broadcast.
    pub broadcast: String,
    /// The delivery's key.
    pub key: String,
    /// The state it moves to.
    pub state: DeliveryState,
    /// What happened.
    pub record: AttemptRecord,
}

struct Queued {
    attempt: Attempt,
    /// `Some(changed)` when the group was written; `None` when it was not.
    done: oneshot::Sender<Option<bool>>,
}

/// The recording task's handle.
#[derive(Debug, Clone)]
pub struct Recorder {
    queue: mpsc::UnboundedSender<Queued>,
    store: Store,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.attempt.fmt(f)
    }
}

impl Recorder {
    /// Start the task writing to `store` (it ends when every handle is dropped).
    pub fn start(store: Store) -> Recorder {
        let (queue, mut rx) = mpsc::unbounded_channel::<Queued>();
        let writer = store.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(q) => group.push(q),
                        Err(_) => break,
                    }
                }
                let attempts: Vec<&Attempt> = group.iter().map(|q| &q.attempt).collect();
                match writer.record_attempts(&attempts).await {
                    Ok(changed) => {
                        for (q, c) in group.into_iter().zip(changed) {
                            let _ = q.done.send(Some(c));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, attempts = group.len(), "recording a group of delivery attempts failed; each is written on its own");
                        for q in group {
                            let _ = q.done.send(None);
                        }
                    }
                }
            }
        });
        Recorder { queue, store }
    }

    /// Record `attempt` (see [`Store::record_attempt`]); true when the delivery was pending.
    pub async fn record(&self, attempt: Attempt) -> Result<bool> {
        let (done, written) = oneshot::channel();
        let fallback = Attempt {
            broadcast: attempt.broadcast.clone(),
            key: attempt.key.clone(),
            state: attempt.state,
            record: attempt.record.clone(),
        };
        if self.queue.send(Queued { attempt, done }).is_ok() {
            if let Ok(Some(changed)) = written.await {
                return Ok(changed);
            }
        }
        self.store
            .record_attempt(
                &fallback.broadcast,
                &fallback.key,
                fallback.state,
                &fallback.record,
            )
            .await
    }
}
