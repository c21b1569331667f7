//! The verification flow against real Redis, each SQL backend and the fake OneBot server:
//! joins, answers, leaves, scans that remind and kick, quiet hours, and what a failure leaves.

mod common;

use celeriac_onebot::Role;
use celeriac_verification::scan::plan;
use celeriac_verification::status::GroupState;
use celeriac_verification::Status;
use celeriac_worker::Outcome;
use common::*;
use serde_json::json;

on_both!(
    a_join_mutes_and_welcomes_once,
    the_right_code_verifies_unmutes_and_recalls,
    a_wrong_code_is_counted_and_answered,
    scans_remind_then_kick_and_report,
    quiet_hours_hold_reminders_and_kicks,
    leaving_and_approval_close_the_member,
    not_manageable_blocks_the_group_and_alerts_once_until_enabled,
    a_failed_kick_resumes_without_repeating,
    a_rejoin_starts_a_new_round,
    a_member_already_gone_counts_as_left,
    a_refused_kick_is_not_kicked_and_comes_back_later,
    an_answer_in_the_group_verifies,
    a_disabled_group_ignores_joins_and_sends_nothing,
    a_dry_run_plans_without_sending_or_writing,
    finished_actions_past_retention_are_pruned,
    a_long_outbox_runs_in_slices,
    the_report_counts_the_groups_own_pending_members,
);

async fn a_join_mutes_and_welcomes_once(db: &str) {
    let w = World::new(db).await;
    assert!(is_done(&w.join(GROUP, 1001).await));
    let m = w.member(GROUP, 1001).await;
    assert_eq!(m.status, Status::Pending);
    assert_eq!(m.warnings_left, 2);
    assert_eq!(m.next_warning_at, START + 4 * HOUR);
    assert_eq!(
        w.fake.member(GROUP, 1001).unwrap().muted_for,
        30 * 24 * 3600
    );
    let welcome = w.group_texts(GROUP);
    assert_eq!(welcome.len(), 1);
    assert!(welcome[0].contains(&m.code), "{welcome:?}");
    assert!(
        m.prompt_message_id.is_some(),
        "the welcome's id is kept to recall it"
    );
    // The same event again (a duplicate delivery or a retried job): nothing new.
    let again = join_event(BOT, GROUP, 1001, START / 1000);
    assert!(is_done(&w.event(again).await));
    assert_eq!(w.group_texts(GROUP).len(), 1);
    assert_eq!(w.fake.calls_of("set_group_ban").len(), 1);
    assert_eq!(w.member(GROUP, 1001).await.code, m.code);
}

async fn the_right_code_verifies_unmutes_and_recalls(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    let m = w.member(GROUP, 1001).await;
    let out = w
        .event(private_event(1001, &format!("验证码 {} 谢谢", m.code)))
        .await;
    assert!(is_done(&out), "{out:?}");
    let after = w.member(GROUP, 1001).await;
    assert_eq!(after.status, Status::Verified);
    assert_eq!(w.fake.member(GROUP, 1001).unwrap().muted_for, 0, "unmuted");
    let texts = w.group_texts(GROUP);
    assert_eq!(texts.len(), 1, "the welcome was recalled: {texts:?}");
    assert!(texts[0].contains("验证已通过"), "{texts:?}");
    // A second answer, or a scan, changes nothing any more.
    w.event(private_event(1001, &m.code)).await;
    w.clock.advance(std::time::Duration::from_secs(13 * 3600));
    w.scan_group(GROUP).await;
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Verified);
    assert!(w.fake.is_member(GROUP, 1001));
}

async fn a_wrong_code_is_counted_and_answered(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    let m = w.member(GROUP, 1001).await;
    let wrong = if m.code == "111111" {
        "222222"
    } else {
        "111111"
    };
    w.event(private_event(1001, wrong)).await;
    assert_eq!(w.member(GROUP, 1001).await.wrong_answers, 1);
    let hints = w.private_texts(1001);
    assert_eq!(hints.len(), 1);
    assert!(hints[0].contains("还可以再试 4 次"), "{hints:?}");
    // Chat without a code is not an answer.
    w.event(private_event(1001, "hello?")).await;
    assert_eq!(w.member(GROUP, 1001).await.wrong_answers, 1);
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Pending);
}

