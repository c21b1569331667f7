//! Read and repair jobs, queues and workers. The CLI goes through this API only.

use crate::broker::{int, string, Broker};
use crate::connection::Conn;
use crate::error::{Error, Result};
use crate::state::JobState;
use crate::time::{rfc3339_ms, rfc3339_us};
use crate::{keys, scripts};
use redis::Value;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Most ids handled per repair script call.
const REPAIR_BATCH: usize = 500;

/// One job as the CLI shows it. `docs/cli.md` documents these fields.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Job kind (empty when the envelope cannot be read).
    pub kind: String,
    /// Queue.
    pub queue: String,
    /// Current state.
    pub state: String,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Enqueue time (RFC 3339).
    pub created_at: Option<String>,
    /// Start of the latest attempt.
    pub started_at: Option<String>,
    /// When the job reached a final state.
    pub finished_at: Option<String>,
    /// When a scheduled or retrying job is due.
    pub run_at: Option<String>,
    /// Error of the latest failed attempt.
    pub last_error: Option<String>,
    /// Why a dead job is dead (`max_attempts`, `worker_lost`, `decode_error`, …).
    pub reason: Option<String>,
    /// The handler's result, for succeeded jobs that returned one.
    pub result: Option<serde_json::Value>,
    /// The latest progress the handler reported (written at each heartbeat while it runs).
    pub progress: Option<serde_json::Value>,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// Worker holding (or that last held) the job.
    pub worker: Option<String>,
    /// One entry per attempt, oldest first.
    pub history: Vec<Attempt>,
}

/// One attempt in a job's history.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Attempt {
    /// Attempt number.
    pub attempt: Option<u32>,
    /// Worker id.
    pub worker: Option<String>,
    /// Start.
    pub started_at: Option<String>,
    /// End (absent while running).
    pub finished_at: Option<String>,
    /// `succeeded`, `retry`, `dead`, `snooze`, `release`, `lost` or `running`.
    pub outcome: String,
    /// Error message, for failures.
    pub error: Option<String>,
}

/// Per-queue figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct QueueInfo {
    /// Queue name.
    pub queue: String,
    /// Jobs in each state.
    pub states: BTreeMap<String, u64>,
    /// Age in milliseconds of the job waiting longest in `pending`.
    pub oldest_pending_age_ms: Option<u64>,
    /// Jobs that succeeded in the last minute.
    pub processed_last_minute: u64,
    /// Failed attempts in the last minute.
    pub failed_last_minute: u64,
    /// Jobs that succeeded since the queue existed.
    pub processed_total: u64,
    /// Failed attempts since the queue existed.
    pub failed_total: u64,
    /// Dead jobs by reason since the queue existed.
    pub dead_by_reason: BTreeMap<String, u64>,
}

/// A live worker.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkerInfo {
    /// Worker id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Queues served.
    pub queues: Vec<String>,
    /// Handler slots.
    pub concurrency: u32,
    /// Jobs running now.
    pub in_flight: u32,
    /// Start time.
    pub started_at: Option<String>,
    /// Last heartbeat.
    pub last_heartbeat: Option<String>,
}

/// What happened to one id in a cancel or retry.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Repair {
    /// Job id.
    pub id: String,
    /// Queue, when the job exists.
    pub queue: Option<String>,
    /// State before the operation (None: no such job).
    pub previous: Option<String>,
    /// Whether the operation changed the job.
    pub changed: bool,
}

impl Repair {
    fn no_such_job(id: String) -> Repair {
        Repair {
            id,
            queue: None,
            previous: None,
            changed: false,
        }
    }
}

/// Attempts allowed to jobs of a kind whose envelope does not say (the workers' retry policy).
pub type AttemptsOf = std::sync::Arc<dyn Fn(&str) -> u32 + Send + Sync>;

