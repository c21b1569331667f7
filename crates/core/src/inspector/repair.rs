//! Repairs: cancel, retry, purge.

use super::{Inspector, Repair};
use crate::error::{Error, Result};
use crate::state::JobState;
use crate::{keys, scripts};
use std::collections::BTreeMap;

/// Most ids handled per repair script call.
const REPAIR_BATCH: usize = 500;

impl Inspector {
    /// Group ids by the queue that holds them (only `queue` when given); unknown ids map to
    /// `None`. Every id is located before anything changes, so an id that several queues hold
    /// ([`Error::AmbiguousId`]) fails the whole call.
    /// Each id comes with its bytes as stored (an id shown escaped, `bad\xff`, names the bytes
    /// it stands for).
    async fn group(
        &self,
        ids: &[String],
        queue: Option<&str>,
    ) -> Result<Vec<(Option<String>, Vec<Id>)>> {
        let mut groups: BTreeMap<Option<String>, Vec<Id>> = BTreeMap::new();
        for id in ids {
            let (q, bytes) = match self.locate_id(id, queue).await? {
                Some((q, bytes)) => (Some(q), bytes),
                None => (None, id.as_bytes().to_vec()),
            };
            groups.entry(q).or_default().push(Id {
                given: id.clone(),
                bytes,
            });
        }
        Ok(groups.into_iter().collect())
    }

    /// Cancel jobs that have not finished, in `queue` when given (else each id in the one
    /// known queue that holds it). Idempotent: a cancelled job stays cancelled.
    pub async fn cancel(&self, ids: &[String], queue: Option<&str>) -> Result<Vec<Repair>> {
        let k = self.broker.keys();
        let mut out = Vec::new();
        for (queue, ids) in self.group(ids, queue).await? {
            let Some(queue) = queue else {
                out.extend(ids.into_iter().map(|id| Repair::no_such_job(id.given)));
                continue;
            };
            for chunk in ids.chunks(REPAIR_BATCH) {
                let mut inv = scripts::CANCEL.prepare_invoke();
                inv.key(k.pending(&queue))
                    .key(k.scheduled(&queue))
                    .key(k.retry(&queue))
                    .key(k.active(&queue))
                    .key(k.cancelled(&queue))
                    .key(k.wake(&queue))
                    .arg(k.queue_base(&queue));
                for id in chunk {
                    inv.arg(&id.bytes);
                }
                let prev: Vec<String> = inv.invoke_async(&mut self.con()).await?;
                out.extend(
                    chunk
                        .iter()
                        .zip(prev)
                        .map(|(id, p)| repair(&id.given, &queue, p, |s| !s.is_final())),
                );
            }
        }
        Ok(out)
    }

    /// Run jobs again now: dead, cancelled, retrying or scheduled ones go to pending for one more
    /// attempt (a job past max_attempts that fails again returns to dead). Ids are looked up as
    /// in [`Inspector::cancel`].
    pub async fn retry(&self, ids: &[String], queue: Option<&str>) -> Result<Vec<Repair>> {
        let mut out = Vec::new();
        for (queue, ids) in self.group(ids, queue).await? {
            let Some(queue) = queue else {
                out.extend(ids.into_iter().map(|id| Repair::no_such_job(id.given)));
                continue;
            };
            for chunk in ids.chunks(REPAIR_BATCH) {
                let bytes: Vec<&[u8]> = chunk.iter().map(|id| id.bytes.as_slice()).collect();
                let prev: Vec<String> = self.retry_call(&queue, "ids", &bytes).await?;
                out.extend(chunk.iter().zip(prev).map(|(id, p)| {
                    repair(&id.given, &queue, p, |s| {
                        matches!(
                            s,
                            JobState::Dead
                                | JobState::Cancelled
                                | JobState::Retrying
                                | JobState::Scheduled
                        )
                    })
                }));
            }
        }
        Ok(out)
    }

    /// Requeue every dead job of `queue`; returns how many.
    pub async fn retry_all_dead(&self, queue: &str) -> Result<u64> {
        keys::validate_queue(queue)?;
        let mut total = 0;
        let cutoff = self.broker.redis_time_ms().await?.to_string();
        loop {
            let (taken, requeued): (u64, u64) = self
                .retry_call(queue, "all-dead", &[cutoff.as_bytes()])
                .await?;
            if taken == 0 {
                return Ok(total);
            }
            total += requeued;
        }
    }

    async fn retry_call<T: redis::FromRedisValue>(
        &self,
        queue: &str,
        mode: &str,
        ids: &[&[u8]],
    ) -> Result<T> {
        let k = self.broker.keys();
        let mut inv = scripts::RETRY.prepare_invoke();
        inv.key(k.pending(queue))
            .key(k.scheduled(queue))
            .key(k.retry(queue))
            .key(k.dead(queue))
            .key(k.cancelled(queue))
            .key(k.wake(queue))
            .arg(k.queue_base(queue))
            .arg(mode)
            .arg(REPAIR_BATCH);
        for id in ids {
            inv.arg(id);
        }
        Ok(inv.invoke_async(&mut self.con()).await?)
    }

    /// Delete every job of `queue` in `state` (not `active`: cancel running jobs instead).
    /// Returns how many were removed.
    pub async fn purge(&self, queue: &str, state: JobState) -> Result<u64> {
        keys::validate_queue(queue)?;
        let k = self.broker.keys();
        let (index, kind) = match state {
            JobState::Pending => (k.pending(queue), "list"),
            JobState::Scheduled => (k.scheduled(queue), "zset"),
            JobState::Retrying => (k.retry(queue), "zset"),
            JobState::Succeeded => (k.succeeded(queue), "zset"),
            JobState::Dead => (k.dead(queue), "zset"),
            JobState::Cancelled => (k.cancelled(queue), "zset"),
            JobState::Active => {
                return Err(Error::ConfigValue {
                    field: "--state".into(),
                    message: "active jobs cannot be purged while a worker holds them; cancel them with `celeriac jobs cancel ID…`".into(),
                })
            }
        };
        let mut total = 0;
        loop {
            let n: u64 = scripts::PURGE
                .key(&index)
                .arg(k.queue_base(queue))
                .arg(state.as_str())
                .arg(kind)
                .arg(REPAIR_BATCH)
                .invoke_async(&mut self.con())
                .await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }
}

/// An id as the operator gave it, and as stored.
struct Id {
    given: String,
    bytes: Vec<u8>,
}

fn repair(id: &str, queue: &str, previous: String, changes: impl Fn(JobState) -> bool) -> Repair {
    let state = previous.parse::<JobState>().ok();
    Repair {
        id: id.to_string(),
        queue: Some(queue.to_string()),
        changed: state.is_some_and(changes),
        previous: (!previous.is_empty()).then_some(previous),
    }
}
