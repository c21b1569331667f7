//! Grouped reads and writes of deliveries: many deliveries read in one query, many attempts
//! written in one statement, each delivery getting its own row and its own result; a
//! subscriber unsubscribed before its delivery starts is still skipped when the deliveries
//! run together.

mod common;

use celeriac_fanout::recorder::Attempt;
use celeriac_fanout::store::{AttemptRecord, NewDelivery};
use celeriac_fanout::{Channel, DeliveryState, Recipient};
use celeriac_testkit::{Response, TestHttp};
use celeriac_worker::Outcome;
use common::*;
use serde_json::json;
use std::sync::Arc;

on_both!(
    many_deliveries_are_read_in_one_query_each_with_its_own_row,
    many_attempts_are_written_at_once_each_with_its_own_result,
);

fn listed(n: usize) -> Vec<NewDelivery> {
    (0..n)
        .map(|i| NewDelivery {
            key: format!("r{i}"),
            subscriber_id: None,
            recipient: Recipient {
                channel: Channel::OnebotUser,
                target: format!("{}", 1000 + i),
                secret: None,
            },
        })
        .collect()
}

async fn many_deliveries_are_read_in_one_query_each_with_its_own_row(db: &str) {
    let w = World::new(db).await;
    let store = w.store().await;
    assert!(store
        .create_broadcast("g", None, "default", "m", &listed(5))
        .await
        .unwrap());
    // Three keys (padded to four), one missing, one twice.
    let found = store
        .deliveries_to_send("g", &["r0", "r3", "nope", "r3"])
        .await
        .unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found["r0"].delivery.target, "1000");
    assert_eq!(found["r3"].delivery.target, "1003");
    assert_eq!(found["r3"].subscriber, None);
    assert!(store.deliveries_to_send("g", &[]).await.unwrap().is_empty());
    // Another broadcast's delivery of the same key is not read.
    let other = store.deliveries_to_send("other", &["r0"]).await.unwrap();
    assert!(other.is_empty());
}

async fn many_attempts_are_written_at_once_each_with_its_own_result(db: &str) {
    let w = World::new(db).await;
    let store = w.store().await;
    store
        .create_broadcast("g", None, "default", "m", &listed(4))
        .await
        .unwrap();
    store
        .end_delivery("g", "r2", DeliveryState::Skipped, "gone")
        .await
        .unwrap();
    let attempt = |key: &str, state, status, error: Option<&str>| Attempt {
        broadcast: "g".into(),
        key: key.into(),
        state,
        record: AttemptRecord {
            status,
            error: error.map(String::from),
            response: Some(format!("answer of {key}")),
        },
    };
    let group = [
        attempt("r0", DeliveryState::Delivered, Some(200), None),
        attempt(
            "r1",
            DeliveryState::Pending,
            Some(500),
            Some("the endpoint answered 500"),
        ),
        attempt("r2", DeliveryState::Delivered, Some(200), None),
        // The same delivery again in the group: it is no longer pending when its turn comes.
        attempt("r0", DeliveryState::Failed, None, Some("late")),
        attempt("nope", DeliveryState::Delivered, Some(200), None),
        attempt("r3", DeliveryState::Failed, None, Some("refused")),
    ];
    let refs: Vec<&Attempt> = group.iter().collect();
    let changed = store.record_attempts(&refs).await.unwrap();
    assert_eq!(changed, [true, true, false, false, false, true]);

    let r0 = store.delivery("g", "r0").await.unwrap().unwrap();
    assert_eq!(
        (
            r0.state,
            r0.attempts,
            r0.last_status,
            r0.last_error.as_deref()
        ),
        (DeliveryState::Delivered, 1, Some(200), None)
    );
    assert_eq!(r0.response.as_deref(), Some("answer of r0"));
    let r1 = store.delivery("g", "r1").await.unwrap().unwrap();
    assert_eq!(
        (r1.state, r1.attempts, r1.last_status),
        (DeliveryState::Pending, 1, Some(500))
    );
    assert_eq!(r1.last_error.as_deref(), Some("the endpoint answered 500"));
    let r2 = store.delivery("g", "r2").await.unwrap().unwrap();
    assert_eq!((r2.state, r2.attempts), (DeliveryState::Skipped, 0));
    let r3 = store.delivery("g", "r3").await.unwrap().unwrap();
    assert_eq!(
        (
            r3.state,
            r3.attempts,
            r3.last_status,
            r3.last_error.as_deref()
        ),
        (DeliveryState::Failed, 1, None, Some("refused"))
    );

    // A second failed attempt keeps the error it had when it brings none (COALESCE).
    let again = [attempt("r1", DeliveryState::Delivered, Some(204), None)];
    let refs: Vec<&Attempt> = again.iter().collect();
    assert_eq!(store.record_attempts(&refs).await.unwrap(), [true]);
    let r1 = store.delivery("g", "r1").await.unwrap().unwrap();
    assert_eq!(
        (
            r1.state,
            r1.attempts,
            r1.last_status,
            r1.last_error.as_deref()
        ),
        (
            DeliveryState::Delivered,
            2,
            Some(204),
            Some("the endpoint answered 500")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_running_together_are_each_sent_once_and_the_unsubscribed_skipped() {
    let w = Arc::new(World::new("sqlite").await);
    let sink = TestHttp::start().await;
    sink.route("/*", |_| Response::ok());
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            w.subscribe_webhook("t", &sink.url(&format!("/{i}")), b"0123456789abcdef")
                .await,
        );
    }
    let out = w
        .broadcast("many", json!({"topic": "t", "message": "x"}))
        .await;
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    let store = w.store().await;
    store
        .unsubscribe("t", Channel::Webhook, &sink.url("/7"))
        .await
        .unwrap();
    let mut runs = tokio::task::JoinSet::new();
    for id in &ids {
        let (w, key) = (w.clone(), format!("s{id}"));
        runs.spawn(async move { w.deliver("many", &key, 1).await });
    }
    let outcomes = runs.join_all().await;
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Done(_))),
        "{outcomes:?}"
    );
    for i in 0..40 {
        assert_eq!(
            sink.hits(&format!("/{i}")),
            u32::from(i != 7),
            "/{i}: one request each, none for the unsubscribed"
        );
    }
    let r = store.results("many").await.unwrap();
    assert_eq!((r.delivered, r.skipped, r.pending), (39, 1, 0), "{r:?}");
}
