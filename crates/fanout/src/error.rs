//! What can go wrong in the fan-out domain, and what each failure means for a job.

use celeriac_worker::Outcome;
use std::time::Duration;

/// Errors of the fan-out domain. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] celeriac_db::Error),
    /// A query failed.
    #[error("database error: {0}")]
    Sql(#[from] celeriac_db::sqlx::Error),
    /// A stored value is not what this version writes.
    #[error("unexpected value in the fanout tables: {0}; was the database written by another program or a newer Celeriac?")]
    Corrupt(String),
    /// The job's payload (or an operator's argument) cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A topic that does not exist.
    #[error("no topic {0:?}; create it with `celeriac fanout subscribe {0} …` (see `celeriac fanout topics`)")]
    NoTopic(String),
    /// A broadcast that does not exist.
    #[error("no broadcast {0:?}; broadcasts are listed by the id `celeriac fanout send` printed")]
    NoBroadcast(String),
    /// Redis failed (enqueueing the deliveries, the batch).
    #[error("Redis error: {0}; is Redis reachable?")]
    Redis(#[from] celeriac_core::Error),
    /// The HTTP or OneBot client could not be built.
    #[error("cannot build the {0}")]
    Client(String),
    /// One attempt of a delivery failed; the next one runs on the kind's retry schedule, or
    /// after `at_least` (the receiver's `Retry-After`) if that is longer.
    #[error("{error}")]
    Attempt {
        /// What failed (status or transport error).
        error: String,
        /// Not sooner than this.
        at_least: Option<Duration>,
    },
    /// The receiver said it is gone for good (410): the subscriber is disabled.
    #[error("{0}")]
    Gone(String),
    /// The attempt cannot succeed until someone changes something: the guard refused the
    /// address, the bot lacks a permission.
    #[error("{0}")]
    Refused(String),
    /// QQ's risk control paused the bot account.
    #[error("the bot account is paused after a QQ risk-control signal; the delivery waits {}", humantime::format_duration(*.0))]
    Paused(Duration),
}

/// Result of the fan-out domain.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Outcome {
    /// A bad payload, a corrupt row, a missing topic or broadcast, or a receiver gone for good
    /// cannot succeed on retry (discarded, dead at once); a failed attempt is retried on the
    /// kind's schedule (dead with `max_attempts` after the last one); a risk-control pause
    /// snoozes without spending an attempt; the database, Redis and the clients are worth
    /// another attempt on the kind's policy too.
    fn from(e: Error) -> Outcome {
        match e {
            Error::Invalid(_)
            | Error::Corrupt(_)
            | Error::NoTopic(_)
            | Error::NoBroadcast(_)
            | Error::Gone(_)
            | Error::Refused(_) => Outcome::Discard(e.to_string()),
            Error::Attempt {
                error,
                at_least: Some(wait),
            } => Outcome::RetryAtLeast(error, wait),
            Error::Attempt {
                error,
                at_least: None,
            } => Outcome::Retry(error),
            Error::Paused(wait) => Outcome::Snooze(wait.max(Duration::from_secs(1))),
            Error::Db(_) | Error::Sql(_) | Error::Redis(_) | Error::Client(_) => {
                Outcome::Retry(e.to_string())
            }
        }
    }
}
