//! What a handler receives ([`Job`], with its [`Progress`]) and returns ([`Outcome`]).

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a handler says about one attempt.
///
/// | outcome            | counts as an attempt | what happens next                                  |
/// |--------------------|----------------------|----------------------------------------------------|
/// | `Done(result)`     | yes                  | `succeeded`, result stored                         |
/// | `Retry(error)`     | yes                  | `retrying` after the kind's delay (backoff, or its retry schedule), or `dead` (`max_attempts`) when attempts are used up |
/// | `RetryAfter(error, delay)` | yes          | `retrying` after `delay` instead of the kind's delay, or `dead` (`max_attempts`) when attempts are used up |
/// | `RetryAtLeast(error, delay)` | yes        | `retrying` after the kind's delay or `delay`, whichever is longer (a server's `Retry-After`), or `dead` (`max_attempts`) when attempts are used up |
/// | `Discard(reason)`  | yes                  | `dead` at once (`discarded`): retrying cannot help |
/// | `Snooze(duration)` | no                   | `scheduled`, runs again after the duration         |
///
/// A panic or a timeout counts as `Retry` with the panic message or "timed out".
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Success, with an optional JSON result kept with the job.
    Done(Option<Value>),
    /// A failure that may succeed later.
    Retry(String),
    /// A failure that may succeed later, retried after the given delay instead of the
    /// kind's backoff (a handler with its own retry schedule, or a server that said when).
    RetryAfter(String, Duration),
    /// A failure that may succeed later, retried after the kind's delay (backoff or schedule)
    /// but not sooner than the given delay (a server's `Retry-After`).
    RetryAtLeast(String, Duration),
    /// A failure retrying cannot fix.
    Discard(String),
    /// Not now: run again later without using an attempt.
    Snooze(Duration),
}

/// One attempt of a job, as a handler sees it.
#[derive(Clone, Debug)]
pub struct Job {
    /// Job id (stable across attempts: use it as an idempotency key downstream).
    pub id: String,
    /// Job kind.
    pub kind: String,
    /// Queue.
    pub queue: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Input.
    pub payload: Value,
    /// Fencing token of this delivery: it grows with every delivery of the job, so a
    /// downstream system that remembers the largest token it saw can refuse writes from a
    /// worker that lost its lease.
    pub token: u64,
    /// Id of the worker running this attempt.
    pub worker: String,
    /// Cancelled when this attempt ends for any reason — finished, timed out, abandoned at
    /// the end of the shutdown grace period, or its lease lost (cancelled by an operator,
    /// taken back). The handler's own future is simply dropped in those cases; the token is
    /// for tasks the handler spawned, which should select on [`Job::cancelled`] and stop.
    pub cancel: CancellationToken,
    /// Where the handler reports how far it got (see [`Progress`]).
    pub progress: Progress,
}

/// A handler's progress report: the latest value set is written to the job record at the
/// worker's next heartbeat (every `worker.heartbeat_interval`), where `celeriac status` shows it,
/// and with the job's outcome when the handler returns, so a finished job shows the last value
/// its handler set. Setting it is cheap (no Redis call), so a handler may set it after every
/// item.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    latest: Arc<std::sync::Mutex<Latest>>,
}

#[derive(Debug, Default)]
struct Latest {
    value: Option<String>,
    /// Set since the heartbeat last took it.
    unsent: bool,
}

impl Progress {
    /// Report `value` (any JSON-serializable value, e.g. `{"done": 10, "total": 250}`).
    pub fn set(&self, value: &impl serde::Serialize) {
        if let (Ok(text), Ok(mut latest)) = (serde_json::to_string(value), self.latest.lock()) {
            latest.value = Some(text);
            latest.unsent = true;
        }
    }

    /// The value set since the last call, if any (the heartbeat sends it).
    pub(crate) fn take(&self) -> Option<String> {
        let mut latest = self.latest.lock().ok()?;
        if !std::mem::take(&mut latest.unsent) {
            return None;
        }
        latest.value.clone()
    }

    /// The heartbeat could not send what it took: send the latest value next time.
    pub(crate) fn restore(&self) {
        if let Ok(mut latest) = self.latest.lock() {
            latest.unsent = latest.value.is_some();
        }
    }

    /// The latest value set, sent or not (it goes with the job's outcome).
    pub(crate) fn latest(&self) -> Option<String> {
        self.latest.lock().ok().and_then(|l| l.value.clone())
    }
}

impl Job {
    /// Resolves when this attempt has ended (see [`Job::cancel`]).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Decode the payload into `T`, or a `Discard` outcome naming what is wrong.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, Outcome> {
        serde_json::from_value(self.payload.clone())
            .map_err(|e| Outcome::Discard(format!("payload does not fit kind {}: {e}", self.kind)))
    }
}
