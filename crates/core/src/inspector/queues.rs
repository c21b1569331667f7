//! Per-queue figures: counts by state, the oldest pending job's age, throughput.

use super::{hash, Inspector, QueueInfo};
use crate::broker::int;
use crate::error::Result;
use crate::state::JobState;
use crate::time::MAX_TIMESTAMP_MS;
use redis::Value;
use std::collections::BTreeMap;

impl Inspector {
    /// Figures for every known queue, then one entry (all figures zero, `skipped` saying why)
    /// for each member of `P:queues` that is not a queue name.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let list = self.queue_list().await?;
        let names = list.names;
        let mut con = self.con();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut con).await?;
        let now_ms = secs * 1000 + micros / 1000;
        let slot_now = secs / 10;
        let k = self.broker.keys();
        let mut out = Vec::new();
        for q in names {
            let mut pipe = redis::pipe();
            // A key of another type (a foreign write inside the prefix) spoils its own figure
            // only: reported, shown as 0, and the other queues are read as usual.
            pipe.ignore_errors();
            pipe.llen(k.pending(&q))
                .zcard(k.scheduled(&q))
                .zcard(k.retry(&q))
                .zcard(k.active(&q))
                .zcard(k.succeeded(&q))
                .zcard(k.dead(&q))
                .zcard(k.cancelled(&q))
                .lindex(k.pending(&q), -1)
                .cmd("HGETALL")
                .arg(k.stats(&q))
                .hlen(k.strays(&q));
            for slot in slot_now - 5..=slot_now {
                pipe.cmd("HMGET")
                    .arg(k.stats_slot(&q, slot))
                    .arg("processed")
                    .arg("failed");
            }
            let r: Vec<Value> = pipe.query_async(&mut con).await?;
            let read_as = [
                k.pending(&q),
                k.scheduled(&q),
                k.retry(&q),
                k.active(&q),
                k.succeeded(&q),
                k.dead(&q),
                k.cancelled(&q),
                k.pending(&q),
                k.stats(&q),
                k.strays(&q),
            ];
            let mut unreadable: Vec<String> = r
                .iter()
                .zip(read_as)
                .filter_map(|(v, key)| match v {
                    Value::ServerError(e) => {
                        Some(format!("{key}: {}", e.details().unwrap_or(e.code())))
                    }
                    _ => None,
                })
                .collect();
            unreadable.sort();
            unreadable.dedup();
            for u in &unreadable {
                self.warn_once(format!(
                    "queue {q}: cannot read {u} (a key of another type inside Celeriac's prefix?); its figure is shown as 0"
                ));
            }
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
            let oldest_pending_age_ms = match &r[7] {
                Value::BulkString(id) => {
                    let msg: Option<Vec<u8>> = redis::cmd("HGET")
                        .arg(k.job_bytes(&q, id))
                        .arg("msg")
                        .query_async(&mut con)
                        .await
                        .unwrap_or(None);
                    msg.and_then(|m| {
                        serde_json::from_slice::<serde_json::Value>(crate::envelope::json_text(&m))
                            .ok()
                    })
                    .and_then(|m| {
                        // Times that are not times (past year 9999, e.g. written in
                        // µs by mistake) are left out rather than giving an age of 0.
                        let time = |v: &serde_json::Value| {
                            v.as_u64().filter(|&ms| ms <= MAX_TIMESTAMP_MS).unwrap_or(0)
                        };
                        let since = time(&m["run_at"]).max(time(&m["created_at"]));
                        (since > 0).then(|| now_ms.saturating_sub(since))
                    })
                }
                _ => None,
            };
            let stats = hash(&r[8]);
            let stat = |name: &str| {
                stats
                    .get(name)
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let (mut processed, mut failed) = (0, 0);
            for v in &r[10..] {
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
                strays: count(9),
                unreadable,
                skipped: None,
            });
        }
        out.extend(list.skipped.into_iter().map(|s| {
            QueueInfo {
                queue: s.name,
                states: JobState::ALL
                    .iter()
                    .map(|st| (st.as_str().to_string(), 0))
                    .collect(),
                oldest_pending_age_ms: None,
                processed_last_minute: 0,
                failed_last_minute: 0,
                processed_total: 0,
                failed_total: 0,
                dead_by_reason: BTreeMap::new(),
                strays: 0,
                unreadable: Vec::new(),
                skipped: Some(s.reason),
            }
        }));
        Ok(out)
    }
}
