//! Broadcasts: one delivery per distinct recipient enqueued as a batch, nothing new on a
//! repeat, an empty topic completing at once, OneBot recipients, a subscriber unsubscribed
//! mid-broadcast skipped, and the completion job.

mod common;

use celeriac_fanout::{Channel, DeliveryState, Recipient};
use celeriac_onebot::fake::Target;
use celeriac_testkit::{Response, TestHttp};
use celeriac_worker::Outcome;
use common::*;
use serde_json::json;

on_both!(
    a_topic_broadcast_enqueues_one_delivery_per_subscriber_and_nothing_new_on_a_repeat,
    an_empty_topic_completes_at_once_with_total_zero,
    listed_recipients_are_deduplicated_and_onebot_ones_get_messages,
);

fn done(o: &Outcome) -> serde_json::Value {
    match o {
        Outcome::Done(Some(v)) => v.clone(),
        other => panic!("expected Done, got {other:?}"),
    }
}

async fn a_topic_broadcast_enqueues_one_delivery_per_subscriber_and_nothing_new_on_a_repeat(
    db: &str,
) {
    let w = World::new(db).await;
    let sink = TestHttp::start().await;
    sink.route("/*", |_| Response::ok());
    let a = w
        .subscribe_webhook("news", &sink.url("/a"), b"0123456789abcdef")
        .await;
    // Subscribing the same endpoint again is the same subscriber.
    assert_eq!(
        w.subscribe_webhook("news", &sink.url("/a"), b"0123456789abcdef")
            .await,
        a
    );
    let b = w
        .subscribe_webhook("news", &sink.url("/b"), b"0123456789abcdef")
        .await;
    let gone = w
        .subscribe_webhook("news", &sink.url("/c"), b"0123456789abcdef")
        .await;
    let store = w.store().await;
    assert!(store
        .unsubscribe("news", Channel::Webhook, &sink.url("/c"))
        .await
        .unwrap());

    let first = done(
        &w.broadcast(
            "job-1",
            json!({"topic": "news", "message": "m", "broadcast_id": "bc"}),
        )
        .await,
    );
    assert_eq!(
        (first["total"].as_u64(), first["enqueued"].as_u64()),
        (Some(2), Some(2)),
        "{first}"
    );
    for key in [format!("s{a}"), format!("s{b}")] {
        let job = w.job_fields(&format!("bc:{key}")).await;
        assert_eq!(
            job.get("batch").map(String::as_str),
            Some("bc"),
            "{key}: {job:?}"
        );
    }
    assert!(
        w.job_fields(&format!("bc:s{gone}")).await.is_empty(),
        "unsubscribed: no delivery"
    );

    // The same job again, and another job with the same broadcast_id: nothing new.
    let again = done(
        &w.broadcast(
            "job-1",
            json!({"topic": "news", "message": "m", "broadcast_id": "bc"}),
        )
        .await,
    );
    assert_eq!(again["enqueued"], 0, "{again}");
    w.subscribe_webhook("news", &sink.url("/late"), b"0123456789abcdef")
        .await;
    let other = done(
        &w.broadcast(
            "job-2",
            json!({"topic": "news", "message": "m2", "broadcast_id": "bc"}),
        )
        .await,
    );
    assert_eq!(
        (other["total"].as_u64(), other["enqueued"].as_u64()),
        (Some(2), Some(0)),
        "{other}"
    );
    let counts = w
        .producer
        .batch("bc", "default")
        .counts()
        .await
        .unwrap()
        .unwrap();
    assert_eq!((counts.total, counts.pending), (2, 2), "{counts:?}");
    let stored = store.broadcast("bc").await.unwrap().unwrap();
    assert_eq!(
        (stored.message.as_str(), stored.total),
        ("m", 2),
        "stored once, as first sent"
    );
}

