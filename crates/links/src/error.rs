//! What can go wrong in the links domain, and what each failure means for a `links.check` job.

use celeriac_worker::Outcome;

/// Errors of the links domain. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] celeriac_db::Error),
    /// A query failed.
    #[error("database error: {0}")]
    Sql(#[from] celeriac_db::sqlx::Error),
    /// A link with this name exists already.
    #[error("a link named {0:?} exists already (remove it first, or use `celeriac links import` to update it)")]
    DuplicateName(String),
    /// A value does not fit (the message names the field or the line).
    #[error("{0}")]
    Invalid(String),
    /// The job's payload cannot be used (a `site_link` that is not a valid regex, …).
    #[error("{0}")]
    Payload(String),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] celeriac_http::BuildError),
    /// The one-run-at-a-time lock could not be taken or was lost.
    #[error(transparent)]
    LockLost(#[from] celeriac_worker::exclusive::LockLost),
    /// Redis failed while taking the lock.
    #[error("cannot take the links.check lock: {0}")]
    Lock(#[from] celeriac_core::Error),
}

/// Result of the links domain.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Outcome {
    /// A bad payload cannot succeed on retry (discarded); a bad stored value neither; the
    /// database, Redis, the HTTP client and a lost lock are worth another attempt.
    fn from(e: Error) -> Outcome {
        match e {
            Error::Payload(_) | Error::Invalid(_) | Error::DuplicateName(_) => {
                Outcome::Discard(e.to_string())
            }
            Error::Db(_) | Error::Sql(_) | Error::Http(_) | Error::LockLost(_) | Error::Lock(_) => {
                Outcome::Retry(e.to_string())
            }
        }
    }
}
