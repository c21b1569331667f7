//! Read and repair jobs, queues and workers. The CLI goes through this API only.
//!
//! - [`types`](self::types): what it returns ([`JobInfo`], [`QueueInfo`], [`WorkerInfo`],
//!   [`Repair`]);
//! - `jobs`: one job, jobs by state;
//! - `repair`: cancel, retry, purge;
//! - [`strays`](self::strays): records outside the index of their state, listed and settled;
//! - `batches`: the batch a parent job created;
//! - `queues`: per-queue figures;
//! - `workers`: live workers;
//! - this file: the [`Inspector`], queue names and finding the queue of an id.

mod batches;
mod jobs;
mod queues;
mod repair;
pub mod strays;
pub mod types;
mod workers;

pub use strays::{StrayInfo, StrayRepair};
pub use types::{Attempt, BatchInfo, JobInfo, QueueInfo, Repair, WorkerInfo};

use crate::broker::Broker;
use crate::connection::Conn;
use crate::error::{Error, Result};
use crate::keys;
use redis::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// Attempts allowed to jobs of a kind whose envelope does not say (the workers' retry policy).
pub type AttemptsOf = std::sync::Arc<dyn Fn(&str) -> u32 + Send + Sync>;

/// Where the inspector reports what it skipped (a member of `P:queues` that is not a queue
/// name, say): each message once per inspector. The CLI prints them on stderr; the default
/// logs them (`tracing`).
pub type Warn = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Inspect and repair through a [`Broker`].
#[derive(Clone)]
pub struct Inspector {
    broker: Broker,
    attempts_of: AttemptsOf,
    warn: Warn,
    warned: std::sync::Arc<Mutex<BTreeSet<String>>>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

/// The members of `P:queues`: the queue names, and what is there but is not one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueNames {
    /// Valid queue names, sorted.
    pub names: Vec<String>,
    /// Members that are not queue names (not UTF-8, or breaking the naming rules): shown as
    /// [`keys::display_bytes`] does, with why; skipped by every command.
    pub skipped: Vec<SkippedName>,
}

/// A member of `P:queues` that is not a queue name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedName {
    /// The member, escaped (`bad\xff`).
    pub name: String,
    /// Why it is not a queue name.
    pub reason: String,
}

impl Inspector {
    /// `attempts_of` gives the attempts shown for jobs whose envelope does not set them (give
    /// the CLI the workers' `[retry]` and `[kinds]` policy).
    pub fn new(broker: Broker, attempts_of: AttemptsOf) -> Self {
        Inspector {
            broker,
            attempts_of,
            warn: std::sync::Arc::new(|message: &str| tracing::warn!("{message}")),
            warned: Default::default(),
        }
    }

    /// Report what the inspector skips through `warn` (each message once).
    pub fn with_warnings(mut self, warn: Warn) -> Self {
        self.warn = warn;
        self
    }

    fn warn_once(&self, message: String) {
        let first = self
            .warned
            .lock()
            .map(|mut w| w.insert(message.clone()))
            .unwrap_or(true);
        if first {
            (self.warn)(&message);
        }
    }

    fn con(&self) -> Conn {
        self.broker.connection()
    }

    /// Known queue names, sorted. Members of `P:queues` that are not queue names are skipped
    /// and reported (see [`Inspector::queue_list`]).
    pub async fn queue_names(&self) -> Result<Vec<String>> {
        Ok(self.queue_list().await?.names)
    }

    /// The members of `P:queues`, sorted into queue names and what is not one. Each member
    /// skipped is reported once through the warning hook, with how to remove it.
    pub async fn queue_list(&self) -> Result<QueueNames> {
        let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
            .arg(self.broker.keys().queues())
            .query_async(&mut self.con())
            .await?;
        let mut out = QueueNames::default();
        for m in members {
            let reason = match std::str::from_utf8(&m) {
                Ok(name) => match keys::validate_queue(name) {
                    Ok(()) => {
                        out.names.push(name.to_string());
                        continue;
                    }
                    Err(Error::InvalidQueue { reason, .. }) => reason.to_string(),
                    Err(e) => e.to_string(),
                },
                Err(_) => "it is not UTF-8".to_string(),
            };
            let name = keys::display_bytes(&m);
            let set = self.broker.keys().queues();
            self.warn_once(format!(
                "{set} holds \"{name}\", which is not a queue name ({reason}): skipped; remove it with redis-cli SREM {set} \"{name}\""
            ));
            out.skipped.push(SkippedName { name, reason });
        }
        out.names.sort();
        out.skipped.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The ids `id` may stand for: itself, and the bytes its `\xNN` escapes stand for (the form
    /// in which the CLI shows an id that is not UTF-8).
    fn id_forms(id: &str) -> Vec<Vec<u8>> {
        let mut forms = Vec::new();
        if keys::validate_id(id).is_ok() {
            forms.push(id.as_bytes().to_vec());
            forms.extend(keys::unescape_bytes(id));
        }
        forms
    }

    /// Every known queue that holds a job with this id, sorted. Ids are unique per queue only,
    /// so there can be several.
    pub async fn locate_all(&self, id: &str) -> Result<Vec<String>> {
        Ok(self.find(id).await?.into_iter().map(|(q, _)| q).collect())
    }

    /// The queues holding `id` (in the first of its forms some queue holds), with that form.
    async fn find(&self, id: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let forms = Self::id_forms(id);
        if forms.is_empty() {
            return Ok(Vec::new());
        }
        let queues = self.queue_names().await?;
        // One command per queue: the job keys of different queues live in different slots.
        let mut con = self.con();
        for form in forms {
            let mut found = Vec::new();
            for q in &queues {
                let exists: bool = redis::cmd("EXISTS")
                    .arg(self.broker.keys().job_bytes(q, &form))
                    .query_async(&mut con)
                    .await?;
                if exists {
                    found.push((q.clone(), form.clone()));
                }
            }
            if !found.is_empty() {
                return Ok(found);
            }
        }
        Ok(Vec::new())
    }

    /// The queue holding job `id`: `queue` when given and it holds the job; else the one known
    /// queue that does. [`Error::AmbiguousId`] when several queues hold the id and no `queue`
    /// says which.
    pub async fn locate(&self, id: &str, queue: Option<&str>) -> Result<Option<String>> {
        Ok(self.locate_id(id, queue).await?.map(|(q, _)| q))
    }

    /// [`Inspector::locate`], with the id's bytes as stored.
    async fn locate_id(&self, id: &str, queue: Option<&str>) -> Result<Option<(String, Vec<u8>)>> {
        if let Some(q) = queue {
            keys::validate_queue(q)?;
            for form in Self::id_forms(id) {
                let exists: bool = redis::cmd("EXISTS")
                    .arg(self.broker.keys().job_bytes(q, &form))
                    .query_async(&mut self.con())
                    .await?;
                if exists {
                    return Ok(Some((q.to_string(), form)));
                }
            }
            return Ok(None);
        }
        let mut found = self.find(id).await?;
        if found.len() > 1 {
            return Err(Error::AmbiguousId {
                id: id.to_string(),
                queues: found.into_iter().map(|(q, _)| q).collect(),
            });
        }
        Ok(found.pop())
    }
}

/// Ids of a sorted set, as bytes (an id need not be UTF-8).
async fn zrange(
    con: &mut Conn,
    key: &str,
    stop: isize,
    newest_first: bool,
) -> Result<Vec<Vec<u8>>> {
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
