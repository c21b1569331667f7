//! The HTTP client against the fake OneBot server: every action, and every way a reply maps to
//! an error.

mod common;

use celeriac_onebot::fake::{Fault, Target};
use celeriac_onebot::{
    Error, ErrorClass, HttpClient, Message, OneBot, Role, Secret, TransportKind,
};
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn every_action_against_the_fake() {
    let fake = fake(Some("tok")).await;
    let bot = client(&fake, Some("tok"));

    let me = bot.get_login_info().await.unwrap();
    assert_eq!(me.user_id, BOT);

    let first = bot
        .send_private_msg(MEMBERS[0], Message::text("你的验证码是 1234"))
        .await
        .unwrap();
    let second = bot
        .send_group_msg(GROUP, Message::new().at(MEMBERS[1]).push_text(" 请验证"))
        .await
        .unwrap();
    assert!(
        second > first,
        "message ids increase: {first} then {second}"
    );
    let sent = fake.messages();
    assert_eq!(sent[0].target, Target::Private(MEMBERS[0]));
    assert_eq!(sent[0].text, "你的验证码是 1234");
    assert_eq!(sent[1].target, Target::Group(GROUP));

    bot.delete_msg(first).await.unwrap();
    assert_eq!(fake.messages().len(), 1);

    bot.set_group_ban(GROUP, MEMBERS[1], Duration::from_millis(59_500))
        .await
        .unwrap();
    assert_eq!(fake.member(GROUP, MEMBERS[1]).unwrap().muted_for, 60);
    bot.set_group_ban(GROUP, MEMBERS[1], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(fake.member(GROUP, MEMBERS[1]).unwrap().muted_for, 0);

    let info = bot
        .get_group_member_info(GROUP, MEMBERS[2], true)
        .await
        .unwrap();
    assert_eq!(
        (info.group_id, info.user_id, info.role),
        (GROUP, MEMBERS[2], Role::Member)
    );

    bot.set_group_kick(GROUP, MEMBERS[2], true).await.unwrap();
    assert!(!fake.is_member(GROUP, MEMBERS[2]));

    let kick = fake.calls_of("set_group_kick").pop().unwrap();
    assert_eq!(
        kick.params,
        json!({"group_id": GROUP, "user_id": MEMBERS[2], "reject_add_request": true})
    );
    let ban = &fake.calls_of("set_group_ban")[0];
    assert_eq!(ban.params["duration"], 60);
    let calls = fake.calls();
    assert!(calls.iter().all(|c| c.authorized));
    assert!(
        calls.iter().all(|c| c.peer == calls[0].peer),
        "every action reused one connection"
    );
}

#[tokio::test]
async fn state_errors_map_like_a_real_implementation() {
    let fake = fake(None).await;
    let bot = client(&fake, None);

    bot.set_group_kick(GROUP, MEMBERS[0], false).await.unwrap();
    let e = bot
        .set_group_kick(GROUP, MEMBERS[0], false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::MemberNotFound {
                action: "set_group_kick",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Gone);
    let e = bot
        .set_group_ban(GROUP, MEMBERS[0], Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::MemberNotFound { .. }), "{e}");

    for target in [ADMIN, OWNER] {
        let e = bot.set_group_kick(GROUP, target, false).await.unwrap_err();
        assert!(matches!(e, Error::NotManageable { .. }), "{e}");
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.to_string().contains("admin"), "says what to do: {e}");
    }

    let e = bot
        .send_group_msg(999, Message::text("hi"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::GroupNotFound { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Gone);
    let e = bot
        .get_group_member_info(GROUP, 424242, false)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::MemberNotFound { .. }), "{e}");
    let e = bot.delete_msg(77).await.unwrap_err();
    assert!(matches!(e, Error::Failed { retcode: 100, .. }), "{e}");
    assert!(e.to_string().contains("MESSAGE_NOT_FOUND"), "{e}");
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_unauthorized() {
    let fake = fake(Some("right")).await;
    for (token, status) in [(None, 401), (Some("wrong"), 403)] {
        let e = client(&fake, token).get_login_info().await.unwrap_err();
        assert!(
            matches!(e, Error::Unauthorized { status: s, .. } if s == status),
            "{token:?}: {e}"
        );
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(
            e.to_string().contains("CELERIAC_ONEBOT__ACCESS_TOKEN"),
            "{e}"
        );
    }
    assert!(fake.calls().iter().all(|c| !c.authorized));
}

#[tokio::test]
async fn unsupported_actions() {
    let fake = fake(None).await;
    let bot = client(&fake, None);
    fake.inject("delete_msg", Fault::http(404).times(1));
    fake.inject(
        "delete_msg",
        Fault::failed(404, "API_NOT_FOUND", "API不存在").times(1),
    );
    fake.inject(
        "delete_msg",
        Fault::status("failed", 1404, "不支持的API delete_msg").times(1),
    );
    for _ in 0..3 {
        let e = bot.delete_msg(1).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnsupportedAction {
                    action: "delete_msg"
                }
            ),
            "{e}"
        );
    }
}

