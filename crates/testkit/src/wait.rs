//! Waiting for a condition with a deadline, and a free port.
//!
//! These poll: they are for state outside the test's reach (another process, Redis, a file).
//! When the test owns the event, await it instead (a channel, `Notify`, `Barrier`,
//! [`crate::TestHttp::wait_requests`]).

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`wait_until`] and [`wait_until_async`] look again.
pub const POLL: Duration = Duration::from_millis(20);

/// Poll `cond` every [`POLL`] until it holds; panic naming `what` after `timeout`.
///
/// ```
/// use std::time::Duration;
/// let mut calls = 0;
/// celeriac_testkit::wait_until(Duration::from_secs(5), "the third call", || {
///     calls += 1;
///     calls == 3
/// });
/// assert_eq!(calls, 3);
/// ```
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for async tests: `cond` is awaited, the pause is `tokio::time::sleep` and the
/// deadline is on Tokio's clock, so a test under `tokio::time::pause()` times out at once.
pub async fn wait_until_async<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A loopback TCP port nothing listens on right now (another process may take it before the
/// caller binds it: [`crate::RedisServer`] retries on another port when that happens).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
