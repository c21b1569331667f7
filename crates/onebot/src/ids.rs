//! QQ numbers, group numbers and message ids as implementations send them: JSON numbers in the
//! spec, numeric strings in some implementations and in `X-Self-ID`. Both are accepted.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// Deserialize an id from a JSON integer or a string of digits.
pub(crate) fn id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(IdVisitor)
}

/// Like [`id`], for an optional field (`null` or absent is `None`).
pub(crate) fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an id or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            id(d).map(Some)
        }
    }
    d.deserialize_option(Opt)
}

struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer id or a string of digits")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("id {v} is too large")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            // Exact: |v| is below 2^53 and integral.
            Ok(v as i64)
        } else {
            Err(E::custom(format!("id {v} is not an integer")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("id {v:?} is not a number")))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::id")]
        a: i64,
        #[serde(default, deserialize_with = "super::opt_id")]
        b: Option<i64>,
    }

    #[test]
    fn numbers_and_strings() {
        let t: T = serde_json::from_str(r#"{"a": "42", "b": 7}"#).unwrap();
        assert_eq!((t.a, t.b), (42, Some(7)));
        let t: T = serde_json::from_str(r#"{"a": 1.0, "b": null}"#).unwrap();
        assert_eq!((t.a, t.b), (1, None));
        let t: T = serde_json::from_str(r#"{"a": 3}"#).unwrap();
        assert_eq!(t.b, None);
        assert!(serde_json::from_str::<T>(r#"{"a": "x"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a": 1.5}"#).is_err());
    }
}
