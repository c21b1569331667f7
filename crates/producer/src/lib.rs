//! Enqueue Celeriac jobs from Rust.
//!
//! ```no_run
//! # async fn demo() -> Result<(), celeriac_producer::Error> {
//! use celeriac_producer::{JobKind, Producer};
//! use serde::{Deserialize, Serialize};
//! use std::time::Duration;
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendWelcome { user_id: u64 }
//! impl JobKind for SendWelcome { const KIND: &'static str = "mail.welcome"; }
//!
//! let config = celeriac_core::config::Config::load(None)?;
//! let producer = Producer::connect(&config).await?;
//! let job = producer
//!     .job(&SendWelcome { user_id: 42 })?
//!     .queue("mail")
//!     .delay(Duration::from_secs(30))
//!     .idempotency_key("welcome-42");
//! let id = producer.enqueue(job).await?.id;
//! # let _ = id; Ok(()) }
//! ```
//!
//! - [`Producer`]: connection plus defaults; [`Producer::enqueue_many`] sends a whole batch in
//!   one round trip per 1,000 jobs.
//! - [`NewJob`]: one job being built (queue, id, delay or run-at, attempts, timeout,
//!   idempotency key).
//! - [`batch`]: a batch of child jobs that completes exactly once, with a completion job.

pub mod batch;

pub use celeriac_core::broker::Enqueued;
pub use celeriac_core::{Error, JobKind, Result};

use celeriac_core::broker::NewJob as Prepared;
use celeriac_core::config::{Config, DEFAULT_QUEUE};
use celeriac_core::time::MAX_TIMESTAMP_MS;
use celeriac_core::{keys, Broker, Envelope, ENVELOPE_VERSION};
use serde_json::Value;
use std::time::Duration;

/// A job being built. Nothing is sent until [`Producer::enqueue`].
#[derive(Clone, Debug)]
pub struct NewJob {
    kind: String,
    payload: Value,
    queue: String,
    id: Option<String>,
    delay: Option<Duration>,
    run_at_ms: Option<u64>,
    max_attempts: Option<u32>,
    timeout: Option<Duration>,
    idempotency_key: Option<String>,
}

impl NewJob {
    /// A job of `kind` with a JSON payload, on the default queue.
    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        NewJob {
            kind: kind.into(),
            payload,
            queue: DEFAULT_QUEUE.into(),
            id: None,
            delay: None,
            run_at_ms: None,
            max_attempts: None,
            timeout: None,
            idempotency_key: None,
        }
    }

    /// Queue to put it on.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Use this id instead of a generated one; enqueueing an id that exists returns the
    /// existing job.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Run no earlier than `delay` from now (measured on the Redis clock). Enqueue refuses a
    /// delay that ends past [`MAX_TIMESTAMP_MS`] (9999-12-31T23:59:59.999Z).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Run no earlier than this Unix time in milliseconds (at most [`MAX_TIMESTAMP_MS`],
    /// 9999-12-31T23:59:59.999Z; enqueue refuses a later one).
    pub fn run_at_ms(mut self, ms: u64) -> Self {
        self.run_at_ms = Some(ms);
        self
    }

    /// Attempts before the job is dead (overrides the kind's policy).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Per-attempt timeout (overrides the kind's policy).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// While this key lives (`jobs.idempotency_ttl`), enqueueing again with it returns the
    /// first job's id instead of creating a job. Keys are scoped to the queue.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// Enqueues jobs.
#[derive(Clone, Debug)]
pub struct Producer {
    broker: Broker,
    max_payload_bytes: usize,
    idempotency_ttl: Duration,
    retention: celeriac_core::config::RetentionConfig,
}

impl Producer {
    /// Connect with `config`'s Redis URL, prefix and limits.
    pub async fn connect(config: &Config) -> Result<Producer> {
        let broker = Broker::from_config(config).await?;
        Ok(Producer::with_broker(broker, config))
    }

