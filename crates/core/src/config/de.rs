//! Deserializers shared by every section: durations written like `"30s"` and optional text.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A duration written like `"500ms"`, `"30s"`, `"5m"` or `"24h"`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration ({e}); write it like \"500ms\", \"30s\", \"5m\" or \"24h\""
        ))
    })
}

/// An optional [`duration`].
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Optional text; empty text is none.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    Ok(Some(s).filter(|s| !s.is_empty()))
}
