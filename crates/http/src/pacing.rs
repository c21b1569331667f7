//! Per-host pacing: at most `per_host` requests in flight to one host, and at least `interval`
//! between the starts of two requests to it. Waiting for a slot is the caller's to leave out of
//! its deadlines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of every host met so far.
#[derive(Debug)]
pub struct HostPacer {
    per_host: usize,
    interval: Duration,
    hosts: Mutex<HashMap<String, Arc<HostSlot>>>,
}

#[derive(Debug)]
struct HostSlot {
    permits: Arc<Semaphore>,
    next_start: Mutex<Instant>,
}

impl HostPacer {
    /// At most `per_host` requests at once to a host, their starts `interval` apart.
    pub fn new(per_host: usize, interval: Duration) -> HostPacer {
        HostPacer {
            per_host: per_host.max(1),
            interval,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Wait for a request slot on `host` and for its spacing; the slot is held until the
    /// permit is dropped.
    pub async fn acquire(&self, host: &str) -> Option<OwnedSemaphorePermit> {
        let slot = {
            let mut hosts = self.hosts.lock().ok()?;
            hosts
                .entry(host.to_string())
                .or_insert_with(|| {
                    Arc::new(HostSlot {
                        permits: Arc::new(Semaphore::new(self.per_host)),
                        next_start: Mutex::new(Instant::now()),
                    })
                })
                .clone()
        };
        let permit = slot.permits.clone().acquire_owned().await.ok()?;
        let wait = {
            let mut next = slot.next_start.lock().ok()?;
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + self.interval;
            start - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Some(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn starts_are_spaced_and_capped_per_host() {
        let pacer = Arc::new(HostPacer::new(2, Duration::from_millis(100)));
        let t0 = tokio::time::Instant::now();
        let a = pacer.acquire("a").await.unwrap();
        let b = pacer.acquire("a").await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(100), "spaced");
        let other = pacer.acquire("b").await.unwrap();
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(100),
            "hosts are independent"
        );
        let p = pacer.clone();
        let third = tokio::spawn(async move { p.acquire("a").await.map(|_| ()) });
        tokio::task::yield_now().await;
        assert!(!third.is_finished(), "capped at 2 in flight");
        drop(a);
        third.await.unwrap().unwrap();
        drop((b, other));
    }
}
