//! OneBot recipients when QQ says no: a group the bot is not in and a user it cannot find end
//! the delivery `failed` at once (the subscriber disabled, the job dead, nothing retried);
//! risk control snoozes the delivery until the account's pause ends, without spending an
//! attempt and without sending anything meanwhile; OneBot's rate limiting (HTTP 429) spends an
//! attempt and is retried on the schedule.

mod common;

use celeriac_fanout::{Channel, DeliveryState, Recipient, SubscriberStatus};
use celeriac_onebot::fake::{Fault, Target};
use celeriac_worker::Outcome;
use common::*;
use serde_json::json;
use std::time::Duration;

on_both!(a_group_the_bot_is_not_in_fails_at_once_and_disables_the_subscriber);

/// Subscribe `channel` `target` to `topic` and broadcast `id` to it; the delivery's key.
async fn one_qq_subscriber(
    w: &World,
    topic: &str,
    channel: Channel,
    target: &str,
    id: &str,
) -> String {
    let r = Recipient {
        channel,
        target: target.into(),
        secret: None,
    };
    let sid = w.store().await.subscribe(topic, &r).await.unwrap().id;
    let out = w
        .broadcast(id, json!({"topic": topic, "message": "hello"}))
        .await;
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    format!("s{sid}")
}

async fn a_group_the_bot_is_not_in_fails_at_once_and_disables_the_subscriber(db: &str) {
    let w = World::new(db).await;
    // The fake knows group 500 only.
    let key = one_qq_subscriber(&w, "qq", Channel::OnebotGroup, "999", "b1").await;
    let out = w.deliver("b1", &key, 1).await;
    match &out {
        Outcome::Discard(e) => assert!(e.contains("group 999"), "{e}"),
        other => panic!("a group that is gone is final: {other:?}"),
    }
    let error = failed_once_and_disabled(&w, &key).await;
    assert!(error.contains("GROUP_NOT_FOUND"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_the_bot_cannot_find_fails_at_once() {
    let w = World::new("sqlite").await;
    let key = one_qq_subscriber(&w, "qq", Channel::OnebotUser, "424242", "b1").await;
    // NapCat's answer when it cannot resolve the QQ number (none such, or a stranger).
    w.fake.inject(
        "send_private_msg",
        Fault::status("failed", 200, "无法获取用户信息"),
    );
    let out = w.deliver("b1", &key, 1).await;
    match &out {
        Outcome::Discard(e) => assert!(e.contains("user 424242"), "{e}"),
        other => panic!("a user that cannot be found is final, not retried: {other:?}"),
    }
    failed_once_and_disabled(&w, &key).await;
}

/// The delivery of `key` in broadcast `b1` failed after one attempt, its subscriber is
/// disabled and nothing was sent; returns the delivery's last error.
async fn failed_once_and_disabled(w: &World, key: &str) -> String {
    let store = w.store().await;
    let d = store.delivery("b1", key).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Failed, 1));
    let s = store
        .subscriber(key[1..].parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.status, SubscriberStatus::Disabled);
    assert!(w.fake.messages().is_empty());
    d.last_error.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_control_snoozes_until_the_pause_ends_without_spending_an_attempt() {
    let pause = Duration::from_secs(600);
    let w = World::build("sqlite", config(), |o| o.breaker_open_for = pause).await;
    let key = one_qq_subscriber(&w, "qq", Channel::OnebotGroup, "500", "b1").await;
    w.fake.inject(
        "send_group_msg",
        Fault::failed(100, "SEND_MSG_API_ERROR", "请参考 go-cqhttp 端输出").times(1),
    );
    match w.deliver("b1", &key, 1).await {
        // The account's whole pause, not a guess: waking sooner only meets the open breaker.
        Outcome::Snooze(d) => assert!(d >= pause - Duration::from_secs(5), "{d:?}"),
        other => panic!("risk control snoozes: {other:?}"),
    }
    let store = w.store().await;
    let d = store.delivery("b1", &key).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempts),
        (DeliveryState::Pending, 0),
        "no attempt recorded"
    );
    // While the account is paused, the delivery runs again and sends nothing.
    let calls = w.fake.calls_of("send_group_msg").len();
    match w.deliver("b1", &key, 1).await {
        Outcome::Snooze(d) => assert!(d > Duration::from_secs(60) && d <= pause, "{d:?}"),
        other => panic!("still paused: {other:?}"),
    }
    assert_eq!(
        w.fake.calls_of("send_group_msg").len(),
        calls,
        "nothing sent while paused"
    );
    assert!(w.fake.messages().is_empty());
    let d = store.delivery("b1", &key).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_pause_ends_and_the_delivery_goes_through() {
    let w = World::build("sqlite", config(), |o| {
        o.breaker_open_for = Duration::from_millis(200)
    })
    .await;
    let key = one_qq_subscriber(&w, "qq", Channel::OnebotUser, "1001", "b1").await;
    w.fake.inject(
        "send_private_msg",
        Fault::status("failed", 1200, "Timeout: NTEvent sendMsg").times(1),
    );
    let wait = match w.deliver("b1", &key, 1).await {
        Outcome::Snooze(d) => d,
        other => panic!("risk control snoozes: {other:?}"),
    };
    assert!(
        wait <= Duration::from_secs(1),
        "the account's 200 ms pause, not a guess: {wait:?}"
    );
    // As the worker would: run it again once the snooze is over (the same attempt number).
    tokio::time::sleep(wait).await;
    let out = w.deliver("b1", &key, 1).await;
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    let d = w.store().await.delivery("b1", &key).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 1));
    let sent: Vec<Target> = w.fake.messages().iter().map(|m| m.target).collect();
    assert_eq!(sent, [Target::Private(1001)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onebot_rate_limiting_spends_an_attempt_and_retries_on_the_schedule() {
    let w = World::new("sqlite").await;
    let key = one_qq_subscriber(&w, "qq", Channel::OnebotGroup, "500", "b1").await;
    w.fake.inject("send_group_msg", Fault::http(429).times(1));
    let out = w.deliver("b1", &key, 1).await;
    match &out {
        Outcome::Retry(e) => assert!(e.contains("429"), "{e}"),
        other => panic!("a 429 is a failed attempt: {other:?}"),
    }
    let delay = deliver_policy().delay_after(&out, 1).unwrap();
    assert!(
        delay >= Duration::from_secs(4) && delay <= Duration::from_secs(6),
        "the schedule's 5 s: {delay:?}"
    );
    let d = w.store().await.delivery("b1", &key).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 1));
    // The account is not paused: the next attempt goes through.
    assert!(matches!(w.deliver("b1", &key, 2).await, Outcome::Done(_)));
    assert_eq!(w.fake.messages().len(), 1);
}
