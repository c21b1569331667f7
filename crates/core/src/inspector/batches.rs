//! Batches (ADR 0010) as operators see them: the batch a parent job created, found by its id.

use super::types::BatchInfo;
use super::Inspector;
use crate::error::Result;
use crate::keys;

impl Inspector {
    /// The batch `id` (by convention the id of the parent job that created it). A batch lives
    /// in the queue of its children, which need not be the parent's: `first` (the parent's
    /// queue) is looked at first, then every known queue. `None` when no queue holds one.
    pub async fn batch(&self, id: &str, first: Option<&str>) -> Result<Option<BatchInfo>> {
        self.find_batch(id, first).await
    }

    /// The batch job `job` created: the one noted on its record when it gave the batch another
    /// id ([`super::types::JobInfo::spawned`]), else the batch of its own id.
    pub async fn batch_of(&self, job: &super::types::JobInfo) -> Result<Option<BatchInfo>> {
        match &job.spawned {
            Some(b) => self.find_batch(&b.id, Some(&b.queue)).await,
            None => self.find_batch(&job.id, Some(&job.queue)).await,
        }
    }

    async fn find_batch(&self, id: &str, first: Option<&str>) -> Result<Option<BatchInfo>> {
        if keys::validate_id(id).is_err() {
            return Ok(None);
        }
        let mut queues: Vec<String> = first.map(str::to_string).into_iter().collect();
        for q in self.queue_names().await? {
            if Some(q.as_str()) != first {
                queues.push(q);
            }
        }
        // One command per queue: batches of different queues live in different slots.
        for q in queues {
            if let Some(counts) = self.broker.batch(&q, id).await? {
                return Ok(Some(BatchInfo::new(id.to_string(), q, counts)));
            }
        }
        Ok(None)
    }
}