#[tokio::test]
async fn http_statuses() {
    let fake = fake(None).await;
    let bot = client(&fake, None);
    for (status, class) in [
        (406, ErrorClass::Permanent),
        (400, ErrorClass::Permanent),
        (500, ErrorClass::Transient),
        (502, ErrorClass::Transient),
    ] {
        fake.inject("get_login_info", Fault::http(status).times(1));
        let e = bot.get_login_info().await.unwrap_err();
        assert!(
            matches!(e, Error::HttpStatus { status: s, .. } if s == status),
            "{e}"
        );
        assert_eq!(e.class(), class, "{status}");
    }
}

#[tokio::test]
async fn failed_retcodes_and_risk_control() {
    let fake = fake(None).await;
    let bot = client(&fake, None);

    fake.inject(
        "send_group_msg",
        Fault::failed(100, "API_ERROR", "内部错误").times(1),
    );
    let e = bot.send_group_msg(GROUP, "hi".into()).await.unwrap_err();
    assert!(matches!(e, Error::Failed { retcode: 100, .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Transient);

    fake.inject(
        "send_group_msg",
        Fault::status("failed", 1400, "Key: group_id").times(1),
    );
    let e = bot.send_group_msg(GROUP, "hi".into()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent, "{e}");

    fake.inject(
        "send_group_msg",
        Fault::failed(
            100,
            "SEND_MSG_API_ERROR",
            "send group message failed: blocked by server",
        )
        .times(1),
    );
    let e = bot.send_group_msg(GROUP, "hi".into()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::RiskControl {
                action: "send_group_msg",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::RiskControl);

    fake.inject(
        "send_private_msg",
        Fault::status(
            "failed",
            1200,
            "Timeout: NTEvent serviceAndMethod:NodeIKernelMsgService/sendMsg",
        )
        .times(1),
    );
    let e = bot.send_private_msg(1, "hi".into()).await.unwrap_err();
    assert!(matches!(e, Error::RiskControl { retcode: 1200, .. }), "{e}");

    // Once the faults are used up, the same calls succeed.
    bot.send_group_msg(GROUP, "hi".into()).await.unwrap();
}

#[tokio::test]
async fn undecodable_replies() {
    let fake = fake(None).await;
    let bot = client(&fake, None);
    fake.inject(
        "get_login_info",
        Fault::reply(json!("not an object")).times(1),
    );
    fake.inject(
        "get_login_info",
        Fault::reply(json!({"status": "ok", "retcode": 0, "data": null})).times(1),
    );
    fake.inject(
        "get_login_info",
        Fault::reply(json!({"status": "meh", "retcode": 0})).times(1),
    );
    for _ in 0..3 {
        let e = bot.get_login_info().await.unwrap_err();
        assert!(matches!(e, Error::Decode { .. }), "{e}");
    }
}

#[tokio::test]
async fn transport_failures() {
    let fake = fake(None).await;

    fake.inject("send_group_msg", Fault::drop_connection().times(1));
    let bot = client(&fake, None);
    let e = bot.send_group_msg(GROUP, "hi".into()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                kind: TransportKind::Reset,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Transient);
    // A dropped connection is not retried behind the caller's back: one request arrived.
    assert_eq!(fake.calls_of("send_group_msg").len(), 1);
    assert!(fake.messages().is_empty());

    fake.inject(
        "get_login_info",
        Fault::delay(Duration::from_secs(5)).times(1),
    );
    let impatient = client_with_timeout(&fake, None, Duration::from_millis(200));
    let e = impatient.get_login_info().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{e}"
    );

    // A port nobody listens on: bound, then closed at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let nobody = HttpClient::new(&url, Some(Secret::new("t")), Duration::from_secs(2)).unwrap();
    let e = nobody.get_login_info().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("onebot.api_url"), "{e}");
}

#[tokio::test]
async fn the_fake_follows_the_spec_for_raw_requests() {
    let fake = fake(Some("tok")).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let post = |action: &str| http.post(format!("{}/{action}", fake.url()));
    let status = |r: reqwest::Response| r.status().as_u16();

    let r = post("get_login_info")
        .bearer_auth("tok")
        .header("content-type", "text/plain")
        .body("{}");
    assert_eq!(status(r.send().await.unwrap()), 406);
    let r = post("get_login_info")
        .bearer_auth("tok")
        .header("content-type", "application/json")
        .body("{");
    assert_eq!(status(r.send().await.unwrap()), 400);
    let r = post("no_such_action")
        .bearer_auth("tok")
        .header("content-type", "application/json")
        .body("{}");
    assert_eq!(status(r.send().await.unwrap()), 404);
    let r = post("get_login_info")
        .header("content-type", "application/json")
        .body("{}");
    assert_eq!(status(r.send().await.unwrap()), 401);
    let r = post("get_login_info")
        .bearer_auth("tok")
        .header("content-type", "application/json");
    let body = r.body("{}").send().await.unwrap().bytes().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({"status": "ok", "retcode": 0, "data": {"user_id": BOT, "nickname": "celeriac-fake"}, "message": "", "wording": ""})
    );
}
