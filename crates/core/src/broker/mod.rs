//! The connection to Redis and the batch operations of the protocol. Every state change is one
//! script call per batch (see [`crate::scripts`]); the [`crate::inspector`] reads and repairs.
//!
//! - [`enqueue`](self::enqueue): creating jobs;
//! - `lease`: fetch, ack, renew, reconcile, recover;
//! - `maintenance`: promotion, retention, cron ticks, named locks;
//! - `batch`: batches of child jobs that complete exactly once (ADR 0010);
//! - this file: the connection, the Redis clock and deadlines, workers and the dataset epoch.

mod batch;
mod enqueue;
mod lease;
mod maintenance;

pub use batch::{BatchAdded, BatchCounts};
pub use enqueue::{Enqueued, NewJob, PartialEnqueue, ENQUEUE_CHUNK, ENQUEUE_CHUNK_BYTES};
pub use lease::{Ack, AckOp, Fetch, Fetched, Recovered, Refusal, Renewal, FETCH_BYTES};
pub use maintenance::{CronEnqueue, Promoted};

use crate::connection::Conn;
use crate::connection::Reconnecting;
use crate::error::{Error, Result};
use crate::keys::Keys;
use redis::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a Redis call waits for its answer unless configured otherwise (`redis_timeout`).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A handle on Redis for one key prefix. Cheap to clone; clones share one multiplexed
/// connection that replaces itself after a timeout or a socket error. Every call waits at most
/// [`Broker::timeout`]; the scripts that must not take effect late carry a deadline on the
/// Redis clock that matches it (see [`Broker::deadline_ms`]).
#[derive(Clone)]
pub struct Broker {
    client: redis::Client,
    con: Conn,
    /// The cluster's client (for dedicated blocking connections), when Redis is a cluster.
    cluster: Option<redis::cluster::ClusterClient>,
    keys: Keys,
    timeout: Duration,
    clock: Arc<Mutex<Option<ClockSample>>>,
}

/// One reading of the Redis clock: Redis said `redis_ms` about `at` (the middle of a round
/// trip of `rtt`).
#[derive(Clone, Copy, Debug)]
struct ClockSample {
    at: Instant,
    redis_ms: u64,
    rtt: Duration,
}

/// A clock reading older than this is taken again before the next deadline is computed.
const CLOCK_REFRESH: Duration = Duration::from_secs(30);

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("prefix", &self.keys.prefix())
            .finish()
    }
}

impl Broker {
    /// Connect with the Redis URL, prefix, timeout and TLS settings of `config`.
    pub async fn from_config(config: &crate::config::Config) -> Result<Broker> {
        Self::open(
            &config.redis_url,
            &config.prefix,
            config.redis_tls_ca.as_deref(),
            config.redis_timeout,
        )
        .await
    }

    /// Connect to `url` (fails fast when Redis does not answer).
    pub async fn connect(url: &str, prefix: &str) -> Result<Broker> {
        Self::open(url, prefix, None, DEFAULT_REDIS_TIMEOUT).await
    }

    /// Connect to `url`; for a `rediss://` URL, `tls_ca` is a PEM file of the certificate
    /// authority that signed the server's certificate (the system's roots are used without it).
    pub async fn connect_tls(
        url: &str,
        prefix: &str,
        tls_ca: Option<&std::path::Path>,
    ) -> Result<Broker> {
        Self::open(url, prefix, tls_ca, DEFAULT_REDIS_TIMEOUT).await
    }

