//! QQ group verification through the real binary: `celeriac onebot receive` takes signed
//! events from a OneBot implementation (here the fake, on 127.0.0.1), a `celeriac worker`
//! runs the jobs against the fake's HTTP API with an access token, and `celeriac verification`
//! shows the result. The token never appears in any output or log.

use crate::support::Env;
use celeriac_onebot::fake::{FakeOneBot, Fault, Target};
use celeriac_onebot::{sign, Role};
use celeriac_testkit::{free_port, wait_until};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

const TOKEN: &str = "tok-E2E-never-shown-7f3a9";
const SECRET: &str = "sig-E2E-secret-51c0";
const GROUP: i64 = 100;
const BOT: i64 = 10000;

/// POST `body` to `addr` with an optional `X-Signature`; the HTTP status.
fn post(addr: &str, body: &str, signature: Option<&str>) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the receiver");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let sig = signature
        .map(|v| format!("X-Signature: {v}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{sig}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn signed(body: &str) -> String {
    sign(SECRET.as_bytes(), body.as_bytes())
}

fn members(env: &Env) -> Vec<Value> {
    let out = env.ok(&["verification", "list", "--json"]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_end_to_end_through_the_receiver_and_a_worker() {
    let fake = FakeOneBot::builder()
        .self_id(BOT)
        .token(TOKEN)
        .group(
            GROUP,
            Role::Admin,
            &[(1001, Role::Member), (1002, Role::Member)],
        )
        .start()
        .await
        .unwrap();
    let mut env = Env::new(&format!(
        "[onebot]\napi_url = {:?}\nrate = 100.0\nkick_interval = \"10ms\"\n\n[verification]\nadmins = [9001]\nquiet_hours = \"\"\n",
        fake.url()
    ));
    env.process_env = vec![
        ("CELERIAC_ONEBOT__ACCESS_TOKEN".into(), TOKEN.into()),
        ("CELERIAC_ONEBOT__SECRET".into(), SECRET.into()),
    ];
    let addr = format!("127.0.0.1:{}", free_port());
    env.spawn_process(&["onebot", "receive", "--listen", &addr]);
    wait_until(Duration::from_secs(10), "the receiver to listen", || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    env.spawn_worker(&[]);

    // A join, delivered twice: one job, one welcome.
    let now = celeriac_db::now_ms() / 1000;
    let join = json!({"post_type": "notice", "notice_type": "group_increase", "sub_type": "approve",
        "time": now, "self_id": BOT, "group_id": GROUP, "user_id": 1001, "operator_id": 0});
    let body = join.to_string();
    assert_eq!(post(&addr, &body, Some(&signed(&body))), 204);
    let spaced = serde_json::to_string_pretty(&join).unwrap();
    assert_eq!(post(&addr, &spaced, Some(&signed(&spaced))), 204);
    let id = celeriac_verification::intake::event_job_id(&join);
    assert_eq!(
        env.wait_final(&id, Duration::from_secs(20))["state"],
        "succeeded"
    );
    wait_until(Duration::from_secs(10), "the welcome", || {
        fake.messages()
            .iter()
            .any(|m| m.target == Target::Group(GROUP))
    });
    let q = env.queue("default");
    assert_eq!(
        q["states"]["succeeded"], 1,
        "one job for both deliveries: {q}"
    );
    assert_eq!(fake.calls_of("set_group_ban").len(), 1);

    // Unsigned or forged events are refused and enqueue nothing; malformed ones are refused;
    // chat never becomes a job; an unknown event type is acknowledged and counted.
    let jobs = |env: &Env| -> i64 {
        let q = env.queue("default");
        q["states"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_i64).sum())
            .unwrap_or(0)
    };
    let before = jobs(&env);
    let other_join = json!({"post_type": "notice", "notice_type": "group_increase",
        "sub_type": "approve", "time": now, "self_id": BOT, "group_id": GROUP, "user_id": 1002,
        "operator_id": 0})
    .to_string();
    assert_eq!(post(&addr, &other_join, None), 401);
    assert_eq!(post(&addr, &other_join, Some("sha1=00")), 401);
    assert_eq!(post(&addr, &other_join, Some(&signed(&body))), 401);
    let chat = json!({"post_type": "message", "message_type": "group", "sub_type": "normal",
        "time": now, "self_id": BOT, "message_id": 5, "group_id": GROUP, "user_id": 1002,
        "message": "hello all", "raw_message": "hello all"})
    .to_string();
    assert_eq!(post(&addr, &chat, Some(&signed(&chat))), 204);
    assert_eq!(post(&addr, "{not json", Some(&signed("{not json"))), 400);
    let not_an_event = json!({"time": now, "self_id": BOT}).to_string();
    assert_eq!(
        post(&addr, &not_an_event, Some(&signed(&not_an_event))),
        400
    );
    let poke = json!({"time": now, "self_id": BOT, "post_type": "notice", "notice_type": "notify",
        "sub_type": "poke", "target_id": 2, "user_id": 3})
    .to_string();
    assert_eq!(post(&addr, &poke, Some(&signed(&poke))), 204);
    assert_eq!(
        jobs(&env),
        before,
        "nothing refused or ignored was enqueued"
    );
    let counts: Value = serde_json::from_str(&env.ok(&["onebot", "stats", "--json"])).unwrap();
    assert_eq!(
        counts,
        json!({"enqueued": 1, "duplicate": 1, "ignored": 1, "unknown": 1,
            "bad_signature": 3, "malformed": 2, "not_enqueued": 0}),
        "every delivery counted by what became of it"
    );

    let listed = members(&env);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "pending");
    let code = listed[0]["code"].as_str().unwrap().to_string();

    // A wrong answer whose hint OneBot refuses with a text echoing the token: the stored
    // error is scrubbed.
    fake.inject(
        "send_private_msg",
        Fault::failed(100, "SEND_FAILED", &format!("refused for token {TOKEN}")).times(10),
    );
    let wrong = if code == "111111" { "222222" } else { "111111" };
    let answer = |text: &str, id: i64| {
        json!({"post_type": "message", "message_type": "private", "sub_type": "group",
            "time": now, "self_id": BOT, "message_id": id, "user_id": 1001,
            "message": text, "raw_message": text})
        .to_string()
    };
    let b = answer(wrong, 6);
    assert_eq!(post(&addr, &b, Some(&signed(&b))), 204);
    wait_until(Duration::from_secs(20), "the wrong answer", || {
        members(&env)[0]["wrong_answers"] == 1
    });
    wait_until(Duration::from_secs(20), "the refused hint", || {
        !fake.calls_of("send_private_msg").is_empty()
    });
    fake.clear_faults();

    // The right code: verified, unmuted, welcome recalled.
    let b = answer(&format!("code {code}"), 7);
    assert_eq!(post(&addr, &b, Some(&signed(&b))), 204);
    wait_until(Duration::from_secs(20), "the member to be verified", || {
        members(&env)[0]["status"] == "verified"
    });
    wait_until(Duration::from_secs(10), "the unmute", || {
        fake.member(GROUP, 1001).is_some_and(|m| m.muted_for == 0)
    });
    let shown = env.ok(&["verification", "member", "100", "1001"]);
    assert!(
        shown.contains("verified") && shown.contains("unmute"),
        "{shown}"
    );
    let member_json = env.ok(&["verification", "member", "100", "1001", "--json"]);
    let stats = env.ok(&["verification", "stats"]);
    let groups = env.ok(&["verification", "groups", "--json"]);
    let g: Value = serde_json::from_str(&groups).unwrap();
    assert_eq!(g[0]["members"]["verified"], 1);
    let missing = env.cli(&["verification", "member", "100", "4242"]);
    assert_eq!(missing.status.code(), Some(1));
    let bad = env.cli(&["verification", "list", "--status", "done"]);
    assert_eq!(bad.status.code(), Some(2));

    // A dry run sends nothing and says why; a group can be switched off and on.
    let calls = fake.calls().len();
    let dry = env.ok(&["verification", "scan", "--dry-run"]);
    assert!(dry.contains("dry run: nothing is decided or sent"), "{dry}");
    let dry: Value = serde_json::from_str(&env.ok(&[
        "verification",
        "scan",
        "--group",
        "100",
        "--dry-run",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        dry,
        json!([{"group": 100, "stopped": false, "quiet": false, "actions": []}])
    );
    assert_eq!(fake.calls().len(), calls, "a dry run sends nothing");
    assert!(env
        .ok(&["verification", "groups", "disable", "100"])
        .contains("disabled"));
    let g: Value = serde_json::from_str(&env.ok(&["verification", "groups", "--json"])).unwrap();
    assert_eq!(g[0]["enabled"], false);
    assert!(env
        .ok(&["verification", "groups", "enable", "100"])
        .contains("enabled (active)"));
    let bad = env.cli(&["verification", "scan", "--json"]);
    assert_eq!(bad.status.code(), Some(2), "--json needs --dry-run");

    // A scan on demand runs (nothing is due).
    let scan = env.ok(&["verification", "scan"]).trim().to_string();
    assert_eq!(
        env.wait_final(&scan, Duration::from_secs(20))["state"],
        "succeeded"
    );

    // Help with examples.
    for cmd in ["list", "stats", "groups", "member", "scan"] {
        let help = env.ok(&["verification", cmd, "--help"]);
        assert!(help.contains("Examples:\n  celeriac "), "{cmd}: {help}");
    }
    for cmd in ["receive", "stats"] {
        assert!(env
            .ok(&["onebot", cmd, "--help"])
            .contains("Examples:\n  celeriac "));
    }

    // The token and the secret appear nowhere.
    let everything = format!(
        "{member_json}\n{stats}\n{groups}\n{shown}\n{}\n{}",
        String::from_utf8_lossy(&missing.stderr),
        env.worker_logs()
    );
    for secret in [TOKEN, SECRET] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
    assert!(
        env.worker_logs().contains("refused for token <redacted>"),
        "the refusal was logged, scrubbed:\n{}",
        env.worker_logs()
    );
}

/// QQ risk control on a reminder: the fake answers the group message with retcode 1200, the
/// account's breaker opens, and the `verification.group` job snoozes until the pause ends — not
/// an attempt — with the reminder left open, not marked sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_control_snoozes_the_group_job_without_spending_an_attempt() {
    let fake = FakeOneBot::builder()
        .self_id(BOT)
        .group(GROUP, Role::Admin, &[(1001, Role::Member)])
        .start()
        .await
        .unwrap();
    // A pause far longer than the test: the snoozed job stays scheduled while it is looked at.
    let mut env = Env::new(&format!(
        "[onebot]\napi_url = {:?}\nrate = 100.0\nkick_interval = \"10ms\"\nbreaker_open_for = \"1h\"\n\n[verification]\nadmins = [9001]\nquiet_hours = \"\"\n",
        fake.url()
    ));
    env.spawn_worker(&[]);

    // A member who joined 5 hours ago: the first reminder (4 h after the join) is due.
    let joined = celeriac_db::now_ms() / 1000 - 5 * 3600;
    let join = json!({"post_type": "notice", "notice_type": "group_increase", "sub_type": "approve",
        "time": joined, "self_id": BOT, "group_id": GROUP, "user_id": 1001, "operator_id": 0});
    let id = env.enqueue("verification.event", &join.to_string(), &[]);
    assert_eq!(
        env.wait_final(&id, Duration::from_secs(20))["state"],
        "succeeded"
    );
    let actions = |env: &Env| -> Value {
        let stats: Value =
            serde_json::from_str(&env.ok(&["verification", "stats", "--json"])).unwrap();
        stats["actions"].clone()
    };
    let before = actions(&env);
    assert_eq!(before["done"], 2, "the mute and the welcome: {before}");
    let messages = fake.messages().len();

    fake.inject(
        "send_group_msg",
        Fault::failed(1200, "", "send message failed"),
    );
    let group = env.enqueue(
        "verification.group",
        &json!({ "group": GROUP }).to_string(),
        &[],
    );
    let job = env.wait_state(&group, "scheduled", Duration::from_secs(20));
    assert_eq!(job["attempts"], 0, "a snooze is not an attempt: {job}");
    assert_eq!(
        fake.calls_of("send_group_msg").len(),
        2,
        "the welcome, then the refused reminder"
    );
    let after = actions(&env);
    assert_eq!(after["done"], before["done"], "nothing more sent: {after}");
    assert_eq!(after["pending"], 1, "the reminder waits, open: {after}");
    assert_eq!(fake.messages().len(), messages);
    assert!(
        env.worker_logs().contains("OneBot paused by risk control"),
        "{}",
        env.worker_logs()
    );
}