async fn scans_remind_then_kick_and_report(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    w.join(GROUP, 1002).await;
    let code = w.member(GROUP, 1001).await.code;
    // Not due yet.
    w.clock.advance(std::time::Duration::from_secs(3 * 3600));
    assert!(is_done(&w.scan_group(GROUP).await));
    assert_eq!(w.group_texts(GROUP).len(), 2);
    // +4 h: one reminder message for both.
    w.clock.set(START + 4 * HOUR);
    let out = w.scan_group(GROUP).await;
    let Outcome::Done(Some(summary)) = &out else {
        panic!("{out:?}")
    };
    assert_eq!(summary["reminded"], json!([1001, 1002]));
    let texts = w.group_texts(GROUP);
    assert_eq!(texts.len(), 3);
    assert!(
        texts[2].contains(&code) && texts[2].contains("1/2"),
        "{texts:?}"
    );
    assert_eq!(w.member(GROUP, 1001).await.warnings_left, 1);
    // Run again at the same time: nothing is due twice.
    w.scan_group(GROUP).await;
    assert_eq!(w.group_texts(GROUP).len(), 3);
    // +8 h: the last reminder. +12 h: the kicks.
    w.clock.set(START + 8 * HOUR);
    w.scan_group(GROUP).await;
    assert_eq!(w.member(GROUP, 1002).await.warnings_left, 0);
    w.clock.set(START + 12 * HOUR);
    let out = w.scan_group(GROUP).await;
    let Outcome::Done(Some(summary)) = &out else {
        panic!("{out:?}")
    };
    assert_eq!(summary["kicked"], json!([1001, 1002]));
    assert!(!w.fake.is_member(GROUP, 1001) && !w.fake.is_member(GROUP, 1002));
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Kicked);
    let kicks = w.fake.calls_of("set_group_kick");
    assert_eq!(kicks.len(), 2);
    assert!(
        kicks[1].at - kicks[0].at >= std::time::Duration::from_millis(45),
        "kicks are paced by onebot.kick_interval"
    );
    let report = w.private_texts(REPORT_TO);
    assert_eq!(
        report.len(),
        3,
        "one report per scan that did something: {report:?}"
    );
    assert!(report[0].contains("提醒 2 人"), "{report:?}");
    assert!(report[2].contains("移出 2 人"), "{report:?}");
    // The notice came before the kicks, the welcomes were recalled.
    assert!(w
        .group_texts(GROUP)
        .iter()
        .any(|t| t.contains("即将被移出群聊")));
}

async fn quiet_hours_hold_reminders_and_kicks(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    // 2026-01-01T15:00Z is 23:00 in Shanghai: due, but quiet.
    w.clock.set(START + 15 * HOUR);
    let out = w.scan_group(GROUP).await;
    let Outcome::Done(Some(summary)) = &out else {
        panic!("{out:?}")
    };
    assert_eq!(summary["quiet"], json!(true));
    assert_eq!(w.group_texts(GROUP).len(), 1, "only the welcome");
    assert_eq!(w.member(GROUP, 1001).await.warnings_left, 2);
    // 08:00 the next day: one reminder (not one per missed interval).
    w.clock.set(START + 24 * HOUR);
    w.scan_group(GROUP).await;
    assert_eq!(w.member(GROUP, 1001).await.warnings_left, 1);
    assert_eq!(w.group_texts(GROUP).len(), 2);
}

async fn leaving_and_approval_close_the_member(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    w.join(GROUP, 1002).await;
    w.join(GROUP, 1003).await;
    w.event(decrease_event(GROUP, 1001, "leave", 0)).await;
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Left);
    w.event(decrease_event(GROUP, 1002, "kick", ADMIN)).await;
    assert_eq!(w.member(GROUP, 1002).await.status, Status::Removed);
    // Our own unmute is not an approval; an admin's is.
    w.event(lift_ban_event(GROUP, 1003, BOT)).await;
    assert_eq!(w.member(GROUP, 1003).await.status, Status::Pending);
    w.event(lift_ban_event(GROUP, 1003, ADMIN)).await;
    let m = w.member(GROUP, 1003).await;
    assert_eq!(m.status, Status::Approved);
    assert!(m.detail.contains(&ADMIN.to_string()));
    assert!(w
        .group_texts(GROUP)
        .iter()
        .any(|t| t.contains("视为验证通过")));
    w.clock.set(START + 13 * HOUR);
    w.scan_group(GROUP).await;
    assert!(w.fake.calls_of("set_group_kick").is_empty());
}

