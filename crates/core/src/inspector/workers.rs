//! Live workers.

use super::{hash, Inspector, WorkerInfo};
use crate::error::Result;
use crate::time::rfc3339_ms_text;
use redis::Value;

impl Inspector {
    /// Live workers (records of workers that stopped heartbeating are pruned).
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let k = self.broker.keys();
        let mut con = self.con();
        let ids: Vec<(String, String)> = redis::cmd("ZRANGE")
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
                started_at: f
                    .contains_key("started_ms")
                    .then(|| rfc3339_ms_text(&text("started_ms"))),
                last_heartbeat: Some(rfc3339_ms_text(&beat)),
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
