//! Promotion of due jobs, retention, cron ticks and named locks.

use super::Broker;
use crate::broker::NewJob;
use crate::config::RetentionConfig;
use crate::error::Result;
use crate::scripts;
use std::time::Duration;

/// What one [`Broker::promote`] call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Promoted {
    /// Jobs made pending.
    pub moved: u64,
    /// What the call found that no Celeriac script writes (log each once).
    pub found: Vec<super::Anomaly>,
}

/// What [`Broker::cron_enqueue`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CronEnqueue {
    /// This call enqueued the tick.
    Enqueued,
    /// The tick (or a later one) was already enqueued.
    AlreadyDone,
    /// The tick is still in the future on the Redis clock.
    NotDue,
}

impl Broker {
    /// Make up to `limit` due delayed and retrying jobs pending (per index); returns how many,
    /// and what the call found that no Celeriac script writes.
    pub async fn promote(&self, queue: &str, limit: usize) -> Result<Promoted> {
        let k = &self.keys;
        let reply: Vec<redis::Value> = scripts::PROMOTE
            .key(k.scheduled(queue))
            .key(k.retry(queue))
            .key(k.pending(queue))
            .key(k.wake(queue))
            .key(k.dead(queue))
            .arg(k.queue_base(queue))
            .arg(limit)
            .invoke_async(&mut self.con.clone())
            .await?;
        let [moved, found] = reply.as_slice() else {
            return Err(crate::Error::Protocol(
                "promote reply is not 2 values".into(),
            ));
        };
        Ok(Promoted {
            moved: super::int(moved)?.max(0) as u64,
            found: super::anomalies(found)?,
        })
    }

    /// Apply retention to up to `limit` jobs per index; returns how many records were deleted.
    pub async fn janitor(
        &self,
        queue: &str,
        retention: &RetentionConfig,
        limit: usize,
    ) -> Result<u64> {
        let k = &self.keys;
        Ok(scripts::JANITOR
            .key(k.succeeded(queue))
            .key(k.dead(queue))
            .key(k.cancelled(queue))
            .arg(k.queue_base(queue))
            .arg(retention.succeeded_ttl.as_millis() as u64)
            .arg(retention.succeeded_max)
            .arg(retention.dead_ttl.as_millis() as u64)
            .arg(retention.dead_max)
            .arg(limit)
            .invoke_async(&mut self.con.clone())
            .await?)
    }

    /// Enqueue tick `tick_ms` of schedule `name` exactly once across all schedulers.
    pub async fn cron_enqueue(
        &self,
        name: &str,
        tick_ms: u64,
        job: &NewJob,
    ) -> Result<CronEnqueue> {
        let queue = job.envelope.queue.as_str();
        let k = &self.keys;
        let r: i64 = scripts::CRON_ENQUEUE
            .key(k.pending(queue))
            .key(k.wake(queue))
            .key(k.cron(queue, name))
            .key(k.cron_history(queue, name))
            .arg(k.queue_base(queue))
            .arg(tick_ms)
            .arg(&job.envelope.id)
            .arg(&job.body)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(match r {
            1 => CronEnqueue::Enqueued,
            0 => CronEnqueue::AlreadyDone,
            _ => CronEnqueue::NotDue,
        })
    }

    /// The last tick (Unix ms) a schedule enqueued, and its job id.
    pub async fn cron_last(&self, queue: &str, name: &str) -> Result<Option<(u64, String)>> {
        let (tick, id): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.cron(queue, name))
            .arg("last_tick")
            .arg("last_id")
            .query_async(&mut self.con.clone())
            .await?;
        Ok(tick.zip(id))
    }

    /// A schedule's most recent ticks, newest first: (tick Unix ms, job id).
    pub async fn cron_history(
        &self,
        queue: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<(u64, String)>> {
        let rows: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.cron_history(queue, name))
            .arg(0)
            .arg(limit.max(1) as isize - 1)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let (t, id) = r.split_once(' ')?;
                Some((t.parse().ok()?, id.to_string()))
            })
            .collect())
    }

    /// Take the lock `name` for `owner` for `ttl` unless someone else holds it; true if taken
    /// (or already held by `owner`, whose lease is then renewed).
    pub async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        self.lock_op(LockOp::Acquire, name, owner, ttl).await
    }

    /// Renew `owner`'s hold on the lock `name`; false if it is no longer theirs.
    pub async fn renew_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        self.lock_op(LockOp::Renew, name, owner, ttl).await
    }

    /// Release `owner`'s hold on the lock `name` (nothing if someone else holds it).
    pub async fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        self.lock_op(LockOp::Release, name, owner, Duration::ZERO)
            .await
            .map(drop)
    }

    /// `lock.lua`: true when `owner` holds the lock after the call.
    async fn lock_op(&self, op: LockOp, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let held: i64 = scripts::LOCK
            .key(self.keys.lock(name))
            .arg(op.as_str())
            .arg(owner)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(held == 1)
    }

    /// The owner of the lock `name`, if held.
    pub async fn lock_owner(&self, name: &str) -> Result<Option<String>> {
        Ok(redis::cmd("GET")
            .arg(self.keys.lock(name))
            .query_async(&mut self.con.clone())
            .await?)
    }
}

/// What `lock.lua` is asked to do.
#[derive(Clone, Copy)]
enum LockOp {
    Acquire,
    Renew,
    Release,
}

impl LockOp {
    fn as_str(self) -> &'static str {
        match self {
            LockOp::Acquire => "acquire",
            LockOp::Renew => "renew",
            LockOp::Release => "release",
        }
    }
}
