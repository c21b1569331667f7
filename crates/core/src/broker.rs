//! The connection to Redis and the batch operations of the protocol. Every state change is one
//! script call per batch (see [`crate::scripts`]); the [`crate::inspector`] reads and repairs.

use crate::config::RetentionConfig;
use crate::connection::Conn;
use crate::connection::Reconnecting;
use crate::envelope::{DeadReason, Envelope};
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::scripts;
use redis::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most jobs sent in one enqueue script call (bounded so one call never blocks Redis long).
pub const ENQUEUE_CHUNK: usize = 1000;
/// Most envelope bytes sent in one enqueue script call (so a batch of large payloads never makes
/// one huge command that blocks Redis or overflows its query buffer).
pub const ENQUEUE_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Most envelope bytes returned by one fetch (the batch stops early past it).
pub const FETCH_BYTES: usize = 16 * 1024 * 1024;
/// Most enqueue chunks in flight at once on the multiplexed connection.
const ENQUEUE_PIPELINE: usize = 8;
/// How long a Redis call waits for its answer unless configured otherwise (`redis_timeout`).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Most leases examined by one [`Broker::disown`] call.
const DISOWN_LIMIT: usize = 10_000;

/// A job to create.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// The envelope, already validated.
    pub envelope: Envelope,
    /// `envelope` encoded (what is stored).
    pub body: String,
    /// Run no earlier than this long after enqueue (measured on the Redis clock).
    pub delay: Option<Duration>,
    /// Run no earlier than this Unix time in milliseconds.
    pub run_at_ms: Option<u64>,
    /// Lifetime of the envelope's idempotency key, if it has one.
    pub idempotency_ttl: Duration,
}

/// What enqueue did with one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id: the new job's, or the existing one's when `created` is false.
    pub id: String,
    /// False when the id or the idempotency key already named a job.
    pub created: bool,
}

/// A job leased to a worker.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// Queue it came from.
    pub queue: String,
    /// Job id.
    pub id: String,
    /// Fencing token of this lease.
    pub token: u64,
    /// Attempt number, starting at 1.
    pub attempt: u32,
    /// The stored envelope (empty when it is over the size cap).
    pub body: Vec<u8>,
    /// The stored envelope's length in bytes.
    pub len: usize,
    /// The job was on a worker that died: run it alone (it may be what kills workers).
    pub suspect: bool,
}

/// The outcome of one job, as recorded by the ack script.
#[derive(Clone, Debug, PartialEq)]
pub enum AckOp {
    /// Succeeded, with an optional JSON result.
    Ok(Option<String>),
    /// Failed; run again after `delay`.
    Retry {
        /// The error message.
        error: String,
        /// Backoff before the next attempt.
        delay: Duration,
    },
    /// Not run now; try again after the duration (not counted as an attempt).
    Snooze(Duration),
    /// Will not run again.
    Dead {
        /// The error message.
        error: String,
        /// Why.
        reason: DeadReason,
    },
    /// Hand the job back at once (worker shutting down; not counted as an attempt).
    Release,
    /// The lease passed unrenewed with the handler running (this worker was cut off from
    /// Redis) and the handler was stopped: hand the job back (not counted as an attempt).
    Expired,
}

/// One outcome to record.
#[derive(Clone, Debug)]
pub struct Ack {
    /// Job id.
    pub id: String,
    /// Fencing token the job was fetched with.
    pub token: u64,
    /// What happened.
    pub op: AckOp,
}

/// What [`Broker::cron_enqueue`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CronEnqueue {
    /// This call enqueued the tick.
    Enqueued,
    /// The tick (or a later one) was already enqueued.
    AlreadyDone,
    /// The tick is still in the future on the Redis clock.
    NotDue,
}

/// What one recovery sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Jobs put back at the front of their queue.
    pub requeued: u64,
    /// Jobs dead with reason `worker_lost`.
    pub buried: u64,
}

