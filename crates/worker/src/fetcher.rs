//! The fetcher: waits for free handler slots, leases a batch of jobs (one script call per
//! queue, queues taken round-robin) and starts an executor per job. When every queue is empty
//! it blocks on the queues' wake lists instead of polling. A fetch that got no answer may still
//! have leased jobs (Redis ran it, the answer was lost): before fetching that queue again, the
//! fetcher hands back whatever Redis says it leased to this worker unknown to it (`disown`).

use crate::acker::AckMsg;
use crate::executor;
use crate::shared::{pause_after_error, Lease, Shared};
use celeriac_core::broker::{Ack, AckOp};
use celeriac_core::connection::Conn;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// Longest idle wait before polling the queues again (covers a lost wake token).
const IDLE_WAIT: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    shared: Arc<Shared>,
    tracker: TaskTracker,
    acks: UnboundedSender<AckMsg>,
    stop: CancellationToken,
) {
    let w = &shared.config.worker;
    let queues = w.queues.clone();
    let mut waiter: Option<Conn> = None;
    let mut start = 0usize;
    let mut failures = 0u32;
    let mut queue_backoff: HashMap<String, (Instant, u32)> = HashMap::new();
    // Queues whose last fetch got no answer: their leases are reconciled before the next fetch.
    let mut unsure: HashSet<String> = HashSet::new();
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            permit = shared.slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let mut permits = vec![first];
        while permits.len() < w.batch_size {
            match shared.slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }

        let mut jobs = Vec::new();
        // Pause only when no queue answered: one broken queue must not slow the others, and
        // is itself skipped with its own backoff.
        let mut answered = 0;
        let mut failed = false;
        for i in 0..queues.len() {
            let want = permits.len() - jobs.len();
            if want == 0 {
                break;
            }
            let queue = &queues[(start + i) % queues.len()];
            if queue_backoff
                .get(queue)
                .is_some_and(|(until, _)| Instant::now() < *until)
            {
                continue;
            }
            if unsure.contains(queue) {
                match shared
                    .broker
                    .disown(queue, &shared.worker_id, &shared.tokens(queue))
                    .await
                {
                    Ok(n) => {
                        unsure.remove(queue);
                        if n > 0 {
                            info!(
                                queue,
                                jobs = n,
                                "handed back jobs leased by a fetch whose answer was lost"
                            );
                        }
                    }
                    Err(e) => {
                        shared.redis_failed("reconcile leases", &e);
                        failed = true;
                        continue;
                    }
                }
            }
            let sent = std::time::Instant::now();
            match shared
                .broker
                .fetch(
                    queue,
                    want,
                    w.lease,
                    &shared.worker_id,
                    shared.config.core.jobs.max_payload_bytes,
                )
                .await
            {
                Ok(fetch) => {
                    shared.health.ok();
                    crate::sweep::report_found(queue, &fetch.found);
                    let batch = fetch.jobs;
                    answered += 1;
                    queue_backoff.remove(queue);
                    if !batch.is_empty() {
                        crate::metrics::fetched(queue, batch.len());
                    }
                    let suspect = batch.iter().any(|j| j.suspect);
                    jobs.extend(batch.into_iter().map(|j| (j, sent)));
                    if suspect {
                        break; // it runs alone: fetch nothing more this round
                    }
                }
                Err(e) if e.is_unreachable() => {
                    // Redis may have run it: reconcile before the next fetch of this queue.
                    unsure.insert(queue.clone());
                    shared.redis_failed("fetch jobs", &e);
                    failed = true;
                }
                Err(e) => {
                    let n = queue_backoff.get(queue).map_or(0, |(_, n)| *n) + 1;
                    let pause =
                        Duration::from_millis(100u64 << n.min(8)).min(Duration::from_secs(30));
                    crate::metrics::redis_error("fetch jobs");
                    error!(queue, error = %e, retry_in_ms = pause.as_millis() as u64, "fetch failed; retrying");
                    queue_backoff.insert(queue.clone(), (Instant::now() + pause, n));
                    failed = true;
                }
            }
        }
        start = start.wrapping_add(1);

        // Start what was leased before anything else: those leases are already running.
        // A suspect job (it was on a worker that died) goes last and waits for every other
        // handler of this process to finish, then runs alone.
        let fetched = jobs.len();
        let mut pairs: Vec<_> = jobs.into_iter().zip(permits.drain(..)).collect();
        drop(permits);
        pairs.sort_by_key(|((job, _), _)| job.suspect);
        for ((job, sent), mut permit) in pairs {
            // The lease holds at least one lease length after the fetch was sent.
            let lease = Lease::new(job.token, sent + w.lease);
            shared.add_lease(&job.queue, &job.id, lease.clone());
            if job.suspect {
                warn!(job = %job.id, queue = %job.queue, "job was on a worker that died: running it alone");
                let others = (w.concurrency - 1) as u32;
                let all = tokio::select! {
                    p = shared.slots.clone().acquire_many_owned(others) => p.ok(),
                    _ = stop.cancelled() => None,
                };
                match all {
                    Some(p) => permit.merge(p),
                    None => {
                        let release = Ack {
                            id: job.id.clone(),
                            token: job.token,
                            op: AckOp::Release,
                            progress: None,
                        };
                        let _ = acks.send(AckMsg {
                            queue: job.queue.clone(),
                            ack: release,
                        });
                        continue;
                    }
                }
            }
            tracker.spawn(executor::run(
                shared.clone(),
                job,
                lease,
                permit,
                acks.clone(),
            ));
        }

        if failed && answered == 0 {
            failures += 1;
            if !pause_after_error(failures, &shared.health, &stop).await {
                return;
            }
            continue;
        }
        failures = 0;
        if fetched == 0 {
            wait_for_work(&shared, &queues, &mut waiter, &stop).await;
        }
    }
}

