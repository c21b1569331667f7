//! The error type of `celeriac-core`.

use std::path::PathBuf;

/// Everything that can go wrong in the core library. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis could not be reached or answered with an error.
    #[error("Redis error: {0}{hint}", hint = redis_hint(.0))]
    Redis(#[from] redis::RedisError),

    /// A queue name that cannot be used as a Redis hash tag.
    #[error("invalid queue name {name:?}: {reason}; use 1-{max} characters from A-Z a-z 0-9 _ - .", max = crate::keys::MAX_QUEUE_NAME_LEN)]
    InvalidQueue { name: String, reason: &'static str },

    /// A job kind that is empty or too long.
    #[error("invalid job kind {kind:?}: {reason}")]
    InvalidKind { kind: String, reason: &'static str },

    /// A caller-supplied job id that cannot be used.
    #[error("invalid job id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    /// An encoded envelope larger than the configured cap.
    #[error("job payload is {size} bytes, over the {limit}-byte cap (raise jobs.max_payload_bytes / CELERIAC_JOBS__MAX_PAYLOAD_BYTES, or store the data elsewhere and enqueue a reference)")]
    TooLarge { size: usize, limit: usize },

    /// A payload that is not valid JSON.
    #[error("invalid JSON payload: {0}")]
    Json(#[from] serde_json::Error),

    /// A configuration file that cannot be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A configuration file that is not valid TOML or has unknown/mistyped fields.
    #[error("invalid config file {path}: {message}")]
    ConfigParse { path: PathBuf, message: String },

    /// A configuration value out of range; `field` names it as written in the TOML.
    #[error("invalid config value for `{field}`: {message}")]
    ConfigValue { field: String, message: String },

    /// A run-at time (or a delay) that Celeriac cannot store or show: past
    /// [`MAX_TIMESTAMP_MS`](crate::time::MAX_TIMESTAMP_MS), 9999-12-31T23:59:59.999Z.
    #[error("{what} is past 9999-12-31T23:59:59.999Z, the latest run-at time Celeriac accepts; schedule the job nearer and let its handler snooze")]
    RunAtOutOfRange { what: String },

    /// A job id that names jobs in several queues, where the caller gave no queue.
    #[error("job id {id:?} names a job in each of the queues {queues}; say which with --queue Q", queues = .queues.join(", "))]
    AmbiguousId { id: String, queues: Vec<String> },

    /// A bulk enqueue that stopped part way: what was committed and what is unknown.
    #[error("{}", .0)]
    PartialEnqueue(Box<crate::broker::PartialEnqueue>),

    /// Redis answered with something the protocol does not expect.
    #[error(
        "unexpected reply from Redis: {0} (is another program writing into Celeriac's key prefix?)"
    )]
    Protocol(String),
}

impl Error {
    /// Whether Redis could not be reached, did not answer in time, or cannot serve for now
    /// (loading its data after a restart, busy with a script, a replica without its master),
    /// as opposed to answering with an error: an availability problem that passes, not a bug.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Redis(e) => {
                e.is_timeout()
                    || e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || matches!(
                        e.code(),
                        Some(
                            "LATE" | "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN"
                        )
                    )
            }
            Error::PartialEnqueue(p) => p.error.is_unreachable(),
            _ => false,
        }
    }
}

/// What to do about a Redis error, in words an operator can act on.
fn redis_hint(e: &redis::RedisError) -> &'static str {
    let text = e.to_string();
    if e.code() == Some("OOM") || text.contains("OOM") && text.contains("maxmemory") {
        " (Redis is full: maxmemory is reached and its policy is noeviction, so the refused call wrote nothing. Free memory — purge finished jobs or lower the retention limits — or raise maxmemory)"
    } else if e.code() == Some("NOPERM") || text.contains("NOPERM") {
        " (the Redis user lacks a permission: grant it the commands and the key pattern in deploy/redis.conf)"
    } else if e.code() == Some("WRONGPASS") || text.contains("WRONGPASS") || text.contains("NOAUTH")
    {
        " (authentication failed: check the user and password in the Redis URL)"
    } else if e.code() == Some("LOADING") {
        " (Redis is loading its data after a restart; Celeriac retries on its own)"
    } else if matches!(e.code(), Some("MASTERDOWN" | "CLUSTERDOWN" | "TRYAGAIN")) {
        " (Redis cannot serve this call for now: a failover or resharding is under way; Celeriac retries on its own)"
    } else if e.code() == Some("BUSY") {
        " (Redis is busy running a long script; Celeriac retries on its own)"
    } else if e.code() == Some("LATE") {
        " (the call reached Redis after this process had stopped waiting for it, so Redis refused it: the network to Redis is slow or was cut off)"
    } else if e.is_timeout() {
        " (Redis did not answer in time: the network to it is slow or cut off, or Redis is overloaded; Celeriac reconnects and retries on its own)"
    } else if unreachable(e, &text) {
        " (no route to Redis: the network between this host and Redis is down)"
    } else if e.is_connection_refusal() {
        // Before "dropped", which counts a refused connection too: nothing listens there.
        " (is Redis running at the configured URL? set --redis-url or CELERIAC_REDIS_URL)"
    } else if e.is_connection_dropped() {
        " (the connection to Redis broke; Celeriac reconnects on its own)"
    } else if e.is_io_error() {
        " (is Redis running at the configured URL? set --redis-url or CELERIAC_REDIS_URL)"
    } else {
        ""
    }
}

/// A connection that could not even be attempted: no route to the host, or no network. The
/// redis client keeps the I/O error's text, not always the error itself, so both are read.
fn unreachable(e: &redis::RedisError, text: &str) -> bool {
    let kind = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    matches!(
        kind,
        Some(std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable)
    ) || [
        "No route to host",
        "Network is unreachable",
        "Host is unreachable",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn hint_of(io: std::io::Error) -> String {
        Error::Redis(redis::RedisError::from(io)).to_string()
    }

    #[test]
    fn an_unreachable_network_is_not_a_missing_server() {
        // EHOSTUNREACH and ENETUNREACH, as a connect during a partition gets them.
        for errno in [113, 101] {
            let text = hint_of(std::io::Error::from_raw_os_error(errno));
            assert!(text.contains("no route to Redis"), "{text}");
            assert!(!text.contains("is Redis running"), "{text}");
        }
        let refused = hint_of(std::io::ErrorKind::ConnectionRefused.into());
        assert!(refused.contains("is Redis running"), "{refused}");
    }
}
