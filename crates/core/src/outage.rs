//! One log of a Redis outage for a whole process (ADR 0011): every loop that calls Redis
//! reports here, and the process logs the outage's start once, reminders at growing intervals
//! (5, 10, 20, 40, then every 60 s), and its end once — never a line per failed call. Used by
//! the worker (`health.rs`, which adds what the outage means for the leases it holds) and by
//! `celeriac cron`. [`Outage`] decides *when* to log; the caller writes the line, with what it
//! knows.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// First reminder of an ongoing outage; the pause doubles up to [`MAX_REMINDER_GAP`].
pub const FIRST_REMINDER_GAP: Duration = Duration::from_secs(5);
/// Longest pause between two reminders.
pub const MAX_REMINDER_GAP: Duration = Duration::from_secs(60);
/// How soon after the first failure a success is taken for a call already in flight rather than
/// for Redis answering again (see [`Outage::ok`]), and after the end of an outage a failure for
/// a connection it broke rather than a new outage (see [`Outage::failed`]).
pub const IN_FLIGHT_WINDOW: Duration = Duration::from_millis(250);

/// Whether Redis answers, as the calls of one process saw it.
#[derive(Debug, Default)]
pub struct Outage {
    state: Mutex<State>,
    back: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// When the first failed call of the current outage happened.
    down_since: Option<Instant>,
    /// When the last outage ended.
    ended_at: Option<Instant>,
    failures: u64,
    next_reminder: Option<Instant>,
    gap: Duration,
}

/// What a failed call should log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// The first failure of an outage: say that Redis stopped answering.
    Started,
    /// A reminder that the outage goes on.
    Ongoing {
        /// Since the first failure.
        down: Duration,
        /// Failed calls so far.
        failures: u64,
    },
    /// Nothing: already said.
    Quiet,
}

/// An outage that just ended: log it once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    /// How long Redis did not answer.
    pub down: Duration,
    /// Calls that failed meanwhile.
    pub failures: u64,
}

impl Outage {
    /// No outage yet.
    pub fn new() -> Outage {
        Outage::default()
    }

    /// A call failed: what to log about it.
    pub fn failed(&self) -> Report {
        let Ok(mut s) = self.state.lock() else {
            return Report::Quiet;
        };
        let now = Instant::now();
        // A connection broken by the outage that just ended fails once more when next used
        // (the wake-up wait, say): not a new outage. A real one fails again on the next call.
        if s.down_since.is_none() && s.ended_at.is_some_and(|t| t.elapsed() < IN_FLIGHT_WINDOW) {
            return Report::Quiet;
        }
        s.failures += 1;
        let Some(since) = s.down_since else {
            s.down_since = Some(now);
            s.gap = FIRST_REMINDER_GAP;
            s.next_reminder = Some(now + s.gap);
            return Report::Started;
        };
        if s.next_reminder.is_some_and(|t| now >= t) {
            s.gap = (s.gap * 2).min(MAX_REMINDER_GAP);
            s.next_reminder = Some(now + s.gap);
            return Report::Ongoing {
                down: since.elapsed(),
                failures: s.failures,
            };
        }
        Report::Quiet
    }

    /// A call succeeded: the outage that ended with it, if there was one (log it). Wakes the
    /// loops waiting in [`Outage::back`].
    pub fn ok(&self) -> Option<Ended> {
        let ended = {
            let mut s = self.state.lock().ok()?;
            // A call that answers within moments of the first failure was on its way before
            // it (several loops share the connection): it does not show that Redis is back, and
            // ending the outage on it would log the same outage twice.
            if s.down_since.is_some_and(|t| t.elapsed() < IN_FLIGHT_WINDOW) {
                return None;
            }
            let since = s.down_since.take()?;
            s.ended_at = Some(Instant::now());
            Ended {
                down: since.elapsed(),
                failures: std::mem::take(&mut s.failures),
            }
        };
        self.back.notify_waiters();
        Some(ended)
    }

    /// Whether the last call failed.
    pub fn is_down(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.down_since.is_some())
    }

    /// Resolves when Redis answers again (at once if the last call succeeded).
    pub async fn back(&self) {
        let notified = self.back.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_down() {
            return;
        }
        notified.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Move the outage's start past the in-flight window.
    fn backdate(o: &Outage) {
        let mut s = o.state.lock().unwrap();
        s.down_since = s.down_since.map(|t| t - IN_FLIGHT_WINDOW);
    }

    #[test]
    fn an_outage_starts_once_and_ends_once() {
        let o = Outage::new();
        assert_eq!(o.ok(), None, "no outage, nothing ended");
        assert_eq!(o.failed(), Report::Started);
        for _ in 0..100 {
            assert_eq!(o.failed(), Report::Quiet, "said once");
        }
        assert!(o.is_down());
        assert_eq!(o.ok(), None, "a call in flight at the failure ends nothing");
        backdate(&o);
        let ended = o.ok().expect("the outage ended");
        assert_eq!(ended.failures, 101);
        assert_eq!(o.ok(), None, "ended once");
        assert!(!o.is_down());
        assert_eq!(
            o.failed(),
            Report::Quiet,
            "a stale connection's last failure"
        );
        assert!(!o.is_down());
        if let Ok(mut s) = o.state.lock() {
            s.ended_at = s.ended_at.map(|t| t - IN_FLIGHT_WINDOW);
        }
        assert_eq!(o.failed(), Report::Started, "a new outage");
    }

    #[test]
    fn reminder_gaps_double_up_to_a_minute() {
        let o = Outage::new();
        assert_eq!(o.failed(), Report::Started);
        let mut gaps = Vec::new();
        for _ in 0..8 {
            if let Ok(mut s) = o.state.lock() {
                // Pretend the next reminder is due now.
                s.next_reminder = Some(Instant::now());
            }
            assert!(matches!(o.failed(), Report::Ongoing { .. }));
            gaps.push(o.state.lock().unwrap().gap.as_secs());
            assert_eq!(o.failed(), Report::Quiet, "not again before the next gap");
        }
        assert_eq!(gaps, [10, 20, 40, 60, 60, 60, 60, 60]);
    }

    #[tokio::test]
    async fn back_resolves_when_redis_answers() {
        let o = std::sync::Arc::new(Outage::new());
        o.back().await; // not down: at once
        o.failed();
        let waiter = tokio::spawn({
            let o = o.clone();
            async move { o.back().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        backdate(&o);
        o.ok();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
