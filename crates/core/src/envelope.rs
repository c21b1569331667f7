//! The job envelope: what a producer writes and a worker reads (wire format v1, specified in
//! `docs/wire-format.md`).
//!
//! Encoding is compact JSON with optional fields left out. Decoding is defensive: any input, from
//! any producer, yields either an [`Envelope`] or a [`DecodeError`] naming why the job cannot run.
//! It never panics, whatever the bytes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The only envelope version this build reads and writes.
pub const ENVELOPE_VERSION: u32 = 1;

/// Why a job ended in the dead set. The `as_str` names are stored in Redis and shown by the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeadReason {
    /// The stored envelope is not JSON (or not UTF-8).
    DecodeError,
    /// JSON, but missing or mistyped fields, or no job record at all.
    SchemaError,
    /// No handler is registered for the job's kind.
    UnknownKind,
    /// An envelope version this build cannot read.
    UnsupportedVersion,
    /// The envelope is over the configured size cap.
    TooLarge,
    /// Delivered too many times without finishing (its workers died or froze).
    WorkerLost,
    /// Every attempt failed.
    MaxAttempts,
    /// The handler said not to retry.
    Discarded,
}

impl DeadReason {
    /// Every reason, for counters and docs.
    pub const ALL: [DeadReason; 8] = [
        DeadReason::DecodeError,
        DeadReason::SchemaError,
        DeadReason::UnknownKind,
        DeadReason::UnsupportedVersion,
        DeadReason::TooLarge,
        DeadReason::WorkerLost,
        DeadReason::MaxAttempts,
        DeadReason::Discarded,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::DecodeError => "decode_error",
            DeadReason::SchemaError => "schema_error",
            DeadReason::UnknownKind => "unknown_kind",
            DeadReason::UnsupportedVersion => "unsupported_version",
            DeadReason::TooLarge => "too_large",
            DeadReason::WorkerLost => "worker_lost",
            DeadReason::MaxAttempts => "max_attempts",
            DeadReason::Discarded => "discarded",
        }
    }
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as written to Redis. `attempt` is not part of it: attempts are counted by the
/// scripts in the job's record, so the envelope never changes after enqueue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope version; must equal [`ENVELOPE_VERSION`].
    pub v: u32,
    /// Job id, unique within its queue.
    pub id: String,
    /// Stable job kind that selects the handler, e.g. `links.check`.
    pub kind: String,
    /// Queue name.
    pub queue: String,
    /// Handler input.
    #[serde(default)]
    pub payload: Value,
    /// Attempts before the job goes dead; the worker's configuration decides when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Per-attempt timeout in milliseconds; the worker's configuration decides when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// When the job was enqueued, Unix milliseconds.
    pub created_at: u64,
    /// When the job should first run, Unix milliseconds; absent means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<u64>,
    /// Idempotency key the job was enqueued with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Why an envelope could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct DecodeError {
    /// The dead-letter reason.
    pub reason: DeadReason,
    /// Human explanation, with what was found.
    pub message: String,
}

impl DecodeError {
    fn new(reason: DeadReason, message: impl Into<String>) -> Self {
        DecodeError {
            reason,
            message: message.into(),
        }
    }
}

