//! Creating jobs: one script call per queue and chunk, several chunks in flight; a failure part
//! way reports exactly which chunks were committed.

use super::{int, string, Broker};
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::scripts;
use redis::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Most jobs sent in one enqueue script call (bounded so one call never blocks Redis long).
pub const ENQUEUE_CHUNK: usize = 1000;

/// Most envelope bytes sent in one enqueue script call (so a batch of large payloads never makes
/// one huge command that blocks Redis or overflows its query buffer).
pub const ENQUEUE_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// Most enqueue chunks in flight at once on the multiplexed connection.
const ENQUEUE_PIPELINE: usize = 8;

/// A job to create.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// The envelope, already validated.
    pub envelope: Envelope,
    /// `envelope` encoded (what is stored).
    pub body: String,
    /// Run no earlier than this long after enqueue (measured on the Redis clock).
    pub delay: Option<Duration>,
    /// Run no earlier than this Unix time in milliseconds.
    pub run_at_ms: Option<u64>,
    /// Lifetime of the envelope's idempotency key, if it has one.
    pub idempotency_ttl: Duration,
}

/// What enqueue did with one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id: the new job's, or the existing one's when `created` is false.
    pub id: String,
    /// False when the id or the idempotency key already named a job.
    pub created: bool,
}

/// A bulk enqueue that stopped part way ([`Error::PartialEnqueue`]). Each chunk of jobs is one
/// script call, which Redis runs whole or not at all, so every job is in one of three groups:
/// committed (its result is in `results`), unknown (its chunk was sent but not answered), or
/// not written (its chunk was refused before it ran, or never sent).
#[derive(Debug)]
pub struct PartialEnqueue {
    /// One entry per job, in input order: what enqueue did, for the jobs of the chunks Redis
    /// committed; `None` for the others.
    pub results: Vec<Option<Enqueued>>,
    /// Input positions of the jobs whose chunk was sent but never answered (a timeout, a lost
    /// connection, an unexpected reply): they may or may not be in Redis.
    pub unknown: Vec<usize>,
    /// The first failure; the chunks in flight with it were awaited, and no chunk was sent
    /// after it.
    pub error: Error,
}

impl PartialEnqueue {
    /// Jobs committed (created, or found existing by id or idempotency key).
    pub fn committed(&self) -> usize {
        self.results.iter().filter(|r| r.is_some()).count()
    }
}

impl std::fmt::Display for PartialEnqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} jobs were enqueued",
            self.committed(),
            self.results.len()
        )?;
        if !self.unknown.is_empty() {
            write!(
                f,
                ", {} more may or may not have been (sent, but Redis did not answer)",
                self.unknown.len()
            )?;
        }
        write!(f, ", then: {}", self.error)
    }
}

