//! The envelope's encoding and its two decoders: the one pass and the full checks.

use super::*;
use proptest::prelude::*;

fn sample() -> Envelope {
    Envelope {
        v: 1,
        id: "01J0000000000000000000000".into(),
        kind: "noop".into(),
        queue: "default".into(),
        payload: serde_json::json!({"a": 1}),
        max_attempts: Some(3),
        timeout_ms: None,
        created_at: 1_700_000_000_000,
        run_at: None,
        idempotency_key: None,
    }
}

/// Field names for the generated objects: every envelope field and two unknown ones.
const KEYS: [&str; 12] = [
    "v",
    "id",
    "kind",
    "queue",
    "payload",
    "max_attempts",
    "timeout_ms",
    "created_at",
    "run_at",
    "idempotency_key",
    "x",
    "trace",
];
/// Values for them: right for some fields, wrong for others, at the edges of the ranges.
const VALUES: [&str; 15] = [
    "1",
    "1",
    "\"noop\"",
    "0",
    "-1",
    "1.0",
    "1e0",
    "\"\"",
    "null",
    "true",
    "[]",
    "{\"a\":[1,2]}",
    "4294967296",
    "18446744073709551615",
    "\"\\u00e9t\u{e9}\"",
];

#[test]
fn a_well_formed_envelope_with_unknown_fields_takes_the_one_pass() {
    let text =
        r#"{"v":1,"id":"a","kind":"noop","queue":"q","created_at":5,"trace":{"x":1},"x":null}"#;
    let env = fast::decode(text.as_bytes()).expect("well formed");
    assert_eq!(env.kind, "noop");
    assert_eq!(decode(text).unwrap(), env);
    // An unknown field given twice is refused by both, with the full checks' message.
    let twice = r#"{"v":1,"id":"a","kind":"noop","queue":"q","created_at":5,"x":1,"x":2}"#;
    assert!(fast::decode(twice.as_bytes()).is_none());
    let e = decode(twice).unwrap_err();
    assert_eq!(e.reason, DeadReason::SchemaError);
    assert!(e.message.contains("`x` appears twice"), "{e}");
    // Out of range for the full checks: left to them.
    let zero = r#"{"v":1,"id":"a","kind":"noop","queue":"q","created_at":5,"max_attempts":0}"#;
    assert!(fast::decode(zero.as_bytes()).is_none());
    assert_eq!(decode(zero).unwrap_err().reason, DeadReason::SchemaError);
}

fn decode(s: &str) -> Result<Envelope, DecodeError> {
    Envelope::decode(s.as_bytes(), s.len(), 1 << 20)
}

#[test]
fn encode_leaves_out_absent_fields() {
    let s = sample().encode();
    assert!(!s.contains("timeout_ms"), "{s}");
    assert!(!s.contains("run_at"), "{s}");
    assert_eq!(decode(&s).unwrap(), sample());
}

