//! Built-in kinds: `noop`, `sleep`, `fail`.

use crate::job::{Job, Outcome};
use crate::registry::Registry;
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepPayload {
    ms: u64,
    /// Sleep in this many equal steps, reporting `{"done": i, "total": steps}` after each.
    #[serde(default)]
    steps: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FailPayload {
    times: Option<u32>,
    message: Option<String>,
}

pub(super) fn register(registry: &mut Registry) -> &mut Registry {
    registry
        .register("noop", |_job: Job| async { Outcome::Done(None) })
        .register("sleep", sleep)
        .register("fail", fail)
}

async fn sleep(job: Job) -> Outcome {
    let p: SleepPayload = match job.payload_as() {
        Ok(p) => p,
        Err(o) => return o,
    };
    let Some(steps) = p.steps.filter(|&s| s > 0) else {
        tokio::time::sleep(Duration::from_millis(p.ms)).await;
        return Outcome::Done(None);
    };
    let step = Duration::from_millis(p.ms) / steps;
    for done in 1..=steps {
        tokio::time::sleep(step).await;
        job.progress
            .set(&serde_json::json!({"done": done, "total": steps}));
    }
    Outcome::Done(None)
}

async fn fail(job: Job) -> Outcome {
    let p: FailPayload = if job.payload.is_null() {
        FailPayload::default()
    } else {
        match job.payload_as() {
            Ok(p) => p,
            Err(o) => return o,
        }
    };
    let message = p
        .message
        .unwrap_or_else(|| "failed on purpose (kind `fail`)".into());
    match p.times {
        Some(times) if job.attempt > times => Outcome::Done(None),
        _ => Outcome::Retry(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    fn job(kind: &str, attempt: u32, payload: serde_json::Value) -> Job {
        Job {
            id: "j".into(),
            kind: kind.into(),
            queue: "q".into(),
            attempt,
            max_attempts: 5,
            payload,
            token: 1,
            worker: "w".into(),
            cancel: CancellationToken::new(),
            progress: Default::default(),
        }
    }

    #[tokio::test]
    async fn fail_fails_the_first_n_attempts() {
        let p = serde_json::json!({"times": 2, "message": "boom"});
        assert_eq!(
            fail(job("fail", 1, p.clone())).await,
            Outcome::Retry("boom".into())
        );
        assert_eq!(
            fail(job("fail", 2, p.clone())).await,
            Outcome::Retry("boom".into())
        );
        assert_eq!(fail(job("fail", 3, p)).await, Outcome::Done(None));
        assert!(matches!(
            fail(job("fail", 99, serde_json::Value::Null)).await,
            Outcome::Retry(_)
        ));
    }

    #[tokio::test]
    async fn bad_payloads_are_discarded() {
        assert!(matches!(
            sleep(job("sleep", 1, serde_json::json!({"ms": "x"}))).await,
            Outcome::Discard(_)
        ));
        assert!(matches!(
            fail(job("fail", 1, serde_json::json!({"times": -1}))).await,
            Outcome::Discard(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_in_steps_reports_each_step() {
        let j = job("sleep", 1, serde_json::json!({"ms": 300, "steps": 3}));
        let progress = j.progress.clone();
        assert_eq!(sleep(j).await, Outcome::Done(None));
        assert_eq!(
            progress.latest().as_deref(),
            Some(r#"{"done":3,"total":3}"#)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_waits_its_duration() {
        let start = tokio::time::Instant::now();
        let out = sleep(job("sleep", 1, serde_json::json!({"ms": 3_600_000}))).await;
        assert_eq!(out, Outcome::Done(None));
        assert_eq!(start.elapsed(), Duration::from_secs(3600));
    }
}
