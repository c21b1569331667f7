//! Bytes that are not UTF-8 where Celeriac expects text, written raw as a foreign producer or a
//! stray script might: a job id, a member of `P:queues`. Neither stops a command for the other
//! jobs or queues, and each is shown escaped (`\xff`).

use crate::support::Env;
use redis::Commands;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn a_job_id_that_is_not_utf8_is_dead_lettered_at_fetch_and_listed_escaped() {
    let mut env = Env::new("");
    let mut con = env.redis();
    let id: &[u8] = b"bad-\xff-id";
    let mut key = env.key("default", "job:").into_bytes();
    key.extend_from_slice(id);
    let msg = r#"{"v":1,"id":"bad","kind":"sleep","queue":"default","payload":{"ms":1},"created_at":1700000000000}"#;
    let _: () = con
        .hset_multiple(&key, &[("msg", msg), ("state", "pending")])
        .unwrap();
    let _: () = con.lpush(env.key("default", "pending"), id).unwrap();
    let _: () = con
        .sadd(format!("{}:queues", env.prefix), "default")
        .unwrap();
    env.spawn_worker(&[]);
    let good = env.enqueue("noop", "{}", &[]);
    assert_eq!(env.wait_final(&good, T)["state"], "succeeded");

    // Shown escaped, and found again by that form.
    let job = env.wait_final(r"bad-\xff-id", T);
    assert_eq!(job["id"], r"bad-\xff-id", "{job}");
    assert_eq!(job["reason"], "schema_error", "{job}");
    assert_eq!(job["attempts"], 0, "never leased, never run: {job}");
    let error = job["last_error"].as_str().unwrap();
    assert!(
        error.contains("not UTF-8") && error.contains("62 61 64 2d ff 2d 69 64"),
        "the error shows the id's bytes: {error}"
    );
    // The whole dead list of the queue still reads, human and JSON.
    let dead: Value = serde_json::from_str(&env.ok(&[
        "jobs", "list", "--queue", "default", "--state", "dead", "--json",
    ]))
    .unwrap();
    assert_eq!(dead.as_array().unwrap().len(), 1, "{dead}");
    let table = env.ok(&["jobs", "list", "--queue", "default", "--state", "dead"]);
    assert!(table.contains(r"bad-\xff-id"), "{table}");
    // And it can be purged like any dead job.
    env.ok(&["jobs", "purge", "--queue", "default", "--state", "dead"]);
    let left: bool = con.exists(&key).unwrap();
    assert!(!left, "purged");
}

#[test]
fn a_queue_name_that_is_not_utf8_is_skipped_and_reported() {
    let env = Env::new("");
    let id = env.enqueue("noop", "{}", &["--delay", "1h"]);
    let _: () = env
        .redis()
        .sadd(format!("{}:queues", env.prefix), &b"\xffbroken"[..])
        .unwrap();

    let out = env.cli(&["queues"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "queues: {stderr}");
    assert!(
        stderr.contains(r#""\xffbroken", which is not a queue name (it is not UTF-8)"#),
        "a warning names it escaped: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("default"));

    let all: Value = serde_json::from_str(&env.ok(&["queues", "--json"])).unwrap();
    let skipped: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| !q["skipped"].is_null())
        .collect();
    assert_eq!(skipped.len(), 1, "{all}");
    assert_eq!(skipped[0]["queue"], r"\xffbroken");
    assert_eq!(skipped[0]["skipped"], "it is not UTF-8");
    assert_eq!(env.queue("default")["skipped"], Value::Null);

    // Every command that searches the queues still works for the others.
    assert_eq!(env.status(&id)["state"], "scheduled");
    let retried = env.cli(&["jobs", "retry", &id]);
    assert!(retried.status.success(), "{retried:?}");
    let cancelled = env.cli(&["jobs", "cancel", &id]);
    assert!(cancelled.status.success(), "{cancelled:?}");
    assert_eq!(env.status(&id)["state"], "cancelled");
}
