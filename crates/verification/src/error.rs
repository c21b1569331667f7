//! What can go wrong in the verification domain, and what each failure means for a job.

use celeriac_worker::Outcome;
use std::time::Duration;

/// Errors of the verification domain. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] celeriac_db::Error),
    /// A query failed.
    #[error("database error: {0}")]
    Sql(#[from] celeriac_db::sqlx::Error),
    /// A stored value is not what this version writes (another program wrote the tables?).
    #[error("unexpected value in the verification tables: {0}; was the database written by another program or a newer Celeriac?")]
    Corrupt(String),
    /// The job's payload cannot be used.
    #[error("{0}")]
    Payload(String),
    /// OneBot failed in a way worth another attempt (the action stays pending).
    #[error("{0}")]
    OneBot(#[from] celeriac_onebot::Error),
    /// QQ's risk control paused the bot account: nothing more is sent until it ends.
    #[error("the bot account is paused after a QQ risk-control signal; the job waits {}", humantime::format_duration(*.0))]
    Paused(Duration),
    /// The HTTP client for OneBot could not be built.
    #[error("cannot build the OneBot client: {0}; check [onebot] api_url")]
    Client(String),
    /// Redis failed (the per-group lock, or enqueueing the per-group scans).
    #[error("Redis error: {0}; is Redis reachable?")]
    Redis(#[from] celeriac_core::Error),
    /// The per-group lock was lost while a scan ran.
    #[error(transparent)]
    LockLost(#[from] celeriac_worker::exclusive::LockLost),
}

/// Result of the verification domain.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Outcome {
    /// A bad payload or a stored value this version cannot read cannot succeed on retry
    /// (discarded); a risk-control pause snoozes the job
    /// without spending an attempt; everything else — the database, Redis, OneBot, a lost
    /// lock — is worth another attempt, which resumes where this one stopped (the actions
    /// already done are recorded as done).
    fn from(e: Error) -> Outcome {
        match e {
            Error::Payload(_) | Error::Corrupt(_) => Outcome::Discard(e.to_string()),
            Error::Paused(wait) => Outcome::Snooze(wait.max(Duration::from_secs(1))),
            Error::Db(_)
            | Error::Sql(_)
            | Error::OneBot(_)
            | Error::Client(_)
            | Error::Redis(_)
            | Error::LockLost(_) => Outcome::Retry(e.to_string()),
        }
    }
}
