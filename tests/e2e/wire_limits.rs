//! Every limit of the envelope in `docs/wire-format.md` §3, written raw into Redis as a foreign
//! producer would: the last value inside each limit runs, the first one past it is dead with
//! the documented reason and a message naming the limit; `status` shows each.

use crate::support::Env;
use redis::Commands;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn raw(env: &Env, id: &str, msg: &str) {
    let mut con = env.redis();
    let _: () = con
        .hset_multiple(
            env.key("default", &format!("job:{id}")),
            &[("msg", msg), ("state", "pending")],
        )
        .unwrap();
    let _: () = con.lpush(env.key("default", "pending"), id).unwrap();
}

fn envelope(id: &str, extra: &str) -> String {
    format!(
        r#"{{"v":1,"id":"{id}","kind":"noop","queue":"default","payload":{{}},"created_at":1700000000000{extra}}}"#
    )
}

fn nested(id: &str, levels: usize) -> String {
    // The envelope is one level; the payload's arrays are the others.
    let n = levels - 1;
    envelope(id, "").replace(
        r#""payload":{}"#,
        &format!(r#""payload":{}{}"#, "[".repeat(n), "]".repeat(n)),
    )
}

#[test]
fn each_envelope_limit_holds_as_documented() {
    let mut env = Env::new("");
    let _: () = env
        .redis()
        .sadd(format!("{}:queues", env.prefix), "default")
        .unwrap();
    // (id, stored msg, state, reason, a word the error must contain)
    let cases: Vec<(&str, String, &str, Option<&str>, &str)> = vec![
        (
            "timeout-1",
            envelope("timeout-1", r#","timeout_ms":1"#),
            "succeeded",
            None,
            "",
        ),
        (
            "timeout-0",
            envelope("timeout-0", r#","timeout_ms":0"#),
            "dead",
            Some("schema_error"),
            "from 1 to",
        ),
        (
            "attempts-max",
            envelope("attempts-max", r#","max_attempts":4294967295"#),
            "succeeded",
            None,
            "",
        ),
        (
            "attempts-over",
            envelope("attempts-over", r#","max_attempts":4294967296"#),
            "dead",
            Some("schema_error"),
            "4294967295",
        ),
        (
            "created-max",
            envelope("created-max", "").replace("1700000000000", "18446744073709551615"),
            "succeeded",
            None,
            "",
        ),
        (
            "created-over",
            envelope("created-over", "").replace("1700000000000", "18446744073709551616"),
            "dead",
            Some("schema_error"),
            "created_at",
        ),
        (
            "v-negative",
            envelope("v-negative", "").replace(r#""v":1"#, r#""v":-1"#),
            "dead",
            Some("unsupported_version"),
            "version -1",
        ),
        (
            "v-huge",
            envelope("v-huge", "").replace(r#""v":1"#, r#""v":123456789012345678901234567890"#),
            "dead",
            Some("unsupported_version"),
            "version",
        ),
        (
            "v-fraction",
            envelope("v-fraction", "").replace(r#""v":1"#, r#""v":1.5"#),
            "dead",
            Some("schema_error"),
            "whole number",
        ),
        ("nest-127", nested("nest-127", 127), "succeeded", None, ""),
        (
            "nest-128",
            nested("nest-128", 128),
            "dead",
            Some("decode_error"),
            "127 levels",
        ),
        (
            "bom",
            format!("\u{feff}{}", envelope("bom", "")),
            "succeeded",
            None,
            "",
        ),
        (
            "surrogate",
            envelope("surrogate", "").replace(r#""payload":{}"#, r#""payload":"\ud800""#),
            "dead",
            Some("decode_error"),
            "surrogate",
        ),
        (
            "dup-kind",
            envelope("dup-kind", r#","kind":"fail""#),
            "dead",
            Some("schema_error"),
            "`kind` appears twice",
        ),
        (
            "dup-payload",
            envelope("dup-payload", "").replace(r#""payload":{}"#, r#""payload":{"a":1,"a":2}"#),
            "succeeded",
            None,
            "",
        ),
    ];
    for (id, msg, ..) in &cases {
        raw(&env, id, msg);
    }
    env.spawn_worker(&[]);
    for (id, _, state, reason, word) in &cases {
        let job = env.wait_final(id, T);
        assert_eq!(job["state"], *state, "{id}: {job}");
        assert_eq!(job["reason"].as_str(), *reason, "{id}: {job}");
        let error = job["last_error"].as_str().unwrap_or("");
        assert!(
            error.contains(word),
            "{id}: the error names the limit: {job}"
        );
    }
    // Readers show what they cannot show as a time, and the kind behind a byte-order mark.
    let created = env.status("created-max");
    assert!(
        created["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with("(out of range)")),
        "{created}"
    );
    assert_eq!(env.status("bom")["kind"], "noop");
    assert_eq!(
        env.status("dup-payload")["payload"],
        serde_json::json!({"a": 2})
    );
    env.ok(&["jobs", "list", "--queue", "default", "--state", "dead"]);
}
