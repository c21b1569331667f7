//! Webhook deliveries against local sink servers on 127.0.0.1: success (signature checked by
//! `openssl`), 500 then 200, 410, 429 with `Retry-After`, a slow endpoint, an address the
//! guard refuses, and the last attempt failing the delivery.

mod common;

use celeriac_fanout::{DeliveryState, FanoutConfig, SubscriberStatus};
use celeriac_testkit::{Response, TestHttp};
use celeriac_worker::Outcome;
use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const KEY: &[u8] = b"0123456789abcdef01234567";

on_both!(
    a_delivery_is_signed_and_keeps_the_start_of_the_response,
    a_500_then_200_is_retried_on_the_schedule_with_the_same_webhook_id,
    a_410_disables_the_subscriber_and_its_next_delivery_is_skipped,
);

/// A topic `t` with one webhook subscriber at `path` of `sink`, broadcast as `b1`; the
/// delivery's key.
async fn one_subscriber(w: &World, sink: &TestHttp, path: &str) -> String {
    let sid = w.subscribe_webhook("t", &sink.url(path), KEY).await;
    let out = w
        .broadcast("b1", json!({"topic": "t", "message": "hello"}))
        .await;
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    format!("s{sid}")
}

async fn a_delivery_is_signed_and_keeps_the_start_of_the_response(db: &str) {
    let w = World::new(db).await;
    let sink = TestHttp::start().await;
    sink.route("/ok", |_| Response::ok().body(vec![b'x'; 5000]));
    let key = one_subscriber(&w, &sink, "/ok").await;
    let out = w.deliver("b1", &key, 1).await;
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");

    let req = &sink.requests_to("/ok")[0];
    let id = req.header("webhook-id").unwrap();
    let ts = req.header("webhook-timestamp").unwrap();
    assert_eq!(id, format!("b1:{key}"));
    assert_eq!(
        req.header("webhook-signature").unwrap(),
        expected_signature(KEY, id, ts, &req.body),
        "the signature verifies with an independent HMAC"
    );
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["type"], "fanout.message");
    assert_eq!(body["data"]["message"], "hello");
    assert_eq!(body["data"]["topic"], "t");

    let d = w.store().await.delivery("b1", &key).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempts, d.last_status),
        (DeliveryState::Delivered, 1, Some(200))
    );
    assert_eq!(d.response.unwrap().len(), 1024, "the first 1 KB is kept");
    // A redelivery of the job (after a crash) does not send again.
    let again = w.deliver("b1", &key, 2).await;
    assert!(matches!(again, Outcome::Done(_)), "{again:?}");
    assert_eq!(sink.hits("/ok"), 1);
}

async fn a_500_then_200_is_retried_on_the_schedule_with_the_same_webhook_id(db: &str) {
    let w = World::new(db).await;
    let sink = TestHttp::start().await;
    let n = Arc::new(AtomicU32::new(0));
    let seen = n.clone();
    sink.route("/flaky", move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Response::new(500).body("down")
        } else {
            Response::ok()
        }
    });
    let key = one_subscriber(&w, &sink, "/flaky").await;
    let sid: i64 = key[1..].parse().unwrap();

    let out = w.deliver("b1", &key, 1).await;
    let delay = deliver_policy().delay_after(&out, 1);
    match (out, delay) {
        (Outcome::Retry(error), Some(delay)) => {
            assert!(error.contains("500"), "{error}");
            // The schedule's second entry, 5 s, ±20 %.
            assert!(
                delay >= Duration::from_secs(4) && delay <= Duration::from_secs(6),
                "{delay:?}"
            );
        }
        other => panic!("expected a scheduled retry, got {other:?}"),
    }
    let store = w.store().await;
    let d = store.delivery("b1", &key).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempts, d.last_status),
        (DeliveryState::Pending, 1, Some(500))
    );
    assert_eq!(d.response.as_deref(), Some("down"));
    let s = store.subscriber(sid).await.unwrap().unwrap();
    assert_eq!(s.consecutive_failures, 1);

    assert!(matches!(w.deliver("b1", &key, 2).await, Outcome::Done(_)));
    let ids: Vec<String> = sink
        .requests_to("/flaky")
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "webhook-id is stable across retries");
    let d = store.delivery("b1", &key).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 2));
    assert_eq!(
        store
            .subscriber(sid)
            .await
            .unwrap()
            .unwrap()
            .consecutive_failures,
        0
    );
}

