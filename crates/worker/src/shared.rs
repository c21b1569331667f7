//! State shared by the worker's loops.

use crate::config::Settings;
use crate::health::RedisHealth;
use crate::job::Progress;
use crate::registry::Registry;
use celeriac_core::Broker;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A job this worker holds a lease on, from fetch until its outcome is recorded.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    /// Fencing token of the lease.
    pub token: u64,
    /// Cancelled when the lease is lost (operator cancel, or taken back): stops the handler.
    pub lost: CancellationToken,
    /// What the handler last reported, written to the job at the next renewal.
    pub progress: Progress,
    /// Until when the lease surely holds, and whether the handler finished (one allocation
    /// for both: a lease is made for every job).
    clock: Arc<LeaseClock>,
}

#[derive(Debug)]
struct LeaseClock {
    /// Until when the lease surely holds, on this process's clock: the moment the call that
    /// set or last renewed it was sent, plus the lease. Redis's own deadline is later (the call
    /// ran after it was sent), so a handler stopped at this instant is stopped before the
    /// sweep can hand its job to another worker.
    valid_until: Mutex<Instant>,
    /// The handler finished and its outcome went to the acker: a refused renewal then stops
    /// nothing.
    finished: AtomicBool,
}

impl Lease {
    pub fn new(token: u64, valid_until: Instant) -> Lease {
        Lease {
            token,
            lost: CancellationToken::new(),
            progress: Progress::default(),
            clock: Arc::new(LeaseClock {
                valid_until: Mutex::new(valid_until),
                finished: AtomicBool::new(false),
            }),
        }
    }

    pub fn valid_until(&self) -> Instant {
        self.clock
            .valid_until
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now())
    }

    /// A renewal sent at `sent` went through: the lease holds until `sent + lease`.
    pub fn renewed(&self, until: Instant) {
        if let Ok(mut t) = self.clock.valid_until.lock() {
            *t = (*t).max(until);
        }
    }

    pub fn is_finished(&self) -> bool {
        self.clock.finished.load(Ordering::Acquire)
    }

    pub fn finish(&self) {
        self.clock.finished.store(true, Ordering::Release);
    }

    /// Whether the lease has passed unrenewed already.
    pub fn has_passed(&self) -> bool {
        Instant::now() >= self.valid_until()
    }

    /// Resolves once the lease has passed unrenewed.
    pub async fn expired(&self) {
        loop {
            let until = self.valid_until();
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

/// The leases held, by queue and then job id: found, added and removed by `&str`, without
/// building a key for each job.
#[derive(Default)]
pub(crate) struct Leases {
    by_queue: HashMap<String, HashMap<String, Lease>>,
    len: usize,
}

impl Leases {
    /// How many are held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Hold `lease` on `id` (replacing any held on it); true if none was held.
    pub fn insert(&mut self, queue: &str, id: &str, lease: Lease) -> bool {
        let new = match self.by_queue.get_mut(queue) {
            Some(held) => held.insert(id.to_string(), lease).is_none(),
            None => {
                let held = HashMap::from([(id.to_string(), lease)]);
                self.by_queue.insert(queue.to_string(), held);
                true
            }
        };
        self.len += usize::from(new);
        new
    }

    pub fn get(&self, queue: &str, id: &str) -> Option<&Lease> {
        self.by_queue.get(queue)?.get(id)
    }

    pub fn remove(&mut self, queue: &str, id: &str) -> Option<Lease> {
        let lease = self.by_queue.get_mut(queue)?.remove(id)?;
        self.len -= 1;
        Some(lease)
    }

    /// Every lease held, as (queue, id, lease).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &Lease)> {
        self.by_queue.iter().flat_map(|(queue, held)| {
            held.iter()
                .map(move |(id, lease)| (queue.as_str(), id.as_str(), lease))
        })
    }

    /// Forget every lease held; returns them with their queues.
    pub fn drain(&mut self) -> Vec<(String, Lease)> {
        self.len = 0;
        self.by_queue
            .iter_mut()
            .flat_map(|(queue, held)| held.drain().map(move |(_, lease)| (queue.clone(), lease)))
            .collect()
    }
}

pub(crate) struct Shared {
    pub config: Settings,
    pub broker: Broker,
    pub registry: Registry,
    pub worker_id: String,
    pub host: String,
    pub started_ms: u64,
    /// Handler slots.
    pub slots: std::sync::Arc<Semaphore>,
    /// Leases held.
    pub leases: Mutex<Leases>,
    /// Cancelled when the grace period is over: remaining handlers stop, their jobs go back.
    pub hard_stop: CancellationToken,
    /// Cancelled some seconds into the final drain: outcomes Redis still refuses are given up
    /// (their leases expire and the jobs run again) so the process can exit.
    pub ack_deadline: CancellationToken,
    /// The Redis dataset this worker works on (see `Broker::ensure_epoch`).
    pub epoch: Mutex<String>,
    /// Whether Redis answers (logs outages once, wakes loops that back off).
    pub health: RedisHealth,
    /// Liveness and readiness, for health checks.
    pub probe: celeriac_core::probe::Probe,
}

impl Shared {
    pub fn new(
        config: Settings,
        broker: Broker,
        registry: Registry,
        probe: celeriac_core::probe::Probe,
    ) -> Self {
        let host = hostname();
        let worker_id = format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..));
        Shared {
            slots: std::sync::Arc::new(Semaphore::new(config.worker.concurrency)),
            config,
            broker,
            registry,
            worker_id,
            host,
            started_ms: celeriac_core::time::now_ms(),
            leases: Mutex::new(Leases::default()),
            hard_stop: CancellationToken::new(),
            ack_deadline: CancellationToken::new(),
            epoch: Mutex::new(String::new()),
            health: RedisHealth::new(probe.clone()),
            probe,
        }
    }

    /// Jobs held now (running, or finished and waiting for their outcome to be recorded).
    pub fn in_flight(&self) -> usize {
        self.leases.lock().map(|l| l.len()).unwrap_or(0)
    }

    pub fn add_lease(&self, queue: &str, id: &str, lease: Lease) {
        if let Ok(mut l) = self.leases.lock() {
            if l.insert(queue, id, lease) {
                crate::metrics::in_flight(queue, 1.0);
            }
        }
    }

    /// Forget the lease of `id` if it is still the delivery with `token` (the job may have been
    /// fetched again since, under a new token: that lease stays).
    pub fn remove_lease(&self, queue: &str, id: &str, token: u64) -> Option<Lease> {
        let mut l = self.leases.lock().ok()?;
        if l.get(queue, id).is_some_and(|lease| lease.token == token) {
            crate::metrics::in_flight(queue, -1.0);
            l.remove(queue, id)
        } else {
            None
        }
    }

    /// The lease of `id` if it is the delivery with `token`.
    pub fn lease(&self, queue: &str, id: &str, token: u64) -> Option<Lease> {
        let l = self.leases.lock().ok()?;
        l.get(queue, id)
            .filter(|lease| lease.token == token)
            .cloned()
    }

    /// Tokens of the leases held on `queue`.
    pub fn tokens(&self, queue: &str) -> Vec<u64> {
        self.leases
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|(q, _, _)| *q == queue)
                    .map(|(_, _, lease)| lease.token)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Time left until the first lease held expires unless renewed.
    pub fn first_expiry(&self) -> Option<Duration> {
        let now = Instant::now();
        self.leases.lock().ok().and_then(|l| {
            l.iter()
                .map(|(_, _, lease)| lease)
                .filter(|lease| !lease.is_finished())
                .map(|lease| lease.valid_until().saturating_duration_since(now))
                .min()
        })
    }

    /// Record a Redis call that got no answer: the outage log and the error count.
    pub fn redis_failed(&self, operation: &'static str, err: &celeriac_core::Error) {
        crate::metrics::redis_error(operation);
        self.health
            .failed(operation, err, self.in_flight(), self.first_expiry());
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Run `tick` every `period` until `stop` is cancelled (the first tick at once).
pub(crate) async fn every<F, Fut>(period: std::time::Duration, stop: CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => tick().await,
        }
    }
}

