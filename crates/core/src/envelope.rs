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
    /// bodies behind and sends only their length), `max_bytes` the configured cap.
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
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            DecodeError::new(DeadReason::DecodeError, format!("not valid JSON: {e}"))
        })?;
        let version = value.get("v");
        match version.and_then(Value::as_u64) {
            Some(v) if v == u64::from(ENVELOPE_VERSION) => {}
            Some(v) => {
                return Err(DecodeError::new(
                    DeadReason::UnsupportedVersion,
                    format!("envelope version {v}; this worker reads version {ENVELOPE_VERSION}"),
                ))
            }
            None if version.is_some() => {
                return Err(DecodeError::new(
                    DeadReason::SchemaError,
                    format!(
                        "field `v` must be a positive integer, found {}",
                        version.map(Value::to_string).unwrap_or_default()
                    ),
                ))
            }
            None => {
                return Err(DecodeError::new(
                    DeadReason::SchemaError,
                    "missing field `v` (the envelope version)",
                ))
            }
        }
        let env: Envelope = serde_json::from_value(value)
            .map_err(|e| DecodeError::new(DeadReason::SchemaError, e.to_string()))?;
        if env.kind.is_empty() {
            return Err(DecodeError::new(
                DeadReason::SchemaError,
                "field `kind` is empty",
            ));
        }
        if env.timeout_ms == Some(0) {
            return Err(DecodeError::new(
                DeadReason::SchemaError,
                "field `timeout_ms` must be greater than zero",
            ));
        }
        if env.max_attempts == Some(0) {
            return Err(DecodeError::new(
                DeadReason::SchemaError,
                "field `max_attempts` must be at least 1",
            ));
        }
        Ok(env)
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
