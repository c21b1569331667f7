//! What health checks ask of a running process (a worker, a scheduler): is it alive — have its
//! loops run lately — and should it get work — has it started, does Redis answer, is it not
//! shutting down. The process's loops report to a [`Probe`]; an HTTP endpoint reads it.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loop is dead when it has not run for this many periods (and at least [`MIN_SILENCE`]).
const MISSED_PERIODS: u32 = 3;
/// Least silence before a loop counts as dead, whatever its period (a slow Redis call, a
/// loaded machine).
const MIN_SILENCE: Duration = Duration::from_secs(30);

/// Shared state of one process's health; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Probe(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    started: AtomicBool,
    draining: AtomicBool,
    redis_down: AtomicBool,
    beats: Mutex<BTreeMap<String, (Instant, Duration)>>,
}

/// A snapshot, as `/healthz` and `/readyz` show it.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    /// Every loop ran lately.
    pub live: bool,
    /// Started, Redis answers, not shutting down.
    pub ready: bool,
    /// Started.
    pub started: bool,
    /// Shutting down (no new work).
    pub draining: bool,
    /// The last Redis call got an answer.
    pub redis: bool,
    /// Each loop: seconds since it last ran, and whether that is too long.
    pub loops: BTreeMap<String, LoopReport>,
}

/// One loop in a [`ProbeReport`].
#[derive(Clone, Debug, Serialize)]
pub struct LoopReport {
    /// Seconds since it last ran.
    pub last_ran_s: f64,
    /// Its period, seconds.
    pub period_s: f64,
    /// Silent for too long.
    pub stalled: bool,
}

impl Probe {
    /// A probe of a process that has not started yet.
    pub fn new() -> Probe {
        Probe::default()
    }

    /// The process is up and serving.
    pub fn set_started(&self) {
        self.0.started.store(true, Ordering::Release);
    }

    /// The process is shutting down: it takes no new work.
    pub fn set_draining(&self) {
        self.0.draining.store(true, Ordering::Release);
    }

    /// Whether the last Redis call got an answer.
    pub fn set_redis_up(&self, up: bool) {
        self.0.redis_down.store(!up, Ordering::Release);
    }

    /// Loop `name`, which runs about every `period`, just ran.
    pub fn beat(&self, name: &str, period: Duration) {
        if let Ok(mut beats) = self.0.beats.lock() {
            match beats.get_mut(name) {
                Some(b) => *b = (Instant::now(), period),
                None => {
                    beats.insert(name.to_string(), (Instant::now(), period));
                }
            }
        }
    }

    /// Forget loop `name` (it ended on purpose).
    pub fn forget(&self, name: &str) {
        if let Ok(mut beats) = self.0.beats.lock() {
            beats.remove(name);
        }
    }

    /// The state now.
    pub fn report(&self) -> ProbeReport {
        let loops: BTreeMap<String, LoopReport> = self
            .0
            .beats
            .lock()
            .map(|b| {
                b.iter()
                    .map(|(name, (at, period))| {
                        let silent = at.elapsed();
                        let limit = (*period * MISSED_PERIODS).max(MIN_SILENCE);
                        let report = LoopReport {
                            last_ran_s: silent.as_secs_f64(),
                            period_s: period.as_secs_f64(),
                            stalled: silent > limit,
                        };
                        (name.clone(), report)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let started = self.0.started.load(Ordering::Acquire);
        let draining = self.0.draining.load(Ordering::Acquire);
        let redis = !self.0.redis_down.load(Ordering::Acquire);
        ProbeReport {
            live: !loops.values().any(|l| l.stalled),
            ready: started && !draining && redis,
            started,
            draining,
            redis,
            loops,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_started_redis_and_no_drain_and_live_needs_every_loop() {
        let p = Probe::new();
        assert!(!p.report().ready, "not started");
        p.set_started();
        assert!(p.report().ready);
        p.set_redis_up(false);
        assert!(!p.report().ready, "Redis down");
        p.set_redis_up(true);
        p.beat("heartbeat", Duration::from_millis(1));
        assert!(p.report().live, "within the least silence");
        if let Ok(mut b) = p.0.beats.lock() {
            b.insert(
                "stuck".into(),
                (
                    Instant::now() - Duration::from_secs(120),
                    Duration::from_secs(10),
                ),
            );
        }
        let r = p.report();
        assert!(!r.live && r.loops["stuck"].stalled && !r.loops["heartbeat"].stalled);
        p.forget("stuck");
        assert!(p.report().live);
        p.set_draining();
        assert!(!p.report().ready, "draining");
    }
}