/// Why Redis did not record an outcome or renew a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The job is no longer leased under that token: cancelled by an operator, taken back by
    /// the recovery sweep, or deleted. The result is dropped.
    Gone,
    /// Taken back by the sweep while this worker was cut off from Redis. The result is dropped;
    /// the take-back no longer counts towards `max_deliveries` or the crash-suspect rule.
    CutOff,
    /// This very outcome was already recorded by an earlier try whose answer was lost.
    Already,
}

impl Refusal {
    fn parse(s: &str) -> Result<Refusal> {
        match s {
            "gone" => Ok(Refusal::Gone),
            "cut_off" => Ok(Refusal::CutOff),
            "already" => Ok(Refusal::Already),
            other => Err(Error::Protocol(format!("unknown refusal {other:?}"))),
        }
    }
}

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

    /// Create jobs: one script call per queue and chunk of [`ENQUEUE_CHUNK`], several chunks
    /// in flight at once. Results are in input order.
    pub async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let mut by_queue: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, job) in jobs.iter().enumerate() {
            by_queue
                .entry(job.envelope.queue.as_str())
                .or_default()
                .push(i);
        }
        let mut con = self.con.clone();
        let mut register = redis::pipe();
        for queue in by_queue.keys() {
            register.sadd(self.keys.queues(), *queue).ignore();
        }
        register.query_async::<()>(&mut con).await?;

        let chunks: Vec<(&str, &[usize])> = by_queue
            .iter()
            .flat_map(|(q, idx)| chunk_by_size(jobs, idx).into_iter().map(move |c| (*q, c)))
            .collect();
        let replies: Vec<(&[usize], Vec<Enqueued>)> = stream::iter(chunks)
            .map(|(queue, idx)| {
                let mut con = self.con.clone();
                async move {
                    let mut inv = scripts::ENQUEUE.prepare_invoke();
                    inv.key(self.keys.pending(queue))
                        .key(self.keys.scheduled(queue))
                        .key(self.keys.wake(queue))
                        .arg(self.keys.queue_base(queue));
                    for &i in idx {
                        let job = &jobs[i];
                        let env = &job.envelope;
                        inv.arg(&env.id)
                            .arg(&job.body)
                            .arg(job.run_at_ms.map(|v| v.to_string()).unwrap_or_default())
                            .arg(
                                job.delay
                                    .map(|d| d.as_millis().to_string())
                                    .unwrap_or_default(),
                            )
                            .arg(env.idempotency_key.as_deref().unwrap_or(""))
                            .arg(job.idempotency_ttl.as_millis().max(1) as u64);
                    }
                    let reply: Vec<Value> = inv.invoke_async(&mut con).await?;
                    let mut out = Vec::with_capacity(idx.len());
                    for pair in reply.chunks(2) {
                        out.push(Enqueued {
                            id: string(&pair[0])?,
                            created: int(pair.get(1).unwrap_or(&Value::Nil))? == 1,
                        });
                    }
                    Ok::<_, Error>((idx, out))
                }
            })
            .buffer_unordered(ENQUEUE_PIPELINE)
            .try_collect()
            .await?;
        let mut results = vec![None; jobs.len()];
        for (idx, out) in replies {
            for (&i, e) in idx.iter().zip(out) {
                results[i] = Some(e);
            }
        }
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| Error::Protocol("enqueue script returned too few ids".into())))
            .collect()
    }

    /// Lease up to `count` pending jobs of `queue` to `worker`.
    pub async fn fetch(
        &self,
        queue: &str,
        count: usize,
        lease: Duration,
        worker: &str,
        max_bytes: usize,
    ) -> Result<Vec<Fetched>> {
        let k = &self.keys;
        let reply: Vec<Value> = scripts::FETCH
            .key(k.pending(queue))
            .key(k.active(queue))
            .key(k.wake(queue))
            .key(k.dead(queue))
            .key(k.tokens(queue))
            .arg(k.queue_base(queue))
            .arg(count)
            .arg(lease.as_millis() as u64)
            .arg(worker)
            .arg(max_bytes)
            .arg(FETCH_BYTES)
            .arg(self.deadline_ms().await)
            .invoke_async(&mut self.con.clone())
            .await?;
        let mut out = Vec::with_capacity(reply.len() / 6);
        for job in reply.get(1..).unwrap_or_default().chunks(6) {
            let [id, token, attempt, body, len, suspect] = job else {
                return Err(Error::Protocol("fetch reply is not a multiple of 6".into()));
            };
            out.push(Fetched {
                queue: queue.to_string(),
                id: string(id)?,
                token: int(token)? as u64,
                attempt: int(attempt)?.max(0) as u32,
                body: bytes(body),
                len: int(len)?.max(0) as usize,
                suspect: int(suspect)? == 1,
            });
        }
        Ok(out)
    }

    /// Record outcomes of jobs of `queue`; returns the outcomes not recorded, and why.
    pub async fn ack(
        &self,
        queue: &str,
        acks: &[Ack],
        retention: &RetentionConfig,
    ) -> Result<Vec<(String, Refusal)>> {
        let k = &self.keys;
        let mut inv = scripts::ACK.prepare_invoke();
        inv.key(k.active(queue))
            .key(k.pending(queue))
            .key(k.retry(queue))
            .key(k.scheduled(queue))
            .key(k.succeeded(queue))
            .key(k.dead(queue))
            .key(k.wake(queue))
            .key(k.stats(queue))
            .arg(k.queue_base(queue))
            .arg(retention.succeeded_max)
            .arg(retention.dead_max)
            .arg(self.deadline_ms().await);
        for ack in acks {
            let (op, a, b) = match &ack.op {
                AckOp::Ok(result) => ("ok", result.clone().unwrap_or_default(), String::new()),
                AckOp::Retry { error, delay } => {
                    ("retry", error.clone(), delay.as_millis().to_string())
                }
                AckOp::Snooze(d) => ("snooze", String::new(), d.as_millis().to_string()),
                AckOp::Dead { error, reason } => {
                    ("dead", error.clone(), reason.as_str().to_string())
                }
                AckOp::Release => ("release", String::new(), String::new()),
                AckOp::Expired => ("expired", String::new(), String::new()),
            };
            inv.arg(&ack.id).arg(ack.token).arg(op).arg(a).arg(b);
        }
        refusals(inv.invoke_async(&mut self.con.clone()).await?)
    }

    /// Renew leases (and store the progress handlers reported); returns the leases no longer
    /// held under the given tokens, and why.
    pub async fn extend(
        &self,
        queue: &str,
        leases: &[Renewal],
        lease: Duration,
    ) -> Result<Vec<(String, Refusal)>> {
        let k = &self.keys;
        let mut inv = scripts::EXTEND.prepare_invoke();
        inv.key(k.active(queue))
            .key(k.stats(queue))
            .arg(k.queue_base(queue))
            .arg(lease.as_millis() as u64)
            .arg(self.deadline_ms().await);
        for r in leases {
            inv.arg(&r.id)
                .arg(r.token)
                .arg(r.progress.as_deref().unwrap_or(""));
        }
        refusals(inv.invoke_async(&mut self.con.clone()).await?)
    }

    /// Hand back the jobs of `queue` leased to `worker` under tokens it does not hold (a fetch
    /// whose answer never arrived); returns how many.
    pub async fn disown(&self, queue: &str, worker: &str, held: &[u64]) -> Result<u64> {
        let k = &self.keys;
        let mut inv = scripts::DISOWN.prepare_invoke();
        inv.key(k.active(queue))
            .key(k.pending(queue))
            .key(k.wake(queue))
            .arg(k.queue_base(queue))
            .arg(worker)
            .arg(self.deadline_ms().await)
            .arg(DISOWN_LIMIT);
        for t in held {
            inv.arg(*t);
        }
        Ok(inv.invoke_async(&mut self.con.clone()).await?)
    }

    /// Take back up to `limit` jobs whose lease expired more than `grace` ago, except those
    /// `worker` still holds (the fencing tokens in `held`).
    #[allow(clippy::too_many_arguments)] // reason: one argument per script input; a struct would only rename them
    pub async fn recover(
        &self,
        queue: &str,
        max_deliveries: u32,
        limit: usize,
        retention: &RetentionConfig,
        grace: Duration,
        worker: &str,
        held: &[u64],
    ) -> Result<Recovered> {
        let k = &self.keys;
        let mut inv = scripts::RECOVER.prepare_invoke();
        inv.key(k.active(queue))
            .key(k.pending(queue))
            .key(k.dead(queue))
            .key(k.wake(queue))
            .key(k.stats(queue))
            .arg(k.queue_base(queue))
            .arg(max_deliveries)
            .arg(limit)
            .arg(retention.dead_max)
            .arg(self.deadline_ms().await)
            .arg(grace.as_millis() as u64)
            .arg(worker);
        for t in held {
            inv.arg(*t);
        }
        let (requeued, buried): (u64, u64) = inv.invoke_async(&mut self.con.clone()).await?;
        Ok(Recovered { requeued, buried })
    }

    /// Make up to `limit` due delayed and retrying jobs pending; returns how many.
    pub async fn promote(&self, queue: &str, limit: usize) -> Result<u64> {
        let k = &self.keys;
        Ok(scripts::PROMOTE
            .key(k.scheduled(queue))
            .key(k.retry(queue))
            .key(k.pending(queue))
            .key(k.wake(queue))
            .key(k.dead(queue))
            .arg(k.queue_base(queue))
            .arg(limit)
            .invoke_async(&mut self.con.clone())
            .await?)
    }

    /// Apply retention to up to `limit` jobs per index; returns how many records were deleted.
    pub async fn janitor(
        &self,
        queue: &str,
        retention: &RetentionConfig,
        limit: usize,
    ) -> Result<u64> {
        let k = &self.keys;
        Ok(scripts::JANITOR
            .key(k.succeeded(queue))
            .key(k.dead(queue))
            .key(k.cancelled(queue))
            .arg(k.queue_base(queue))
            .arg(retention.succeeded_ttl.as_millis() as u64)
            .arg(retention.succeeded_max)
            .arg(retention.dead_ttl.as_millis() as u64)
            .arg(retention.dead_max)
            .arg(limit)
            .invoke_async(&mut self.con.clone())
            .await?)
    }

    /// Enqueue tick `tick_ms` of schedule `name` exactly once across all schedulers.
    pub async fn cron_enqueue(
        &self,
        name: &str,
        tick_ms: u64,
        job: &NewJob,
    ) -> Result<CronEnqueue> {
        let queue = job.envelope.queue.as_str();
        let k = &self.keys;
        let r: i64 = scripts::CRON_ENQUEUE
            .key(k.pending(queue))
            .key(k.wake(queue))
            .key(k.cron(queue, name))
            .key(k.cron_history(queue, name))
            .arg(k.queue_base(queue))
            .arg(tick_ms)
            .arg(&job.envelope.id)
            .arg(&job.body)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(match r {
            1 => CronEnqueue::Enqueued,
            0 => CronEnqueue::AlreadyDone,
            _ => CronEnqueue::NotDue,
        })
    }

    /// The last tick (Unix ms) a schedule enqueued, and its job id.
    pub async fn cron_last(&self, queue: &str, name: &str) -> Result<Option<(u64, String)>> {
        let (tick, id): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.cron(queue, name))
            .arg("last_tick")
            .arg("last_id")
            .query_async(&mut self.con.clone())
            .await?;
        Ok(tick.zip(id))
    }

    /// A schedule's most recent ticks, newest first: (tick Unix ms, job id).
    pub async fn cron_history(
        &self,
        queue: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<(u64, String)>> {
        let rows: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.cron_history(queue, name))
            .arg(0)
            .arg(limit.max(1) as isize - 1)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let (t, id) = r.split_once(' ')?;
                Some((t.parse().ok()?, id.to_string()))
            })
            .collect())
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

    /// Take the lock `name` for `owner` for `ttl` unless someone else holds it; true if taken
    /// (or already held by `owner`, whose lease is then renewed).
    pub async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let held: i64 = scripts::LOCK
            .key(self.keys.lock(name))
            .arg("acquire")
            .arg(owner)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(held == 1)
    }

    /// Renew `owner`'s hold on the lock `name`; false if it is no longer theirs.
    pub async fn renew_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let held: i64 = scripts::LOCK
            .key(self.keys.lock(name))
            .arg("renew")
            .arg(owner)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(held == 1)
    }

    /// Release `owner`'s hold on the lock `name` (nothing if someone else holds it).
    pub async fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        let _: i64 = scripts::LOCK
            .key(self.keys.lock(name))
            .arg("release")
            .arg(owner)
            .arg(0)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// The owner of the lock `name`, if held.
    pub async fn lock_owner(&self, name: &str) -> Result<Option<String>> {
        Ok(redis::cmd("GET")
            .arg(self.keys.lock(name))
            .query_async(&mut self.con.clone())
            .await?)
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

/// Split `idx` into runs of at most [`ENQUEUE_CHUNK`] jobs and [`ENQUEUE_CHUNK_BYTES`] bytes
/// (a single larger job goes alone).
fn chunk_by_size<'a>(jobs: &[NewJob], idx: &'a [usize]) -> Vec<&'a [usize]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (n, &i) in idx.iter().enumerate() {
        let size = jobs[i].body.len();
        if n > start && (n - start >= ENQUEUE_CHUNK || bytes + size > ENQUEUE_CHUNK_BYTES) {
            out.push(&idx[start..n]);
            start = n;
            bytes = 0;
        }
        bytes += size;
    }
    if start < idx.len() {
        out.push(&idx[start..]);
    }
    out
}

