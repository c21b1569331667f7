//! The verification flow against real Redis, each SQL backend and the fake OneBot server:
//! joins, answers, leaves, scans that remind and kick, quiet hours, and what a failure leaves.

mod common;

use celeriac_onebot::Role;
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
    a_member_the_bot_may_not_mute_is_unmanageable,
    a_failed_kick_resumes_without_repeating,
    a_rejoin_starts_a_new_round,
);

async fn a_join_mutes_and_welcomes_once(db: &str) {
    let w = World::new(db).await;
    assert!(is_done(&w.join(GROUP, 1001).await));
    let m = w.member(GROUP, 1001).await;
    assert_eq!(m.status, Status::Pending);
    assert_eq!(m.warnings_left, 2);
    assert_eq!(m.due_at, START + 4 * HOUR);
    assert_eq!(
        w.fake.member(GROUP, 1001).unwrap().muted_for,
        30 * 24 * 3600
    );
    let welcome = w.group_texts(GROUP);
    assert_eq!(welcome.len(), 1);
    assert!(welcome[0].contains(&m.code), "{welcome:?}");
    assert!(
        m.welcome_message_id.is_some(),
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

async fn a_member_the_bot_may_not_mute_is_unmanageable(db: &str) {
    let w = World::new(db).await;
    // An admin "joins" (the bot, an admin itself, may not mute another admin).
    w.fake.add_member(GROUP, 2002, Role::Admin);
    w.event(join_event(BOT, GROUP, 2002, START / 1000)).await;
    let m = w.member(GROUP, 2002).await;
    assert_eq!(m.status, Status::Unmanageable, "{m:?}");
    assert!(m.detail.contains("may not mute"), "{}", m.detail);
    // Scans leave them alone: no reminder, no kick attempt.
    w.clock.set(START + 13 * HOUR);
    w.scan_group(GROUP).await;
    assert!(w.fake.calls_of("set_group_kick").is_empty());
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
    assert_eq!(w.member(GROUP, 1001).await.status, Status::Kicked);
    assert!(
        w.fake.is_member(GROUP, 1001),
        "the kick did not get through"
    );
    // The retry (or the next scan) performs what is left, and only that.
    let out = w.scan_group(GROUP).await;
    assert!(is_done(&out), "{out:?}");
    assert!(!w.fake.is_member(GROUP, 1001));
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
