//! One pass over a well-formed envelope, as nearly all are: an object whose fields have the
//! expected types, each given once, with values in range. It answers `None` for anything else,
//! and `Envelope::decode` then runs its full checks, which say what is wrong; so this pass only
//! has to agree with them on what it accepts, and the tests check that it does (in test builds
//! every envelope it accepts is decoded the full way too and compared).

use super::{Envelope, ENVELOPE_VERSION};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// The envelope in `text`, if it is well formed.
pub(super) fn decode(text: &[u8]) -> Option<Envelope> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let env = de.deserialize_map(Fast).ok()?;
    de.end().ok()?;
    let in_range = env.v == ENVELOPE_VERSION
        && !env.kind.is_empty()
        && env.max_attempts != Some(0)
        && env.timeout_ms != Some(0);
    in_range.then_some(env)
}

/// A top-level field's name; only an unknown one is copied.
enum Field {
    V,
    Id,
    Kind,
    Queue,
    Payload,
    MaxAttempts,
    TimeoutMs,
    CreatedAt,
    RunAt,
    IdempotencyKey,
    Other(String),
}

impl Field {
    /// Its bit in the set of known fields seen so far (0 for an unknown one).
    fn bit(&self) -> u16 {
        match self {
            Field::V => 1,
            Field::Id => 1 << 1,
            Field::Kind => 1 << 2,
            Field::Queue => 1 << 3,
            Field::Payload => 1 << 4,
            Field::MaxAttempts => 1 << 5,
            Field::TimeoutMs => 1 << 6,
            Field::CreatedAt => 1 << 7,
            Field::RunAt => 1 << 8,
            Field::IdempotencyKey => 1 << 9,
            Field::Other(_) => 0,
        }
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Field, E> {
                Ok(match s {
                    "v" => Field::V,
                    "id" => Field::Id,
                    "kind" => Field::Kind,
                    "queue" => Field::Queue,
                    "payload" => Field::Payload,
                    "max_attempts" => Field::MaxAttempts,
                    "timeout_ms" => Field::TimeoutMs,
                    "created_at" => Field::CreatedAt,
                    "run_at" => Field::RunAt,
                    "idempotency_key" => Field::IdempotencyKey,
                    other => Field::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_str(Name)
    }
}

struct Fast;

impl<'de> Visitor<'de> for Fast {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (the envelope)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let (mut v, mut id, mut kind, mut queue, mut created_at) = (None, None, None, None, None);
        let mut env = Envelope {
            v: 0,
            id: String::new(),
            kind: String::new(),
            queue: String::new(),
            payload: Value::Null,
            max_attempts: None,
            timeout_ms: None,
            created_at: 0,
            run_at: None,
            idempotency_key: None,
        };
        let mut seen = 0u16;
        let mut others: Vec<String> = Vec::new();
        while let Some(field) = map.next_key::<Field>()? {
            let bit = field.bit();
            if seen & bit != 0 {
                return Err(de::Error::custom("a field given twice"));
            }
            seen |= bit;
            match field {
                Field::V => v = Some(map.next_value::<u32>()?),
                Field::Id => id = Some(map.next_value::<String>()?),
                Field::Kind => kind = Some(map.next_value::<String>()?),
                Field::Queue => queue = Some(map.next_value::<String>()?),
                Field::Payload => env.payload = map.next_value()?,
                Field::MaxAttempts => env.max_attempts = map.next_value()?,
                Field::TimeoutMs => env.timeout_ms = map.next_value()?,
                Field::CreatedAt => created_at = Some(map.next_value::<u64>()?),
                Field::RunAt => env.run_at = map.next_value()?,
                Field::IdempotencyKey => env.idempotency_key = map.next_value()?,
                Field::Other(name) => {
                    if others.contains(&name) {
                        return Err(de::Error::custom("a field given twice"));
                    }
                    // Parsed as the full checks parse it, so both refuse the same text.
                    map.next_value::<Value>()?;
                    others.push(name);
                }
            }
        }
        let missing = || de::Error::custom("a required field is missing");
        env.v = v.ok_or_else(missing)?;
        env.id = id.ok_or_else(missing)?;
        env.kind = kind.ok_or_else(missing)?;
        env.queue = queue.ok_or_else(missing)?;
        env.created_at = created_at.ok_or_else(missing)?;
        Ok(env)
    }
}