async fn not_manageable_blocks_the_group_and_alerts_once_until_enabled(db: &str) {
    let w = World::new(db).await;
    // An admin "joins" (the bot, an admin itself, may not mute another admin).
    w.fake.add_member(GROUP, 2002, Role::Admin);
    w.event(join_event(BOT, GROUP, 2002, START / 1000)).await;
    let m = w.member(GROUP, 2002).await;
    assert_eq!(m.status, Status::Unmanageable, "{m:?}");
    assert!(m.detail.contains("may not mute"), "{}", m.detail);
    let store = w.store().await;
    let g = store
        .group(GROUP)
        .await
        .unwrap()
        .expect("a row once blocked");
    assert_eq!(g.state, GroupState::Blocked);
    assert!(g.enabled);
    let alerts = w.private_texts(REPORT_TO);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("groups enable 100"), "{alerts:?}");
    // While blocked: a join is recorded but nothing is sent, no scan decides, no second alert.
    let before = w.fake.calls().len();
    w.join(GROUP, 1001).await;
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Pending);
    w.clock.set(START + 4 * HOUR);
    let out = w.scan_group(GROUP).await;
    let Outcome::Done(Some(summary)) = &out else {
        panic!("{out:?}")
    };
    assert_eq!(summary["stopped"], json!(true));
    assert_eq!(w.fake.calls().len(), before, "nothing sent while blocked");
    assert_eq!(w.member(GROUP, 1001).await.warnings_left, 2);
    assert_eq!(w.private_texts(REPORT_TO).len(), 1, "alerted once");
    // Other groups go on.
    w.fake.add_member(OTHER_GROUP, 1009, Role::Member);
    assert!(is_done(
        &w.event(join_event(BOT, OTHER_GROUP, 1009, w.clock_secs()))
            .await
    ));
    assert_eq!(w.group_texts(OTHER_GROUP).len(), 1);
    // An operator enables the group: what waited is sent, the scan decides again.
    let g = store
        .set_group_enabled(GROUP, true, START + 4 * HOUR)
        .await
        .unwrap();
    assert_eq!(g.state, GroupState::Active);
    assert!(is_done(&w.scan_group(GROUP).await));
    assert_eq!(
        w.fake.member(GROUP, 1001).unwrap().muted_for,
        30 * 24 * 3600
    );
    assert_eq!(w.member(GROUP, 1001).await.warnings_left, 1);
}

async fn a_failed_kick_resumes_without_repeating(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    for h in [4, 8] {
        w.clock.set(START + h * HOUR);
        w.scan_group(GROUP).await;
    }
    w.fake.inject(
        "set_group_kick",
        celeriac_onebot::fake::Fault::drop_connection().times(1),
    );
    w.clock.set(START + 12 * HOUR);
    let out = w.scan_group(GROUP).await;
    assert!(matches!(out, Outcome::Retry(_)), "{out:?}");
    // OneBot down mid-scan: nothing written for the kick not answered.
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Kicking);
    assert!(
        w.fake.is_member(GROUP, 1001),
        "the kick did not get through"
    );
    // The retry (or the next scan) performs what is left, and only that.
    let out = w.scan_group(GROUP).await;
    assert!(is_done(&out), "{out:?}");
    assert!(!w.fake.is_member(GROUP, 1001));
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Kicked);
    assert_eq!(w.fake.calls_of("set_group_kick").len(), 2);
    let notices = w
        .group_texts(GROUP)
        .iter()
        .filter(|t| t.contains("即将被移出群聊"))
        .count();
    assert_eq!(notices, 1, "the notice is not sent again");
}

async fn a_rejoin_starts_a_new_round(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    let first = w.member(GROUP, 1001).await;
    w.event(decrease_event(GROUP, 1001, "leave", 0)).await;
    w.clock.advance(std::time::Duration::from_secs(60));
    w.join(GROUP, 1001).await;
    let second = w.member(GROUP, 1001).await;
    assert_eq!(second.status, Status::Pending);
    assert_eq!(second.round, first.round + 1);
    assert_eq!(second.wrong_answers, 0);
    // The old code no longer works (unless the new one happens to be equal).
    if first.code != second.code {
        w.event(private_event(1001, &first.code)).await;
        assert_eq!(w.member(GROUP, 1001).await.status, Status::Pending);
    }
    w.event(private_event(1001, &second.code)).await;
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Verified);
}

