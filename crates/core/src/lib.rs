//! Celeriac's core: the job model and the Redis protocol every other crate speaks.
//!
//! - [`state`]: the closed set of job states and the one place that decides legal transitions.
//! - [`envelope`]: the versioned job envelope (wire format v1), compact encode, defensive decode.
//! - [`keys`]: the Redis key schema, one function per key, hash-tagged per queue.
//! - [`scripts`]: the Lua scripts (in `scripts/*.lua`) behind every multi-key state change.
//! - [`connection`]: one connection type for a single node or a Redis Cluster.
//! - [`broker`]: the connection to Redis and the batch operations workers and producers use.
//! - [`inspector`]: read and repair jobs, queues and workers (what the CLI is built on).
//! - [`backoff`]: exponential backoff with full jitter.
//! - [`config`]: layered configuration (defaults < TOML < environment < flags) with validation.
//! - [`probe`]: liveness and readiness of a running process, for health checks.
//! - [`outage`]: one log of a Redis outage per process (start once, reminders, end once).
//! - [`time`]: timestamps and their formatting.
//! - [`error`]: the crate's error type.

pub mod backoff;
pub mod broker;
pub mod config;
pub mod connection;
pub mod envelope;
pub mod error;
pub mod inspector;
pub mod keys;
pub mod outage;
pub mod probe;
pub mod scripts;
pub mod state;
pub mod time;

pub use broker::Broker;
pub use envelope::{DeadReason, DecodeError, Envelope, JobKind, ENVELOPE_VERSION};
pub use error::{Error, Result};
pub use keys::Keys;
pub use state::JobState;
