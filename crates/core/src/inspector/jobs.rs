//! One job by id, and the jobs of a queue in one state.

use super::{hash, score_text, zrange, Attempt, Inspector, JobInfo};
use crate::error::Result;
use crate::keys;
use crate::state::JobState;
use crate::time::{out_of_range, rfc3339_ms_text, rfc3339_us_text};
use redis::Value;
use std::collections::HashMap;

impl Inspector {
    /// One job by id: in `queue` when given, else in the one known queue that holds it
    /// ([`crate::Error::AmbiguousId`] when several do).
    /// An id that is not UTF-8 is given as the CLI shows it (`bad\xff`, see
    /// [`keys::display_bytes`]).
    pub async fn job(&self, id: &str, queue: Option<&str>) -> Result<Option<JobInfo>> {
        let Some((queue, id)) = self.locate_id(id, queue).await? else {
            return Ok(None);
        };
        let mut jobs = self.load(&queue, &[id]).await?;
        Ok(jobs.pop().flatten())
    }

    /// Jobs of `queue` by id, in order (`None` for ids with no record).
    pub async fn jobs_in(&self, queue: &str, ids: &[String]) -> Result<Vec<Option<JobInfo>>> {
        let ids: Vec<Vec<u8>> = ids.iter().map(|id| id.as_bytes().to_vec()).collect();
        self.load(queue, &ids).await
    }

    /// Jobs of `queue` in `state`, newest finished first for final states, next-to-run first
    /// otherwise.
    pub async fn list(&self, queue: &str, state: JobState, limit: usize) -> Result<Vec<JobInfo>> {
        keys::validate_queue(queue)?;
        let k = self.broker.keys();
        let stop = limit.max(1) as isize - 1;
        let mut con = self.con();
        let ids: Vec<Vec<u8>> = match state {
            JobState::Pending => redis::cmd("LRANGE")
                .arg(k.pending(queue))
                .arg(-(limit.max(1) as isize))
                .arg(-1)
                .query_async::<Vec<Vec<u8>>>(&mut con)
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

    async fn load(&self, queue: &str, ids: &[Vec<u8>]) -> Result<Vec<Option<JobInfo>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.broker.keys();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(k.job_bytes(queue, id));
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
                let due = r[1..].iter().find_map(score_text);
                Some(self.job_info(queue, &keys::display_bytes(id), &fields, due))
            })
            .collect())
    }

    fn job_info(
        &self,
        queue: &str,
        id: &str,
        f: &HashMap<String, Vec<u8>>,
        due: Option<String>,
    ) -> JobInfo {
        let text = |name: &str| f.get(name).map(|v| String::from_utf8_lossy(v).into_owned());
        let msg: serde_json::Value = f
            .get("msg")
            .and_then(|b| serde_json::from_slice(crate::envelope::json_text(b)).ok())
            .unwrap_or(serde_json::Value::Null);
        let state = text("state").unwrap_or_default();
        let attempts = text("attempt")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            .min(u32::MAX.into()) as u32;
        let worker = text("worker");
        let started_at = text("started_us").map(|s| rfc3339_us_text(&s));
        let finished_at = text("finished_us").map(|s| rfc3339_us_text(&s));
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
                started_at: us_json(&h["started_us"]),
                finished_at: us_json(&h["finished_us"]),
                outcome: h["outcome"].as_str().unwrap_or("").to_string(),
                error: h["error"].as_str().map(str::to_string),
            })
            .collect();
        if state == "active" || state == "succeeded" {
            history.push(Attempt {
                attempt: Some(attempts),
                worker: worker.clone(),
                started_at: started_at.clone(),
                finished_at: (state == "succeeded")
                    .then(|| finished_at.clone())
                    .flatten(),
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
                .map(|m| m.min(u32::MAX.into()) as u32)
                .unwrap_or_else(|| (self.attempts_of)(&kind)),
            created_at: ms_json(&msg["created_at"]),
            started_at,
            finished_at: if is_final { finished_at } else { None },
            run_at: if state == "scheduled" || state == "retrying" {
                due.map(|ms| rfc3339_ms_text(&ms))
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
            spawned: text("spawned_batch")
                .zip(text("spawned_queue"))
                .map(|(id, queue)| super::types::BatchRef { queue, id }),
        }
    }
}

/// An envelope time (Unix ms, a JSON number) as text; `None` when absent. A value that is not
/// a time (a string, a negative or fractional number, past year 9999) is shown as it is.
fn ms_json(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::Number(n) => Some(rfc3339_ms_text(&n.to_string())),
        other => Some(out_of_range(other, "ms")),
    }
}

/// A history time (Unix µs as a decimal string, as the scripts write it) as text.
fn us_json(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(rfc3339_us_text(s)),
        serde_json::Value::Number(n) => Some(rfc3339_us_text(&n.to_string())),
        other => Some(out_of_range(other, "µs")),
    }
}