/// Remind twice, then let the kick be due.
async fn up_to_the_kick(w: &World) {
    for h in [4, 8] {
        w.clock.set(START + h * HOUR);
        w.scan_group(GROUP).await;
    }
    w.clock.set(START + 12 * HOUR);
}

async fn a_member_already_gone_counts_as_left(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    up_to_the_kick(&w).await;
    // They left without the bot seeing the event.
    w.fake.remove_member(GROUP, 1001);
    let out = w.scan_group(GROUP).await;
    let Outcome::Done(Some(summary)) = &out else {
        panic!("{out:?}")
    };
    assert_eq!(summary["gone"], json!([1001]));
    assert_eq!(summary["kicked_ok"], json!([]));
    let m = w.member(GROUP, 1001).await;
    assert_eq!(m.status, Status::Left, "{m:?}");
    let actions = w.store().await.member_actions(GROUP, 1001).await.unwrap();
    let kick = actions
        .iter()
        .find(|a| a.action == "set_group_kick")
        .unwrap();
    assert_eq!(kick.state.as_str(), "skipped");
}

async fn a_refused_kick_is_not_kicked_and_comes_back_later(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    up_to_the_kick(&w).await;
    w.fake.inject(
        "set_group_kick",
        celeriac_onebot::fake::Fault::failed(1400, "failed", "refused").times(1),
    );
    let out = w.scan_group(GROUP).await;
    assert!(is_done(&out), "{out:?}");
    let m = w.member(GROUP, 1001).await;
    assert_eq!(
        m.status,
        Status::Pending,
        "kicked only on an ok reply: {m:?}"
    );
    assert_eq!(m.next_warning_at, START + 16 * HOUR);
    let actions = w.store().await.member_actions(GROUP, 1001).await.unwrap();
    let kick = actions
        .iter()
        .find(|a| a.action == "set_group_kick")
        .unwrap();
    assert_eq!((kick.state.as_str(), kick.retcode), ("failed", Some(1400)));
    // A period later (here 08:00 the next day, after the quiet hours) the kick is decided
    // again and gets through.
    w.clock.set(START + 24 * HOUR);
    w.scan_group(GROUP).await;
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Kicked);
    assert!(!w.fake.is_member(GROUP, 1001));
}

async fn an_answer_in_the_group_verifies(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    let code = w.member(GROUP, 1001).await.code;
    let out = w
        .event(group_event(GROUP, 1001, &format!("我的验证码 {code}")))
        .await;
    assert!(is_done(&out), "{out:?}");
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Verified);
    assert_eq!(w.fake.member(GROUP, 1001).unwrap().muted_for, 0);
}

async fn a_disabled_group_ignores_joins_and_sends_nothing(db: &str) {
    let w = World::new(db).await;
    let store = w.store().await;
    store.set_group_enabled(GROUP, false, START).await.unwrap();
    w.join(GROUP, 1001).await;
    assert!(store.member(GROUP, 1001).await.unwrap().is_none());
    assert!(w.fake.calls().is_empty());
    store.set_group_enabled(GROUP, true, START).await.unwrap();
    w.join(GROUP, 1002).await;
    assert_eq!(w.member(GROUP, 1002).await.status, Status::Pending);
}

