//! What became of the events a receiver got, counted in one Redis hash shared by every
//! receiver replica (`P:onebot:events`, see [`crate::keys::events_key`]): enqueued, duplicate,
//! ignored (a known event no domain wants), unknown (an event type this crate does not model),
//! refused for a bad signature, refused as malformed, or not enqueued (Redis failed).
//! `celeriac onebot stats` prints them.

use crate::error::Result;
use redis::aio::ConnectionLike;
use std::collections::BTreeMap;

/// What became of one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Received {
    /// Became a job.
    Enqueued,
    /// Its job existed already (a repeated delivery).
    Duplicate,
    /// A known event no domain wants (chat without a code, heartbeats): acknowledged.
    Ignored,
    /// An event type this crate does not model: acknowledged.
    Unknown,
    /// Refused with 401: missing or wrong `X-Signature`.
    BadSignature,
    /// Refused with 400: not JSON, or not a OneBot event.
    Malformed,
    /// Refused with 503: Redis did not take the job (the implementation may retry).
    NotEnqueued,
}

impl Received {
    /// Every outcome.
    pub const ALL: [Received; 7] = [
        Received::Enqueued,
        Received::Duplicate,
        Received::Ignored,
        Received::Unknown,
        Received::BadSignature,
        Received::Malformed,
        Received::NotEnqueued,
    ];

    /// The hash field.
    pub fn as_str(self) -> &'static str {
        match self {
            Received::Enqueued => "enqueued",
            Received::Duplicate => "duplicate",
            Received::Ignored => "ignored",
            Received::Unknown => "unknown",
            Received::BadSignature => "bad_signature",
            Received::Malformed => "malformed",
            Received::NotEnqueued => "not_enqueued",
        }
    }
}

/// The counters, on a Redis connection.
#[derive(Clone, Debug)]
pub struct EventCounts<C> {
    conn: C,
    key: String,
}

impl<C: ConnectionLike + Clone + Send + Sync> EventCounts<C> {
    /// The counters under `prefix`.
    pub fn new(conn: C, prefix: &str) -> Self {
        EventCounts {
            conn,
            key: crate::keys::events_key(prefix),
        }
    }

    /// Count one event.
    pub async fn add(&self, what: Received) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("HINCRBY")
            .arg(&self.key)
            .arg(what.as_str())
            .arg(1)
            .query_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    /// Every counter (0 when never counted).
    pub async fn read(&self) -> Result<BTreeMap<&'static str, i64>> {
        let mut conn = self.conn.clone();
        let stored: BTreeMap<String, i64> = redis::cmd("HGETALL")
            .arg(&self.key)
            .query_async(&mut conn)
            .await?;
        Ok(Received::ALL
            .iter()
            .map(|r| (r.as_str(), stored.get(r.as_str()).copied().unwrap_or(0)))
            .collect())
    }
}
