//! Event parsing, on event bodies shaped like what NapCat, Lagrange.OneBot and go-cqhttp post.

use celeriac_onebot::event::{BanKind, DecreaseKind, Event, IncreaseKind};
use celeriac_onebot::{Error, Role};
use serde_json::json;

fn parse(v: serde_json::Value) -> Event {
    Event::parse(v.to_string().as_bytes()).unwrap()
}

#[test]
fn private_message_in_string_format() {
    let e = parse(json!({
        "time": 1718000000, "self_id": 10001000, "post_type": "message",
        "message_type": "private", "sub_type": "friend", "message_id": -2147483000,
        "user_id": 12345678, "message": "[CQ:face,id=178]验证码 &#91;4821&#93;",
        "raw_message": "[CQ:face,id=178]验证码 &#91;4821&#93;", "font": 0,
        "sender": {"user_id": 12345678, "nickname": "小明", "sex": "unknown", "age": 0}
    }));
    let Event::PrivateMessage(m) = e else {
        panic!("{e:?}")
    };
    assert_eq!(m.text, "验证码 [4821]");
    assert_eq!(
        (m.self_id, m.user_id, m.message_id),
        (10001000, 12345678, -2147483000)
    );
    assert_eq!(m.sub_type, "friend");
    assert_eq!(m.sender.nickname, "小明");
}

#[test]
fn group_message_in_array_format() {
    let e = parse(json!({
        "self_id": 10001000, "user_id": 1001, "time": 1718000001, "message_id": 77,
        "message_seq": 77, "real_id": 77, "message_type": "group",
        "sender": {"user_id": 1001, "nickname": "n", "card": "卡片", "role": "member"},
        "raw_message": "[CQ:at,qq=10001000] 4821", "font": 14, "sub_type": "normal",
        "message": [
            {"type": "at", "data": {"qq": "10001000"}},
            {"type": "text", "data": {"text": " 4821"}}
        ],
        "message_format": "array", "post_type": "message", "group_id": "100"
    }));
    let Event::GroupMessage(m) = e else {
        panic!("{e:?}")
    };
    assert_eq!(m.text, " 4821");
    assert_eq!((m.group_id, m.user_id), (100, 1001));
    assert_eq!(m.sender.role, Some(Role::Member));
    assert_eq!(m.sender.card, "卡片");
}

#[test]
fn group_notices() {
    let base = |notice: &str, sub: &str| {
        json!({"time": 1718000002, "self_id": 10001000, "post_type": "notice",
               "notice_type": notice, "sub_type": sub, "group_id": 100,
               "operator_id": 2001, "user_id": 1001})
    };
    let Event::GroupIncrease(g) = parse(base("group_increase", "approve")) else {
        panic!()
    };
    assert_eq!(
        (g.sub_type, g.group_id, g.user_id),
        (IncreaseKind::Approve, 100, 1001)
    );
    assert_eq!(g.operator_id, Some(2001));
    for (sub, kind) in [
        ("leave", DecreaseKind::Leave),
        ("kick", DecreaseKind::Kick),
        ("kick_me", DecreaseKind::KickMe),
        ("disband", DecreaseKind::Unknown),
    ] {
        let Event::GroupDecrease(g) = parse(base("group_decrease", sub)) else {
            panic!()
        };
        assert_eq!(g.sub_type, kind, "{sub}");
    }
    let mut ban = base("group_ban", "ban");
    ban["duration"] = json!(600);
    let Event::GroupBan(b) = parse(ban) else {
        panic!()
    };
    assert_eq!((b.sub_type, b.duration), (BanKind::Ban, 600));
    let Event::GroupBan(b) = parse(base("group_ban", "lift_ban")) else {
        panic!()
    };
    assert_eq!((b.sub_type, b.duration), (BanKind::LiftBan, 0));
}

#[test]
fn requests_and_meta_events() {
    let e = parse(
        json!({"time": 1, "self_id": 10001000, "post_type": "request",
        "request_type": "group", "sub_type": "add", "group_id": 100, "user_id": 1004,
        "comment": "问题：暗号\n答案：celeriac", "flag": "1718000003"}),
    );
    let Event::GroupRequest(r) = e else {
        panic!("{e:?}")
    };
    assert_eq!((r.sub_type.as_str(), r.user_id), ("add", 1004));
    assert!(r.comment.contains("celeriac"));
    let e = parse(
        json!({"time": 1, "self_id": 10001000, "post_type": "request",
        "request_type": "friend", "user_id": 1005, "comment": "hi", "flag": "f"}),
    );
    assert!(
        matches!(e, Event::FriendRequest(ref f) if f.user_id == 1005),
        "{e:?}"
    );
    let e = parse(
        json!({"time": 1, "self_id": 10001000, "post_type": "meta_event",
        "meta_event_type": "heartbeat", "status": {"online": true, "good": true},
        "interval": 30000}),
    );
    assert!(
        matches!(e, Event::Heartbeat(ref h) if h.interval == 30000),
        "{e:?}"
    );
    let e = parse(
        json!({"time": 1, "self_id": 10001000, "post_type": "meta_event",
        "meta_event_type": "lifecycle", "sub_type": "connect"}),
    );
    assert!(
        matches!(e, Event::Lifecycle(ref l) if l.sub_type == "connect"),
        "{e:?}"
    );
    assert_eq!(e.self_id(), Some(10001000));
}

#[test]
fn unknown_events_are_kept_raw() {
    for raw in [
        json!({"time": 1, "self_id": 1, "post_type": "notice", "notice_type": "group_recall",
               "group_id": 100, "user_id": 1, "operator_id": 1, "message_id": 5}),
        json!({"time": 1, "self_id": 1, "post_type": "message_sent", "message_type": "group"}),
        json!({"time": 1, "self_id": 1, "post_type": "notice", "notice_type": "notify",
               "sub_type": "poke", "target_id": 2, "user_id": 3}),
    ] {
        assert_eq!(parse(raw.clone()), Event::Other(raw));
    }
}

#[test]
fn malformed_events_are_errors() {
    for body in [
        "not json".to_string(),
        json!([1, 2]).to_string(),
        json!({"time": 1, "self_id": 1}).to_string(),
        json!({"time": 1, "self_id": 1, "post_type": "notice", "notice_type": "group_decrease",
               "sub_type": "kick", "group_id": 100})
        .to_string(),
        json!({"time": 1, "self_id": "x", "post_type": "message", "message_type": "private",
               "message_id": 1, "user_id": 2, "message": "hi"})
        .to_string(),
    ] {
        let e = Event::parse(body.as_bytes()).unwrap_err();
        assert!(matches!(e, Error::InvalidEvent(_)), "{body}: {e}");
    }
}
