//! Celeriac's worker runtime. [`run`] wires one background loop per file, as in this diagram:
//!
//! ```text
//!            ┌──────────── fetcher ────────────┐   lease a batch (one script call), spawn
//!  Redis ───►│ pending ─► active (lease+token) │──► executor per job (decode, handler,
//!            └─────────────────────────────────┘    timeout, panic) ──► acker (one script
//!  heartbeat: renew leases, announce the worker      call per batch of outcomes) ──► Redis
//!  sweep:     recover (take back expired leases), promote (due delayed/retrying → pending),
//!             janitor (retention of finished jobs)
//! ```
//!
//! - [`job`]: [`Job`] (what a handler receives, with its [`Progress`]) and [`Outcome`].
//! - [`registry`]: the [`Handler`] trait and the kind → handler [`Registry`].
//! - [`kinds`]: the kinds every worker runs (`noop`, `sleep`, `fail`; drills for fault
//!   injection). Domains register theirs from the program that assembles them.
//! - [`exclusive`]: one run at a time under a renewed Redis lock, released on drop.
//! - [`testing`]: run a handler on a job in a test, without Redis.
//! - [`config`]: `[worker]`, `[retry]`, `[kinds]` and their defaults.
//! - `fetcher`, `executor`, `acker`, `heartbeat`, `sweep` (recover, promote, janitor): the loops;
//!   `health` tracks whether Redis answers.

mod acker;
pub mod config;
pub mod exclusive;
mod executor;
mod fetcher;
mod health;
mod heartbeat;
pub mod job;
pub mod kinds;
pub mod metrics;
pub mod registry;
mod shared;
mod sweep;
pub mod testing;

pub use config::Settings;
pub use job::{Job, Outcome, Progress};
pub use registry::{Handler, Registry};

use celeriac_core::config::redact_url;
pub use celeriac_core::probe::Probe;
use celeriac_core::Broker;
use shared::Shared;
use std::sync::Arc;
use sweep::Sweep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long the final drain waits for stopped handlers and for unrecorded outcomes.
const FINAL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Redis could not be reached at start.
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The cause.
        source: celeriac_core::Error,
    },
    /// Another core error at start.
    #[error(transparent)]
    Core(#[from] celeriac_core::Error),
}

/// How a worker is told to stop: cancelling `drain` starts the graceful drain; cancelling
/// `now` (a second SIGTERM, say) ends its grace period at once — the handlers still running
/// are stopped and their jobs handed back — and starts the drain if it had not started.
/// A bare [`CancellationToken`] converts into a `Shutdown` whose `now` never fires.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    /// Stop fetching and let in-flight jobs finish within `worker.shutdown_grace`.
    pub drain: CancellationToken,
    /// Stop waiting: hand the jobs still running back now.
    pub now: CancellationToken,
}

impl Shutdown {
    /// Neither cancelled yet.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }
}

impl From<CancellationToken> for Shutdown {
    fn from(drain: CancellationToken) -> Shutdown {
        Shutdown {
            drain,
            now: CancellationToken::new(),
        }
    }
}

/// Run a worker until `shutdown` is cancelled, then drain: stop fetching, let in-flight jobs
/// finish within `worker.shutdown_grace`, hand the rest back at once, record every outcome,
/// deregister. Returns `Ok(())` after a clean drain.
pub async fn run(
    config: Settings,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    run_with_probe(config, registry, shutdown, Probe::new()).await
}

