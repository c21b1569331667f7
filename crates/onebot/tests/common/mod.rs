//! Shared by the integration tests: the fake server set up with a group, clients, a Redis
//! connection with a key prefix of the test's own, and a bounded wait for a condition.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use celeriac_onebot::fake::FakeOneBot;
use celeriac_onebot::{HttpClient, OneBotConfig, PacedClient, Pacer, Role, Secret};
use redis::aio::ConnectionManager;
use std::future::Future;
use std::time::{Duration, Instant};

/// The bot account of every fake.
pub const BOT: i64 = 10000;
/// A group where the bot is an admin.
pub const GROUP: i64 = 100;
/// Plain members of [`GROUP`].
pub const MEMBERS: [i64; 3] = [1001, 1002, 1003];
/// An admin of [`GROUP`] (not manageable by the bot).
pub const ADMIN: i64 = 2001;
/// The owner of [`GROUP`].
pub const OWNER: i64 = 3001;

/// A fake with [`GROUP`], optionally requiring `token`.
pub async fn fake(token: Option<&str>) -> FakeOneBot {
    let mut members: Vec<(i64, Role)> = MEMBERS.iter().map(|&u| (u, Role::Member)).collect();
    members.push((ADMIN, Role::Admin));
    members.push((OWNER, Role::Owner));
    let mut builder = FakeOneBot::builder()
        .self_id(BOT)
        .group(GROUP, Role::Admin, &members);
    if let Some(token) = token {
        builder = builder.token(token);
    }
    builder.start().await.expect("the fake starts")
}

/// An HTTP client for `fake` with `token` and a 5 s timeout.
pub fn client(fake: &FakeOneBot, token: Option<&str>) -> HttpClient {
    client_with_timeout(fake, token, Duration::from_secs(5))
}

/// An HTTP client for `fake` with `token` and `timeout`.
pub fn client_with_timeout(
    fake: &FakeOneBot,
    token: Option<&str>,
    timeout: Duration,
) -> HttpClient {
    HttpClient::new(&fake.url(), token.map(Secret::new), timeout).expect("client")
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix() -> String {
    format!(
        "test-onebot-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    )
}

/// A new connection to the test Redis (`CELERIAC_TEST_REDIS_URL`, default 127.0.0.1:6379).
pub async fn redis() -> ConnectionManager {
    let url = std::env::var("CELERIAC_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    redis::Client::open(url)
        .expect("Redis URL")
        .get_connection_manager()
        .await
        .expect("a Redis at CELERIAC_TEST_REDIS_URL or 127.0.0.1:6379 (start one: redis-server)")
}

/// A paced client for `fake` on its own Redis connection, as another worker process would have.
pub async fn paced(
    fake: &FakeOneBot,
    prefix: &str,
    config: &OneBotConfig,
) -> PacedClient<HttpClient, ConnectionManager> {
    let pacer = Pacer::new(redis().await, prefix, config);
    PacedClient::new(client(fake, None), pacer, BOT)
}

/// Poll `condition` every 10 ms until it holds; panic with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
