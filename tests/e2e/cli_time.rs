//! Times at the CLI: run-at limits and time zones at `enqueue`, and stored times the CLI
//! cannot show as RFC 3339 (past year 9999, in µs or ns by mistake) shown as they are.

use crate::support::Env;
use redis::Commands;
use serde_json::Value;

/// A job record written raw, as a foreign producer (or a bug) might, indexed in `index` with
/// `score`.
fn foreign_job(env: &Env, id: &str, envelope: &str, state: &str, index: &str, score: &str) {
    let mut con = env.redis();
    let _: () = con
        .hset_multiple(
            env.key("default", &format!("job:{id}")),
            &[("msg", envelope), ("state", state)],
        )
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(env.key("default", index))
        .arg(score)
        .arg(id)
        .query(&mut con)
        .unwrap();
    let _: () = con
        .sadd(format!("{}:queues", env.prefix), "default")
        .unwrap();
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// issue 10.1: a delay past year 9999 is refused at enqueue, and nothing is written.
#[test]
fn enqueue_refuses_run_at_times_past_the_limit() {
    let env = Env::new("");
    for args in [
        &["enqueue", "noop", "--delay", "999999999999d"][..],
        &["enqueue", "noop", "--at", "9999-12-31T23:59:59.999-01:00"],
    ] {
        let out = env.cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("9999-12-31T23:59:59.999Z"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let scheduled: usize = env.redis().zcard(env.key("default", "scheduled")).unwrap();
    assert_eq!(scheduled, 0, "a refused enqueue wrote nothing");
    // The limit itself is accepted.
    let id = env.enqueue("noop", "{}", &["--at", "9999-12-31T23:59:59.999Z"]);
    assert_eq!(env.status(&id)["run_at"], "9999-12-31T23:59:59.999Z");
}

// issue 10.1: stored times the worker accepts never crash a reader; they are shown as they are,
// flagged, and hide no other job.
#[test]
fn out_of_range_stored_times_are_shown_flagged() {
    let env = Env::new("");
    let normal = env.enqueue("noop", "{}", &["--delay", "1h"]);
    // A run-at 999999999999 days away, as `enqueue --delay 999999999999d` used to write it.
    foreign_job(
        &env,
        "far",
        r#"{"v":1,"id":"far","kind":"noop","queue":"default","created_at":1767261000000}"#,
        "scheduled",
        "scheduled",
        "86399999999913600000",
    );
    // created_at in nanoseconds, and a dead job (kept for the whole dead retention).
    foreign_job(
        &env,
        "nanos",
        r#"{"v":1,"id":"nanos","kind":"noop","queue":"default","created_at":1767261000000000000}"#,
        "dead",
        "dead",
        "1767261000000",
    );
    let far = env.status("far");
    // The score as Redis keeps it (a double), flagged.
    assert_eq!(
        far["run_at"], "8.6399999999913607e+19 ms (out of range)",
        "{far}"
    );
    assert_eq!(far["created_at"], "2026-01-01T09:50:00.000Z", "{far}");
    let nanos = env.status("nanos");
    assert_eq!(
        nanos["created_at"], "1767261000000000000 ms (out of range)",
        "{nanos}"
    );
    let human = env.ok(&["status", "far"]);
    assert!(
        human.contains("8.6399999999913607e+19 ms (out of range)"),
        "{human}"
    );

    let scheduled: Value = serde_json::from_str(&env.ok(&[
        "jobs",
        "list",
        "--queue",
        "default",
        "--state",
        "scheduled",
        "--json",
    ]))
    .unwrap();
    let ids: Vec<&str> = scheduled
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [normal.as_str(), "far"], "no scheduled job is hidden");
    let table = env.ok(&["jobs", "list", "--queue", "default", "--state", "scheduled"]);
    assert!(table.contains(&normal) && table.contains("far"), "{table}");
    let table = env.ok(&["jobs", "list", "--queue", "default", "--state", "dead"]);
    assert!(
        table.contains("1767261000000000000 ms (out of range)"),
        "{table}"
    );
}

// issue 10.2: every RFC 3339 offset is accepted; a time without a zone is refused with a
// message that shows how to write one; times before 1970 are in the past (the job runs now).
#[test]
fn at_takes_offsets_and_refuses_a_missing_zone() {
    let env = Env::new("");
    for (at, utc) in [
        ("2999-12-01T08:00:00+01:00", "2999-12-01T07:00:00.000Z"),
        ("2999-12-01T08:00:00.25-09:30", "2999-12-01T17:30:00.250Z"),
        ("2999-12-01t08:00:00z", "2999-12-01T08:00:00.000Z"),
    ] {
        let id = env.enqueue("noop", "{}", &["--at", at]);
        let job = env.status(&id);
        assert_eq!(job["state"], "scheduled", "{at}: {job}");
        assert_eq!(job["run_at"], utc, "{at}");
    }

    let out = env.cli(&["enqueue", "noop", "--at", "2999-12-01T08:00:00"]);
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(message.contains("no time zone"), "{message}");
    assert!(
        message.contains("2999-12-01T08:00:00Z") && message.contains("2999-12-01T08:00:00+01:00"),
        "{message}"
    );

    let id = env.enqueue("noop", "{}", &["--at", "1969-07-20T20:17:40Z"]);
    assert_eq!(env.status(&id)["state"], "pending", "a past time runs now");
}