    /// Connect; every call then waits at most `timeout` for its answer.
    pub async fn open(
        url: &str,
        prefix: &str,
        tls_ca: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<Broker> {
        // One process-wide TLS crypto provider; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let info = redis::IntoConnectionInfo::into_connection_info(url)?
            .set_tcp_settings(crate::connection::tcp_settings(timeout * 2));
        let client = match tls_ca {
            Some(path) if url.to_ascii_lowercase().starts_with("rediss://") => {
                let root_cert = std::fs::read(path).map_err(|source| Error::ConfigRead {
                    path: path.to_path_buf(),
                    source,
                })?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )?
            }
            _ => redis::Client::open(info)?,
        };
        let mut single =
            Reconnecting::connect(client.clone(), timeout.max(CONNECT_TIMEOUT)).await?;
        // A user without the INFO command (an ACL that forbids @dangerous) is taken to be on a
        // single node; grant +info to such a user on a cluster (deploy/redis.conf).
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut single)
            .await
            .unwrap_or_default();
        let (con, cluster) = if info.lines().any(|l| l.trim() == "cluster_enabled:1") {
            let cluster = Self::cluster_client(&client, timeout)?;
            let con = cluster.get_async_connection().await?;
            (Conn::Cluster(con), Some(cluster))
        } else {
            (Conn::Single(single.with_timeout(timeout)), None)
        };
        let broker = Broker {
            client,
            con,
            cluster,
            keys: Keys::new(prefix),
            timeout,
            clock: Arc::new(Mutex::new(None)),
        };
        // Best effort: without a reading, scripts run without a deadline until one succeeds.
        let _ = broker.read_clock().await;
        Ok(broker)
    }

    fn cluster_client(
        client: &redis::Client,
        response_timeout: Duration,
    ) -> Result<redis::cluster::ClusterClient> {
        Ok(
            redis::cluster::ClusterClient::builder(vec![client.get_connection_info().clone()])
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(response_timeout)
                .tcp_settings(crate::connection::tcp_settings(response_timeout * 2))
                .build()?,
        )
    }

    /// A handle on the same connection whose calls wait at most `timeout` (and whose script
    /// deadlines follow it). On a cluster the timeout of the cluster connection applies.
    pub fn with_timeout(&self, timeout: Duration) -> Broker {
        let mut b = self.clone();
        if let Conn::Single(c) = &self.con {
            b.con = Conn::Single(c.with_timeout(timeout));
            b.timeout = timeout;
        }
        b
    }

    /// How long a call waits for its answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether Redis is a cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The key schema in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A clone of the shared connection, for the inspector and tests.
    pub fn connection(&self) -> Conn {
        self.con.clone()
    }

    /// A dedicated connection for blocking commands (`BLPOP`) of at most `wait`: its calls wait
    /// `wait` plus this broker's timeout, so a connection whose far end is gone is noticed and
    /// replaced instead of waited on for ever.
    pub async fn blocking_connection(&self, wait: Duration) -> Result<Conn> {
        let timeout = wait + self.timeout;
        if self.cluster.is_some() {
            let cluster = Self::cluster_client(&self.client, timeout)?;
            return Ok(Conn::Cluster(cluster.get_async_connection().await?));
        }
        Ok(Conn::Single(
            Reconnecting::connect(self.client.clone(), timeout).await?,
        ))
    }

    /// Read the Redis clock (one `TIME` round trip) and keep the reading.
    async fn read_clock(&self) -> Result<ClockSample> {
        let sent = Instant::now();
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.con.clone())
            .await?;
        let rtt = sent.elapsed();
        let sample = ClockSample {
            at: sent + rtt / 2,
            redis_ms: secs * 1000 + micros / 1000,
            rtt,
        };
        if let Ok(mut c) = self.clock.lock() {
            *c = Some(sample);
        }
        Ok(sample)
    }

    /// The deadline, on the Redis clock (Unix ms), of a call sent now: the moment this process
    /// stops waiting for its answer, less the uncertainty of the clock reading. A script given
    /// this deadline does nothing when it runs later, so a call abandoned on a timeout (a
    /// partition) can never take effect after the caller gave up on it. 0 (no deadline) until
    /// the Redis clock could be read once.
    pub async fn deadline_ms(&self) -> u64 {
        let cached = self.clock.lock().ok().and_then(|c| *c);
        let sample = match cached {
            Some(s) if s.at.elapsed() < CLOCK_REFRESH => Some(s),
            // Redis unreachable: an older reading still serves (clocks drift slowly).
            _ => self.read_clock().await.ok().or(cached),
        };
        let Some(s) = sample else { return 0 };
        let age = s.at.elapsed();
        // Half the round trip of the reading, plus 1 ms per second since it was taken (clock
        // rates may differ by up to 1000 ppm while NTP slews), plus scheduling slack.
        let margin = s.rtt / 2 + age / 1000 + Duration::from_millis(10);
        let now = s.redis_ms + age.as_millis() as u64;
        now + self.timeout.saturating_sub(margin).as_millis().max(1) as u64
    }

    /// The current dataset epoch, creating one if there is none. Workers compare it at every
    /// heartbeat: a different or missing epoch means Redis lost its data.
    pub async fn ensure_epoch(&self) -> Result<String> {
        let fresh = format!("{}-{}", crate::time::now_ms(), fastrand::u64(..));
        let mut con = self.con.clone();
        let _: Option<String> = redis::cmd("SET")
            .arg(self.keys.epoch())
            .arg(&fresh)
            .arg("NX")
            .query_async(&mut con)
            .await?;
        let epoch: Option<String> = redis::cmd("GET")
            .arg(self.keys.epoch())
            .query_async(&mut con)
            .await?;
        epoch.ok_or_else(|| Error::Protocol("the epoch key vanished right after it was set".into()))
    }

    /// The current dataset epoch, if any.
    pub async fn epoch(&self) -> Result<Option<String>> {
        Ok(redis::cmd("GET")
            .arg(self.keys.epoch())
            .query_async(&mut self.con.clone())
            .await?)
    }

    /// Record that `worker` found the dataset replaced (kept until an operator deletes it).
    pub async fn record_data_loss(
        &self,
        worker: &str,
        previous: &str,
        current: &str,
    ) -> Result<()> {
        let record = serde_json::json!({
            "detected_at": crate::time::rfc3339_ms(crate::time::now_ms()),
            "worker": worker,
            "previous_epoch": previous,
            "epoch": current,
        });
        let _: () = redis::cmd("SET")
            .arg(self.keys.data_loss())
            .arg(record.to_string())
            .query_async(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// The last recorded loss of the dataset, if any (JSON).
    pub async fn data_loss(&self) -> Result<Option<serde_json::Value>> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.keys.data_loss())
            .query_async(&mut self.con.clone())
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// The Redis clock, Unix milliseconds.
    pub async fn redis_time_ms(&self) -> Result<u64> {
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.con.clone())
            .await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// Make `queues` known to the inspector (idempotent).
    pub async fn register_queues(&self, queues: &[String]) -> Result<()> {
        let mut con = self.con.clone();
        let _: () = redis::cmd("SADD")
            .arg(self.keys.queues())
            .arg(queues)
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Announce a live worker; its record expires after `ttl` without renewal.
    pub async fn register_worker(
        &self,
        id: &str,
        fields: &[(&str, String)],
        ttl: Duration,
    ) -> Result<()> {
        let mut con = self.con.clone();
        let key = self.keys.worker(id);
        // Two keys in two slots: a pipeline each (a cluster refuses cross-slot pipelines).
        let mut pipe = redis::pipe();
        pipe.hset_multiple(&key, fields).ignore();
        pipe.pexpire(&key, ttl.as_millis() as i64).ignore();
        pipe.query_async::<()>(&mut con).await?;
        let _: () = redis::cmd("ZADD")
            .arg(self.keys.workers())
            .arg(crate::time::now_ms())
            .arg(id)
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Remove a worker's record (clean shutdown).
    pub async fn deregister_worker(&self, id: &str) -> Result<()> {
        let mut con = self.con.clone();
        let _: () = redis::cmd("DEL")
            .arg(self.keys.worker(id))
            .query_async(&mut con)
            .await?;
        let _: () = redis::cmd("ZREM")
            .arg(self.keys.workers())
            .arg(id)
            .query_async(&mut con)
            .await?;
        Ok(())
    }
}

/// Something a script found in the keyspace that no Celeriac script writes (see
/// `docs/job-states.md`, "Strays and orphans"). It is already counted and kept where operators
/// see it; the worker whose call found it logs it once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// The job id, shown as [`crate::keys::display_bytes`] does.
    pub id: String,
    /// What was wrong.
    pub what: AnomalyKind,
    /// The index the id was found in: `pending`, `scheduled`, `retry` or `active`.
    pub index: String,
    /// For [`AnomalyKind::DeadLettered`] the error stored; for [`AnomalyKind::WrongType`] the
    /// key's type; for [`AnomalyKind::WrongIndex`] the record's state.
    pub detail: String,
}

/// The kinds of [`Anomaly`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// An id with no usable record: made a dead record (`schema_error`).
    DeadLettered,
    /// A stray: the job key is not a hash (written with `SET`, say).
    WrongType,
    /// A stray: the record's state is not that of the index holding the id, and the record is
    /// in no index of its own state either.
    WrongIndex,
}