async fn a_dry_run_plans_without_sending_or_writing(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    w.join(GROUP, 1002).await;
    for h in [4, 8] {
        w.clock.set(START + h * HOUR);
        w.scan_group(GROUP).await;
    }
    // 1003 joins later: at +12 h, 1001 and 1002 are kicked and 1003 reminded.
    w.clock.set(START + 8 * HOUR);
    w.join(GROUP, 1003).await;
    let now = START + 12 * HOUR;
    let calls = w.fake.calls().len();
    let store = w.store().await;
    let before = store.list(&Default::default()).await.unwrap();
    let plan = plan(&w.context.config, &store, GROUP, now).await.unwrap();
    let what: Vec<(&str, Option<i64>)> = plan
        .actions
        .iter()
        .map(|a| (a.action.as_str(), a.user_id))
        .collect();
    assert_eq!(
        what,
        [
            ("send_group_msg", None),
            ("send_group_msg", None),
            ("set_group_kick", Some(1001)),
            ("delete_msg", Some(1001)),
            ("set_group_kick", Some(1002)),
            ("delete_msg", Some(1002)),
        ]
    );
    assert_eq!(w.fake.calls().len(), calls, "nothing sent");
    assert_eq!(
        store.list(&Default::default()).await.unwrap(),
        before,
        "nothing written"
    );
    // The scan then sends exactly that.
    w.clock.set(now);
    w.scan_group(GROUP).await;
    let sent: Vec<String> = w.fake.calls()[calls..]
        .iter()
        .map(|c| c.action.clone())
        .collect();
    let planned: Vec<&str> = plan.actions.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(&sent[..planned.len()], planned.as_slice());
}

async fn finished_actions_past_retention_are_pruned(db: &str) {
    let w = World::new(db).await;
    w.join(GROUP, 1001).await;
    let store = w.store().await;
    let sent = store.member_actions(GROUP, 1001).await.unwrap().len();
    assert!(sent >= 2, "mute and welcome");
    // 31 days later a scan deletes what ended more than action_retention (30 days) ago.
    w.clock.set(START + 31 * 24 * HOUR);
    w.join(GROUP, 1002).await;
    assert!(is_done(&w.run("verification.scan", json!({})).await));
    assert!(store.member_actions(GROUP, 1001).await.unwrap().is_empty());
    assert!(!store.member_actions(GROUP, 1002).await.unwrap().is_empty());
}

async fn a_long_outbox_runs_in_slices(db: &str) {
    let config = celeriac_verification::VerificationConfig {
        group_slice: std::time::Duration::from_secs(1),
        ..common::config()
    };
    let w = World::with(db, config, None).await;
    for u in [1001, 1002, 1003] {
        w.join(GROUP, u).await;
    }
    up_to_the_kick(&w).await;
    // The first kick takes longer than the slice: the run stops after it.
    w.fake.inject(
        "set_group_kick",
        celeriac_onebot::fake::Fault::delay(std::time::Duration::from_millis(1100)).times(1),
    );
    let out = w.scan_group(GROUP).await;
    assert_eq!(
        out,
        Outcome::Snooze(celeriac_verification::scan::NEXT_SLICE)
    );
    assert_eq!(w.fake.calls_of("set_group_kick").len(), 1);
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Kicked);
    assert_eq!(w.member(GROUP, 1002).await.status, Status::Kicking);
    // The next run goes on where it stopped, deciding nothing twice.
    let out = w.scan_group(GROUP).await;
    assert!(is_done(&out), "{out:?}");
    assert_eq!(w.fake.calls_of("set_group_kick").len(), 3);
    for u in [1001, 1002, 1003] {
        assert_eq!(w.member(GROUP, u).await.status, Status::Kicked);
    }
    let notices = w
        .group_texts(GROUP)
        .iter()
        .filter(|t| t.contains("即将被移出群聊"))
        .count();
    assert_eq!(notices, 1);
}

async fn the_report_counts_the_groups_own_pending_members(db: &str) {
    let mut c = config();
    c.templates.report = "group {group}: {pending} pending".into();
    let w = World::with(db, c, None).await;
    w.fake.add_member(OTHER_GROUP, 3001, Role::Member);
    w.join(GROUP, 1001).await;
    w.join(GROUP, 1002).await;
    w.join(OTHER_GROUP, 3001).await;
    let m = w.member(GROUP, 1001).await;
    assert!(is_done(&w.event(private_event(1001, &m.code)).await));
    let store = w.store().await;
    assert_eq!(store.pending_in(GROUP).await.unwrap(), 1);
    assert_eq!(store.pending_in(OTHER_GROUP).await.unwrap(), 1);
    assert_eq!(store.pending_in(300).await.unwrap(), 0);
    // +4 h: 1002 is reminded; the report counts GROUP's pending member, not OTHER_GROUP's.
    w.clock.set(START + 4 * HOUR);
    assert!(is_done(&w.scan_group(GROUP).await));
    assert_eq!(
        w.private_texts(REPORT_TO),
        vec![format!("group {GROUP}: 1 pending")]
    );
}
