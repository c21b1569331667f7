//! The scheduler loop: for each enabled schedule, wait for its next tick on the Redis clock and
//! offer the tick to Redis, which enqueues it only once across every replica. Ticks are taken in
//! order and a tick is retried until Redis answers, so a slow or failed enqueue delays a tick but
//! never skips or doubles it.

use crate::config::{CatchUp, CronConfig};
use crate::schedule::{Schedule, ScheduleError};
use celeriac_core::broker::{CronEnqueue, NewJob};
use celeriac_core::config::{redact_url, Config};
use celeriac_core::outage::{Outage, Report};
use celeriac_core::probe::Probe;
use celeriac_core::{Broker, Envelope, ENVELOPE_VERSION};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// How late a tick may be before the catch-up policy decides about it.
const BEHIND: Duration = Duration::from_secs(60);

/// Longest single sleep while waiting for a tick (the Redis clock is read again after it).
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    /// A schedule is invalid.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// Redis could not be reached at start.
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The cause.
        source: celeriac_core::Error,
    },
}

/// Parse every schedule of `cron` (enabled or not) against the kinds this build runs.
pub fn schedules(
    cron: &CronConfig,
    known_kinds: &[String],
) -> Result<Vec<Schedule>, ScheduleError> {
    cron.schedules
        .iter()
        .map(|s| Schedule::new(s.clone(), known_kinds))
        .collect()
}

/// Run the scheduler of `cron`'s schedules on the Redis of `config` until `shutdown` is
/// cancelled; `known_kinds` are the kinds a schedule may name.
pub async fn run(
    config: Config,
    cron: CronConfig,
    known_kinds: Vec<String>,
    shutdown: CancellationToken,
) -> Result<(), CronError> {
    run_with_probe(config, cron, known_kinds, shutdown, Probe::new()).await
}

/// How often the scheduler checks that Redis answers (for its readiness).
const REDIS_CHECK: Duration = Duration::from_secs(5);