impl AnomalyKind {
    /// The name the scripts and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::DeadLettered => "dead_lettered",
            AnomalyKind::WrongType => "wrong_type",
            AnomalyKind::WrongIndex => "wrong_index",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<AnomalyKind> {
        [
            AnomalyKind::DeadLettered,
            AnomalyKind::WrongType,
            AnomalyKind::WrongIndex,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Decode a script's `{ id, what, index, detail, ... }`.
pub(crate) fn anomalies(v: &Value) -> Result<Vec<Anomaly>> {
    let items = match v {
        Value::Array(items) => items.as_slice(),
        Value::Nil => &[],
        other => {
            return Err(Error::Protocol(format!(
                "expected a list of anomalies, got {other:?}"
            )))
        }
    };
    items
        .chunks(4)
        .map(|c| match c {
            [id, what, index, detail] => Ok(Anomaly {
                id: match id {
                    Value::BulkString(b) => crate::keys::display_bytes(b),
                    other => string(other)?,
                },
                what: AnomalyKind::parse(&string(what)?)
                    .ok_or_else(|| Error::Protocol(format!("unknown anomaly {what:?}")))?,
                index: string(index)?,
                detail: string(detail)?,
            }),
            _ => Err(Error::Protocol("anomaly list of a wrong length".into())),
        })
        .collect()
}

pub(crate) fn string(v: &Value) -> Result<String> {
    match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(Error::Protocol(format!("expected a string, got {other:?}"))),
    }
}

pub(crate) fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Protocol("expected an integer".into())),
        other => Err(Error::Protocol(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}
