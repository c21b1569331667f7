//! Test infrastructure shared by Celeriac's crates: real services, one of each per test, so
//! tests run in parallel and never touch each other's data. Dev-only (`[dev-dependencies]`),
//! and it depends on no `celeriac-*` crate, so any of them can use it.
//!
//! - [`redis_server`]: [`RedisServer`], a private `redis-server` on a free port — plain, TLS
//!   (private CA), ACL user, AOF, extra arguments — with `kill9` and `restart(wipe)`.
//! - [`keyspace`]: [`Keyspace`], a unique key prefix on the shared test Redis whose keys are
//!   deleted on drop; [`RawConnection`] (single node or cluster), [`is_cluster`].
//! - [`db`]: [`TestDb`], a SQLite file or a fresh PostgreSQL database per test.
//! - [`http`]: [`TestHttp`], a loopback HTTP/1.1 server recording every [`Request`], answering
//!   with per-test handlers (one closure → [`Response`]) or the link-checker pages.
//! - [`wait`]: [`wait_until`], [`wait_until_async`], [`free_port`].
//! - [`tls`]: certificates from `openssl` ([`tls::Certs`]).
//! - [`net`]: [`Net`], a network namespace with a veth pair to cut and heal (root only).
//!
//! Services: Redis at 127.0.0.1:6379 (`CELERIAC_TEST_REDIS_URL`), PostgreSQL at
//! 127.0.0.1:5432 (`CELERIAC_TEST_POSTGRES_URL`), and the `redis-server`, `openssl`, `psql`
//! and `ip` commands (`make test` installs what is missing).

pub mod db;
pub mod http;
pub mod keyspace;
pub mod net;
pub mod redis_server;
pub mod tls;
pub mod wait;

pub use db::TestDb;
pub use http::{Request, Response, TestHttp, BACKLINK};
pub use keyspace::{is_cluster, test_redis_url, unique_prefix, Keyspace, RawConnection};
pub use net::Net;
pub use redis_server::{RedisServer, RedisServerBuilder};
pub use wait::{free_port, wait_until, wait_until_async};
