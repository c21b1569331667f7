//! State shared by the worker's loops.

use crate::handler::{Progress, Registry};
use celeriac_core::config::Config;
use celeriac_core::Broker;
use std::collections::HashMap;
use std::sync::Mutex;
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
}

pub(crate) struct Shared {
    pub config: Config,
    pub broker: Broker,
    pub registry: Registry,
    pub worker_id: String,
    pub host: String,
    pub started_ms: u64,
    /// Handler slots.
    pub slots: std::sync::Arc<Semaphore>,
    /// Leases held, by (queue, id).
    pub leases: Mutex<HashMap<(String, String), Lease>>,
    /// Cancelled when the grace period is over: remaining handlers stop, their jobs go back.
    pub hard_stop: CancellationToken,
    /// Cancelled some seconds into the final drain: outcomes Redis still refuses are given up
    /// (their leases expire and the jobs run again) so the process can exit.
    pub ack_deadline: CancellationToken,
    /// The Redis dataset this worker works on (see `Broker::ensure_epoch`).
    pub epoch: Mutex<String>,
}

impl Shared {
    pub fn new(config: Config, broker: Broker, registry: Registry) -> Self {
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
            leases: Mutex::new(HashMap::new()),
            hard_stop: CancellationToken::new(),
            ack_deadline: CancellationToken::new(),
            epoch: Mutex::new(String::new()),
        }
    }

    /// Jobs held now (running, or finished and waiting for their outcome to be recorded).
    pub fn in_flight(&self) -> usize {
        self.leases.lock().map(|l| l.len()).unwrap_or(0)
    }

    pub fn add_lease(&self, queue: &str, id: &str, lease: Lease) {
        if let Ok(mut l) = self.leases.lock() {
            l.insert((queue.to_string(), id.to_string()), lease);
        }
    }

    pub fn remove_lease(&self, queue: &str, id: &str) {
        if let Ok(mut l) = self.leases.lock() {
            l.remove(&(queue.to_string(), id.to_string()));
        }
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

/// Exponential pause after a Redis error (100 ms doubling to 5 s); false if `stop` fired.
pub(crate) async fn pause_after_error(failures: u32, stop: &CancellationToken) -> bool {
    let ms = 100u64.saturating_mul(1 << failures.min(6)).min(5_000);
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => true,
    }
}
