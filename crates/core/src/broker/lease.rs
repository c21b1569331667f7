//! Leases: fetch, record outcomes, renew, reconcile and take back expired leases. Each call
//! carries a deadline on the Redis clock ([`Broker::deadline_ms`]).

use super::{anomalies, int, string, Anomaly, Broker};
use crate::config::RetentionConfig;
use crate::envelope::DeadReason;
use crate::error::{Error, Result};
use crate::scripts;
use redis::Value;
use std::time::Duration;

/// Most envelope bytes returned by one fetch (the batch stops early past it).
pub const FETCH_BYTES: usize = 16 * 1024 * 1024;

/// Most leases examined by one [`Broker::disown`] call.
const DISOWN_LIMIT: usize = 10_000;

/// A job leased to a worker.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// Queue it came from.
    pub queue: String,
    /// Job id.
    pub id: String,
    /// Fencing token of this lease.
    pub token: u64,
    /// Attempt number, starting at 1.
    pub attempt: u32,
    /// The stored envelope (empty when it is over the size cap).
    pub body: Vec<u8>,
    /// The stored envelope's length in bytes.
    pub len: usize,
    /// The job was on a worker that died: run it alone (it may be what kills workers).
    pub suspect: bool,
}

/// The outcome of one job, as recorded by the ack script.
#[derive(Clone, Debug, PartialEq)]
pub enum AckOp {
    /// Succeeded, with an optional JSON result.
    Ok(Option<String>),
    /// Failed; run again after `delay`.
    Retry {
        /// The error message.
        error: String,
        /// Backoff before the next attempt.
        delay: Duration,
    },
    /// Not run now; try again after the duration (not counted as an attempt).
    Snooze(Duration),
    /// Will not run again.
    Dead {
        /// The error message.
        error: String,
        /// Why.
        reason: DeadReason,
    },
    /// Hand the job back at once (worker shutting down; not counted as an attempt).
    Release,
    /// The lease passed unrenewed with the handler running (this worker was cut off from
    /// Redis) and the handler was stopped: hand the job back (not counted as an attempt).
    Expired,
}

/// One outcome to record.
#[derive(Clone, Debug)]
pub struct Ack {
    /// Job id.
    pub id: String,
    /// Fencing token the job was fetched with.
    pub token: u64,
    /// What happened.
    pub op: AckOp,
    /// The latest progress the handler reported (JSON text), stored with the outcome so the
    /// record shows where the run ended; `None` when it reported none.
    pub progress: Option<String>,
}

/// What one recovery sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Jobs put back at the front of their queue.
    pub requeued: u64,
    /// Jobs dead with reason `worker_lost`.
    pub buried: u64,
    /// What the sweep found that no Celeriac script writes (log each once).
    pub found: Vec<Anomaly>,
}

/// What one fetch leased, and what it found that no Celeriac script writes.
#[derive(Clone, Debug, Default)]
pub struct Fetch {
    /// The jobs leased to the worker.
    pub jobs: Vec<Fetched>,
    /// Anomalies met on the way (log each once).
    pub found: Vec<Anomaly>,
}

/// Why Redis did not record an outcome or renew a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The job is no longer leased under that token: cancelled by an operator, taken back by
    /// the recovery sweep, or deleted. The result is dropped.
    Gone,
    /// Taken back by the sweep while this worker was cut off from Redis. The result is dropped;
    /// the take-back no longer counts towards `max_deliveries` or the crash-suspect rule.
    CutOff,
    /// This very outcome was already recorded by an earlier try whose answer was lost.
    Already,
}

impl Refusal {
    fn parse(s: &str) -> Result<Refusal> {
        match s {
            "gone" => Ok(Refusal::Gone),
            "cut_off" => Ok(Refusal::CutOff),
            "already" => Ok(Refusal::Already),
            other => Err(Error::Protocol(format!("unknown refusal {other:?}"))),
        }
    }
}

/// One lease to renew, with the progress its handler reported since the last renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// Job id.
    pub id: String,
    /// Fencing token of the lease.
    pub token: u64,
    /// Progress as JSON text, stored on the job record if the lease still holds.
    pub progress: Option<String>,
}

impl Broker {
    /// Lease up to `count` pending jobs of `queue` to `worker`.
    pub async fn fetch(
        &self,
        queue: &str,
        count: usize,
        lease: Duration,
        worker: &str,
        max_bytes: usize,
    ) -> Result<Fetch> {
        let k = &self.keys;
        let reply: Vec<Value> = scripts::FETCH
            .key(k.pending(queue))
            .key(k.active(queue))
            .key(k.wake(queue))
            .key(k.dead(queue))
            .key(k.tokens(queue))
            .arg(k.queue_base(queue))
            .arg(count)
            .arg(lease.as_millis() as u64)
            .arg(worker)
            .arg(max_bytes)
            .arg(FETCH_BYTES)
            .arg(self.deadline_ms().await)
            .invoke_async(&mut self.con.clone())
            .await?;
        let found = reply.get(1).map(anomalies).transpose()?.unwrap_or_default();
        let mut out = Vec::with_capacity(reply.len() / 6);
        for job in reply.get(2..).unwrap_or_default().chunks(6) {
            let [id, token, attempt, body, len, suspect] = job else {
                return Err(Error::Protocol("fetch reply is not a multiple of 6".into()));
            };
            out.push(Fetched {
                queue: queue.to_string(),
                id: string(id)?,
                token: int(token)? as u64,
                attempt: int(attempt)?.max(0) as u32,
                body: bytes(body),
                len: int(len)?.max(0) as usize,
                suspect: int(suspect)? == 1,
            });
        }
        Ok(Fetch { jobs: out, found })
    }

