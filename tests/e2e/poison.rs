//! Bad payloads written raw into Redis, as a foreign producer might: each ends dead with its
//! reason, is counted, and the worker keeps working.

use crate::support::Env;
use redis::Commands;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn envelope(id: &str, kind: &str) -> String {
    format!(
        r#"{{"v":1,"id":"{id}","kind":"{kind}","queue":"default","payload":{{}},"created_at":1700000000000}}"#
    )
}

#[test]
fn poison_payloads_end_dead_with_their_reason() {
    let mut env = Env::new("[jobs]\nmax_payload_bytes = 4096\n");
    let mut con = env.redis();
    let big = format!(
        r#"{{"v":1,"id":"big","kind":"noop","queue":"default","created_at":1,"payload":"{}"}}"#,
        "x".repeat(10_000)
    );
    let deep = format!(
        r#"{{"v":1,"id":"deep","kind":"noop","queue":"default","created_at":1,"payload":{}{}}}"#,
        "[".repeat(1500),
        "]".repeat(1500)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "invalid-json",
            b"{this is not json".to_vec(),
            "decode_error",
        ),
        (
            "truncated",
            envelope("truncated", "noop").as_bytes()[..30].to_vec(),
            "decode_error",
        ),
        (
            "not-utf8",
            vec![0xff, 0xfe, 0xfd, b'{', 0x80],
            "decode_error",
        ),
        ("binary", (0u8..=255).collect(), "decode_error"),
        ("deep", deep.into_bytes(), "decode_error"),
        (
            "wrong-shape",
            br#"{"v":1,"kind":["noop"],"payload":3}"#.to_vec(),
            "schema_error",
        ),
        ("no-version", br#"{"kind":"noop"}"#.to_vec(), "schema_error"),
        (
            "unknown-kind",
            envelope("unknown-kind", "no.such.kind").into_bytes(),
            "unknown_kind",
        ),
        (
            "future",
            br#"{"v":2,"id":"future","kind":"noop"}"#.to_vec(),
            "unsupported_version",
        ),
        ("big", big.into_bytes(), "too_large"),
    ];
    let pending = env.key("default", "pending");
    for (id, body, _) in &cases {
        let _: () = con
            .hset_multiple(
                env.key("default", &format!("job:{id}")),
                &[("msg", body.as_slice()), ("state", b"pending".as_slice())],
            )
            .unwrap();
        let _: () = con.lpush(&pending, id).unwrap();
    }
    // An id with no record, and an envelope pushed where an id belongs.
    let _: () = con.lpush(&pending, "no-record").unwrap();
    let _: () = con.lpush(&pending, envelope("x", "noop")).unwrap();
    let _: () = con
        .sadd(format!("{}:queues", env.prefix), "default")
        .unwrap();

    env.spawn_worker(&[]);
    let good = env.enqueue("noop", "{}", &[]);
    assert_eq!(
        env.wait_final(&good, T)["state"],
        "succeeded",
        "the worker keeps working"
    );
    for (id, _, reason) in &cases {
        let job = env.wait_final(id, T);
        assert_eq!(job["state"], "dead", "{id}: {job}");
        assert_eq!(job["reason"], *reason, "{id}: {job}");
        assert!(
            job["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{id}: {job}"
        );
    }
    let orphan = env.wait_final("no-record", T);
    assert_eq!(orphan["reason"], "schema_error");
    assert!(
        orphan["last_error"]
            .as_str()
            .unwrap()
            .contains("no job record"),
        "{orphan}"
    );

    let q = env.queue("default");
    assert_eq!(q["dead_by_reason"]["decode_error"], 5, "{q}");
    assert_eq!(q["dead_by_reason"]["schema_error"], 4, "{q}");
    assert_eq!(q["dead_by_reason"]["unknown_kind"], 1, "{q}");
    assert_eq!(q["dead_by_reason"]["unsupported_version"], 1, "{q}");
    assert_eq!(q["dead_by_reason"]["too_large"], 1, "{q}");
    let log = env.worker_logs();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn oversized_payload_is_refused_at_enqueue() {
    let env = Env::new("[jobs]\nmax_payload_bytes = 1024\n");
    let payload = format!(r#"{{"blob": "{}"}}"#, "y".repeat(2000));
    let out = env.cli(&["enqueue", "noop", "--payload", &payload]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("over the 1024-byte cap"), "{stderr}");
}

#[test]
fn records_in_states_no_producer_writes_end_dead_and_strays_leave_the_dead_set() {
    let mut env = Env::new("");
    let mut con = env.redis();
    let job = |id: &str| env.key("default", &format!("job:{id}"));
    let msg = envelope("typo", "noop");
    let _: () = con
        .hset_multiple(job("typo"), &[("msg", msg.as_str()), ("state", "Pending")])
        .unwrap();
    let _: () = con.lpush(env.key("default", "pending"), "typo").unwrap();
    let msg = envelope("later", "noop");
    let _: () = con
        .hset_multiple(job("later"), &[("msg", msg.as_str()), ("state", "delayed")])
        .unwrap();
    let _: () = con
        .zadd(env.key("default", "scheduled"), "later", 0)
        .unwrap();
    // A dead-set entry whose record is not dead must not make `retry --all-dead` loop.
    let _: () = con.zadd(env.key("default", "dead"), "stray", 0).unwrap();
    let _: () = con
        .sadd(format!("{}:queues", env.prefix), "default")
        .unwrap();

    env.spawn_worker(&[]);
    for id in ["typo", "later"] {
        let j = env.wait_final(id, T);
        assert_eq!(j["reason"], "schema_error", "{j}");
        assert!(
            j["last_error"].as_str().unwrap().contains("has state"),
            "{j}"
        );
    }
    let out = env.ok(&["jobs", "retry", "--all-dead", "--queue", "default"]);
    assert!(out.contains("requeued 2"), "{out}");
}