async fn a_410_disables_the_subscriber_and_its_next_delivery_is_skipped(db: &str) {
    let w = World::new(db).await;
    let sink = TestHttp::start().await;
    sink.route("/gone", |_| Response::new(410));
    let key = one_subscriber(&w, &sink, "/gone").await;
    let sid: i64 = key[1..].parse().unwrap();
    // A second broadcast is created before the first delivery runs.
    assert!(matches!(
        w.broadcast("b2", json!({"topic": "t", "message": "second"}))
            .await,
        Outcome::Done(_)
    ));
    let out = w.deliver("b1", &key, 1).await;
    assert!(
        matches!(&out, Outcome::Discard(e) if e.contains("410")),
        "{out:?}"
    );
    let store = w.store().await;
    let s = store.subscriber(sid).await.unwrap().unwrap();
    assert_eq!(s.status, SubscriberStatus::Disabled);
    assert!(s.disabled_at.is_some() && s.disabled_reason.unwrap().contains("410"));
    let r = store.results("b1").await.unwrap();
    assert_eq!((r.failed, r.failed_recipients.len()), (1, 1));
    assert!(r.failed_recipients[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("410"));

    // The subscriber was disabled while b2 ran: its delivery ends skipped, unsent.
    assert!(matches!(w.deliver("b2", &key, 1).await, Outcome::Done(_)));
    let r2 = store.results("b2").await.unwrap();
    assert_eq!((r2.skipped, r2.delivered, r2.failed), (1, 0, 0));
    assert_eq!(sink.hits("/gone"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_honoured_and_throttles_the_host() {
    let w = World::new("sqlite").await;
    let sink = TestHttp::start().await;
    sink.route("/busy", |_| Response::new(429).header("retry-after", "120"));
    sink.route("/other", |_| Response::ok());
    let key = one_subscriber(&w, &sink, "/busy").await;
    match w.deliver("b1", &key, 1).await {
        out @ Outcome::RetryAtLeast(..) => {
            let delay = deliver_policy().delay_after(&out, 1).unwrap();
            assert!(delay >= Duration::from_secs(120), "{delay:?}")
        }
        other => panic!("{other:?}"),
    }
    // Another subscriber on the same host waits without spending an attempt.
    let other = w.subscribe_webhook("t2", &sink.url("/other"), KEY).await;
    w.broadcast("b3", json!({"topic": "t2", "message": "x"}))
        .await;
    match w.deliver("b3", &format!("s{other}"), 1).await {
        Outcome::Snooze(wait) => assert!(wait > Duration::from_secs(60), "{wait:?}"),
        other => panic!("the host is throttled: {other:?}"),
    }
    assert_eq!(sink.hits("/other"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_times_out_and_is_retried() {
    let w = World::with(
        "sqlite",
        FanoutConfig {
            timeout: Duration::from_millis(300),
            ..config()
        },
    )
    .await;
    let sink = TestHttp::start().await;
    let never = Arc::new(tokio::sync::Notify::new());
    let hold = never.clone();
    sink.route_async("/slow", move |_| {
        let hold = hold.clone();
        async move {
            hold.notified().await;
            Response::ok()
        }
    });
    let key = one_subscriber(&w, &sink, "/slow").await;
    match w.deliver("b1", &key, 1).await {
        Outcome::Retry(error) => assert!(error.to_lowercase().contains("time"), "{error}"),
        other => panic!("{other:?}"),
    }
    let d = w.store().await.delivery("b1", &key).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 1));
    never.notify_waiters();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_is_refused_by_the_guard() {
    let w = World::with(
        "sqlite",
        FanoutConfig {
            allow_private_networks: false,
            ..config()
        },
    )
    .await;
    let sink = TestHttp::start().await;
    sink.route("/internal", |_| Response::ok());
    let key = one_subscriber(&w, &sink, "/internal").await;
    let out = w.deliver("b1", &key, 1).await;
    assert!(
        matches!(&out, Outcome::Discard(e) if e.contains("refused") && e.contains("[fanout]")),
        "{out:?}"
    );
    assert_eq!(sink.hits("/internal"), 0, "nothing was sent");
    let d = w.store().await.delivery("b1", &key).await.unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_fails_and_the_last_attempt_fails_the_delivery() {
    let w = World::new("sqlite").await;
    let sink = TestHttp::start().await;
    sink.route("/moved", |_| Response::new(301).header("location", "/ok"));
    sink.route("/ok", |_| Response::ok());
    let key = one_subscriber(&w, &sink, "/moved").await;
    let last = common::ATTEMPTS;
    let out = w.deliver("b1", &key, last).await;
    assert!(
        matches!(&out, Outcome::Retry(e) if e.contains("301")),
        "{out:?}"
    );
    assert_eq!(sink.hits("/ok"), 0, "the redirect is not followed");
    let r = w.store().await.results("b1").await.unwrap();
    assert_eq!(
        (r.failed, r.pending),
        (1, 0),
        "the last attempt ends it failed"
    );
}