async fn an_empty_topic_completes_at_once_with_total_zero(db: &str) {
    let w = World::new(db).await;
    let store = w.store().await;
    let r = Recipient {
        channel: Channel::OnebotUser,
        target: "42".into(),
        secret: None,
    };
    store.subscribe("quiet", &r).await.unwrap();
    store
        .unsubscribe("quiet", Channel::OnebotUser, "42")
        .await
        .unwrap();
    let out = done(
        &w.broadcast("e1", json!({"topic": "quiet", "message": "anyone?"}))
            .await,
    );
    assert_eq!(
        (out["total"].as_u64(), out["completed"].as_bool()),
        (Some(0), Some(true)),
        "{out}"
    );
    let counts = w
        .producer
        .batch("e1", "default")
        .counts()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counts.total, 0);
    assert!(counts.completed_at_ms.is_some());
    let completion = w.job_fields("e1:complete").await;
    assert_eq!(
        completion.get("state").map(String::as_str),
        Some("pending"),
        "{completion:?}"
    );
    // The completion job marks the broadcast completed, once.
    let c = done(
        &w.run(
            "e1:complete",
            celeriac_fanout::COMPLETE_KIND,
            json!({"broadcast": "e1"}),
            1,
            3,
        )
        .await,
    );
    assert_eq!(c["completed_now"], true);
    let c = done(
        &w.run(
            "e1:complete",
            celeriac_fanout::COMPLETE_KIND,
            json!({"broadcast": "e1"}),
            2,
            3,
        )
        .await,
    );
    assert_eq!(
        c["completed_now"], false,
        "a redelivered completion changes nothing"
    );
    assert!(store
        .broadcast("e1")
        .await
        .unwrap()
        .unwrap()
        .completed_at
        .is_some());

    // A topic that does not exist is an error that names what to do, and no batch.
    let missing = w
        .broadcast("e2", json!({"topic": "nope", "message": "x"}))
        .await;
    assert!(
        matches!(&missing, Outcome::Discard(e) if e.contains("celeriac fanout subscribe")),
        "{missing:?}"
    );
}

