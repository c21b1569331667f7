//! Message fan-out through the real binary: subscribe with the CLI, `fanout send --wait`
//! against local sinks (success, 500-then-200, 410), real workers retrying on the configured
//! schedule, the batch completing once, and an operator's retry after completion that changes
//! no batch counter.

use crate::support::Env;
use celeriac_testkit::{Response, TestHttp};
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Webhooks may reach the sinks on 127.0.0.1; retries come 200 ms apart, three attempts.
const CONFIG: &str = "[fanout]\nallow_private_networks = true\n[kinds.\"fanout.deliver\"]\nretry_schedule = [\"0s\", \"200ms\", \"200ms\"]\nretry_jitter = 0.0\n";

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn fanout_send_delivers_retries_disables_and_completes_once() {
    let mut env = Env::new(CONFIG);
    let sink = TestHttp::start().await;
    sink.route("/ok", |_| Response::ok());
    let n = Arc::new(AtomicU32::new(0));
    let seen = n.clone();
    sink.route("/flaky", move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Response::new(500)
        } else {
            Response::ok()
        }
    });
    sink.route("/gone", |_| Response::new(410));

    let out = env.ok(&["fanout", "subscribe", "news", "--webhook", &sink.url("/ok")]);
    assert!(
        out.contains("secret: whsec_"),
        "a secret is generated and shown: {out}"
    );
    for path in ["/flaky", "/gone"] {
        env.ok(&[
            "fanout",
            "subscribe",
            "news",
            "--webhook",
            &sink.url(path),
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ]);
    }
    env.ok(&["fanout", "subscribe", "news", "--onebot-user", "123"]);
    env.ok(&["fanout", "unsubscribe", "news", "--onebot-user", "123"]);
    let topics = json(&env.ok(&["fanout", "topics", "--json"]));
    assert_eq!(
        (topics[0]["name"].as_str(), topics[0]["active"].as_i64()),
        (Some("news"), Some(3)),
        "{topics}"
    );

    env.spawn_worker(&[]);
    let sent = env.cli(&[
        "fanout",
        "send",
        "news",
        "--message",
        "hello",
        "--id",
        "bc-1",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert_eq!(
        sent.status.code(),
        Some(1),
        "one delivery failed (410): {stdout}"
    );
    assert!(
        stdout.contains("delivered 2, failed 1, skipped 0, pending 0 of 3"),
        "{stdout}"
    );

    let status = json(&env.ok(&["fanout", "status", "bc-1", "--json"]));
    assert_eq!(
        (status["delivered"].as_i64(), status["failed"].as_i64()),
        (Some(2), Some(1)),
        "{status}"
    );
    assert!(status["failed_recipients"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("410"));
    let batch = status["batch"].clone();
    assert_eq!(
        (
            batch["total"].as_u64(),
            batch["succeeded"].as_u64(),
            batch["dead"].as_u64(),
            batch["pending"].as_u64()
        ),
        (Some(3), Some(2), Some(1), Some(0)),
        "{status}"
    );
    assert!(batch["completed_at"].is_string());
    assert_eq!(n.load(Ordering::SeqCst), 2, "the 500 was retried once");
    let ids: Vec<String> = sink
        .requests_to("/flaky")
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids[0], ids[1], "the same webhook-id on the retry");

    // The parent's status shows its batch.
    let parent = env.status("bc-1");
    assert_eq!(parent["batch"]["total"], 3, "{parent}");
    let subs = json(&env.ok(&["fanout", "subscribers", "news", "--json"]));
    let gone = subs
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"].as_str().unwrap().ends_with("/gone"))
        .unwrap();
    assert_eq!(gone["status"], "disabled", "{subs}");
    assert!(gone["disabled_reason"].as_str().unwrap().contains("410"));

    // An operator retries the failed delivery after completion: the batch counts nothing
    // again and does not complete again; the delivery, its subscriber disabled, ends skipped.
    let out = env.ok(&["fanout", "retry-failed", "bc-1"]);
    assert!(out.contains("1 failed deliveries"), "{out}");
    let key = status["failed_recipients"][0]["recipient"]
        .as_str()
        .unwrap()
        .to_string();
    env.wait_final(&format!("bc-1:{key}"), T);
    let after = json(&env.ok(&["fanout", "status", "bc-1", "--json"]));
    assert_eq!(after["batch"], batch, "batch counters unchanged");
    assert_eq!(
        (after["failed"].as_i64(), after["skipped"].as_i64()),
        (Some(0), Some(1)),
        "{after}"
    );
    assert_eq!(env.status("bc-1:complete")["attempts"], 1, "completed once");

    // Sending the same id again enqueues nothing new.
    env.ok(&[
        "fanout",
        "send",
        "news",
        "--message",
        "hello",
        "--id",
        "bc-1",
    ]);
    assert_eq!(
        json(&env.ok(&["fanout", "status", "bc-1", "--json"]))["batch"],
        batch
    );
    assert_eq!(sink.hits("/ok"), 1);

    // A broadcast whose id is not its job's: `status JOB` shows its batch all the same, and
    // `fanout status` finds it by the broadcast id.
    env.enqueue(
        "fanout.broadcast",
        r#"{"topic": "news", "message": "again", "broadcast_id": "bc-2"}"#,
        &["--id", "send-2"],
    );
    assert_eq!(env.wait_final("send-2", T)["state"], "succeeded");
    env.wait_final("bc-2:complete", T);
    let job = env.status("send-2");
    assert_eq!(job["spawned"]["id"], "bc-2", "{job}");
    assert_eq!(
        (job["batch"]["id"].as_str(), job["batch"]["total"].as_u64()),
        (Some("bc-2"), Some(2)),
        "the two active subscribers: {job}"
    );
    assert!(job["batch"]["completed_at"].is_string(), "{job}");
    let bc2 = json(&env.ok(&["fanout", "status", "bc-2", "--json"]));
    assert_eq!(bc2["batch"], job["batch"], "{bc2}");
    let human = env.ok(&["status", "send-2"]);
    assert!(human.contains("bc-2"), "{human}");
}

#[test]
fn fanout_errors_say_what_to_do() {
    let env = Env::new("");
    let out = env.cli(&["fanout", "send", "nowhere", "--message", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("celeriac fanout subscribe"), "{err}");
    let out = env.cli(&[
        "fanout",
        "subscribe",
        "t",
        "--webhook",
        "https://x.example/",
        "--secret",
        "nope",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.cli(&["fanout", "subscribe", "t"]);
    assert_eq!(out.status.code(), Some(2), "a target is required");
    let out = env.cli(&["fanout", "status", "missing"]);
    assert_eq!(out.status.code(), Some(1));
}
