//! One run at a time: a named lock in Redis whose lease is renewed while the run goes on and
//! released when it ends — or, when the run is dropped (job timeout, lease lost, shutdown),
//! from a background task, so the next run does not wait for the lease to expire. A worker
//! that dies frees it within one lease.
//!
//! ```no_run
//! # async fn f(broker: celeriac_core::Broker, job: celeriac_worker::Job) -> celeriac_worker::Outcome {
//! use celeriac_worker::{exclusive::Exclusive, Outcome};
//! use std::time::Duration;
//! let Some(held) = Exclusive::try_acquire(&broker, "reports.daily", &job, Duration::from_secs(60))
//!     .await
//!     .unwrap_or(None)
//! else {
//!     return Outcome::Snooze(Duration::from_secs(10)); // another run holds it
//! };
//! match held.run(async { /* the work */ }).await {
//!     Ok(()) => Outcome::Done(None),
//!     Err(lost) => Outcome::Retry(lost.to_string()),
//! }
//! # }
//! ```

use crate::job::Job;
use celeriac_core::Broker;
use std::future::Future;
use std::time::Duration;
use tracing::warn;

/// The lock was lost while the run held it (it expired, or could not be renewed): the run was
/// stopped.
#[derive(Debug, thiserror::Error)]
#[error("lost the lock {name:?} while running: {reason}; the run stopped")]
pub struct LockLost {
    /// The lock.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// A held lock (see the module documentation).
#[derive(Debug)]
pub struct Exclusive {
    broker: Broker,
    name: String,
    owner: String,
    ttl: Duration,
    released: bool,
}

impl Exclusive {
    /// Take the lock `name` for this delivery of `job` (owner: its id and fencing token), with
    /// a lease of `ttl`; `None` when someone else holds it.
    pub async fn try_acquire(
        broker: &Broker,
        name: &str,
        job: &Job,
        ttl: Duration,
    ) -> celeriac_core::Result<Option<Exclusive>> {
        let owner = format!("{}#{}", job.id, job.token);
        Self::try_acquire_as(broker, name, &owner, ttl).await
    }

    /// [`Exclusive::try_acquire`] for any owner.
    pub async fn try_acquire_as(
        broker: &Broker,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> celeriac_core::Result<Option<Exclusive>> {
        if !broker.try_lock(name, owner, ttl).await? {
            return Ok(None);
        }
        Ok(Some(Exclusive {
            broker: broker.clone(),
            name: name.to_string(),
            owner: owner.to_string(),
            ttl,
            released: false,
        }))
    }

    /// Run `work` holding the lock: its lease is renewed every third of it; if it is lost,
    /// `work` is dropped and [`LockLost`] returned. The lock is released afterwards.
    pub async fn run<F: Future>(mut self, work: F) -> Result<F::Output, LockLost> {
        let result = tokio::select! {
            out = work => Ok(out),
            reason = self.keep() => Err(LockLost { name: self.name.clone(), reason }),
        };
        self.release().await;
        result
    }

    /// Renew until the lock is lost; returns why.
    async fn keep(&self) -> String {
        let mut failures = 0;
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            match self
                .broker
                .renew_lock(&self.name, &self.owner, self.ttl)
                .await
            {
                Ok(true) => failures = 0,
                Ok(false) => return "it expired".into(),
                Err(e) => {
                    failures += 1;
                    if failures >= 2 {
                        return format!("cannot renew it: {e}");
                    }
                }
            }
        }
    }

    /// Release now.
    pub async fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        if let Err(e) = self.broker.unlock(&self.name, &self.owner).await {
            warn!(lock = %self.name, error = %e, "could not release the lock; it expires within {}s", self.ttl.as_secs());
        }
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (broker, name, owner) = (
            self.broker.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.owner),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = broker.unlock(&name, &owner).await;
            });
        }
    }
}
