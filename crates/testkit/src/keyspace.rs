//! A key prefix of one test's own on a shared Redis, deleted when the test ends, and the raw
//! synchronous connection (single node or cluster) tests use to look at or write keys.
//!
//! Tests share the Redis at 127.0.0.1:6379 (or `CELERIAC_TEST_REDIS_URL`) and never flush it:
//! each works under its own [`Keyspace`], so they run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static PREFIXES: AtomicU32 = AtomicU32::new(0);

/// The shared test Redis: `CELERIAC_TEST_REDIS_URL`, else `redis://127.0.0.1:6379`.
pub fn test_redis_url() -> String {
    std::env::var("CELERIAC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A prefix no other test uses: `celeriac-test-PID-COUNTER-RANDOM`.
pub fn unique_prefix() -> String {
    let n = PREFIXES.fetch_add(1, Ordering::SeqCst);
    format!(
        "celeriac-test-{}-{n}-{:04x}",
        std::process::id(),
        fastrand::u16(..)
    )
}

/// One test's keys: everything under `PREFIX:` on the Redis at `url`, deleted when dropped.
#[derive(Debug)]
pub struct Keyspace {
    prefix: String,
    url: String,
}

impl Keyspace {
    /// A fresh [`unique_prefix`] on the Redis at `url` (e.g. [`test_redis_url`]).
    pub fn new(url: &str) -> Keyspace {
        Self::with_prefix(url, &unique_prefix())
    }

    /// A given prefix, when something must know it before the keyspace exists (an ACL user
    /// limited to it); it should still come from [`unique_prefix`].
    pub fn with_prefix(url: &str, prefix: &str) -> Keyspace {
        Keyspace {
            prefix: prefix.into(),
            url: url.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `PREFIX:rest`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// A raw connection to this keyspace's Redis (panics if it does not answer).
    pub fn connection(&self) -> RawConnection {
        raw_connection(&self.url)
            .unwrap_or_else(|e| panic!("connect to Redis at {} (is it running?): {e}", self.url))
    }

    /// Every key under the prefix now (`KEYS PREFIX:*`, on every master of a cluster).
    pub fn keys(&self) -> redis::RedisResult<Vec<String>> {
        self.keys_on(&mut raw_connection(&self.url)?)
    }

    fn keys_on(&self, con: &mut RawConnection) -> redis::RedisResult<Vec<String>> {
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(con)
    }

    /// Delete every key under the prefix, one `DEL` per key (in a cluster they live in
    /// different slots); what [`Drop`] does.
    pub fn clear(&self) -> redis::RedisResult<()> {
        let mut con = raw_connection(&self.url)?;
        for key in self.keys_on(&mut con)? {
            redis::cmd("DEL").arg(key).query::<()>(&mut con)?;
        }
        Ok(())
    }
}

impl Drop for Keyspace {
    fn drop(&mut self) {
        // Best effort: the server may be gone (a private one dropped first) or unreachable
        // without options the test gave its clients (a TLS CA).
        let _ = self.clear();
    }
}

/// Whether the Redis at `url` is a cluster node (`cluster_enabled:1`).
pub fn is_cluster(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .and_then(|mut c| redis::cmd("INFO").arg("cluster").query::<String>(&mut c))
        .map(|info| info.lines().any(|l| l.trim() == "cluster_enabled:1"))
        .unwrap_or(false)
}

/// A raw synchronous connection to a single node or a cluster (for writing raw keys as a
/// foreign producer would, or checking what the code under test wrote).
pub enum RawConnection {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

/// Connect to `url`: a cluster connection when it is a cluster node.
pub fn raw_connection(url: &str) -> redis::RedisResult<RawConnection> {
    if is_cluster(url) {
        let client = redis::cluster::ClusterClient::new(vec![url])?;
        return Ok(RawConnection::Cluster(Box::new(client.get_connection()?)));
    }
    Ok(RawConnection::Single(
        redis::Client::open(url)?.get_connection()?,
    ))
}

impl redis::ConnectionLike for RawConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        match self {
            RawConnection::Single(c) => c.req_packed_command(cmd),
            RawConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        match self {
            RawConnection::Single(c) => c.req_packed_commands(cmd, offset, count),
            RawConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        match self {
            RawConnection::Single(c) => c.req_command(cmd),
            RawConnection::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RawConnection::Single(c) => c.get_db(),
            RawConnection::Cluster(c) => c.get_db(),
        }
    }

    fn supports_pipelining(&self) -> bool {
        match self {
            RawConnection::Single(c) => c.supports_pipelining(),
            RawConnection::Cluster(c) => c.supports_pipelining(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            RawConnection::Single(c) => c.check_connection(),
            RawConnection::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            RawConnection::Single(c) => c.is_open(),
            RawConnection::Cluster(c) => c.is_open(),
        }
    }
}
