//! A call that reaches Redis after its caller stopped waiting does nothing (ADR 0011): Redis
//! is made to stall (`DEBUG SLEEP`, on a private server) with a fetch already sent; the client
//! gives up at its timeout and drops the connection, but the request's bytes are already in
//! Redis's socket, as after a healed partition; when Redis wakes it runs the fetch, finds it
//! past its deadline on the Redis clock and refuses it — no job is leased to a worker that
//! will never run it.

use celeriac_core::broker::NewJob;
use celeriac_core::{Broker, Envelope};
use celeriac_testkit::RedisServer;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(300);

fn job(queue: &str) -> NewJob {
    let envelope = Envelope {
        v: 1,
        id: "job-1".into(),
        kind: "noop".into(),
        queue: queue.into(),
        payload: serde_json::json!({}),
        max_attempts: None,
        timeout_ms: None,
        created_at: 0,
        run_at: None,
        idempotency_key: None,
    };
    NewJob {
        body: envelope.encode(),
        envelope,
        delay: None,
        run_at_ms: None,
        idempotency_ttl: Duration::from_secs(1),
    }
}

/// Stall Redis for 3 s and send a fetch of `queue` during the stall. `false` when the fetch
/// was answered in time after all (the stall was over before it was sent: a very loaded
/// machine), so the try says nothing.
async fn fetch_during_a_stall(redis: &RedisServer, broker: &Broker, queue: &str) -> bool {
    broker.enqueue(&[job(queue)]).await.unwrap();
    // A fetch from another queue loads the script into Redis (a stalled first call would only
    // get NOSCRIPT) and reads the Redis clock, so the fetch below carries a deadline of about
    // TIMEOUT and is the one call sent during the stall.
    broker
        .fetch("warm-up", 1, Duration::from_secs(30), "w1", 1 << 20)
        .await
        .unwrap();
    let mut probe = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let url = redis.url();
    let stall = tokio::task::spawn_blocking(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("3")
            .query(&mut con)
            .unwrap();
    });
    // The stall has begun when a PING goes unanswered.
    let began = Instant::now();
    loop {
        let ping = tokio::time::timeout(
            Duration::from_millis(100),
            redis::cmd("PING").query_async::<String>(&mut probe),
        )
        .await;
        if ping.is_err() {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "Redis never stalled"
        );
    }
    let fetched = broker
        .fetch(queue, 10, Duration::from_secs(30), "w1", 1 << 20)
        .await;
    stall.await.unwrap();
    fetched.is_err()
}

#[tokio::test]
async fn a_fetch_that_arrives_after_its_deadline_leases_nothing() {
    let redis = RedisServer::builder()
        .args(["--enable-debug-command", "yes"])
        .start();
    let broker = Broker::open(&redis.url(), "late", None, TIMEOUT)
        .await
        .unwrap();
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys = broker.keys().clone();
    for n in 0..3 {
        let queue = format!("q{n}");
        if !fetch_during_a_stall(&redis, &broker, &queue).await {
            continue;
        }
        // Redis ran the stale fetch after the stall and refused it: the job is still pending,
        // not leased to a worker that stopped waiting.
        let state: String = redis::cmd("HGET")
            .arg(keys.job(&queue, "job-1"))
            .arg("state")
            .query(&mut con)
            .unwrap();
        assert_eq!(state, "pending");
        let active: usize = redis::cmd("ZCARD")
            .arg(keys.active(&queue))
            .query(&mut con)
            .unwrap();
        assert_eq!(active, 0, "no lease was taken");
        // And the next fetch, in time, leases it.
        let again = broker
            .fetch(&queue, 10, Duration::from_secs(30), "w1", 1 << 20)
            .await
            .unwrap();
        assert_eq!(again.jobs.len(), 1);
        return;
    }
    panic!("three stalls ended before the fetch was sent: the machine is too loaded to tell");
}