/// Decode `{ id, why, id, why, ... }`.
fn refusals(reply: Vec<String>) -> Result<Vec<(String, Refusal)>> {
    reply
        .chunks(2)
        .map(|pair| match pair {
            [id, why] => Ok((id.clone(), Refusal::parse(why)?)),
            _ => Err(Error::Protocol("refusal list of odd length".into())),
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

fn bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b.clone(),
        Value::SimpleString(s) => s.clone().into_bytes(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(bytes: usize) -> NewJob {
        let envelope = Envelope {
            v: 1,
            id: "x".into(),
            kind: "noop".into(),
            queue: "q".into(),
            payload: serde_json::Value::Null,
            max_attempts: None,
            timeout_ms: None,
            created_at: 0,
            run_at: None,
            idempotency_key: None,
        };
        NewJob {
            envelope,
            body: "x".repeat(bytes),
            delay: None,
            run_at_ms: None,
            idempotency_ttl: Duration::from_secs(1),
        }
    }

    #[test]
    fn chunks_are_bounded_by_count_and_bytes() {
        let small: Vec<NewJob> = (0..2500).map(|_| job(10)).collect();
        let idx: Vec<usize> = (0..small.len()).collect();
        let sizes: Vec<usize> = chunk_by_size(&small, &idx)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [1000, 1000, 500]);

        let big: Vec<NewJob> = (0..5).map(|_| job(3 * 1024 * 1024)).collect();
        let idx: Vec<usize> = (0..big.len()).collect();
        let sizes: Vec<usize> = chunk_by_size(&big, &idx).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [2, 2, 1], "at most 8 MiB per call");

        let huge = vec![job(20 * 1024 * 1024)];
        assert_eq!(
            chunk_by_size(&huge, &[0]).len(),
            1,
            "one oversized job still goes alone"
        );
    }
}

/// One lease to renew, with the progress its handler reported since the last renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// Job id.
    pub id: String,
    /// Fencing token of the lease.
    pub token: u64,
    /// Progress as JSON text, stored on the job record if the lease still holds.
    pub progress: Option<String>,
}
