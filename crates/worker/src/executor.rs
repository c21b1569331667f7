//! The executor: runs one leased job. Decodes the envelope (poison goes dead with its reason),
//! finds the handler, runs it under the job's timeout with panics caught, maps the outcome to
//! the retry policy, and hands the result to the acker.

use crate::acker::AckMsg;
use crate::job::{Job, Outcome};
use crate::shared::{Lease, Shared};
use celeriac_core::broker::{Ack, AckOp, Fetched};
use celeriac_core::{DeadReason, Envelope};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn, Instrument};

pub(crate) async fn run(
    shared: Arc<Shared>,
    fetched: Fetched,
    lease: Lease,
    permit: OwnedSemaphorePermit,
    acks: UnboundedSender<AckMsg>,
) {
    let span = tracing::info_span!(
        "job",
        id = %fetched.id,
        queue = %fetched.queue,
        attempt = fetched.attempt,
        kind = tracing::field::Empty
    );
    let mut seen = Seen::default();
    let op = execute(&shared, &fetched, &lease, &mut seen)
        .instrument(span.clone())
        .await;
    drop(permit);
    record(&fetched.queue, &seen, op.as_ref());
    let Some(op) = op else {
        // The lease was lost: someone else owns the job now; record nothing.
        shared.remove_lease(&fetched.queue, &fetched.id, fetched.token);
        return;
    };
    if op == AckOp::Expired {
        // No renewal will be sent for it any more; the acker hands it back once Redis answers.
        shared.remove_lease(&fetched.queue, &fetched.id, fetched.token);
    }
    lease.finish();
    let msg = AckMsg {
        queue: fetched.queue.clone(),
        ack: Ack {
            id: fetched.id.clone(),
            token: fetched.token,
            op,
            // The last value the handler set goes with the outcome, sent or not: a renewal
            // carrying it may still be on its way and would be refused once the job is done.
            progress: lease.progress.latest(),
        },
    };
    if acks.send(msg).is_err() {
        let _enter = span.enter();
        error!("acker stopped before this outcome was recorded; the lease will expire and the job will run again");
    }
}

/// What the metrics need to know of an attempt: its kind, if this worker runs it (any other
/// kind is `unknown`, so labels stay bounded), and how long its handler ran.
#[derive(Default)]
struct Seen {
    kind: Option<String>,
    ran: Option<Duration>,
}

fn record(queue: &str, seen: &Seen, op: Option<&AckOp>) {
    use crate::metrics::{self, Finished};
    let kind = seen.kind.as_deref().unwrap_or("unknown");
    if let Some(ran) = seen.ran {
        metrics::duration(queue, kind, ran.as_secs_f64());
    }
    let outcome = match op {
        None | Some(AckOp::Expired) => Finished::LeaseLost,
        Some(AckOp::Ok(_)) => Finished::Succeeded,
        Some(AckOp::Retry { .. }) => Finished::Retried,
        Some(AckOp::Snooze(_)) => Finished::Snoozed,
        Some(AckOp::Release) => Finished::Released,
        Some(AckOp::Dead { reason, .. }) => {
            metrics::dead(queue, kind, reason.as_str());
            Finished::Dead
        }
    };
    metrics::finished(queue, kind, outcome);
}