/// [`run`], reporting liveness and readiness to `probe`.
pub async fn run_with_probe(
    config: Config,
    cron: CronConfig,
    known_kinds: Vec<String>,
    shutdown: CancellationToken,
    probe: Probe,
) -> Result<(), CronError> {
    let all = schedules(&cron, &known_kinds)?;
    let broker = Broker::from_config(&config)
        .await
        .map_err(|source| CronError::Connect {
            url: redact_url(&config.redis_url),
            source,
        })?;
    let enabled: Vec<Schedule> = all.into_iter().filter(|s| s.config.enabled).collect();
    let queues: Vec<String> = enabled.iter().map(|s| s.config.queue.clone()).collect();
    if !queues.is_empty() {
        if let Err(e) = broker.register_queues(&queues).await {
            warn!(error = %e, "could not register the schedules' queues");
        }
    }
    if enabled.is_empty() {
        info!("cron started with no enabled schedules ([[cron.schedules]] in the config); idle until stopped");
    } else {
        info!(schedules = %enabled.iter().map(|s| s.name()).collect::<Vec<_>>().join(","), "cron started");
    }
    // One outage log for every schedule of this process.
    let outage = Arc::new(Outage::new());
    let tasks: Vec<_> = enabled
        .into_iter()
        .map(|s| {
            tokio::spawn(run_schedule(
                broker.clone(),
                s,
                outage.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    probe.set_started();
    let watch = tokio::spawn(watch_redis(broker.clone(), probe.clone(), shutdown.clone()));
    shutdown.cancelled().await;
    probe.set_draining();
    let _ = watch.await;
    for t in tasks {
        let _ = t.await;
    }
    info!("cron stopped");
    Ok(())
}

/// Whether Redis answers, every [`REDIS_CHECK`], for the probe.
async fn watch_redis(broker: Broker, probe: Probe, stop: CancellationToken) {
    loop {
        probe.set_redis_up(broker.redis_time_ms().await.is_ok());
        probe.beat("redis check", REDIS_CHECK);
        tokio::select! {
            _ = stop.cancelled() => {
                probe.forget("redis check");
                return;
            }
            _ = tokio::time::sleep(REDIS_CHECK) => {}
        }
    }
}

async fn run_schedule(
    broker: Broker,
    schedule: Schedule,
    outage: Arc<Outage>,
    stop: CancellationToken,
) {
    let outage = &*outage;
    let Some(now) = retry(&stop, outage, "read the Redis clock", || {
        broker.redis_time_ms()
    })
    .await
    else {
        return;
    };
    let queue = schedule.config.queue.clone();
    let Some(last) = retry(&stop, outage, "read the schedule's last tick", || {
        broker.cron_last(&queue, schedule.name())
    })
    .await
    else {
        return;
    };
    let last = last.map(|(t, _)| t);
    let missed = missed_ticks(&schedule, last, now);
    if let Some(t) = last {
        let skipped = count_ticks(&schedule, t, now).saturating_sub(missed.len() as u64);
        crate::metrics::tick(schedule.name(), "skipped", skipped);
    }
    for tick in missed {
        if !offer(&broker, &schedule, tick, outage, &stop).await {
            return;
        }
    }
    let mut cursor = now;
    loop {
        let Some(tick) = schedule.next_after(cursor) else {
            warn!(
                schedule = schedule.name(),
                "no further ticks before year 5000; stopping this schedule"
            );
            return;
        };
        // Far behind (Redis was unreachable, or this process was paused): the ticks missed
        // meanwhile follow the catch-up policy, like ticks missed while no replica ran. A slow
        // enqueue is never this late, so it never skips a tick.
        let Some(now) = retry(&stop, outage, "read the Redis clock", || {
            broker.redis_time_ms()
        })
        .await
        else {
            return;
        };
        if now > tick + BEHIND.as_millis() as u64 {
            let missed = missed_ticks(&schedule, Some(cursor), now);
            let skipped = count_ticks(&schedule, cursor, now).saturating_sub(missed.len() as u64);
            crate::metrics::tick(schedule.name(), "skipped", skipped);
            warn!(schedule = schedule.name(), behind_ms = now - tick, catch_up = ?schedule.catch_up(), enqueued = missed.len(), "scheduler fell behind; applying the catch-up policy");
            for t in missed {
                if !offer(&broker, &schedule, t, outage, &stop).await {
                    return;
                }
            }
            cursor = now;
            continue;
        }
        if !wait_for(&broker, tick, outage, &stop).await
            || !offer(&broker, &schedule, tick, outage, &stop).await
        {
            return;
        }
        cursor = tick;
    }
}

/// Ticks after `from` up to `now` (at most 100,000 counted).
fn count_ticks(schedule: &Schedule, from: u64, now: u64) -> u64 {
    let mut n = 0;
    let mut cursor = from;
    while let Some(t) = schedule.next_after(cursor).filter(|&t| t <= now) {
        n += 1;
        cursor = t;
        if n >= 100_000 {
            break;
        }
    }
    n
}

/// Ticks missed since `last` (the schedule's last enqueued tick), per its catch-up policy,
/// oldest first. Nothing is missed when the schedule never ran.
pub fn missed_ticks(schedule: &Schedule, last: Option<u64>, now: u64) -> Vec<u64> {
    let Some(last) = last else { return Vec::new() };
    let bound = match schedule.catch_up() {
        CatchUp::Skip => return Vec::new(),
        CatchUp::Latest => 1,
        CatchUp::All => schedule.config.catch_up_max as usize,
    };
    let mut ticks = Vec::new();
    let mut cursor = now;
    while ticks.len() < bound {
        match schedule.previous_at_or_before(cursor) {
            Some(t) if t > last => {
                ticks.push(t);
                cursor = t - 1;
            }
            _ => break,
        }
    }
    ticks.reverse();
    ticks
}

/// Sleep until `tick` on the Redis clock; false if stopped.
async fn wait_for(broker: &Broker, tick: u64, outage: &Outage, stop: &CancellationToken) -> bool {
    loop {
        let Some(now) = retry(stop, outage, "read the Redis clock", || {
            broker.redis_time_ms()
        })
        .await
        else {
            return false;
        };
        if now >= tick {
            return true;
        }
        let wait = Duration::from_millis(tick - now).min(MAX_SLEEP);
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Offer one tick until Redis has it; false if stopped first.
async fn offer(
    broker: &Broker,
    schedule: &Schedule,
    tick: u64,
    outage: &Outage,
    stop: &CancellationToken,
) -> bool {
    let c = &schedule.config;
    let envelope = Envelope {
        v: ENVELOPE_VERSION,
        id: schedule.job_id(tick),
        kind: c.kind.clone(),
        queue: c.queue.clone(),
        payload: c.payload.clone(),
        max_attempts: c.max_attempts,
        timeout_ms: None,
        created_at: celeriac_core::time::now_ms(),
        run_at: Some(tick),
        idempotency_key: None,
    };
    let job = NewJob {
        body: envelope.encode(),
        envelope,
        delay: None,
        run_at_ms: None,
        idempotency_ttl: Duration::from_secs(1),
    };
    loop {
        let Some(result) = retry(stop, outage, "enqueue a tick", || {
            broker.cron_enqueue(schedule.name(), tick, &job)
        })
        .await
        else {
            return false;
        };
        match result {
            CronEnqueue::Enqueued => {
                crate::metrics::tick(schedule.name(), "enqueued", 1);
                crate::metrics::lag(schedule.name(), tick);
                info!(schedule = schedule.name(), tick = %schedule.local_rfc3339(tick), job = %job.envelope.id, "tick enqueued");
                return true;
            }
            CronEnqueue::AlreadyDone => {
                crate::metrics::tick(schedule.name(), "already_done", 1);
                debug!(schedule = schedule.name(), tick = %schedule.local_rfc3339(tick), "tick already enqueued by another replica");
                return true;
            }
            CronEnqueue::NotDue => {
                if !wait_for(broker, tick, outage, stop).await {
                    return false;
                }
            }
        }
    }
}

/// Call `f` until it succeeds (pausing 100 ms doubling to 5 s between failures, or until
/// another schedule hears from Redis again); None if stopped. Nothing is logged per failed
/// call: Redis not answering goes to the process's one outage log (the start, reminders at
/// growing intervals, the end, each once); an error Redis answers with is logged the same way
/// for this call alone.
async fn retry<T, F, Fut>(
    stop: &CancellationToken,
    outage: &Outage,
    what: &str,
    mut f: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = celeriac_core::Result<T>>,
{
    let refusals = Outage::new();
    let mut failures = 0u32;
    loop {
        let e = match f().await {
            Ok(v) => {
                if let Some(ended) = outage.ok() {
                    info!(
                        down_s = format!("{:.1}", ended.down.as_secs_f64()),
                        failed_calls = ended.failures,
                        "Redis answers again"
                    );
                }
                if let Some(ended) = refusals.ok() {
                    info!(failed_calls = ended.failures, "cron could {what} again");
                }
                return Some(v);
            }
            Err(e) => e,
        };
        failures += 1;
        let unreachable = e.is_unreachable();
        let log = if unreachable { outage } else { &refusals };
        match log.failed() {
            Report::Started if unreachable => {
                error!(error = %e, "Redis does not answer: cron could not {what}; retrying (ticks are delayed, never skipped or doubled)")
            }
            Report::Started => error!(error = %e, "cron could not {what}; retrying"),
            Report::Ongoing { down, failures } => warn!(
                down_s = format!("{:.0}", down.as_secs_f64()),
                failed_calls = failures,
                error = %e,
                "cron still cannot {what}"
            ),
            Report::Quiet => {}
        }
        let pause = Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5));
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(pause) => {}
            _ = outage.back(), if unreachable => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScheduleConfig;

    fn every_second(catch_up: CatchUp, max: u32) -> Schedule {
        let config = ScheduleConfig {
            name: "s".into(),
            schedule: "* * * * * *".into(),
            timezone: "UTC".into(),
            kind: "noop".into(),
            payload: serde_json::json!({}),
            queue: "default".into(),
            catch_up,
            catch_up_max: max,
            max_attempts: None,
            enabled: true,
        };
        Schedule::new(config, &["noop".into()]).unwrap()
    }

    #[test]
    fn catch_up_policies() {
        let now = 1_800_000_010_500;
        let last = Some(1_800_000_000_000);
        assert!(missed_ticks(&every_second(CatchUp::Skip, 100), last, now).is_empty());
        assert_eq!(
            missed_ticks(&every_second(CatchUp::Latest, 100), last, now),
            vec![1_800_000_010_000]
        );
        let all: Vec<u64> = (1..=10).map(|s| 1_800_000_000_000 + s * 1000).collect();
        assert_eq!(
            missed_ticks(&every_second(CatchUp::All, 100), last, now),
            all
        );
        assert_eq!(
            missed_ticks(&every_second(CatchUp::All, 3), last, now),
            all[7..].to_vec(),
            "the newest, oldest first"
        );
        assert!(
            missed_ticks(&every_second(CatchUp::All, 3), None, now).is_empty(),
            "never ran: nothing missed"
        );
        assert!(missed_ticks(&every_second(CatchUp::All, 3), Some(now), now).is_empty());
    }
}
