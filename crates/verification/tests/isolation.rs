//! What keeps groups and runs apart: one run per group at a time, a group whose bot account is
//! paused does not hold up the others, two decisions on one member have one winner, and the
//! access token stays out of every log and stored error.

mod common;

use celeriac_onebot::fake::Fault;
use celeriac_onebot::{Pacer, Role};
use celeriac_verification::scan::{group_job_id, group_lock};
use celeriac_verification::store::WarnOrKick;
use celeriac_verification::Status;
use celeriac_worker::exclusive::Exclusive;
use celeriac_worker::Outcome;
use common::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both!(
    racing_decisions_on_one_member_have_one_winner,
    a_paused_account_holds_up_only_its_groups,
    two_scans_at_once_without_the_lock_remind_once,
);

/// A manual and a scheduled scan of one group at the same moment, even without the group's
/// lock (its guard is the SQL, not only the lock): each member reminded once, one message.
async fn two_scans_at_once_without_the_lock_remind_once(db: &str) {
    let w = World::new(db).await;
    for u in [1001, 1002, 1003] {
        w.join(GROUP, u).await;
    }
    w.clock.set(START + 4 * HOUR);
    let (a, b) = tokio::join!(
        celeriac_verification::scan::scan_group(&w.context, GROUP),
        celeriac_verification::scan::scan_group(&w.context, GROUP),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut reminded = [a.reminded.clone(), b.reminded.clone()].concat();
    reminded.sort_unstable();
    assert_eq!(reminded, [1001, 1002, 1003], "{a:?} {b:?}");
    for u in [1001, 1002, 1003] {
        assert_eq!(w.member(GROUP, u).await.warnings_left, 1);
    }
    let reminders = w
        .fake
        .calls_of("send_group_msg")
        .iter()
        .filter(|c| c.params.to_string().contains("剩余提醒"))
        .count();
    assert_eq!(reminders, 1, "one reminder message, sent once");
}

async fn racing_decisions_on_one_member_have_one_winner(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    let store = w.store().await;
    let read = w.member(GROUP, 1001).await;
    // An answer and a scan both read the member as pending, then decide.
    let mut tx = store.begin().await.unwrap();
    let verified = store
        .transition(
            &mut tx,
            &read,
            Status::Pending,
            Status::Verified,
            "answered",
            START,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let kicked = store
        .warn_or_kick(&mut tx, &read, HOUR, START)
        .await
        .unwrap();
    let left = store
        .transition(&mut tx, &read, Status::Pending, Status::Left, "left", START)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(verified);
    assert_eq!(kicked, None::<WarnOrKick>, "the scan lost the race");
    assert!(!left);
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Verified);
    // Many answers at once: one verification, one unmute.
    w.join(GROUP, 1002).await;
    let code = w.member(GROUP, 1002).await.code;
    let answers = (0..6).map(|_| w.event(private_event(1002, &code)));
    let outcomes = futures_util::future::join_all(answers).await;
    assert!(outcomes.iter().all(is_done), "{outcomes:?}");
    let unmutes = w
        .fake
        .calls_of("set_group_ban")
        .iter()
        .filter(|c| c.params["user_id"] == 1002 && c.params["duration"] == 0)
        .count();
    assert_eq!(unmutes, 1);
}

async fn a_paused_account_holds_up_only_its_groups(db: &str) {
    let w = World::new(db).await;
    const OTHER_BOT: i64 = 20000;
    w.fake.add_member(OTHER_GROUP, 1009, Role::Member);
    w.event(join_event(OTHER_BOT, OTHER_GROUP, 1009, START / 1000))
        .await;
    w.join(GROUP, 1001).await;
    // The other account's breaker opens (QQ risk control).
    let conn = w.broker.connection();
    Pacer::new(conn, w.keyspace.prefix(), &w.context.onebot)
        .trip(OTHER_BOT)
        .await
        .unwrap();
    w.clock.set(START + 4 * HOUR);
    let scan = w.run_as("scan-1", "verification.scan", json!({})).await;
    let Outcome::Done(Some(done)) = &scan else {
        panic!("{scan:?}")
    };
    assert_eq!(done["groups"], json!([GROUP, OTHER_GROUP]));
    // The scan enqueued one job per group; a retried scan enqueues nothing twice.
    for g in [GROUP, OTHER_GROUP] {
        let again = w
            .producer
            .enqueue(
                celeriac_producer::NewJob::new("verification.group", json!({"group": g}))
                    .id(group_job_id(g, "scan-1")),
            )
            .await
            .unwrap();
        assert!(!again.created, "group {g}'s job was enqueued by the scan");
    }
    let (a, b) = tokio::join!(w.scan_group(GROUP), w.scan_group(OTHER_GROUP));
    assert!(is_done(&a), "{a:?}");
    assert!(
        matches!(b, Outcome::Snooze(d) if d > Duration::from_secs(3600)),
        "{b:?}"
    );
    assert_eq!(w.member(GROUP, 1001).await.warnings_left, 1);
    assert!(w.group_texts(GROUP).len() >= 2, "group 100 was reminded");
    // The paused group's decision is kept; its reminder waits in the outbox.
    assert_eq!(w.member(OTHER_GROUP, 1009).await.warnings_left, 1);
    assert_eq!(
        w.group_texts(OTHER_GROUP).len(),
        1,
        "only the welcome, sent before the pause"
    );
    // The pause spends no try: the reminder waits untried, and however many times the
    // breaker turns the group's job away (a snooze, not an attempt), it stays so.
    for _ in 0..3 {
        let again = w.scan_group(OTHER_GROUP).await;
        assert!(matches!(again, Outcome::Snooze(_)), "{again:?}");
    }
    let open = w.store().await.open_actions(OTHER_GROUP, 10).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!((open[0].purpose.as_str(), open[0].attempts), ("remind", 0));
    assert_eq!(open[0].state.as_str(), "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_per_group_at_a_time() {
    let w = World::new("sqlite").await;
    w.join(GROUP, 1001).await;
    w.clock.set(START + 4 * HOUR);
    let held = Exclusive::try_acquire_as(
        &w.broker,
        &group_lock(GROUP),
        "other-run",
        Duration::from_secs(30),
    )
    .await
    .unwrap()
    .expect("the lock is free");
    let out = w.scan_group(GROUP).await;
    assert!(matches!(out, Outcome::Snooze(_)), "{out:?}");
    assert_eq!(
        w.member(GROUP, 1001).await.warnings_left,
        2,
        "nothing decided"
    );
    held.run(async {}).await.unwrap();
    assert!(is_done(&w.scan_group(GROUP).await));
    assert_eq!(w.member(GROUP, 1001).await.warnings_left, 1);
}

/// A writer into a shared buffer, for capturing logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_access_token_is_in_no_log_and_no_stored_error() {
    const TOKEN: &str = "tok-unit-never-shown-0b7e";
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let w = World::with("sqlite", config(), Some(TOKEN)).await;
    w.join(GROUP, 1001).await;
    assert!(
        w.fake.member(GROUP, 1001).unwrap().muted_for > 0,
        "the token is sent"
    );
    // Failures whose server text echoes the token, permanent and transient.
    w.fake.inject(
        "set_group_kick",
        Fault::failed(100, "NOT_MANAGEABLE", &format!("no rights, token={TOKEN}")).times(1),
    );
    w.fake.inject(
        "send_group_msg",
        Fault::status("failed", 1, &format!("busy; Authorization: Bearer {TOKEN}")).times(1),
    );
    for h in [4, 8, 12, 13] {
        w.clock.set(START + h * HOUR);
        let _ = w.scan_group(GROUP).await;
    }
    let m = w.member(GROUP, 1001).await;
    assert_eq!(m.status, Status::Unmanageable, "{m:?}");
    let actions = w.store().await.member_actions(GROUP, 1001).await.unwrap();
    let stored = serde_json::to_string(&actions).unwrap() + &m.detail;
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        stored.contains("no rights"),
        "the server's words are kept: {stored}"
    );
    assert!(
        logged.contains("busy") || logged.contains("no rights"),
        "{logged}"
    );
    for text in [&stored, &logged] {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
}