#[test]
fn each_bad_input_has_its_reason() {
    let cases = [
        ("{not json", DeadReason::DecodeError),
        ("", DeadReason::DecodeError),
        ("[1,2]", DeadReason::SchemaError),
        (r#"{"kind":"noop"}"#, DeadReason::SchemaError),
        (r#"{"v":"1","kind":"noop"}"#, DeadReason::SchemaError),
        (
            r#"{"v":1,"id":"x","kind":5,"queue":"q","created_at":1}"#,
            DeadReason::SchemaError,
        ),
        (
            r#"{"v":1,"id":"x","kind":"","queue":"q","created_at":1}"#,
            DeadReason::SchemaError,
        ),
        (
            r#"{"v":1,"id":"x","kind":"k","queue":"q","created_at":1,"max_attempts":0}"#,
            DeadReason::SchemaError,
        ),
        (
            r#"{"v":1,"id":"x","kind":"k","queue":"q","created_at":1,"max_attempts":-3}"#,
            DeadReason::SchemaError,
        ),
        (
            r#"{"v":2,"id":"x","kind":"noop"}"#,
            DeadReason::UnsupportedVersion,
        ),
    ];
    for (input, reason) in cases {
        let err = decode(input).expect_err(input);
        assert_eq!(err.reason, reason, "{input}: {err}");
    }
    let bytes = [0xff, 0xfe, 0x00, 0x80];
    assert_eq!(
        Envelope::decode(&bytes, 4, 100).unwrap_err().reason,
        DeadReason::DecodeError
    );
    assert_eq!(
        Envelope::decode(b"", 2_000_000, 1 << 20)
            .unwrap_err()
            .reason,
        DeadReason::TooLarge
    );
}

#[test]
fn every_documented_limit() {
    let env =
        |extra: &str| format!(r#"{{"v":1,"id":"x","kind":"k","queue":"q","created_at":1{extra}}}"#);
    let ok = [
        env(r#","timeout_ms":1"#),
        env(r#","timeout_ms":18446744073709551615"#),
        env(r#","max_attempts":4294967295"#),
        env(r#","max_attempts":null,"run_at":null"#),
        env(r#","run_at":18446744073709551615"#),
        r#"{"v":1,"id":"x","kind":"k","queue":"q","created_at":18446744073709551615}"#.into(),
        r#"{"v":1.0,"id":"x","kind":"k","queue":"q","created_at":1}"#.into(),
        format!("\u{feff}{}", env("")),
        env(r#","payload":{"a":1,"a":2}"#),
    ];
    for input in &ok {
        decode(input).unwrap_or_else(|e| panic!("{input}: {e}"));
    }
    assert_eq!(decode(&ok[8]).unwrap().payload, serde_json::json!({"a": 2}));
    let bad = [
        (env(r#","timeout_ms":0"#), DeadReason::SchemaError),
        (
            env(r#","timeout_ms":18446744073709551616"#),
            DeadReason::SchemaError,
        ),
        (
            env(r#","max_attempts":4294967296"#),
            DeadReason::SchemaError,
        ),
        (env(r#","max_attempts":5.0"#), DeadReason::SchemaError),
        (env(r#","run_at":-1"#), DeadReason::SchemaError),
        (
            r#"{"v":1,"id":"x","kind":"k","queue":"q","created_at":18446744073709551616}"#.into(),
            DeadReason::SchemaError,
        ),
        (env(r#","kind":"other""#), DeadReason::SchemaError),
        (env(r#","payload":"\ud800""#), DeadReason::DecodeError),
        (
            r#"{"v":-1,"kind":"k"}"#.into(),
            DeadReason::UnsupportedVersion,
        ),
        (r#"{"v":0}"#.into(), DeadReason::UnsupportedVersion),
        (r#"{"v":2.0}"#.into(), DeadReason::UnsupportedVersion),
        (r#"{"v":1e3}"#.into(), DeadReason::UnsupportedVersion),
        (
            r#"{"v":123456789012345678901234567890}"#.into(),
            DeadReason::UnsupportedVersion,
        ),
        (r#"{"v":1.5}"#.into(), DeadReason::SchemaError),
        (r#"{"v":"1"}"#.into(), DeadReason::SchemaError),
        (r#"{"v":null}"#.into(), DeadReason::SchemaError),
        (r#""text""#.into(), DeadReason::SchemaError),
        ("\u{feff}\u{feff}{}".into(), DeadReason::DecodeError),
    ];
    for (input, reason) in &bad {
        let err = decode(input).expect_err(input);
        assert_eq!(err.reason, *reason, "{input}: {err}");
    }
    let err = decode(&bad[2].0).unwrap_err();
    assert!(err.message.contains("1 to 4294967295"), "{err}");
    let err = decode(&bad[6].0).unwrap_err();
    assert!(err.message.contains("`kind` appears twice"), "{err}");
}

#[test]
fn nesting_up_to_the_limit_decodes() {
    let nest = |levels: usize| {
        // The envelope object is one level, the payload's arrays the others.
        let inner = levels - 1;
        format!(
            r#"{{"v":1,"id":"x","kind":"k","queue":"q","created_at":1,"payload":{}{}}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        )
    };
    decode(&nest(MAX_NESTING)).unwrap();
    let err = decode(&nest(MAX_NESTING + 1)).unwrap_err();
    assert_eq!(err.reason, DeadReason::DecodeError);
    assert!(err.message.contains("nested deeper than 127"), "{err}");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let input =
        format!(r#"{{"v":1,"id":"x","kind":"k","queue":"q","created_at":1,"payload":{deep}}}"#);
    assert_eq!(decode(&input).unwrap_err().reason, DeadReason::DecodeError);
}

proptest! {
    #[test]
    fn round_trip(
        id in "[a-zA-Z0-9-]{1,40}",
        kind in "[a-z.]{1,20}",
        queue in "[a-z0-9_]{1,20}",
        n in any::<i64>(),
        text in ".{0,40}",
        max_attempts in proptest::option::of(1u32..1000),
        timeout_ms in proptest::option::of(any::<u64>()),
        created_at in any::<u64>(),
        run_at in proptest::option::of(any::<u64>()),
        key in proptest::option::of(".{1,20}"),
    ) {
        let env = Envelope {
            v: 1, id, kind, queue,
            payload: serde_json::json!({"n": n, "text": text}),
            max_attempts, timeout_ms, created_at, run_at, idempotency_key: key,
        };
        let s = env.encode();
        prop_assert_eq!(decode(&s).unwrap(), env);
    }

    /// A well-formed envelope changed in a few ways: a field set to a value right or
    /// wrong for it, at the edges of its range, removed, or given twice. Whatever the one
    /// pass accepts, the full checks accept as the same envelope (asserted inside `decode`
    /// in test builds), and both refuse the rest alike.
    #[test]
    fn the_one_pass_accepts_only_what_the_full_checks_accept(
        changes in proptest::collection::vec(
            (0usize..KEYS.len(), proptest::option::of(0usize..VALUES.len())),
            0..4,
        ),
        twice in proptest::option::of(0usize..KEYS.len()),
    ) {
        let mut pairs: Vec<(&str, &str)> =
            vec![("v", "1"), ("id", "\"a\""), ("kind", "\"noop\""), ("queue", "\"q\""), ("created_at", "5")];
        for (k, v) in changes {
            pairs.retain(|(key, _)| *key != KEYS[k]);
            if let Some(v) = v {
                pairs.push((KEYS[k], VALUES[v]));
            }
        }
        if let Some(k) = twice {
            pairs.push((KEYS[k], "1"));
        }
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
        let text = format!("{{{}}}", body.join(","));
        let _ = decode(&text);
    }

    #[test]
    fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Envelope::decode(&bytes, bytes.len(), 1 << 20);
    }
}