impl Envelope {
    /// Encode to compact JSON.
    pub fn encode(&self) -> String {
        // Serializing a struct of strings, numbers and a `Value` cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decode bytes read from Redis. `len` is the stored length (the script leaves oversized
    /// bodies behind and sends only their length), `max_bytes` the configured cap. The limits
    /// are those of `docs/wire-format.md` §3, each checked here with a message naming it.
    pub fn decode(bytes: &[u8], len: usize, max_bytes: usize) -> Result<Envelope, DecodeError> {
        if len > max_bytes {
            return Err(DecodeError::new(
                DeadReason::TooLarge,
                format!("envelope is {len} bytes, over the {max_bytes}-byte cap"),
            ));
        }
        if bytes.is_empty() {
            return Err(DecodeError::new(
                DeadReason::DecodeError,
                "the job record has no `msg` field (empty envelope)",
            ));
        }
        let Fields(mut fields) = serde_json::from_slice(json_text(bytes)).map_err(|e| {
            match e.classify() {
                // Valid JSON of the wrong shape: not an object, or a field given twice.
                serde_json::error::Category::Data => {
                    DecodeError::new(DeadReason::SchemaError, e.to_string())
                }
                _ => DecodeError::new(DeadReason::DecodeError, not_json(&e)),
            }
        })?;
        let version = fields.get("v").cloned();
        match &version {
            None => {
                return Err(DecodeError::new(
                    DeadReason::SchemaError,
                    "missing field `v` (the envelope version)",
                ))
            }
            Some(Value::Number(n)) => match whole(n) {
                Some(1) => {}
                Some(_) => {
                    return Err(DecodeError::new(
                        DeadReason::UnsupportedVersion,
                        format!(
                            "envelope version {n}; this worker reads version {ENVELOPE_VERSION}"
                        ),
                    ))
                }
                None => {
                    return Err(DecodeError::new(
                        DeadReason::SchemaError,
                        format!(
                            "field `v` must be a whole number (the envelope version), found {n}"
                        ),
                    ))
                }
            },
            Some(other) => {
                return Err(DecodeError::new(
                    DeadReason::SchemaError,
                    format!(
                        "field `v` must be a whole number (the envelope version), found {other}"
                    ),
                ))
            }
        }
        fields.insert("v".into(), Value::from(ENVELOPE_VERSION));
        for (name, min, max) in INTEGER_FIELDS {
            check_integer(&fields, name, min, max)?;
        }
        let env: Envelope = serde_json::from_value(Value::Object(fields))
            .map_err(|e| DecodeError::new(DeadReason::SchemaError, e.to_string()))?;
        if env.kind.is_empty() {
            return Err(DecodeError::new(
                DeadReason::SchemaError,
                "field `kind` is empty",
            ));
        }
        Ok(env)
    }
}

/// The integer fields of the envelope and their ranges (`docs/wire-format.md` §3). `null` is
/// taken as absent for the optional ones.
const INTEGER_FIELDS: [(&str, u64, u64); 4] = [
    ("created_at", 0, u64::MAX),
    ("run_at", 0, u64::MAX),
    ("max_attempts", 1, u32::MAX as u64),
    ("timeout_ms", 1, u64::MAX),
];

/// Most levels of arrays and objects an envelope may nest, itself included (the JSON parser's
/// recursion limit); deeper is `decode_error`.
pub const MAX_NESTING: usize = 127;

fn check_integer(
    fields: &serde_json::Map<String, Value>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<(), DecodeError> {
    let value = match fields.get(name) {
        None | Some(Value::Null) => return Ok(()),
        Some(v) => v,
    };
    if value.as_u64().is_some_and(|n| (min..=max).contains(&n)) {
        return Ok(());
    }
    Err(DecodeError::new(
        DeadReason::SchemaError,
        format!("field `{name}` must be an integer from {min} to {max}, found {value}"),
    ))
}

/// The whole number `n` is, when it is one: `v` is compared by value, so `2`, `-1`, `2.0`, `1e3`
/// or an integer too large for 64 bits are all versions (this build reads only 1); `1.5` is not.
fn whole(n: &serde_json::Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i.into());
    }
    if let Some(u) = n.as_u64() {
        return Some(u.into());
    }
    let f = n.as_f64()?;
    // Past i128 the exact value does not matter: it is not version 1.
    (f.is_finite() && f.fract() == 0.0).then(|| f.clamp(i128::MIN as f64, i128::MAX as f64) as i128)
}

/// The JSON text of a stored envelope: one UTF-8 byte-order mark at its start is ignored (RFC
/// 8259 §8.1 lets a parser do so; some encoders write one). The inspector reads `msg` the same
/// way.
pub fn json_text(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn not_json(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.contains("recursion limit") {
        format!("not valid JSON: nested deeper than {MAX_NESTING} levels of arrays and objects ({text})")
    } else if text.contains("surrogate") || text.contains("hex escape") {
        format!("not valid JSON: a \\u escape that is no Unicode character, such as a lone surrogate ({text})")
    } else {
        format!("not valid JSON: {text}")
    }
}

/// The envelope's top-level object, refused when a field appears twice (which of two `kind`s
/// would run is not a guess a worker should make; inside the payload the last one wins, as in
/// most JSON parsers).
struct Fields(serde_json::Map<String, Value>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object (the envelope)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Value = map.next_value()?;
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "field `{key}` appears twice in the envelope"
                        )));
                    }
                    out.insert(key, value);
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A typed job: its payload type and its stable kind. The kind is written into every envelope
/// and selects the handler, so it must never change once jobs of it are queued; it is declared,
/// never derived from the Rust type name.
pub trait JobKind: Serialize + serde::de::DeserializeOwned {
    /// Stable kind name, e.g. `links.check`.
    const KIND: &'static str;
}

#[cfg(test)]
mod tests {
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
        let env = |extra: &str| {
            format!(r#"{{"v":1,"id":"x","kind":"k","queue":"q","created_at":1{extra}}}"#)
        };
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
                r#"{"v":1,"id":"x","kind":"k","queue":"q","created_at":18446744073709551616}"#
                    .into(),
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

        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Envelope::decode(&bytes, bytes.len(), 1 << 20);
        }
    }
}
