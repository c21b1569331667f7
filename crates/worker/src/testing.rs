//! Run a handler on a job in a test, without Redis or a worker: build a [`TestJob`], run it
//! through a [`Registry`] and look at the [`Outcome`] and the progress it reported.
//!
//! ```
//! # tokio_test_block_on(async {
//! use celeriac_worker::{kinds, testing::TestJob, Outcome, Registry};
//! let mut registry = Registry::new();
//! kinds::register_all(&mut registry);
//! let ran = TestJob::new("fail", serde_json::json!({"times": 1})).run(&registry).await;
//! assert!(matches!(ran.outcome, Outcome::Retry(_)));
//! let ran = TestJob::new("fail", serde_json::json!({"times": 1})).attempt(2).run(&registry).await;
//! assert_eq!(ran.outcome, Outcome::Done(None));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use crate::job::{Job, Outcome, Progress};
use crate::registry::Registry;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A job to run in a test.
#[derive(Clone, Debug)]
pub struct TestJob {
    job: Job,
}

/// What a test run gave.
#[derive(Clone, Debug)]
pub struct Ran {
    /// The handler's outcome.
    pub outcome: Outcome,
    /// The last progress it reported, if any.
    pub progress: Option<Value>,
}

impl TestJob {
    /// Attempt 1 of a job of `kind` with `payload`, id `test-job`, queue `default`.
    pub fn new(kind: &str, payload: Value) -> TestJob {
        TestJob {
            job: Job {
                id: "test-job".into(),
                kind: kind.into(),
                queue: "default".into(),
                attempt: 1,
                max_attempts: 25,
                payload,
                token: 1,
                worker: "test-worker".into(),
                cancel: CancellationToken::new(),
                progress: Progress::default(),
            },
        }
    }

    /// The job's id.
    pub fn id(mut self, id: &str) -> TestJob {
        self.job.id = id.into();
        self
    }

    /// The attempt number (from 1).
    pub fn attempt(mut self, attempt: u32) -> TestJob {
        self.job.attempt = attempt;
        self
    }

    /// The attempts allowed.
    pub fn max_attempts(mut self, max_attempts: u32) -> TestJob {
        self.job.max_attempts = max_attempts;
        self
    }

    /// The job's queue.
    pub fn queue(mut self, queue: &str) -> TestJob {
        self.job.queue = queue.into();
        self
    }

    /// The fencing token of the delivery.
    pub fn token(mut self, token: u64) -> TestJob {
        self.job.token = token;
        self
    }

    /// The job a handler would receive.
    pub fn job(&self) -> Job {
        self.job.clone()
    }

    /// Run it through the handler `registry` has for its kind (an unknown kind is a
    /// `Discard`, as a worker would dead-letter it).
    pub async fn run(self, registry: &Registry) -> Ran {
        let progress = self.job.progress.clone();
        let outcome = match registry.get(&self.job.kind) {
            Some(handler) => handler.handle(self.job).await,
            None => Outcome::Discard(format!("no handler for kind {:?}", self.job.kind)),
        };
        Ran {
            outcome,
            progress: progress
                .latest()
                .and_then(|text| serde_json::from_str(&text).ok()),
        }
    }
}