/// Inspect and repair through a [`Broker`].
#[derive(Clone)]
pub struct Inspector {
    broker: Broker,
    attempts_of: AttemptsOf,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl Inspector {
    /// `attempts_of` gives the attempts shown for jobs whose envelope does not set them (give
    /// the CLI the workers' `[retry]` and `[kinds]` policy).
    pub fn new(broker: Broker, attempts_of: AttemptsOf) -> Self {
        Inspector {
            broker,
            attempts_of,
        }
    }

    fn con(&self) -> Conn {
        self.broker.connection()
    }

    /// Known queue names, sorted.
    pub async fn queue_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.broker.keys().queues())
            .query_async(&mut self.con())
            .await?;
        names.sort();
        Ok(names)
    }

    /// The queue holding job `id`, if any.
    pub async fn locate(&self, id: &str) -> Result<Option<String>> {
        if keys::validate_id(id).is_err() {
            return Ok(None);
        }
        let queues = self.queue_names().await?;
        if queues.is_empty() {
            return Ok(None);
        }
        // One command per queue: the job keys of different queues live in different slots.
        let mut con = self.con();
        for q in queues {
            let found: bool = redis::cmd("EXISTS")
                .arg(self.broker.keys().job(&q, id))
                .query_async(&mut con)
                .await?;
            if found {
                return Ok(Some(q));
            }
        }
        Ok(None)
    }

    /// One job by id.
    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>> {
        let Some(queue) = self.locate(id).await? else {
            return Ok(None);
        };
        let mut jobs = self.load(&queue, &[id.to_string()]).await?;
        Ok(jobs.pop().flatten())
    }

    /// Jobs of `queue` by id, in order (`None` for ids with no record).
    pub async fn jobs_in(&self, queue: &str, ids: &[String]) -> Result<Vec<Option<JobInfo>>> {
        self.load(queue, ids).await
    }

    async fn load(&self, queue: &str, ids: &[String]) -> Result<Vec<Option<JobInfo>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.broker.keys();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(k.job(queue, id));
            pipe.zscore(k.scheduled(queue), id);
            pipe.zscore(k.retry(queue), id);
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.con()).await?;
        Ok(ids
            .iter()
            .zip(replies.chunks(3))
            .map(|(id, r)| {
                let fields = hash(&r[0]);
                if fields.is_empty() {
                    return None;
                }
                let due = r[1..].iter().find_map(float);
                Some(self.job_info(queue, id, &fields, due))
            })
            .collect())
    }

    fn job_info(
        &self,
        queue: &str,
        id: &str,
        f: &HashMap<String, Vec<u8>>,
        due: Option<f64>,
    ) -> JobInfo {
        let text = |name: &str| f.get(name).map(|v| String::from_utf8_lossy(v).into_owned());
        let num = |name: &str| text(name).and_then(|s| s.parse::<u64>().ok());
        let msg: serde_json::Value = f
            .get("msg")
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(serde_json::Value::Null);
        let state = text("state").unwrap_or_default();
        let attempts = num("attempt").unwrap_or(0) as u32;
        let worker = text("worker");
        let started_us = num("started_us");
        let finished_us = num("finished_us");
        let is_final = state
            .parse::<JobState>()
            .map(JobState::is_final)
            .unwrap_or(false);
        let mut history: Vec<Attempt> = text("hist")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|h| Attempt {
                attempt: h["attempt"].as_u64().map(|a| a as u32),
                worker: h["worker"].as_str().map(str::to_string),
                started_at: h["started_us"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .map(rfc3339_us),
                finished_at: h["finished_us"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .map(rfc3339_us),
                outcome: h["outcome"].as_str().unwrap_or("").to_string(),
                error: h["error"].as_str().map(str::to_string),
            })
            .collect();
        if state == "active" || state == "succeeded" {
            history.push(Attempt {
                attempt: Some(attempts),
                worker: worker.clone(),
                started_at: started_us.map(rfc3339_us),
                finished_at: (state == "succeeded")
                    .then_some(finished_us)
                    .flatten()
                    .map(rfc3339_us),
                outcome: if state == "active" {
                    "running"
                } else {
                    "succeeded"
                }
                .into(),
                error: None,
            });
        }
        let kind = msg["kind"].as_str().unwrap_or("").to_string();
        JobInfo {
            id: id.to_string(),
            queue: queue.to_string(),
            state: state.clone(),
            attempts,
            max_attempts: msg["max_attempts"]
                .as_u64()
                .map(|m| m as u32)
                .unwrap_or_else(|| (self.attempts_of)(&kind)),
            created_at: msg["created_at"].as_u64().map(rfc3339_ms),
            started_at: started_us.map(rfc3339_us),
            finished_at: if is_final {
                finished_us.map(rfc3339_us)
            } else {
                None
            },
            run_at: if state == "scheduled" || state == "retrying" {
                due.map(|ms| rfc3339_ms(ms as u64))
            } else {
                None
            },
            last_error: text("error"),
            reason: text("reason"),
            result: f.get("result").map(|b| {
                serde_json::from_slice(b).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(b).into_owned())
                })
            }),
            progress: f
                .get("progress")
                .and_then(|b| serde_json::from_slice(b).ok()),
            payload: msg
                .get("payload")
                .cloned()
                .unwrap_or_else(|| match f.get("msg") {
                    Some(raw) if msg.is_null() => {
                        serde_json::Value::String(String::from_utf8_lossy(raw).into_owned())
                    }
                    _ => serde_json::Value::Null,
                }),
            worker,
            history,
            kind,
        }
    }

    /// Jobs of `queue` in `state`, newest finished first for final states, next-to-run first
    /// otherwise.
    pub async fn list(&self, queue: &str, state: JobState, limit: usize) -> Result<Vec<JobInfo>> {
        keys::validate_queue(queue)?;
        let k = self.broker.keys();
        let stop = limit.max(1) as isize - 1;
        let mut con = self.con();
        let ids: Vec<String> = match state {
            JobState::Pending => redis::cmd("LRANGE")
                .arg(k.pending(queue))
                .arg(-(limit.max(1) as isize))
                .arg(-1)
                .query_async::<Vec<String>>(&mut con)
                .await?
                .into_iter()
                .rev()
                .collect(),
            JobState::Scheduled => zrange(&mut con, &k.scheduled(queue), stop, false).await?,
            JobState::Retrying => zrange(&mut con, &k.retry(queue), stop, false).await?,
            JobState::Active => zrange(&mut con, &k.active(queue), stop, false).await?,
            JobState::Succeeded => zrange(&mut con, &k.succeeded(queue), stop, true).await?,
            JobState::Dead => zrange(&mut con, &k.dead(queue), stop, true).await?,
            JobState::Cancelled => zrange(&mut con, &k.cancelled(queue), stop, true).await?,
        };
        let state_name = state.as_str();
        Ok(self
            .load(queue, &ids)
            .await?
            .into_iter()
            .flatten()
            // A cancelled pending job's id stays in the list until a fetch drops it.
            .filter(|j| j.state == state_name)
            .collect())
    }

    /// Group ids by the queue that holds them; unknown ids map to `None`.
    async fn group(&self, ids: &[String]) -> Result<Vec<(Option<String>, Vec<String>)>> {
        let mut groups: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for id in ids {
            let q = self.locate(id).await?;
            groups.entry(q).or_default().push(id.clone());
        }
        Ok(groups.into_iter().collect())
    }

    /// Cancel jobs that have not finished. Idempotent: a cancelled job stays cancelled.
    pub async fn cancel(&self, ids: &[String]) -> Result<Vec<Repair>> {
        let k = self.broker.keys();
        let mut out = Vec::new();
        for (queue, ids) in self.group(ids).await? {
            let Some(queue) = queue else {
                out.extend(ids.into_iter().map(Repair::no_such_job));
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
                    inv.arg(id);
                }
                let prev: Vec<String> = inv.invoke_async(&mut self.con()).await?;
                out.extend(
                    chunk
                        .iter()
                        .zip(prev)
                        .map(|(id, p)| repair(id, &queue, p, |s| !s.is_final())),
                );
            }
        }
        Ok(out)
    }

    /// Run jobs again now: dead, cancelled, retrying or scheduled ones go to pending for one more
    /// attempt (a job past max_attempts that fails again returns to dead).
    pub async fn retry(&self, ids: &[String]) -> Result<Vec<Repair>> {
        let mut out = Vec::new();
        for (queue, ids) in self.group(ids).await? {
            let Some(queue) = queue else {
                out.extend(ids.into_iter().map(Repair::no_such_job));
                continue;
            };
            for chunk in ids.chunks(REPAIR_BATCH) {
                let prev: Vec<String> = self.retry_call(&queue, "ids", chunk).await?;
                out.extend(chunk.iter().zip(prev).map(|(id, p)| {
                    repair(id, &queue, p, |s| {
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
                .retry_call(queue, "all-dead", std::slice::from_ref(&cutoff))
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
        ids: &[String],
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

    /// Figures for every known queue.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let names = self.queue_names().await?;
        let mut con = self.con();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut con).await?;
        let now_ms = secs * 1000 + micros / 1000;
        let slot_now = secs / 10;
        let k = self.broker.keys();
        let mut out = Vec::new();
        for q in names {
            let mut pipe = redis::pipe();
            pipe.llen(k.pending(&q))
                .zcard(k.scheduled(&q))
                .zcard(k.retry(&q))
                .zcard(k.active(&q))
                .zcard(k.succeeded(&q))
                .zcard(k.dead(&q))
                .zcard(k.cancelled(&q))
                .lindex(k.pending(&q), -1)
                .cmd("HGETALL")
                .arg(k.stats(&q));
            for slot in slot_now - 5..=slot_now {
                pipe.cmd("HMGET")
                    .arg(k.stats_slot(&q, slot))
                    .arg("processed")
                    .arg("failed");
            }
            let r: Vec<Value> = pipe.query_async(&mut con).await?;
            let count = |i: usize| int(&r[i]).unwrap_or(0).max(0) as u64;
            let states: BTreeMap<String, u64> = [
                JobState::Pending,
                JobState::Scheduled,
                JobState::Retrying,
                JobState::Active,
                JobState::Succeeded,
                JobState::Dead,
                JobState::Cancelled,
            ]
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str().to_string(), count(i)))
            .collect();
            let oldest_pending_age_ms = match string(&r[7]) {
                Ok(id) => {
                    let msg: Option<Vec<u8>> = redis::cmd("HGET")
                        .arg(k.job(&q, &id))
                        .arg("msg")
                        .query_async(&mut con)
                        .await
                        .unwrap_or(None);
                    msg.and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok())
                        .and_then(|m| {
                            let since = m["run_at"]
                                .as_u64()
                                .unwrap_or(0)
                                .max(m["created_at"].as_u64().unwrap_or(0));
                            (since > 0).then(|| now_ms.saturating_sub(since))
                        })
                }
                Err(_) => None,
            };
            let stats = hash(&r[8]);
            let stat = |name: &str| {
                stats
                    .get(name)
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let (mut processed, mut failed) = (0, 0);
            for v in &r[9..] {
                if let Value::Array(pf) = v {
                    processed += pf.first().and_then(|v| int(v).ok()).unwrap_or(0).max(0) as u64;
                    failed += pf.get(1).and_then(|v| int(v).ok()).unwrap_or(0).max(0) as u64;
                }
            }
            out.push(QueueInfo {
                queue: q.clone(),
                states,
                oldest_pending_age_ms,
                processed_last_minute: processed,
                failed_last_minute: failed,
                processed_total: stat("processed"),
                failed_total: stat("failed"),
                dead_by_reason: stats
                    .keys()
                    .filter_map(|f| f.strip_prefix("dead:"))
                    .map(|r| (r.to_string(), stat(&format!("dead:{r}"))))
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Live workers (records of workers that stopped heartbeating are pruned).
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let k = self.broker.keys();
        let mut con = self.con();
        let ids: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(k.workers())
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut con)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut records: Vec<Value> = Vec::with_capacity(ids.len());
        for (id, _) in &ids {
            records.push(
                redis::cmd("HGETALL")
                    .arg(k.worker(id))
                    .query_async(&mut con)
                    .await?,
            );
        }
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for ((id, beat), rec) in ids.into_iter().zip(records) {
            let f = hash(&rec);
            if f.is_empty() {
                stale.push(id);
                continue;
            }
            let text = |name: &str| {
                f.get(name)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            out.push(WorkerInfo {
                host: text("host"),
                pid: text("pid").parse().unwrap_or(0),
                queues: text("queues")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                concurrency: text("concurrency").parse().unwrap_or(0),
                in_flight: text("in_flight").parse().unwrap_or(0),
                started_at: text("started_ms").parse().ok().map(rfc3339_ms),
                last_heartbeat: Some(rfc3339_ms(beat as u64)),
                id,
            });
        }
        if !stale.is_empty() {
            let _: () = redis::cmd("ZREM")
                .arg(k.workers())
                .arg(&stale)
                .query_async(&mut con)
                .await?;
        }
        Ok(out)
    }
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

async fn zrange(con: &mut Conn, key: &str, stop: isize, newest_first: bool) -> Result<Vec<String>> {
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(key).arg(0).arg(stop);
    if newest_first {
        cmd.arg("REV");
    }
    Ok(cmd.query_async(con).await?)
}

fn hash(v: &Value) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    match v {
        Value::Array(items) => {
            for pair in items.chunks(2) {
                if let [Value::BulkString(k), Value::BulkString(b)] = pair {
                    out.insert(String::from_utf8_lossy(k).into_owned(), b.clone());
                }
            }
        }
        Value::Map(items) => {
            for (k, val) in items {
                if let (Value::BulkString(k), Value::BulkString(b)) = (k, val) {
                    out.insert(String::from_utf8_lossy(k).into_owned(), b.clone());
                }
            }
        }
        _ => {}
    }
    out
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::Double(d) => Some(*d),
        Value::Int(i) => Some(*i as f64),
        _ => None,
    }
}
