//! Bad input written raw into Redis, as a foreign service might, beyond the payloads of
//! `poison.rs`: each is dead-lettered with a named reason, refused with a clear error, or
//! survived — never a crash, a silent drop or a stalled sweep.

use crate::support::Env;
use celeriac_testkit::wait_until;
use redis::Commands;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn raw_job(env: &Env, id: &str, envelope: &str, state: &str) {
    let mut con = env.redis();
    let _: () = con
        .hset_multiple(
            env.key("default", &format!("job:{id}")),
            &[("msg", envelope), ("state", state)],
        )
        .unwrap();
    let _: () = con
        .sadd(format!("{}:queues", env.prefix), "default")
        .unwrap();
}

fn push(env: &Env, id: &str) {
    let _: () = env
        .redis()
        .lpush(env.key("default", "pending"), id)
        .unwrap();
}

fn envelope(id: &str, extra: &str) -> String {
    format!(
        r#"{{"v":1,"id":"{id}","kind":"noop","queue":"default","payload":{{}},"created_at":1700000000000{extra}}}"#
    )
}

#[test]
fn mistyped_envelope_fields_are_schema_errors() {
    let mut env = Env::new("");
    let cases = [
        ("attempts-zero", r#","max_attempts":0"#),
        ("attempts-negative", r#","max_attempts":-2"#),
        ("run-at-text", r#","run_at":"tomorrow""#),
        ("run-at-negative", r#","run_at":-5"#),
        ("timeout-zero", r#","timeout_ms":0"#),
    ];
    for (id, extra) in cases {
        raw_job(&env, id, &envelope(id, extra), "pending");
        push(&env, id);
    }
    env.spawn_worker(&[]);
    for (id, _) in cases {
        let job = env.wait_final(id, T);
        assert_eq!(
            (job["state"].as_str(), job["reason"].as_str()),
            (Some("dead"), Some("schema_error")),
            "{id}: {job}"
        );
    }
}

#[test]
fn huge_arrays_within_the_cap_run_and_over_it_are_too_large() {
    let mut env = Env::new("");
    let small = format!("[{}]", vec!["1"; 200_000].join(","));
    let big = format!("[{}]", vec!["1"; 700_000].join(","));
    raw_job(
        &env,
        "array-ok",
        &envelope("array-ok", "").replace(r#""payload":{}"#, &format!(r#""payload":{small}"#)),
        "pending",
    );
    raw_job(
        &env,
        "array-big",
        &envelope("array-big", "").replace(r#""payload":{}"#, &format!(r#""payload":{big}"#)),
        "pending",
    );
    push(&env, "array-ok");
    push(&env, "array-big");
    env.spawn_worker(&[]);
    assert_eq!(env.wait_final("array-ok", T)["state"], "succeeded");
    let big = env.wait_final("array-big", T);
    assert_eq!(big["reason"], "too_large", "{big}");
}

#[test]
fn run_at_far_future_or_past_scores_are_survived() {
    let mut env = Env::new("");
    let mut con = env.redis();
    for (id, score) in [
        ("year-9999", 253_402_300_799_000f64),
        ("negative", -1_000.0),
    ] {
        raw_job(&env, id, &envelope(id, ""), "scheduled");
        let _: () = con
            .zadd(env.key("default", "scheduled"), id, score)
            .unwrap();
    }
    env.spawn_worker(&[]);
    assert_eq!(
        env.wait_final("negative", T)["state"],
        "succeeded",
        "a past run-at runs at once"
    );
    let far = env.status("year-9999");
    assert_eq!(far["state"], "scheduled");
    assert!(
        far["run_at"].as_str().unwrap().starts_with("9999-12-31"),
        "{far}"
    );
    // An operator can run it now.
    env.ok(&["jobs", "retry", "year-9999"]);
    assert_eq!(env.wait_final("year-9999", T)["state"], "succeeded");
}

#[test]
fn an_id_pushed_twice_runs_once() {
    let mut env = Env::new("");
    raw_job(&env, "twice", &envelope("twice", ""), "pending");
    push(&env, "twice");
    push(&env, "twice");
    env.spawn_worker(&[]);
    let job = env.wait_final("twice", T);
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["attempts"], 1, "{job}");
    wait_until(T, "the second push to be consumed", || {
        let n: usize = env.redis().llen(env.key("default", "pending")).unwrap();
        n == 0
    });
    assert_eq!(env.status("twice")["attempts"], 1);
}

#[test]
fn foreign_keys_of_the_wrong_type_do_not_stop_the_worker() {
    let mut env = Env::new("");
    let mut con = env.redis();
    // The pending list of one queue is a string; a job key of another is a list.
    let _: () = con.set(env.key("broken", "pending"), "not a list").unwrap();
    let _: () = con
        .rpush(env.key("default", "job:list-record"), "x")
        .unwrap();
    push(&env, "list-record");
    env.spawn_worker(&["--queues", "broken,default"]);
    let id = env.enqueue("noop", "{}", &[]);
    assert_eq!(
        env.wait_final(&id, T)["state"],
        "succeeded",
        "the healthy queue keeps working"
    );
    let log = env.worker(0).log_text();
    assert!(
        log.contains("fetch failed") && log.contains("broken"),
        "the broken queue is reported: {log}"
    );
    let stats: std::collections::HashMap<String, u64> =
        con.hgetall(env.key("default", "stats")).unwrap();
    assert_eq!(
        stats.get("strays"),
        Some(&1),
        "the foreign record is counted: {stats:?}"
    );
    assert_eq!(env.queue("default")["strays"], 1, "and shown");
    let _: () = con.del(env.key("broken", "pending")).unwrap();
}

#[test]
fn script_flush_during_load_is_survived() {
    let mut env = Env::new("");
    env.spawn_worker(&["--concurrency", "20"]);
    let out = env.ok(&[
        "enqueue",
        "sleep",
        "--payload",
        r#"{"ms": 20}"#,
        "--count",
        "300",
    ]);
    let ids: Vec<&str> = out.lines().collect();
    for _ in 0..5 {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut env.redis())
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let more = env.enqueue("noop", "{}", &[]);
    for id in ids.iter().copied().chain([more.as_str()]) {
        assert_eq!(env.wait_final(id, T)["state"], "succeeded", "{id}");
    }
}
