//! Batches of child jobs (ADR 0010): a parent creates its children in chunks, each chunk
//! atomic, then seals the batch; when every child has reached a final state (succeeded, dead or
//! cancelled — the first time it does: a retried or redelivered child never counts twice), the
//! batch completes exactly once and its completion job, if any, is enqueued in the same step.
//!
//! ```no_run
//! # async fn f(producer: celeriac_producer::Producer) -> celeriac_producer::Result<()> {
//! use celeriac_producer::NewJob;
//! let batch = producer
//!     .batch("report-2026-11-29", "reports")
//!     .on_complete(NewJob::new("reports.mail", serde_json::json!({"day": "2026-11-29"})));
//! // Give children ids of their own: a parent that runs again then adds nothing twice.
//! let children = (0..5000)
//!     .map(|i| NewJob::new("reports.part", serde_json::json!({ "part": i })).id(format!("report-2026-11-29:{i}")))
//!     .collect();
//! batch.add(children).await?;
//! let counts = batch.seal().await?;
//! # let _ = counts; Ok(()) }
//! ```
//!
//! All children and the completion job go to the batch's queue, where the batch record lives,
//! so every step is one atomic call in one Redis Cluster slot.

use crate::{NewJob, Producer, Result};
pub use celeriac_core::broker::{BatchAdded, BatchCounts};

/// A batch being built by a [`Producer`].
#[derive(Clone, Debug)]
pub struct Batch {
    producer: Producer,
    id: String,
    queue: String,
    on_complete: Option<NewJob>,
    parent: Option<(String, String)>,
}

impl Producer {
    /// The batch `id` whose children run on `queue` (use the parent job's id: a parent that
    /// runs again then finds its own batch).
    pub fn batch(&self, id: impl Into<String>, queue: impl Into<String>) -> Batch {
        Batch {
            producer: self.clone(),
            id: id.into(),
            queue: queue.into(),
            on_complete: None,
            parent: None,
        }
    }
}

impl Batch {
    /// The job enqueued (on the batch's queue, with the id `BATCH:complete` unless it has one)
    /// when the batch completes.
    pub fn on_complete(mut self, job: NewJob) -> Batch {
        self.on_complete = Some(job);
        self
    }

    /// The job creating the batch, job `id` of `queue`: when the batch's id is not that job's,
    /// [`Batch::add`] and [`Batch::seal`] note the batch on the job's record, so `celeriac
    /// status ID` shows it.
    pub fn parent(mut self, queue: impl Into<String>, id: impl Into<String>) -> Batch {
        self.parent = Some((queue.into(), id.into()));
        self
    }

    /// Note the batch on its parent's record, when it has a parent with another id.
    async fn note_parent(&self) -> Result<()> {
        if let Some((queue, id)) = self.parent.as_ref().filter(|(_, id)| *id != self.id) {
            self.producer
                .broker
                .batch_parent(queue, id, &self.queue, &self.id)
                .await?;
        }
        Ok(())
    }

    /// The batch's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Add children (put on the batch's queue); chunks of 1,000, each atomic. Children whose id
    /// exists already are not added again.
    pub async fn add(&self, jobs: Vec<NewJob>) -> Result<BatchAdded> {
        let now = celeriac_core::time::now_ms();
        let prepared = jobs
            .into_iter()
            .map(|j| self.producer.prepare(j.queue(self.queue.clone()), now))
            .collect::<Result<Vec<_>>>()?;
        self.note_parent().await?;
        let open_ttl = self.producer.retention.dead_ttl;
        self.producer
            .broker
            .batch_add(&self.queue, &self.id, &prepared, open_ttl)
            .await
    }

    /// No more children: the batch completes when they have all reached a final state (at once
    /// if they have, or if it has none). Sealing again changes nothing.
    pub async fn seal(&self) -> Result<BatchCounts> {
        let now = celeriac_core::time::now_ms();
        let done = match &self.on_complete {
            Some(job) => {
                let mut job = job.clone().queue(self.queue.clone());
                if job.id.is_none() {
                    job = job.id(format!("{}:complete", self.id));
                }
                Some(self.producer.prepare(job, now)?)
            }
            None => None,
        };
        self.note_parent().await?;
        let r = &self.producer.retention;
        self.producer
            .broker
            .batch_seal(
                &self.queue,
                &self.id,
                done.as_ref(),
                r.succeeded_ttl,
                r.dead_ttl,
            )
            .await
    }

    /// The batch's counts now.
    pub async fn counts(&self) -> Result<Option<BatchCounts>> {
        self.producer.broker.batch(&self.queue, &self.id).await
    }
}
