//! Strays: records the scripts found outside the index of their state, and job keys that are
//! not hashes (see `docs/job-states.md`, "Strays and orphans"). The scripts note them in the
//! queue's `strays` hash and leave them alone; an operator lists them here and settles them
//! with [`Inspector::repair_strays`].

use super::{hash, Inspector};
use crate::error::Result;
use crate::keys::{self, display_bytes};
use crate::scripts;
use crate::time::rfc3339_ms_text;
use redis::Value;
use serde::Serialize;

/// Most strays settled per script call.
const REPAIR_BATCH: usize = 500;

/// Bytes of a string job key shown by [`Inspector::strays`].
const PREVIEW_BYTES: isize = 120;

/// One stray of a queue, as noted when found and as its key is now.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StrayInfo {
    /// Job id (escaped as [`keys::display_bytes`] does).
    pub id: String,
    /// `wrong_type` (the job key is not a hash) or `wrong_index` (the record's state is not
    /// that of the index its id was in, and it is in no index of its own state).
    pub what: String,
    /// The index the id was found in: `pending`, `scheduled`, `retry` or `active`.
    pub index: String,
    /// What was found: the key's type, or the record's state.
    pub found: String,
    /// When it was found (Redis clock).
    pub noticed_at: Option<String>,
    /// What the key holds now, e.g. `hash, state scheduled, in no index`, `string: {"v":1,…`.
    pub now: String,
}

/// What [`Inspector::repair_strays`] did to one stray.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StrayRepair {
    /// Job id (escaped).
    pub id: String,
    /// `gone`, `resolved`, `dead_lettered`, `reindexed`, `converted` or `left` (see
    /// `scripts/strays.lua`).
    pub action: String,
    /// The state or type it was found in.
    pub detail: String,
}

impl Inspector {
    /// The strays of `queue` (at most `limit`, the most recently found first).
    pub async fn strays(&self, queue: &str, limit: usize) -> Result<Vec<StrayInfo>> {
        keys::validate_queue(queue)?;
        let k = self.broker.keys();
        let mut con = self.con();
        let raw: Value = redis::cmd("HGETALL")
            .arg(k.strays(queue))
            .query_async(&mut con)
            .await?;
        let mut noted: Vec<(Vec<u8>, serde_json::Value)> = raw_pairs(&raw)
            .into_iter()
            .map(|(id, v)| (id, serde_json::from_slice(&v).unwrap_or_default()))
            .collect();
        noted.sort_by_key(|(_, v)| std::cmp::Reverse(v["at_ms"].as_u64().unwrap_or(0)));
        noted.truncate(limit.max(1));
        let mut out = Vec::with_capacity(noted.len());
        for (id, v) in noted {
            let now = self.stray_now(queue, &id).await?;
            let text = |name: &str| v[name].as_str().unwrap_or("").to_string();
            out.push(StrayInfo {
                id: display_bytes(&id),
                what: text("what"),
                index: text("index"),
                found: text("found"),
                noticed_at: v["at_ms"]
                    .as_u64()
                    .map(|ms| rfc3339_ms_text(&ms.to_string())),
                now,
            });
        }
        Ok(out)
    }

    /// What the job key of `id` holds now, in words.
    async fn stray_now(&self, queue: &str, id: &[u8]) -> Result<String> {
        let k = self.broker.keys();
        let key = k.job_bytes(queue, id);
        let mut con = self.con();
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut con).await?;
        Ok(match kind.as_str() {
            "none" => "gone".into(),
            "string" => {
                let head: Vec<u8> = redis::cmd("GETRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(PREVIEW_BYTES - 1)
                    .query_async(&mut con)
                    .await?;
                format!("string: {}…", display_bytes(&head))
            }
            "hash" => {
                let f = hash(
                    &redis::cmd("HGETALL")
                        .arg(&key)
                        .query_async::<Value>(&mut con)
                        .await?,
                );
                let state = f
                    .get("state")
                    .map(|s| String::from_utf8_lossy(s).into_owned());
                let index = match state.as_deref() {
                    Some("scheduled") => Some(k.scheduled(queue)),
                    Some("retrying") => Some(k.retry(queue)),
                    Some("active") => Some(k.active(queue)),
                    Some("succeeded") => Some(k.succeeded(queue)),
                    Some("dead") => Some(k.dead(queue)),
                    Some("cancelled") => Some(k.cancelled(queue)),
                    _ => None,
                };
                let indexed = match &index {
                    Some(z) => redis::cmd("ZSCORE")
                        .arg(z)
                        .arg(id)
                        .query_async::<Option<f64>>(&mut con)
                        .await?
                        .is_some(),
                    None => false,
                };
                match state {
                    None => "hash without a state".into(),
                    Some(s) if indexed => format!("hash, state {s}, back in its index"),
                    Some(s) if s == "pending" => "hash, state pending".into(),
                    Some(s) => format!("hash, state {s}, in no index"),
                }
            }
            other => format!("a Redis {other}"),
        })
    }

    /// Settle every stray of `queue` (see `scripts/strays.lua` for what each becomes); returns
    /// what was done to each.
    pub async fn repair_strays(&self, queue: &str) -> Result<Vec<StrayRepair>> {
        keys::validate_queue(queue)?;
        let k = self.broker.keys();
        let ids: Vec<Vec<u8>> = redis::cmd("HKEYS")
            .arg(k.strays(queue))
            .query_async(&mut self.con())
            .await?;
        let mut out = Vec::new();
        for chunk in ids.chunks(REPAIR_BATCH) {
            let mut inv = scripts::STRAYS.prepare_invoke();
            inv.key(k.strays(queue))
                .key(k.dead(queue))
                .key(k.stats(queue))
                .arg(k.queue_base(queue));
            for id in chunk {
                inv.arg(id);
            }
            let reply: Vec<Vec<u8>> = inv.invoke_async(&mut self.con()).await?;
            for r in reply.chunks(3) {
                if let [id, action, detail] = r {
                    out.push(StrayRepair {
                        id: display_bytes(id),
                        action: String::from_utf8_lossy(action).into_owned(),
                        detail: String::from_utf8_lossy(detail).into_owned(),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Field/value pairs of a hash reply, as bytes.
fn raw_pairs(v: &Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    match v {
        Value::Array(items) => {
            for pair in items.chunks(2) {
                if let [Value::BulkString(k), Value::BulkString(b)] = pair {
                    out.push((k.clone(), b.clone()));
                }
            }
        }
        Value::Map(items) => {
            for (k, val) in items {
                if let (Value::BulkString(k), Value::BulkString(b)) = (k, val) {
                    out.push((k.clone(), b.clone()));
                }
            }
        }
        _ => {}
    }
    out
}