/// [`run`], reporting liveness and readiness to `probe` (for an HTTP health endpoint): ready
/// once started while Redis answers, not ready from the moment shutdown begins.
pub async fn run_with_probe(
    config: Settings,
    registry: Registry,
    shutdown: impl Into<Shutdown>,
    probe: Probe,
) -> Result<(), WorkerError> {
    let Shutdown {
        drain: shutdown,
        now,
    } = shutdown.into();
    // The defaults the domains registered for their kinds, under the operator's [kinds].
    let config = config.with_defaults(registry.defaults());
    config.check_kinds().map_err(celeriac_core::Error::from)?;
    let broker =
        Broker::from_config(&config.core)
            .await
            .map_err(|source| WorkerError::Connect {
                url: redact_url(&config.core.redis_url),
                source,
            })?;
    // Neither is fatal: a worker must start against a full Redis (maxmemory) to drain it.
    if let Err(e) = broker.register_queues(&config.worker.queues).await {
        warn!(error = %e, "could not register this worker's queues; continuing");
    }
    let epoch = match broker.ensure_epoch().await {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "could not read or set the dataset epoch; the heartbeat will retry");
            broker.epoch().await.ok().flatten().unwrap_or_default()
        }
    };
    let shared = Arc::new(Shared::new(config, broker, registry, probe.clone()));
    if let Ok(mut e) = shared.epoch.lock() {
        *e = epoch;
    }
    let w = &shared.config.worker;
    info!(
        worker = %shared.worker_id,
        queues = %w.queues.join(","),
        concurrency = w.concurrency,
        kinds = %shared.registry.kinds().join(","),
        "worker started"
    );
    heartbeat::announce(&shared).await;
    // Stopping now implies draining; it also ends the grace period (hard_stop).
    tokio::spawn({
        let (drain, hard_stop) = (shutdown.clone(), shared.hard_stop.clone());
        async move {
            tokio::select! {
                _ = now.cancelled() => {
                    drain.cancel();
                    hard_stop.cancel();
                }
                _ = hard_stop.cancelled() => {}
            }
        }
    });

    let maintenance = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (ack_tx, ack_rx) = tokio::sync::mpsc::unbounded_channel();
    let acker = tokio::spawn(acker::run(shared.clone(), ack_rx));
    let loops = [
        tokio::spawn(heartbeat::run(shared.clone(), maintenance.clone())),
        tokio::spawn(sweep::run(shared.clone(), Sweep::Recover, shutdown.clone())),
        tokio::spawn(sweep::run(shared.clone(), Sweep::Promote, shutdown.clone())),
        tokio::spawn(sweep::run(shared.clone(), Sweep::Janitor, shutdown.clone())),
    ];

    probe.set_started();
    fetcher::run(shared.clone(), tracker.clone(), ack_tx, shutdown.clone()).await;
    probe.set_draining();

    let grace = shared.config.worker.shutdown_grace;
    info!(
        in_flight = shared.in_flight(),
        grace = %humantime_secs(grace),
        "shutting down: fetching stopped, waiting for in-flight jobs"
    );
    tracker.close();
    let cut_short = tokio::select! {
        _ = tracker.wait() => false,
        _ = tokio::time::sleep(grace) => {
            warn!(
                in_flight = shared.in_flight(),
                "grace period over: stopping the remaining handlers and handing their jobs back"
            );
            true
        }
        _ = shared.hard_stop.cancelled() => {
            warn!(
                in_flight = shared.in_flight(),
                "asked to stop at once: stopping the remaining handlers and handing their jobs back"
            );
            true
        }
    };
    if cut_short {
        shared.hard_stop.cancel();
        if tokio::time::timeout(FINAL_WAIT, tracker.wait())
            .await
            .is_err()
        {
            warn!("some handlers did not stop (blocking code?); exiting without their outcomes: their leases will expire");
        }
    }
    // Redis may be down now: give the outcomes still unrecorded a bounded time.
    let deadline = shared.ack_deadline.clone();
    tokio::spawn(async move {
        tokio::time::sleep(FINAL_WAIT).await;
        deadline.cancel();
    });
    // Every executor has sent its outcome; the acker ends once it has recorded them all.
    let _ = tokio::time::timeout(FINAL_WAIT * 2, acker).await;
    maintenance.cancel();
    for l in loops {
        let _ = l.await;
    }
    if let Err(e) = shared.broker.deregister_worker(&shared.worker_id).await {
        warn!(error = %e, "could not remove this worker's record; it expires on its own");
    }
    info!(worker = %shared.worker_id, "worker stopped");
    Ok(())
}

fn humantime_secs(d: std::time::Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
