//! A job's life: success, retries to dead, delay, idempotency, cancel, retry, purge.

use crate::support::Env;
use celeriac_testkit::wait_until;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn ms(rfc3339: &serde_json::Value) -> u64 {
    let s = rfc3339.as_str().expect("a timestamp");
    humantime::parse_rfc3339(s)
        .expect("RFC 3339")
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn enqueued_job_succeeds_with_its_history() {
    let mut env = Env::new("");
    env.spawn_worker(&[]);
    let id = env.enqueue("noop", "{}", &[]);
    let job = env.wait_final(&id, T);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "noop");
    assert_eq!(job["queue"], "default");
    assert_eq!(job["attempts"], 1);
    for field in ["created_at", "started_at", "finished_at"] {
        assert!(job[field].is_string(), "{field} missing: {job}");
    }
    assert!(ms(&job["created_at"]) <= ms(&job["started_at"]) + 5);
    assert!(ms(&job["started_at"]) <= ms(&job["finished_at"]));
    let history = job["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{job}");
    assert_eq!(history[0]["outcome"], "succeeded");
    assert!(history[0]["worker"].is_string());
}

#[test]
fn failing_job_retries_with_backoff_then_dies_with_its_error() {
    let mut env = Env::new("[kinds.fail]\nmax_attempts = 3\n");
    env.spawn_worker(&[]);
    let id = env.enqueue("fail", r#"{"message": "upstream said no"}"#, &[]);
    let job = env.wait_final(&id, T);
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["reason"], "max_attempts");
    assert_eq!(job["last_error"], "upstream said no");
    assert_eq!(job["attempts"], 3);
    assert_eq!(job["max_attempts"], 3);
    let history = job["history"].as_array().unwrap();
    let outcomes: Vec<&str> = history
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "dead"], "{job}");
    // Each retry starts after the previous attempt ended, within the backoff cap (200 ms) plus
    // the promotion period (50 ms) and scheduling slack.
    for pair in history.windows(2) {
        let gap = ms(&pair[1]["started_at"]) as i64 - ms(&pair[0]["finished_at"]) as i64;
        assert!((0..2_000).contains(&gap), "gap {gap} ms: {job}");
    }
}

#[test]
fn fail_with_times_succeeds_after_n_failures() {
    let mut env = Env::new("");
    env.spawn_worker(&[]);
    let id = env.enqueue(
        "fail",
        r#"{"times": 2, "message": "flaky"}"#,
        &["--max-attempts", "5"],
    );
    let job = env.wait_final(&id, T);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 3);
}

#[test]
fn delayed_job_never_runs_early() {
    let mut env = Env::new("");
    env.spawn_worker(&[]);
    let id = env.enqueue("noop", "{}", &["--delay", "1500ms"]);
    let scheduled = env.status(&id);
    assert_eq!(scheduled["state"], "scheduled", "{scheduled}");
    assert!(scheduled["run_at"].is_string(), "{scheduled}");
    let at = humantime::format_rfc3339_millis(
        std::time::SystemTime::now() + Duration::from_millis(1200),
    )
    .to_string();
    let id2 = env.enqueue("noop", "{}", &["--at", &at]);

    let job = env.wait_final(&id, T);
    assert_eq!(job["state"], "succeeded");
    let waited = ms(&job["started_at"]) - ms(&job["created_at"]);
    assert!(waited >= 1500, "ran after {waited} ms: {job}");

    let job2 = env.wait_final(&id2, T);
    assert!(
        ms(&job2["started_at"]) >= ms(&serde_json::json!(at)),
        "{job2}"
    );
}

#[test]
fn idempotency_key_returns_the_first_job() {
    let env = Env::new("");
    let first = env.enqueue("noop", "{}", &["--idempotency-key", "order-42"]);
    let second = env.ok(&["enqueue", "noop", "--idempotency-key", "order-42", "--json"]);
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second[0]["id"], first.as_str());
    assert_eq!(second[0]["created"], false);
    let other = env.enqueue("noop", "{}", &["--idempotency-key", "order-43"]);
    assert_ne!(other, first);
    // A caller-supplied id enqueued twice is one job.
    let a = env.enqueue("noop", "{}", &["--id", "fixed-1"]);
    let b = env.enqueue("noop", r#"{"other": true}"#, &["--id", "fixed-1"]);
    assert_eq!((a.as_str(), b.as_str()), ("fixed-1", "fixed-1"));
    assert_eq!(env.status("fixed-1")["payload"], serde_json::json!({}));
}