    /// Use an existing broker connection.
    pub fn with_broker(broker: Broker, config: &Config) -> Producer {
        Producer {
            broker,
            max_payload_bytes: config.jobs.max_payload_bytes,
            idempotency_ttl: config.jobs.idempotency_ttl,
            retention: config.retention.clone(),
        }
    }

    /// A job for a typed payload.
    pub fn job<J: JobKind>(&self, payload: &J) -> Result<NewJob> {
        Ok(NewJob::new(J::KIND, serde_json::to_value(payload)?))
    }

    /// Enqueue one job.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let mut out = self.enqueue_many(vec![job]).await?;
        out.pop()
            .ok_or_else(|| Error::Protocol("enqueue returned no id".into()))
    }

    /// Enqueue many jobs: one script call per queue and 1,000 jobs. Every job is validated
    /// before anything is sent, so a bad job fails the call without a partial enqueue. A Redis
    /// error part way through a batch of more than 1,000 jobs (Redis full, connection lost)
    /// returns [`Error::PartialEnqueue`]: which jobs were committed (with their results), which
    /// ones Redis did not answer for, and the error; the others were not written. Retry only
    /// the jobs not committed, or give jobs their own ids ([`NewJob::id`]) to make retrying
    /// the whole batch idempotent.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let now = celeriac_core::time::now_ms();
        let prepared = jobs
            .into_iter()
            .map(|j| self.prepare(j, now))
            .collect::<Result<Vec<_>>>()?;
        self.broker.enqueue(&prepared).await
    }

    pub(crate) fn prepare(&self, job: NewJob, now_ms: u64) -> Result<Prepared> {
        keys::validate_queue(&job.queue)?;
        keys::validate_kind(&job.kind)?;
        let id = match job.id {
            Some(id) => {
                keys::validate_id(&id)?;
                id
            }
            None => uuid::Uuid::now_v7().to_string(),
        };
        if job.max_attempts == Some(0) {
            return Err(Error::ConfigValue {
                field: "max_attempts".into(),
                message: "must be at least 1".into(),
            });
        }
        if job.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::ConfigValue {
                field: "timeout".into(),
                message: "must be greater than zero".into(),
            });
        }
        if let Some(key) = &job.idempotency_key {
            if key.is_empty() || key.len() > 512 {
                return Err(Error::ConfigValue {
                    field: "idempotency_key".into(),
                    message: "must be 1 to 512 bytes".into(),
                });
            }
        }
        let run_at = match (job.run_at_ms, job.delay) {
            (Some(ms), _) => Some(ms),
            (None, Some(d)) => Some(
                u64::try_from(d.as_millis())
                    .ok()
                    .and_then(|d| now_ms.checked_add(d))
                    .unwrap_or(u64::MAX),
            ),
            (None, None) => None,
        };
        if run_at.is_some_and(|ms| ms > MAX_TIMESTAMP_MS) {
            return Err(Error::RunAtOutOfRange {
                what: match (job.run_at_ms, job.delay) {
                    (Some(ms), _) => format!("the run-at time {ms} (Unix ms)"),
                    (None, d) => format!(
                        "the run-at time now + {} s",
                        d.unwrap_or_default().as_secs()
                    ),
                },
            });
        }
        let envelope = Envelope {
            v: ENVELOPE_VERSION,
            id,
            kind: job.kind,
            queue: job.queue,
            payload: job.payload,
            max_attempts: job.max_attempts,
            timeout_ms: job
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            created_at: now_ms,
            run_at,
            idempotency_key: job.idempotency_key,
        };
        let body = envelope.encode();
        if body.len() > self.max_payload_bytes {
            return Err(Error::TooLarge {
                size: body.len(),
                limit: self.max_payload_bytes,
            });
        }
        Ok(Prepared {
            envelope,
            body,
            delay: job.delay,
            run_at_ms: job.run_at_ms,
            idempotency_ttl: self.idempotency_ttl,
        })
    }
}
