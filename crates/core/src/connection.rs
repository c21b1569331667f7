//! One connection type for a single Redis node or a Redis Cluster. The broker detects which it
//! talks to (`INFO cluster`) and every command, pipeline and script goes through [`Conn`].
//! In a cluster every script and pipeline touches a single queue's hash slot.
//!
//! A single node is reached through [`Reconnecting`]: every call has a bounded wait, and a call
//! that times out or fails on the socket drops the connection, so the next call opens a fresh
//! one instead of queueing behind bytes stuck in a dead TCP stream (a partition, a Redis host
//! replaced, a NAT that forgot the flow). Sockets carry TCP keepalive, `TCP_USER_TIMEOUT` and a
//! zero linger, so the kernel gives up on a dead peer and a dropped socket discards what it
//! had not sent. Dropping a connection does not retract bytes Redis already received, nor bytes
//! a lingering socket still retransmits: the scripts that must never take effect late carry a
//! deadline on the Redis clock instead (see `Broker::deadline_ms` and ADR 0011).

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A connection to one node (reconnecting) or to a cluster.
#[derive(Clone)]
pub enum Conn {
    /// A single node: bounded calls, a fresh connection after a timeout or a socket error.
    Single(Reconnecting),
    /// A Redis Cluster (commands routed by key slot).
    Cluster(ClusterConnection),
}

impl Conn {
    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

/// TCP settings of every Celeriac connection: keepalive probes after 10 s idle (every 5 s, 3
/// tries), unacknowledged data abandoned after `user_timeout`, and a zero linger so a closed
/// socket sends a reset and discards unsent bytes rather than delivering them later.
pub fn tcp_settings(user_timeout: Duration) -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
        .set_user_timeout(user_timeout.max(Duration::from_secs(1)))
        .set_linger_time(Duration::ZERO)
}

/// A multiplexed connection to one Redis node that replaces itself when a call times out or
/// its socket fails. Clones share the connection; [`Reconnecting::with_timeout`] gives a handle
/// with another per-call bound on the same connection.
#[derive(Clone)]
pub struct Reconnecting {
    shared: Arc<Shared>,
    timeout: Duration,
}

struct Shared {
    client: redis::Client,
    /// The live connection and its generation (a failed call drops only the generation it used).
    slot: tokio::sync::Mutex<(u64, Option<MultiplexedConnection>)>,
}

impl Reconnecting {
    /// Connect now (so a wrong URL or a stopped Redis is reported at once); calls then wait at
    /// most `timeout`, connecting included.
    pub async fn connect(client: redis::Client, timeout: Duration) -> redis::RedisResult<Self> {
        let r = Reconnecting {
            shared: Arc::new(Shared {
                client,
                slot: tokio::sync::Mutex::new((0, None)),
            }),
            timeout,
        };
        r.current(timeout).await?;
        Ok(r)
    }

    /// A handle on the same connection whose calls wait at most `timeout`.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Reconnecting {
            shared: self.shared.clone(),
            timeout,
        }
    }

    /// The per-call bound.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The live connection, opened if there is none (within `budget`).
    async fn current(&self, budget: Duration) -> redis::RedisResult<(u64, MultiplexedConnection)> {
        let mut slot = self.shared.slot.lock().await;
        if let (generation, Some(con)) = &*slot {
            return Ok((*generation, con.clone()));
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(budget))
            .set_response_timeout(None);
        let con = self
            .shared
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        slot.0 += 1;
        slot.1 = Some(con.clone());
        Ok((slot.0, con))
    }

    /// Forget generation `generation` (if it is still the live one): the next call reconnects.
    async fn drop_generation(&self, generation: u64) {
        let mut slot = self.shared.slot.lock().await;
        if slot.0 == generation {
            slot.1 = None;
        }
    }

    async fn call<T, F, Fut>(&self, f: F) -> redis::RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let started = tokio::time::Instant::now();
        let used = AtomicU64::new(0);
        let attempt = async {
            let (generation, con) = self.current(self.timeout).await?;
            used.store(generation, Ordering::Relaxed);
            let r = f(con).await;
            if let Err(e) = &r {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.drop_generation(generation).await;
                }
            }
            r
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => {
                // The connection we waited on may be dead: the next call opens another.
                let generation = used.load(Ordering::Relaxed);
                if generation != 0 {
                    self.drop_generation(generation).await;
                }
                Err(timed_out(started.elapsed()))
            }
        }
    }
}

fn timed_out(after: Duration) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "no answer from Redis within {} ms (the connection was dropped; the next call opens a new one)",
            after.as_millis()
        ),
    ))
}

impl ConnectionLike for Reconnecting {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.call(|mut con| async move { con.req_packed_command(cmd).await })
                .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.call(
                |mut con| async move { con.req_packed_commands(pipeline, offset, count).await },
            )
            .await
        })
    }

    fn get_db(&self) -> i64 {
        self.shared
            .client
            .get_connection_info()
            .redis_settings()
            .db()
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
