//! Batches (ADR 0010): a parent creates child jobs in chunks, each chunk atomic; the batch counts
//! each child's first final state once and completes exactly once, enqueueing its completion
//! job in the same step. The batch record lives in the children's queue (one Cluster slot).

use super::{Broker, NewJob, ENQUEUE_CHUNK};
use crate::error::{Error, Result};
use crate::scripts;
use std::time::Duration;

/// What adding children did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchAdded {
    /// Children created now (counted in the batch's total).
    pub added: u64,
    /// Children that were there already (an earlier try of the same chunk).
    pub existing: u64,
    /// Ids that exist but belong to no batch or to another one: not added.
    pub foreign: u64,
}

/// A batch's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchCounts {
    /// Children.
    pub total: u64,
    /// Children not yet counted in a final state.
    pub pending: u64,
    /// Children whose first final state was `succeeded`.
    pub succeeded: u64,
    /// … `dead`.
    pub dead: u64,
    /// … `cancelled`.
    pub cancelled: u64,
    /// When the batch was created, Unix ms (Redis clock).
    pub created_at_ms: u64,
    /// When it completed (every child counted, sealed), Unix ms.
    pub completed_at_ms: Option<u64>,
    /// Sealed: no child can be added any more (a parent that runs again after sealing has
    /// added them all).
    pub sealed: bool,
}

impl BatchCounts {
    fn from_reply(r: &[u64]) -> BatchCounts {
        let at = |i: usize| r.get(i).copied().unwrap_or(0);
        let counted = at(1) + at(2) + at(3);
        BatchCounts {
            total: at(0),
            pending: at(0).saturating_sub(counted),
            succeeded: at(1),
            dead: at(2),
            cancelled: at(3),
            created_at_ms: at(4),
            completed_at_ms: Some(at(5)).filter(|&t| t > 0),
            sealed: at(6) > 0,
        }
    }
}

impl Broker {
    /// Add children (`jobs`, all of `queue`) to batch `batch`: one script call per chunk of
    /// [`ENQUEUE_CHUNK`], each atomic. `open_ttl` bounds the life of a batch never sealed.
    pub async fn batch_add(
        &self,
        queue: &str,
        batch: &str,
        jobs: &[NewJob],
        open_ttl: Duration,
    ) -> Result<BatchAdded> {
        if let Some(j) = jobs.iter().find(|j| j.envelope.queue != queue) {
            return Err(Error::InvalidQueue {
                name: j.envelope.queue.clone(),
                reason: "every child of a batch is on the batch's queue",
            });
        }
        let k = &self.keys;
        // Known to the inspector (and `celeriac queues`) like a queue any enqueue reaches.
        if !jobs.is_empty() {
            redis::cmd("SADD")
                .arg(k.queues())
                .arg(queue)
                .query_async::<()>(&mut self.con.clone())
                .await?;
        }
        let mut total = BatchAdded::default();
        for chunk in jobs.chunks(ENQUEUE_CHUNK) {
            let mut inv = scripts::BATCH_ADD.prepare_invoke();
            inv.key(k.pending(queue))
                .key(k.scheduled(queue))
                .key(k.wake(queue))
                .key(k.batch(queue, batch))
                .arg(k.queue_base(queue))
                .arg(batch)
                .arg(open_ttl.as_millis() as u64);
            for job in chunk {
                let at = job
                    .run_at_ms
                    .or(job.envelope.run_at)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                inv.arg(&job.envelope.id).arg(&job.body).arg(at);
            }
            let (added, existing, foreign): (u64, u64, u64) =
                inv.invoke_async(&mut self.con.clone()).await?;
            total.added += added;
            total.existing += existing;
            total.foreign += foreign;
        }
        Ok(total)
    }

    /// Seal batch `batch` of `queue`: no child can be added any more; when every child has
    /// reached a final state, `on_complete` (a job of `queue`) is enqueued, once. Sealing again
    /// changes nothing. `done_ttl` is how long the completed record is kept.
    pub async fn batch_seal(
        &self,
        queue: &str,
        batch: &str,
        on_complete: Option<&NewJob>,
        done_ttl: Duration,
        open_ttl: Duration,
    ) -> Result<BatchCounts> {
        if let Some(j) = on_complete.filter(|j| j.envelope.queue != queue) {
            return Err(Error::InvalidQueue {
                name: j.envelope.queue.clone(),
                reason: "a batch's completion job is on the batch's queue",
            });
        }
        let k = &self.keys;
        let reply: Vec<u64> = scripts::BATCH_SEAL
            .key(k.batch(queue, batch))
            .key(k.pending(queue))
            .key(k.wake(queue))
            .arg(k.queue_base(queue))
            .arg(batch)
            .arg(on_complete.map_or("", |j| j.envelope.id.as_str()))
            .arg(on_complete.map_or("", |j| j.body.as_str()))
            .arg(done_ttl.as_millis() as u64)
            .arg(open_ttl.as_millis() as u64)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(BatchCounts {
            sealed: true,
            ..BatchCounts::from_reply(&reply)
        })
    }

    /// Note on the record of job `parent_id` of `parent_queue` that it creates batch `batch`
    /// of `queue` (needed only when the batch's id is not the parent's). `false` when the
    /// parent's record does not exist (nothing is written then).
    pub async fn batch_parent(
        &self,
        parent_queue: &str,
        parent_id: &str,
        queue: &str,
        batch: &str,
    ) -> Result<bool> {
        let noted: u32 = scripts::BATCH_PARENT
            .key(self.keys.job(parent_queue, parent_id))
            .arg(queue)
            .arg(batch)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(noted == 1)
    }

    /// Batch `batch` of `queue`, if it exists.
    pub async fn batch(&self, queue: &str, batch: &str) -> Result<Option<BatchCounts>> {
        let f: Vec<Option<u64>> = redis::cmd("HMGET")
            .arg(self.keys.batch(queue, batch))
            .arg(&[
                "total",
                "succeeded",
                "dead",
                "cancelled",
                "created_at",
                "completed_at",
                "sealed",
            ])
            .query_async(&mut self.con.clone())
            .await?;
        if f.iter().all(Option::is_none) {
            return Ok(None);
        }
        let r: Vec<u64> = f.into_iter().map(|v| v.unwrap_or(0)).collect();
        Ok(Some(BatchCounts::from_reply(&r)))
    }
}
