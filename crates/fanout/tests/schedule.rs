//! A failing delivery run by a real worker is retried on the schedule its kind is configured
//! with (`[kinds."fanout.deliver"] retry_schedule`), and fails after the schedule's last
//! attempt: the delivery `failed`, its job dead, the broadcast completed.

mod common;

use celeriac_core::config::Config;
use celeriac_fanout::DeliveryState;
use celeriac_producer::NewJob;
use celeriac_testkit::{wait_until_async, Response, TestHttp};
use celeriac_worker::config::{KindConfig, KindsConfig};
use celeriac_worker::{Probe, Settings, Shutdown};
use common::*;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_delivery_is_retried_on_the_configured_schedule_then_fails() {
    let w = World::new("sqlite").await;
    let sink = TestHttp::start().await;
    sink.route("/down", |_| Response::new(500).body("down"));
    w.subscribe_webhook("news", &sink.url("/down"), b"0123456789abcdef")
        .await;

    // Three attempts, 300 ms then 900 ms apart, no jitter: far from the default schedule
    // (5 s after the first failure, eight attempts) and from the backoff (25 attempts).
    let schedule = [0, 300, 900].map(Duration::from_millis);
    let mut kinds = KindsConfig::default();
    kinds.0.insert(
        celeriac_fanout::DELIVER_KIND.into(),
        KindConfig::schedule(&schedule, 0.0),
    );
    let settings = Settings {
        core: Config {
            redis_url: w.keyspace.url().into(),
            prefix: w.keyspace.prefix().into(),
            ..Config::default()
        },
        kinds,
        ..Settings::default()
    };
    let shutdown = Shutdown::new();
    let worker = tokio::spawn(celeriac_worker::run_with_probe(
        settings,
        w.registry.clone(),
        shutdown.clone(),
        Probe::new(),
    ));
    w.producer
        .enqueue(
            NewJob::new(
                celeriac_fanout::BROADCAST_KIND,
                json!({"topic": "news", "message": "hello"}),
            )
            .id("b1"),
        )
        .await
        .unwrap();

    let store = w.store().await;
    wait_until_async(T, "the broadcast to complete", || async {
        store
            .broadcast("b1")
            .await
            .unwrap()
            .is_some_and(|b| b.completed_at.is_some())
    })
    .await;
    shutdown.drain.cancel();
    worker.await.unwrap().unwrap();

    let starts = sink.request_starts();
    assert_eq!(starts.len(), 3, "one request per entry of the schedule");
    for (i, gap) in starts.windows(2).map(|p| p[1] - p[0]).enumerate() {
        let planned = schedule[i + 1];
        // Never sooner than planned; later by at most the promoter's period and a loaded
        // machine's slack.
        assert!(
            gap >= planned && gap < planned + Duration::from_millis(700),
            "attempt {} came {gap:?} after the previous one, planned {planned:?}",
            i + 2
        );
    }
    let results = store.results("b1").await.unwrap();
    assert_eq!((results.failed, results.pending), (1, 0));
    let d = &results.failed_recipients[0];
    assert_eq!((d.attempts, d.last_status), (3, Some(500)));
    let job = w.job_fields(&format!("b1:{}", d.recipient)).await;
    assert_eq!(
        job.get("state").map(String::as_str),
        Some("dead"),
        "{job:?}"
    );
    assert_eq!(
        store
            .delivery("b1", &d.recipient)
            .await
            .unwrap()
            .unwrap()
            .state,
        DeliveryState::Failed
    );
}
