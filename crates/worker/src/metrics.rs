//! What the worker measures, through the `metrics` facade: the program that runs it installs a
//! recorder (the `celeriac` binary serves them in Prometheus format on `[http] listen`). Names
//! and labels follow Prometheus conventions; label values are only the queues the worker serves
//! and the kinds it has registered (`unknown` for any other), so their number stays bounded.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `celeriac_jobs_finished_total` | counter | `queue`, `kind`, `outcome` (`succeeded`, `retried`, `dead`, `snoozed`, `released`, `lease_lost`) |
//! | `celeriac_jobs_dead_total` | counter | `queue`, `kind`, `reason` |
//! | `celeriac_job_duration_seconds` | histogram | `queue`, `kind` |
//! | `celeriac_jobs_in_flight` | gauge | `queue` |
//! | `celeriac_fetch_batch_size` | histogram | `queue` |
//! | `celeriac_lease_recoveries_total` | counter | `queue`, `result` (`requeued`, `buried`) |
//! | `celeriac_redis_errors_total` | counter | `operation` |

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a recorder was installed: until [`enable`] is called, every recording function
/// returns at once, so a worker with no metrics endpoint builds no label strings per job.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Record the worker's metrics from now on: call it once the recorder is installed.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Jobs whose attempt ended, by outcome.
pub const JOBS_FINISHED: &str = "celeriac_jobs_finished_total";
/// Jobs that went dead, by reason.
pub const JOBS_DEAD: &str = "celeriac_jobs_dead_total";
/// Handler time of an attempt.
pub const JOB_DURATION: &str = "celeriac_job_duration_seconds";
/// Jobs this worker holds a lease on.
pub const JOBS_IN_FLIGHT: &str = "celeriac_jobs_in_flight";
/// Jobs leased per fetch.
pub const FETCH_BATCH_SIZE: &str = "celeriac_fetch_batch_size";
/// Expired leases the sweep took back.
pub const LEASE_RECOVERIES: &str = "celeriac_lease_recoveries_total";
/// Redis calls that failed.
pub const REDIS_ERRORS: &str = "celeriac_redis_errors_total";

/// Histogram buckets of [`JOB_DURATION`], in seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];
/// Histogram buckets of [`FETCH_BATCH_SIZE`].
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

/// Describe every metric to the installed recorder (help text and units).
pub fn describe() {
    describe_counter!(JOBS_FINISHED, "Jobs whose attempt ended, by outcome.");
    describe_counter!(JOBS_DEAD, "Jobs that went dead, by reason.");
    describe_histogram!(
        JOB_DURATION,
        metrics::Unit::Seconds,
        "Handler time of one attempt."
    );
    describe_gauge!(JOBS_IN_FLIGHT, "Jobs this worker holds a lease on.");
    describe_histogram!(FETCH_BATCH_SIZE, "Jobs leased by one fetch.");
    describe_counter!(LEASE_RECOVERIES, "Expired leases taken back by the sweep.");
    describe_counter!(REDIS_ERRORS, "Redis calls that failed, by operation.");
}

/// How one attempt ended, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finished {
    Succeeded,
    Retried,
    Dead,
    Snoozed,
    Released,
    LeaseLost,
}

impl Finished {
    fn as_str(self) -> &'static str {
        match self {
            Finished::Succeeded => "succeeded",
            Finished::Retried => "retried",
            Finished::Dead => "dead",
            Finished::Snoozed => "snoozed",
            Finished::Released => "released",
            Finished::LeaseLost => "lease_lost",
        }
    }
}

pub(crate) fn finished(queue: &str, kind: &str, outcome: Finished) {
    if !enabled() {
        return;
    }
    counter!(JOBS_FINISHED, "queue" => queue.to_string(), "kind" => kind.to_string(), "outcome" => outcome.as_str())
        .increment(1);
}

pub(crate) fn dead(queue: &str, kind: &str, reason: &'static str) {
    if !enabled() {
        return;
    }
    counter!(JOBS_DEAD, "queue" => queue.to_string(), "kind" => kind.to_string(), "reason" => reason)
        .increment(1);
}

pub(crate) fn duration(queue: &str, kind: &str, seconds: f64) {
    if !enabled() {
        return;
    }
    histogram!(JOB_DURATION, "queue" => queue.to_string(), "kind" => kind.to_string())
        .record(seconds);
}

pub(crate) fn in_flight(queue: &str, delta: f64) {
    if !enabled() {
        return;
    }
    gauge!(JOBS_IN_FLIGHT, "queue" => queue.to_string()).increment(delta);
}

pub(crate) fn fetched(queue: &str, jobs: usize) {
    if !enabled() {
        return;
    }
    histogram!(FETCH_BATCH_SIZE, "queue" => queue.to_string()).record(jobs as f64);
}

pub(crate) fn recovered(queue: &str, requeued: u64, buried: u64) {
    if !enabled() {
        return;
    }
    counter!(LEASE_RECOVERIES, "queue" => queue.to_string(), "result" => "requeued")
        .increment(requeued);
    counter!(LEASE_RECOVERIES, "queue" => queue.to_string(), "result" => "buried")
        .increment(buried);
}

pub(crate) fn redis_error(operation: &'static str) {
    if !enabled() {
        return;
    }
    counter!(REDIS_ERRORS, "operation" => operation).increment(1);
}