impl Broker {
    /// Create jobs: one script call per queue and chunk of [`ENQUEUE_CHUNK`], several chunks
    /// in flight at once. Results are in input order.
    ///
    /// When a chunk fails, no further chunk is sent, the ones in flight are awaited, and the
    /// error is [`Error::PartialEnqueue`] saying which jobs were committed — unless nothing was
    /// committed and no answer is missing, when it is the failure itself.
    pub async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let mut by_queue: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, job) in jobs.iter().enumerate() {
            by_queue
                .entry(job.envelope.queue.as_str())
                .or_default()
                .push(i);
        }
        let mut con = self.con.clone();
        let mut register = redis::pipe();
        for queue in by_queue.keys() {
            register.sadd(self.keys.queues(), *queue).ignore();
        }
        register.query_async::<()>(&mut con).await?;

        let mut chunks = by_queue
            .iter()
            .flat_map(|(q, idx)| chunk_by_size(jobs, idx).into_iter().map(move |c| (*q, c)));
        let mut in_flight = FuturesUnordered::new();
        let mut results = vec![None; jobs.len()];
        let mut unknown = Vec::new();
        let mut failure: Option<Error> = None;
        loop {
            while failure.is_none() && in_flight.len() < ENQUEUE_PIPELINE {
                let Some((queue, idx)) = chunks.next() else {
                    break;
                };
                in_flight.push(async move { (idx, self.enqueue_chunk(jobs, queue, idx).await) });
            }
            let Some((idx, outcome)) = in_flight.next().await else {
                break;
            };
            match outcome {
                Ok(out) => {
                    for (&i, e) in idx.iter().zip(out) {
                        results[i] = Some(e);
                    }
                }
                Err(e) => {
                    if may_have_run(&e) {
                        unknown.extend_from_slice(idx);
                    }
                    failure.get_or_insert(e);
                }
            }
        }
        let Some(error) = failure else {
            return results
                .into_iter()
                .map(|r| {
                    r.ok_or_else(|| Error::Protocol("enqueue script returned too few ids".into()))
                })
                .collect();
        };
        if unknown.is_empty() && results.iter().all(Option::is_none) {
            return Err(error);
        }
        unknown.sort_unstable();
        Err(Error::PartialEnqueue(Box::new(PartialEnqueue {
            results,
            unknown,
            error,
        })))
    }

    /// One script call: the jobs at `idx`, all of `queue`.
    async fn enqueue_chunk(
        &self,
        jobs: &[NewJob],
        queue: &str,
        idx: &[usize],
    ) -> Result<Vec<Enqueued>> {
        let mut con = self.con.clone();
        let mut inv = scripts::ENQUEUE.prepare_invoke();
        inv.key(self.keys.pending(queue))
            .key(self.keys.scheduled(queue))
            .key(self.keys.wake(queue))
            .arg(self.keys.queue_base(queue));
        for &i in idx {
            let job = &jobs[i];
            let env = &job.envelope;
            inv.arg(&env.id)
                .arg(&job.body)
                .arg(job.run_at_ms.map(|v| v.to_string()).unwrap_or_default())
                .arg(
                    job.delay
                        .map(|d| d.as_millis().to_string())
                        .unwrap_or_default(),
                )
                .arg(env.idempotency_key.as_deref().unwrap_or(""))
                .arg(job.idempotency_ttl.as_millis().max(1) as u64);
        }
        let reply: Vec<Value> = inv.invoke_async(&mut con).await?;
        if reply.len() != idx.len() * 2 {
            return Err(Error::Protocol(format!(
                "the enqueue script answered {} values for {} jobs",
                reply.len(),
                idx.len()
            )));
        }
        reply
            .chunks(2)
            .map(|pair| {
                Ok(Enqueued {
                    id: string(&pair[0])?,
                    created: int(&pair[1])? == 1,
                })
            })
            .collect()
    }
}

/// Whether a failed script call may have run: false only when Redis refused it before its first
/// write (a script refused at its first write, e.g. for OOM, wrote nothing) or it was never sent.
fn may_have_run(e: &Error) -> bool {
    match e {
        Error::Redis(r) => {
            !(r.is_connection_refusal()
                || matches!(
                    r.code(),
                    Some("OOM" | "NOPERM" | "READONLY" | "MASTERDOWN" | "LOADING" | "BUSY")
                ))
        }
        _ => true,
    }
}

/// Split `idx` into runs of at most [`ENQUEUE_CHUNK`] jobs and [`ENQUEUE_CHUNK_BYTES`] bytes
/// (a single larger job goes alone).
fn chunk_by_size<'a>(jobs: &[NewJob], idx: &'a [usize]) -> Vec<&'a [usize]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (n, &i) in idx.iter().enumerate() {
        let size = jobs[i].body.len();
        if n > start && (n - start >= ENQUEUE_CHUNK || bytes + size > ENQUEUE_CHUNK_BYTES) {
            out.push(&idx[start..n]);
            start = n;
            bytes = 0;
        }
        bytes += size;
    }
    if start < idx.len() {
        out.push(&idx[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(bytes: usize) -> NewJob {
        let envelope = Envelope {
            v: 1,
            id: "x".into(),
            kind: "noop".into(),
            queue: "q".into(),
            payload: serde_json::Value::Null,
            max_attempts: None,
            timeout_ms: None,
            created_at: 0,
            run_at: None,
            idempotency_key: None,
        };
        NewJob {
            envelope,
            body: "x".repeat(bytes),
            delay: None,
            run_at_ms: None,
            idempotency_ttl: Duration::from_secs(1),
        }
    }

    #[test]
    fn chunks_are_bounded_by_count_and_bytes() {
        let small: Vec<NewJob> = (0..2500).map(|_| job(10)).collect();
        let idx: Vec<usize> = (0..small.len()).collect();
        let sizes: Vec<usize> = chunk_by_size(&small, &idx)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [1000, 1000, 500]);

        let big: Vec<NewJob> = (0..5).map(|_| job(3 * 1024 * 1024)).collect();
        let idx: Vec<usize> = (0..big.len()).collect();
        let sizes: Vec<usize> = chunk_by_size(&big, &idx).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [2, 2, 1], "at most 8 MiB per call");

        let huge = vec![job(20 * 1024 * 1024)];
        assert_eq!(
            chunk_by_size(&huge, &[0]).len(),
            1,
            "one oversized job still goes alone"
        );
    }
}
