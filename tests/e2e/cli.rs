//! CLI behaviour: exit codes, usage errors, queues and workers.

use crate::support::Env;
use std::time::Duration;

#[test]
fn usage_errors_exit_2_and_say_what_is_expected() {
    let env = Env::new("");
    let cases: [(&[&str], &str); 5] = [
        (&["enqueue", "noop", "--payload", "{oops"], "not valid JSON"),
        (
            &["enqueue", "noop", "--queue", "a{b}"],
            "invalid queue name",
        ),
        (&["enqueue", "noop", "--delay", "soon"], "duration"),
        (&["enqueue", "noop", "--at", "tomorrow"], "RFC 3339"),
        (
            &["jobs", "list", "--queue", "q", "--state", "done"],
            "expected one of",
        ),
    ];
    for (args, expect) in cases {
        let out = env.cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}

#[test]
fn unknown_job_exits_1() {
    let env = Env::new("");
    let out = env.cli(&["status", "does-not-exist"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job with id"));
}

#[test]
fn wait_times_out_with_exit_1() {
    let env = Env::new("");
    let id = env.enqueue("noop", "{}", &[]);
    let out = env.cli(&["status", &id, "--wait", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not finish"));
}

#[test]
fn bulk_enqueue_prints_every_id() {
    let env = Env::new("");
    let out = env.ok(&["enqueue", "noop", "--count", "2500", "--queue", "bulk"]);
    let ids: std::collections::HashSet<&str> = out.lines().collect();
    assert_eq!(ids.len(), 2500);
    let bulk = env.queue("bulk");
    assert_eq!(bulk["states"]["pending"], 2500);
    assert!(bulk["oldest_pending_age_ms"].is_u64(), "{bulk}");
}

#[test]
fn queues_and_workers_report_activity() {
    let mut env = Env::new("");
    env.spawn_worker(&["--queues", "default,other", "--concurrency", "3"]);
    let ok = env.enqueue("noop", "{}", &[]);
    let bad = env.enqueue("fail", "{}", &["--max-attempts", "1"]);
    env.wait_final(&ok, Duration::from_secs(20));
    env.wait_final(&bad, Duration::from_secs(20));
    let q = env.queue("default");
    assert_eq!(q["states"]["succeeded"], 1, "{q}");
    assert_eq!(q["states"]["dead"], 1, "{q}");
    assert_eq!(q["processed_last_minute"], 1, "{q}");
    assert_eq!(q["failed_last_minute"], 1, "{q}");
    assert_eq!(q["dead_by_reason"]["max_attempts"], 1, "{q}");
    let workers: serde_json::Value = serde_json::from_str(&env.ok(&["workers", "--json"])).unwrap();
    let w = &workers[0];
    assert_eq!(w["queues"], serde_json::json!(["default", "other"]));
    assert_eq!(w["concurrency"], 3);
    assert!(
        w["last_heartbeat"].is_string() && w["host"].is_string(),
        "{w}"
    );
    let table = env.ok(&["queues"]);
    assert!(
        table.contains("default") && table.contains("succeeded"),
        "{table}"
    );
}

#[test]
fn json_logs_carry_the_job_span() {
    let mut env = Env::new("");
    let w = env.spawn_worker(&["--log-format", "json"]);
    let id = env.enqueue(
        "fail",
        r#"{"message": "json please"}"#,
        &["--max-attempts", "1"],
    );
    env.wait_final(&id, Duration::from_secs(20));
    let log = env.worker(w).log_text();
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["error"] == "json please")
        .unwrap_or_else(|| panic!("no JSON log line for the failure in:\n{log}"));
    assert_eq!(line["span"]["id"], id.as_str(), "{line}");
    assert_eq!(line["span"]["kind"], "fail", "{line}");
    assert_eq!(line["span"]["attempt"], 1, "{line}");
    assert_eq!(line["level"], "ERROR", "{line}");
}