/// Block until a producer, the promoter, the recoverer or another fetcher pushes a wake token,
/// at most [`IDLE_WAIT`].
async fn wait_for_work(
    shared: &Shared,
    queues: &[String],
    waiter: &mut Option<Conn>,
    stop: &CancellationToken,
) {
    if waiter.is_none() {
        match shared.broker.blocking_connection(IDLE_WAIT).await {
            Ok(c) => *waiter = Some(c),
            Err(e) => {
                wake_wait_failed(shared, "open the wake-up connection", &e);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(IDLE_WAIT) => {}
                }
                return;
            }
        }
    }
    let Some(con) = waiter.as_mut() else { return };
    let mut keys: Vec<String> = queues
        .iter()
        .map(|q| shared.broker.keys().wake(q))
        .collect();
    let mut wait = IDLE_WAIT;
    if shared.broker.is_cluster() && keys.len() > 1 {
        // A cluster refuses a BLPOP over keys of several slots: wait on one queue at a time,
        // in turn, for a share of the idle wait.
        let turn = (celeriac_core::time::now_ms() / 100) as usize % keys.len();
        keys = vec![keys.swap_remove(turn)];
        wait = (IDLE_WAIT / queues.len() as u32).max(std::time::Duration::from_millis(100));
    }
    let mut cmd = redis::cmd("BLPOP");
    cmd.arg(&keys).arg(wait.as_secs_f64());
    let blpop = cmd.query_async::<Option<(String, String)>>(con);
    tokio::select! {
        _ = stop.cancelled() => {}
        r = blpop => {
            if let Err(e) = r {
                wake_wait_failed(shared, "wait for work", &celeriac_core::Error::from(e));
                *waiter = None;
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(IDLE_WAIT) => {}
                }
            }
        }
    }
}

/// The wake-up wait failed: part of an outage (one log for the whole worker) when Redis does
/// not answer; otherwise said each time (the fetcher then polls, after a pause).
fn wake_wait_failed(shared: &Shared, operation: &'static str, e: &celeriac_core::Error) {
    if e.is_unreachable() {
        shared.redis_failed(operation, e);
    } else {
        crate::metrics::redis_error(operation);
        warn!(error = %e, "{operation} failed; polling for jobs instead, after a pause");
    }
}