    /// Record outcomes of jobs of `queue`; returns the outcomes not recorded, and why.
    pub async fn ack(
        &self,
        queue: &str,
        acks: &[Ack],
        retention: &RetentionConfig,
    ) -> Result<Vec<(String, Refusal)>> {
        let k = &self.keys;
        let mut inv = scripts::ACK.prepare_invoke();
        inv.key(k.active(queue))
            .key(k.pending(queue))
            .key(k.retry(queue))
            .key(k.scheduled(queue))
            .key(k.succeeded(queue))
            .key(k.dead(queue))
            .key(k.wake(queue))
            .key(k.stats(queue))
            .arg(k.queue_base(queue))
            .arg(retention.succeeded_max)
            .arg(retention.dead_max)
            .arg(self.deadline_ms().await);
        for ack in acks {
            let (op, a, b) = match &ack.op {
                AckOp::Ok(result) => ("ok", result.clone().unwrap_or_default(), String::new()),
                AckOp::Retry { error, delay } => {
                    ("retry", error.clone(), delay.as_millis().to_string())
                }
                AckOp::Snooze(d) => ("snooze", String::new(), d.as_millis().to_string()),
                AckOp::Dead { error, reason } => {
                    ("dead", error.clone(), reason.as_str().to_string())
                }
                AckOp::Release => ("release", String::new(), String::new()),
                AckOp::Expired => ("expired", String::new(), String::new()),
            };
            inv.arg(&ack.id)
                .arg(ack.token)
                .arg(op)
                .arg(a)
                .arg(b)
                .arg(ack.progress.as_deref().unwrap_or(""));
        }
        refusals(inv.invoke_async(&mut self.con.clone()).await?)
    }

    /// Renew leases (and store the progress handlers reported); returns the leases no longer
    /// held under the given tokens, and why.
    pub async fn extend(
        &self,
        queue: &str,
        leases: &[Renewal],
        lease: Duration,
    ) -> Result<Vec<(String, Refusal)>> {
        let k = &self.keys;
        let mut inv = scripts::EXTEND.prepare_invoke();
        inv.key(k.active(queue))
            .key(k.stats(queue))
            .arg(k.queue_base(queue))
            .arg(lease.as_millis() as u64)
            .arg(self.deadline_ms().await);
        for r in leases {
            inv.arg(&r.id)
                .arg(r.token)
                .arg(r.progress.as_deref().unwrap_or(""));
        }
        refusals(inv.invoke_async(&mut self.con.clone()).await?)
    }

    /// Hand back the jobs of `queue` leased to `worker` under tokens it does not hold (a fetch
    /// whose answer never arrived); returns how many.
    pub async fn disown(&self, queue: &str, worker: &str, held: &[u64]) -> Result<u64> {
        let k = &self.keys;
        let mut inv = scripts::DISOWN.prepare_invoke();
        inv.key(k.active(queue))
            .key(k.pending(queue))
            .key(k.wake(queue))
            .arg(k.queue_base(queue))
            .arg(worker)
            .arg(self.deadline_ms().await)
            .arg(DISOWN_LIMIT);
        for t in held {
            inv.arg(*t);
        }
        Ok(inv.invoke_async(&mut self.con.clone()).await?)
    }

    /// Take back up to `limit` jobs whose lease expired more than `grace` ago, except those
    /// `worker` still holds (the fencing tokens in `held`).
    #[allow(clippy::too_many_arguments)] // reason: one argument per script input; a struct would only rename them
    pub async fn recover(
        &self,
        queue: &str,
        max_deliveries: u32,
        limit: usize,
        retention: &RetentionConfig,
        grace: Duration,
        worker: &str,
        held: &[u64],
    ) -> Result<Recovered> {
        let k = &self.keys;
        let mut inv = scripts::RECOVER.prepare_invoke();
        inv.key(k.active(queue))
            .key(k.pending(queue))
            .key(k.dead(queue))
            .key(k.wake(queue))
            .key(k.stats(queue))
            .arg(k.queue_base(queue))
            .arg(max_deliveries)
            .arg(limit)
            .arg(retention.dead_max)
            .arg(self.deadline_ms().await)
            .arg(grace.as_millis() as u64)
            .arg(worker);
        for t in held {
            inv.arg(*t);
        }
        let reply: Vec<Value> = inv.invoke_async(&mut self.con.clone()).await?;
        let [requeued, buried, found] = reply.as_slice() else {
            return Err(Error::Protocol("recover reply is not 3 values".into()));
        };
        Ok(Recovered {
            requeued: int(requeued)?.max(0) as u64,
            buried: int(buried)?.max(0) as u64,
            found: anomalies(found)?,
        })
    }
}

/// Decode `{ id, why, id, why, ... }`.
fn refusals(reply: Vec<String>) -> Result<Vec<(String, Refusal)>> {
    reply
        .chunks(2)
        .map(|pair| match pair {
            [id, why] => Ok((id.clone(), Refusal::parse(why)?)),
            _ => Err(Error::Protocol("refusal list of odd length".into())),
        })
        .collect()
}

fn bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b.clone(),
        Value::SimpleString(s) => s.clone().into_bytes(),
        _ => Vec::new(),
    }
}