async fn listed_recipients_are_deduplicated_and_onebot_ones_get_messages(db: &str) {
    let w = World::new(db).await;
    let out = done(
        &w.broadcast(
            "l1",
            json!({"recipients": [
                {"channel": "onebot_user", "target": "1001"},
                {"channel": "onebot_group", "target": "500"},
                {"channel": "onebot_user", "target": "1001"},
            ], "message": "hi all"}),
        )
        .await,
    );
    assert_eq!(out["total"], 2, "duplicates are delivered once: {out}");
    for key in ["r0", "r1"] {
        let o = w.deliver("l1", key, 1).await;
        assert!(matches!(o, Outcome::Done(_)), "{key}: {o:?}");
    }
    let sent: Vec<(Target, String)> = w
        .fake
        .messages()
        .into_iter()
        .map(|m| (m.target, m.text))
        .collect();
    assert_eq!(
        sent,
        vec![
            (Target::Private(1001), "hi all".into()),
            (Target::Group(500), "hi all".into())
        ]
    );
    let r = w.store().await.results("l1").await.unwrap();
    assert_eq!((r.total, r.delivered), (2, 2));

    // A webhook recipient needs a secret; topic and recipients together are refused.
    let bad = w
        .broadcast("l2", json!({"recipients": [{"channel": "webhook", "target": "https://example.com/"}], "message": "x"}))
        .await;
    assert!(
        matches!(&bad, Outcome::Discard(e) if e.contains("secret")),
        "{bad:?}"
    );
    let both = w
        .broadcast(
            "l3",
            json!({"topic": "t", "recipients": [], "message": "x"}),
        )
        .await;
    assert!(matches!(both, Outcome::Discard(_)), "{both:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_unsubscribed_mid_broadcast_is_skipped_and_completion_fails_the_unfinished() {
    let w = World::new("sqlite").await;
    let sink = TestHttp::start().await;
    sink.route("/*", |_| Response::ok());
    let a = w
        .subscribe_webhook("t", &sink.url("/a"), b"0123456789abcdef")
        .await;
    let b = w
        .subscribe_webhook("t", &sink.url("/b"), b"0123456789abcdef")
        .await;
    let c = w
        .subscribe_webhook("t", &sink.url("/c"), b"0123456789abcdef")
        .await;
    done(
        &w.broadcast("m1", json!({"topic": "t", "message": "x"}))
            .await,
    );
    let store = w.store().await;
    store
        .unsubscribe("t", Channel::Webhook, &sink.url("/b"))
        .await
        .unwrap();
    assert!(matches!(
        w.deliver("m1", &format!("s{a}"), 1).await,
        Outcome::Done(_)
    ));
    assert!(matches!(
        w.deliver("m1", &format!("s{b}"), 1).await,
        Outcome::Done(_)
    ));
    assert_eq!(
        sink.hits("/b"),
        0,
        "an unsubscribed recipient is not sent to"
    );
    // s{c}'s job "died" without recording: the completion ends it failed, with why.
    let _ = c;
    done(
        &w.run(
            "m1:complete",
            celeriac_fanout::COMPLETE_KIND,
            json!({"broadcast": "m1"}),
            1,
            3,
        )
        .await,
    );
    let r = store.results("m1").await.unwrap();
    assert_eq!(
        (r.delivered, r.skipped, r.failed, r.pending),
        (1, 1, 1, 0),
        "{r:?}"
    );
    assert!(r.failed_recipients[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("without recording"));
    let skipped = store
        .delivery("m1", &format!("s{b}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(skipped.state, DeliveryState::Skipped);
    assert!(skipped.last_error.unwrap().contains("unsubscribed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscribe_at_once_and_existing_ones_are_left_alone() {
    let w = World::new("postgres").await;
    let store = w.store().await;
    let r = |i: usize| Recipient {
        channel: Channel::OnebotUser,
        target: (1000 + i).to_string(),
        secret: None,
    };
    store.subscribe("big", &r(0)).await.unwrap();
    let all: Vec<Recipient> = (0..450).map(r).collect();
    assert_eq!(store.subscribe_many("big", &all).await.unwrap(), 449);
    assert_eq!(store.subscribe_many("big", &all).await.unwrap(), 0);
    let topics = store.topics().await.unwrap();
    assert_eq!((topics[0].active, topics[0].subscribers), (450, 450));
    let bad = vec![Recipient {
        channel: Channel::Webhook,
        target: "nope".into(),
        secret: None,
    }];
    assert!(store.subscribe_many("big", &bad).await.is_err());
}

/// `celeriac status JOB` finds the batch of a broadcast whose `broadcast_id` is not the job's
/// id: the job's record names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_of_a_broadcast_with_its_own_id_is_found_from_its_job() {
    let w = World::new("sqlite").await;
    let sink = TestHttp::start().await;
    sink.route("/*", |_| Response::ok());
    w.subscribe_webhook("news", &sink.url("/a"), b"0123456789abcdef")
        .await;
    let payload = json!({"topic": "news", "message": "m", "broadcast_id": "bc-7"});
    // The job's record exists, as for any job a worker runs.
    w.producer
        .enqueue(
            celeriac_producer::NewJob::new(celeriac_fanout::BROADCAST_KIND, payload.clone())
                .id("job-7"),
        )
        .await
        .unwrap();
    done(&w.broadcast("job-7", payload).await);

    let inspector = celeriac_core::inspector::Inspector::new(
        w.broker.clone(),
        std::sync::Arc::new(|_: &str| 25),
    );
    let job = inspector.job("job-7", None).await.unwrap().unwrap();
    let spawned = job.spawned.clone().expect("the job names its batch");
    assert_eq!(
        (spawned.id.as_str(), spawned.queue.as_str()),
        ("bc-7", "default")
    );
    let batch = inspector.batch_of(&job).await.unwrap().expect("its batch");
    assert_eq!((batch.id.as_str(), batch.total), ("bc-7", 1));
    assert_eq!(
        inspector.batch(&job.id, None).await.unwrap(),
        None,
        "no batch under the job's own id"
    );
    // A job whose batch has its own id names none.
    done(
        &w.broadcast("bc-8", json!({"topic": "news", "message": "m"}))
            .await,
    );
    w.producer
        .enqueue(
            celeriac_producer::NewJob::new(celeriac_fanout::BROADCAST_KIND, json!({})).id("bc-8"),
        )
        .await
        .unwrap();
    let own = inspector.job("bc-8", None).await.unwrap().unwrap();
    assert_eq!(own.spawned, None);
    assert_eq!(inspector.batch_of(&own).await.unwrap().unwrap().id, "bc-8");
}
