//! Read and repair jobs, queues and workers. The CLI goes through this API only.
//!
//! - [`types`](self::types): what it returns ([`JobInfo`], [`QueueInfo`], [`WorkerInfo`],
//!   [`Repair`]);
//! - `jobs`: one job, jobs by state;
//! - `repair`: cancel, retry, purge;
//! - `queues`: per-queue figures;
//! - `workers`: live workers;
//! - this file: the [`Inspector`], queue names and finding the queue of an id.

mod jobs;
mod queues;
mod repair;
pub mod types;
mod workers;

pub use types::{Attempt, JobInfo, QueueInfo, Repair, WorkerInfo};

use crate::broker::Broker;
use crate::connection::Conn;
use crate::error::{Error, Result};
use crate::keys;
use redis::Value;
use std::collections::HashMap;

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

    /// Every known queue that holds a job with this id, sorted. Ids are unique per queue only,
    /// so there can be several.
    pub async fn locate_all(&self, id: &str) -> Result<Vec<String>> {
        if keys::validate_id(id).is_err() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        // One command per queue: the job keys of different queues live in different slots.
        let mut con = self.con();
        for q in self.queue_names().await? {
            let exists: bool = redis::cmd("EXISTS")
                .arg(self.broker.keys().job(&q, id))
                .query_async(&mut con)
                .await?;
            if exists {
                found.push(q);
            }
        }
        Ok(found)
    }

    /// The queue holding job `id`: `queue` when given and it holds the job; else the one known
    /// queue that does. [`Error::AmbiguousId`] when several queues hold the id and no `queue`
    /// says which.
    pub async fn locate(&self, id: &str, queue: Option<&str>) -> Result<Option<String>> {
        if let Some(q) = queue {
            keys::validate_queue(q)?;
            if keys::validate_id(id).is_err() {
                return Ok(None);
            }
            let exists: bool = redis::cmd("EXISTS")
                .arg(self.broker.keys().job(q, id))
                .query_async(&mut self.con())
                .await?;
            return Ok(exists.then(|| q.to_string()));
        }
        let mut queues = self.locate_all(id).await?;
        if queues.len() > 1 {
            return Err(Error::AmbiguousId {
                id: id.to_string(),
                queues,
            });
        }
        Ok(queues.pop())
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

/// A sorted-set score as Redis sent it (text in RESP2, a double in RESP3).
fn score_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Double(d) => Some(d.to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}