/// Exponential pause after a Redis error (100 ms doubling to 5 s), cut short when another loop
/// hears from Redis again; false if `stop` fired.
pub(crate) async fn pause_after_error(
    failures: u32,
    health: &RedisHealth,
    stop: &CancellationToken,
) -> bool {
    let ms = 100u64.saturating_mul(1 << failures.min(6)).min(5_000);
    let outage = health.is_down();
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(Duration::from_millis(ms)) => true,
        _ = health.back(), if outage => true,
    }
}

#[cfg(test)]
mod tests {
    use super::{Lease, Leases};
    use std::time::Instant;

    #[test]
    fn leases_are_found_replaced_removed_and_drained_by_queue_and_id() {
        let mut l = Leases::default();
        assert!(l.insert("mail", "a", Lease::new(1, Instant::now())));
        assert!(l.insert("mail", "b", Lease::new(2, Instant::now())));
        assert!(l.insert("default", "a", Lease::new(3, Instant::now())));
        assert_eq!(l.len(), 3);
        // Fetched again under a new token: replaced, still one lease.
        assert!(!l.insert("mail", "a", Lease::new(4, Instant::now())));
        assert_eq!(l.len(), 3);
        assert_eq!(l.get("mail", "a").map(|x| x.token), Some(4));
        assert_eq!(l.get("default", "a").map(|x| x.token), Some(3));
        assert!(l.get("other", "a").is_none());
        assert_eq!(l.remove("mail", "b").map(|x| x.token), Some(2));
        assert!(l.remove("mail", "b").is_none());
        assert_eq!(l.len(), 2);
        let mut held: Vec<_> = l
            .iter()
            .map(|(q, id, x)| (q.to_string(), id.to_string(), x.token))
            .collect();
        held.sort();
        assert_eq!(
            held,
            [
                ("default".into(), "a".into(), 3),
                ("mail".into(), "a".into(), 4)
            ]
        );
        let mut drained: Vec<_> = l.drain().into_iter().map(|(q, x)| (q, x.token)).collect();
        drained.sort();
        assert_eq!(
            drained,
            [("default".to_string(), 3), ("mail".to_string(), 4)]
        );
        assert_eq!((l.len(), l.iter().count()), (0, 0));
    }
}
