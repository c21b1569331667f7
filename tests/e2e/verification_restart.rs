//! A scan of 10,000 due members in one group outlives `kill -9` of its worker: the real
//! binary, the fake OneBot on 127.0.0.1 (each group message slowed so the drain takes a few
//! seconds), a SQLite database seeded with the members. Every member is reminded — decided
//! exactly once in the database, and mentioned again only in the one message that was in flight
//! when the worker died (at least once) — and the group job ends succeeded after working in
//! slices.

use crate::support::Env;
use celeriac_onebot::fake::{FakeOneBot, Fault};
use celeriac_onebot::Role;
use celeriac_testkit::wait_until;
use celeriac_verification::store::{Join, MemberFilter};
use celeriac_verification::Store;
use std::collections::BTreeMap;
use std::time::Duration;

const GROUP: i64 = 100;
const BOT: i64 = 10000;
const MEMBERS: i64 = 10_000;
const HOUR_MS: i64 = 3_600_000;

/// How many times each member was @-mentioned in the group's reminders, and the reminders.
fn mentions(fake: &FakeOneBot) -> (BTreeMap<i64, usize>, Vec<serde_json::Value>) {
    let mut seen = BTreeMap::new();
    let mut reminders = Vec::new();
    for call in fake.calls_of("send_group_msg") {
        let Some(segments) = call.params["message"].as_array() else {
            continue;
        };
        let mut any = false;
        for s in segments.iter().filter(|s| s["type"] == "at") {
            let qq = &s["data"]["qq"];
            let user = qq
                .as_i64()
                .or_else(|| qq.as_str().and_then(|q| q.parse().ok()))
                .expect("a numeric qq");
            *seen.entry(user).or_insert(0) += 1;
            any = true;
        }
        if any {
            reminders.push(call.params.clone());
        }
    }
    (seen, reminders)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_of_ten_thousand_members_outlives_kill_9_without_warning_twice() {
    let fake = FakeOneBot::builder()
        .self_id(BOT)
        .group(GROUP, Role::Admin, &[])
        .start()
        .await
        .unwrap();
    // Each group message takes 20 ms: ~334 reminders drain for several seconds.
    fake.inject(
        "send_group_msg",
        Fault::delay(Duration::from_millis(20)).times(1_000_000),
    );
    let mut env = Env::new(&format!(
        "[onebot]\napi_url = {:?}\npacing = false\n\n[verification]\nadmins = [9001]\n\
         quiet_hours = \"\"\ngroup_slice = \"1s\"\naction_lease = \"1s\"\n",
        fake.url()
    ));
    // 10,000 members who joined 5 h ago, their first reminder due an hour ago.
    let db_url = format!("sqlite://{}/celeriac.db", env.dir.display());
    let store = Store::open(&db_url).await.unwrap();
    let now = celeriac_db::now_ms();
    let mut tx = store.begin().await.unwrap();
    for i in 0..MEMBERS {
        let join = Join {
            group_id: GROUP,
            user_id: 1_000_000 + i,
            bot_id: BOT,
            joined_at: now - 5 * HOUR_MS,
            code: format!("{:06}", i % 1_000_000),
            warnings: 2,
            next_warning_at: now - HOUR_MS,
        };
        assert!(store.insert_join(&mut tx, &join, now).await.unwrap());
    }
    tx.commit().await.unwrap();

    env.spawn_worker(&[]);
    let scan = env
        .ok(&["verification", "scan", "--group", &GROUP.to_string()])
        .trim()
        .to_string();
    assert_eq!(
        env.wait_final(&scan, Duration::from_secs(120))["state"],
        "succeeded"
    );
    let group_job = celeriac_verification::scan::group_job_id(GROUP, &scan);
    // Generous bounds: deciding 10,000 members takes a while on a loaded 2-core machine.
    wait_until(Duration::from_secs(240), "60 reminders sent", || {
        mentions(&fake).1.len() >= 60
    });
    env.worker(0).signal("-KILL");
    let at_kill = mentions(&fake).1.len();
    assert!(
        at_kill < 334,
        "the worker died mid-drain ({at_kill} reminders sent)"
    );
    env.respawn_worker(0, &[]);
    assert_eq!(
        env.wait_final(&group_job, Duration::from_secs(300))["state"],
        "succeeded",
        "{}",
        env.worker_logs()
    );

    // Decided once: every member reminded exactly one time in the database.
    let members = store
        .list(&MemberFilter {
            group: Some(GROUP),
            limit: 2 * MEMBERS,
            ..MemberFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(members.len(), MEMBERS as usize);
    assert!(
        members.iter().all(|m| m.warnings_left == 1),
        "every member reminded once, none twice"
    );
    // Sent: everyone mentioned; twice only those of the one message in flight at the kill.
    let (seen, reminders) = mentions(&fake);
    assert_eq!(seen.len(), MEMBERS as usize);
    let twice: Vec<i64> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(u, _)| *u)
        .collect();
    assert!(seen.values().all(|n| *n <= 2), "no one warned three times");
    assert!(
        twice.len() <= celeriac_verification::scan::MENTIONS_PER_MESSAGE,
        "only the message in flight may be repeated: {} members twice",
        twice.len()
    );
    let expected = (MEMBERS as usize).div_ceil(celeriac_verification::scan::MENTIONS_PER_MESSAGE);
    assert!(
        reminders.len() == expected || reminders.len() == expected + 1,
        "{} reminders for {expected} decided",
        reminders.len()
    );
    // Slices: the job handed over between runs rather than holding the group for the whole
    // drain.
    assert!(
        env.worker_logs().contains("slice over"),
        "{}",
        env.worker_logs()
    );
    store.close().await;
}