#[test]
fn cancel_is_idempotent_and_stops_running_jobs() {
    let mut env = Env::new("");
    let waiting = env.enqueue("noop", "{}", &["--delay", "1h"]);
    let out = env.ok(&["jobs", "cancel", &waiting]);
    assert!(out.contains("cancelled (was scheduled)"), "{out}");
    let again = env.ok(&["jobs", "cancel", &waiting]);
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(env.status(&waiting)["state"], "cancelled");
    let missing = env.cli(&["jobs", "cancel", "no-such-job"]);
    assert_eq!(missing.status.code(), Some(1));

    env.spawn_worker(&[]);
    let running = env.enqueue("sleep", r#"{"ms": 60000}"#, &[]);
    env.wait_state(&running, "active", T);
    env.ok(&["jobs", "cancel", &running]);
    // The worker notices at its next heartbeat and drops the handler: the slot frees up and
    // the job stays cancelled.
    let next = env.enqueue("noop", "{}", &[]);
    assert_eq!(env.wait_final(&next, T)["state"], "succeeded");
    wait_until(T, "the worker to stop the cancelled handler", || {
        env.worker(0).log_text().contains("lease gone")
    });
    assert_eq!(env.status(&running)["state"], "cancelled");
}

#[test]
fn dead_jobs_can_be_retried_one_by_one_or_all_at_once() {
    let mut env = Env::new("");
    env.spawn_worker(&[]);
    // Fails its first attempt; with one attempt allowed it is dead, and a retry succeeds.
    let id = env.enqueue("fail", r#"{"times": 1}"#, &["--max-attempts", "1"]);
    assert_eq!(env.wait_final(&id, T)["state"], "dead");
    let out = env.ok(&["jobs", "retry", &id]);
    assert!(out.contains("requeued (was dead)"), "{out}");
    let job = env.wait_final(&id, T);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2);

    let ids: Vec<String> = (0..3)
        .map(|_| env.enqueue("fail", r#"{"times": 1}"#, &["--max-attempts", "1"]))
        .collect();
    for id in &ids {
        assert_eq!(env.wait_final(id, T)["state"], "dead");
    }
    let out = env.ok(&["jobs", "retry", "--all-dead", "--queue", "default"]);
    assert!(out.contains("requeued 3"), "{out}");
    for id in &ids {
        assert_eq!(env.wait_final(id, T)["state"], "succeeded");
    }
}

#[test]
fn purge_and_list_by_state() {
    let env = Env::new("");
    let ids: Vec<String> = (0..3)
        .map(|_| env.enqueue("noop", "{}", &["--queue", "q1"]))
        .collect();
    let listed: serde_json::Value = serde_json::from_str(&env.ok(&[
        "jobs", "list", "--queue", "q1", "--state", "pending", "--json",
    ]))
    .unwrap();
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "oldest first"
    );
    let out = env.ok(&["jobs", "purge", "--queue", "q1", "--state", "pending"]);
    assert!(out.contains("purged 3"), "{out}");
    assert_eq!(env.cli(&["status", &ids[0]]).status.code(), Some(1));
    let bad = env.cli(&["jobs", "purge", "--queue", "q1", "--state", "active"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn retention_bounds_finished_jobs_by_count_and_age() {
    let mut env =
        Env::new("[retention]\nsucceeded_max = 3\nsucceeded_ttl = \"2s\"\ndead_max = 2\n");
    env.spawn_worker(&[]);
    let ok: Vec<String> = (0..5).map(|_| env.enqueue("noop", "{}", &[])).collect();
    let dead: Vec<String> = (0..4)
        .map(|_| env.enqueue("fail", "{}", &["--max-attempts", "1"]))
        .collect();
    // Wait until every job has been recorded (count trimming happens as outcomes arrive).
    wait_until(T, "all outcomes to be recorded", || {
        let q = env.queue("default");
        q["processed_total"] == 5 && q["failed_total"] == 4
    });
    let q = env.queue("default");
    assert_eq!(q["states"]["succeeded"], 3, "count bound: {q}");
    assert_eq!(q["states"]["dead"], 2, "count bound: {q}");
    // The newest are kept, the oldest deleted with their records.
    assert_eq!(env.status(&ok[4])["state"], "succeeded");
    assert_eq!(env.cli(&["status", &ok[0]]).status.code(), Some(1));
    assert_eq!(env.cli(&["status", &dead[0]]).status.code(), Some(1));
    // Age bound: the janitor (every 1 s here) deletes succeeded jobs older than 2 s.
    wait_until(T, "the janitor to apply the age limit", || {
        env.cli(&["status", &ok[4]]).status.code() == Some(1)
    });
    assert_eq!(
        env.status(&dead[3])["state"],
        "dead",
        "dead jobs keep their own, longer age limit"
    );
}
