//! Job states and their legal transitions. `docs/job-states.md` draws the same diagram.

use std::fmt;
use std::str::FromStr;

/// The closed set of states a job can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// Waiting for its run-at time (enqueued with a delay, or snoozed).
    Scheduled,
    /// Ready to run: in the queue's pending list.
    Pending,
    /// Leased by a worker and running.
    Active,
    /// Failed an attempt; waiting for its backoff before the next one.
    Retrying,
    /// Finished successfully (kept for the retention period).
    Succeeded,
    /// Will not run again on its own: attempts exhausted, discarded, poison, or worker lost.
    Dead,
    /// Cancelled by an operator.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Pending,
        JobState::Active,
        JobState::Retrying,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ];

    /// The name used in Redis, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Pending => "pending",
            JobState::Active => "active",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// A finished job never changes state on its own again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Dead | JobState::Cancelled
        )
    }

    /// Whether `self -> to` is a legal transition. The Lua scripts implement exactly these
    /// edges; this function is their specification and is checked by tests.
    pub fn can_transition_to(self, to: JobState) -> bool {
        use JobState::*;
        match (self, to) {
            // promoter: run-at or backoff reached
            (Scheduled | Retrying, Pending) => true,
            // fetcher: leased by a worker
            (Pending, Active) => true,
            // executor outcomes
            (Active, Succeeded | Retrying | Scheduled | Dead) => true,
            // shutdown hand-back, or recoverer after a lost lease
            (Active, Pending) => true,
            // operator cancel of anything not finished
            (Scheduled | Pending | Active | Retrying, Cancelled) => true,
            // operator retry ("run now") of a finished-unsuccessfully job (or of a waiting one,
            // the same edge as the promoter's)
            (Dead | Cancelled, Pending) => true,
            // a record without a usable state found by the fetcher or the promoter (bury_orphan)
            (Scheduled | Retrying | Pending, Dead) => true,
            _ => false,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that names no state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {0:?}; expected one of scheduled, pending, active, retrying, succeeded, dead, cancelled")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
            assert_eq!(s.to_string(), s.as_str());
        }
        assert!("done".parse::<JobState>().is_err());
    }

    #[test]
    fn final_states_only_leave_by_operator_retry() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_final()) {
            for to in JobState::ALL {
                let legal = from.can_transition_to(to);
                let operator_retry = to == JobState::Pending && from != JobState::Succeeded;
                assert_eq!(legal, operator_retry, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn only_active_jobs_succeed() {
        for from in JobState::ALL {
            assert_eq!(
                from.can_transition_to(JobState::Succeeded),
                from == JobState::Active,
                "{from}"
            );
        }
    }

    #[test]
    fn no_self_loops() {
        for s in JobState::ALL {
            assert!(!s.can_transition_to(s), "{s}");
        }
    }
}