async fn execute(
    shared: &Shared,
    fetched: &Fetched,
    lease: &Lease,
    seen: &mut Seen,
) -> Option<AckOp> {
    let env = match Envelope::decode(
        &fetched.body,
        fetched.len,
        shared.config.core.jobs.max_payload_bytes,
    ) {
        Ok(env) => env,
        Err(e) => {
            error!(reason = %e.reason, error = %e.message, "undecodable job: dead");
            return Some(AckOp::Dead {
                error: e.message,
                reason: e.reason,
            });
        }
    };
    tracing::Span::current().record("kind", env.kind.as_str());
    let Some(handler) = shared.registry.get(&env.kind) else {
        let error = format!(
            "no handler for kind {:?} on this worker (it runs: {})",
            env.kind,
            shared.registry.kinds().join(", ")
        );
        error!(%error, "unknown kind: dead");
        return Some(AckOp::Dead {
            error,
            reason: DeadReason::UnknownKind,
        });
    };
    seen.kind = Some(env.kind.clone());
    let policy = shared.config.policy(&env.kind);
    let max_attempts = env.max_attempts.unwrap_or(policy.max_attempts);
    let timeout = env
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(policy.timeout);
    let cancel = CancellationToken::new();
    let job = Job {
        id: fetched.id.clone(),
        kind: env.kind,
        queue: fetched.queue.clone(),
        attempt: fetched.attempt,
        max_attempts,
        payload: env.payload,
        token: fetched.token,
        worker: shared.worker_id.clone(),
        cancel: cancel.clone(),
        progress: lease.progress.clone(),
    };
    // `handle` itself runs inside the unwind guard: a handler that panics before its first
    // `.await` is a failed attempt like any other.
    let running = AssertUnwindSafe(async move { handler.handle(job).await }).catch_unwind();
    let started = std::time::Instant::now();
    let _ran = RanFor(started, seen);
    let _cancel_on_exit = cancel.clone().drop_guard();
    // A lease already lost or passed, or a shutdown past its grace, stops the run before the
    // handler is polled.
    if let Some(stopped) = stopped_before_start(shared, lease) {
        return stopped;
    }
    // Biased, the handler first: one that finishes at its first poll arms neither its timeout
    // nor the lease's expiry timer (most jobs, and the cost a drain pays per job). While it
    // waits, the other branches are polled after it and stop it as soon as they fire.
    let outcome = tokio::select! {
        biased;
        r = tokio::time::timeout(timeout, running) => match r {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => Outcome::Retry(format!("handler panicked: {}", panic_message(&panic))),
            Err(_) => Outcome::Retry(format!("timed out after {}", humantime::format_duration(timeout))),
        },
        _ = lease.lost.cancelled() => return lease_lost(),
        _ = lease.expired() => return lease_passed(shared),
        _ = shared.hard_stop.cancelled() => return grace_over(),
    };
    // The kind's delay (backoff or schedule), the handler's, or the longer of the two.
    let retry_in = policy.delay_after(&outcome, fetched.attempt);
    Some(match outcome {
        Outcome::Done(result) => {
            debug!("succeeded");
            AckOp::Ok(result.map(|r| r.to_string()))
        }
        Outcome::Snooze(d) => {
            debug!(delay_ms = d.as_millis() as u64, "snoozed");
            AckOp::Snooze(d)
        }
        Outcome::Discard(error) => {
            error!(%error, "discarded: dead");
            AckOp::Dead {
                error,
                reason: DeadReason::Discarded,
            }
        }
        Outcome::Retry(error) | Outcome::RetryAfter(error, _) | Outcome::RetryAtLeast(error, _)
            if fetched.attempt >= max_attempts =>
        {
            error!(%error, max_attempts, "failed its last attempt: dead");
            AckOp::Dead {
                error,
                reason: DeadReason::MaxAttempts,
            }
        }
        Outcome::Retry(error) | Outcome::RetryAfter(error, _) | Outcome::RetryAtLeast(error, _) => {
            let delay = retry_in.unwrap_or_default();
            warn!(%error, retry_in_ms = delay.as_millis() as u64, "failed: will retry");
            AckOp::Retry { error, delay }
        }
    })
}

/// Why a run stops before its handler is first polled, if it does.
fn stopped_before_start(shared: &Shared, lease: &Lease) -> Option<Option<AckOp>> {
    if lease.lost.is_cancelled() {
        Some(lease_lost())
    } else if lease.has_passed() {
        Some(lease_passed(shared))
    } else if shared.hard_stop.is_cancelled() {
        Some(grace_over())
    } else {
        None
    }
}

fn lease_lost() -> Option<AckOp> {
    warn!("lease lost (job cancelled or taken back): handler stopped, result dropped");
    None
}

/// Self-fencing: no renewal reached Redis for a whole lease (a partition, or Redis down).
/// Redis's deadline is later than ours and the sweep waits `lease_grace` more, so stopping now
/// means no other worker has started this job yet.
fn lease_passed(shared: &Shared) -> Option<AckOp> {
    error!(
        lease_ms = shared.config.worker.lease.as_millis() as u64,
        "lease passed unrenewed with the handler still running (Redis unreachable): handler stopped before another worker can take the job; it is handed back once Redis answers"
    );
    Some(AckOp::Expired)
}

fn grace_over() -> Option<AckOp> {
    warn!("shutdown grace period over: job handed back");
    Some(AckOp::Release)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// Sets how long the handler ran when the attempt ends, whichever way it ends.
struct RanFor<'a>(std::time::Instant, &'a mut Seen);

impl Drop for RanFor<'_> {
    fn drop(&mut self) {
        self.1.ran = Some(self.0.elapsed());
    }
}
