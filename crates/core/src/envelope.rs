//! The job envelope: what a producer writes and a worker reads (wire format v1, specified in
//! `docs/wire-format.md`).
//!
//! Encoding is compact JSON with optional fields left out. Decoding is defensive: any input, from
//! any producer, yields either an [`Envelope`] or a [`DecodeError`] naming why the job cannot run.
//! It never panics, whatever the bytes.

mod fast;

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
        // Nearly every envelope is well formed: one pass. Anything else (or anything the pass
        // is unsure of) goes through the checks below, which say what is wrong.
        if let Some(env) = fast::decode(json_text(bytes)) {
            #[cfg(test)]
            assert_eq!(
                Self::decode_checked(bytes),
                Ok(env.clone()),
                "the one pass and the full checks disagree"
            );
            return Ok(env);
        }
        Self::decode_checked(bytes)
    }

    /// Decode with every check of `docs/wire-format.md` §3, each failure with a message naming
    /// it (the envelope is known not to be over the cap, nor empty).
    fn decode_checked(bytes: &[u8]) -> Result<Envelope, DecodeError> {
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
mod tests;
