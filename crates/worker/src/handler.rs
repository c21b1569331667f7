//! What a handler is, what it receives and what it returns.

use celeriac_core::JobKind;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a handler says about one attempt.
///
/// | outcome            | counts as an attempt | what happens next                                  |
/// |--------------------|----------------------|----------------------------------------------------|
/// | `Done(result)`     | yes                  | `succeeded`, result stored                         |
/// | `Retry(error)`     | yes                  | `retrying` after backoff, or `dead` (`max_attempts`) when attempts are used up |
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
/// worker's next heartbeat (every `worker.heartbeat_interval`), where `celeriac status` shows it.
/// Setting it is cheap (no Redis call), so a handler may set it after every item.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    latest: Arc<std::sync::Mutex<Option<String>>>,
}

impl Progress {
    /// Report `value` (any JSON-serializable value, e.g. `{"done": 10, "total": 250}`).
    pub fn set(&self, value: &impl serde::Serialize) {
        if let (Ok(text), Ok(mut latest)) = (serde_json::to_string(value), self.latest.lock()) {
            *latest = Some(text);
        }
    }

    /// The value set since the last call, if any (the heartbeat sends it).
    pub(crate) fn take(&self) -> Option<String> {
        self.latest.lock().ok().and_then(|mut l| l.take())
    }

    /// Put back a value the heartbeat could not send, unless a newer one was set meanwhile.
    pub(crate) fn restore(&self, value: String) {
        if let Ok(mut latest) = self.latest.lock() {
            latest.get_or_insert(value);
        }
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

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// Runs jobs of one kind. Any `Fn(Job) -> impl Future<Output = Outcome>` is a handler.
///
/// Delivery is at least once: a job may run again after a crash or a lost lease, so a handler
/// must be idempotent (use [`Job::id`] to dedupe side effects downstream).
pub trait Handler: Send + Sync + 'static {
    /// Run one attempt.
    fn handle(&self, job: Job) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    fn handle(&self, job: Job) -> HandlerFuture {
        Box::pin(self(job))
    }
}

/// Kind → handler.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `handler` for `kind` (replacing any earlier one).
    pub fn register(&mut self, kind: &str, handler: impl Handler) -> &mut Self {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    /// Register a handler taking the typed payload of `J`; a payload that does not decode is
    /// discarded with the decode error.
    pub fn register_typed<J, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        J: JobKind + Send + 'static,
        F: Fn(J, Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.register(J::KIND, move |job: Job| {
            let handler = handler.clone();
            async move {
                match job.payload_as::<J>() {
                    Ok(payload) => handler(payload, job).await,
                    Err(outcome) => outcome,
                }
            }
        })
    }

    /// The handler for `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(kind).cloned()
    }

    /// Registered kinds, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }
}
