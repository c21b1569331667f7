//! `[onebot]`: where the OneBot v11 HTTP API is, how to authenticate, how fast to act.
//!
//! The access token and the signing secret are secrets: they belong in the environment
//! (`CELERIAC_ONEBOT__ACCESS_TOKEN`, `CELERIAC_ONEBOT__SECRET`), never in a committed file, and
//! they are held in [`Secret`], whose `Debug` never shows them.

use celeriac_core::config::{duration, FieldError, Section};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// The OneBot HTTP API (NapCat's default HTTP server port; go-cqhttp's is 5700).
pub const DEFAULT_ONEBOT_API_URL: &str = "http://127.0.0.1:3000";
/// Whole-request timeout of one action (connect, send, answer).
pub const DEFAULT_ONEBOT_TIMEOUT: Duration = Duration::from_secs(10);
/// Actions per second per bot account, all processes together.
pub const DEFAULT_ONEBOT_RATE: f64 = 2.0;
/// Least time between two kicks of one bot account (the seed module's 1 s).
pub const DEFAULT_ONEBOT_KICK_INTERVAL: Duration = Duration::from_secs(1);
/// How long an account's actions pause after a QQ risk-control signal.
pub const DEFAULT_ONEBOT_BREAKER_OPEN_FOR: Duration = Duration::from_secs(6 * 3600);
/// Most actions per second `onebot.rate` accepts.
pub const MAX_ONEBOT_RATE: f64 = 1000.0;

/// A secret string (access token, signing secret). `Debug` prints `<redacted>`; there is no
/// `Display`. Read it with [`Secret::expose`] where it is used, and nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[onebot]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OneBotConfig {
    /// Base URL of the OneBot v11 HTTP API; actions are `POST {api_url}/{action}`.
    pub api_url: String,
    /// Bearer token the implementation expects (unset: none). Set it in the environment,
    /// `CELERIAC_ONEBOT__ACCESS_TOKEN`.
    #[serde(deserialize_with = "opt_secret")]
    pub access_token: Option<Secret>,
    /// HMAC-SHA1 secret of the implementation's event posts (`X-Signature`); unset: events are
    /// not signed. Set it in the environment, `CELERIAC_ONEBOT__SECRET`.
    #[serde(deserialize_with = "opt_secret")]
    pub secret: Option<Secret>,
    /// Whole-request timeout of one action.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Pace actions through Redis. `false` turns off both `rate` and `kick_interval` (for
    /// benchmarks against a fake server; the breaker stays on). There is no "rate 0 means
    /// unlimited": `rate` must be positive, so a typo cannot lift the limit.
    pub pacing: bool,
    /// Actions per second per bot account, all workers together.
    #[serde(deserialize_with = "rate")]
    pub rate: f64,
    /// Least time between two kicks of one account (on top of `rate`).
    #[serde(deserialize_with = "duration")]
    pub kick_interval: Duration,
    /// How long an account's actions pause after a risk-control signal.
    #[serde(deserialize_with = "duration")]
    pub breaker_open_for: Duration,
}

impl Default for OneBotConfig {
    fn default() -> Self {
        OneBotConfig {
            api_url: DEFAULT_ONEBOT_API_URL.into(),
            access_token: None,
            secret: None,
            timeout: DEFAULT_ONEBOT_TIMEOUT,
            pacing: true,
            rate: DEFAULT_ONEBOT_RATE,
            kick_interval: DEFAULT_ONEBOT_KICK_INTERVAL,
            breaker_open_for: DEFAULT_ONEBOT_BREAKER_OPEN_FOR,
        }
    }
}

/// A value of `[onebot]` out of range: `field` is its path as written in TOML.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The field, e.g. `onebot.rate`.
    pub field: &'static str,
    /// What is wrong and what would be right.
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError {
        field,
        message: message.into(),
    })
}

impl OneBotConfig {
    /// Check every value; the error names the field (`onebot.rate: must be > 0, got 0`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match url::Url::parse(&self.api_url) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none() => {}
            Ok(u) if u.query().is_some_and(|q| q.contains("access_token")) => {
                return bad(
                    "onebot.api_url",
                    "has an access_token in its query: move it to onebot.access_token (CELERIAC_ONEBOT__ACCESS_TOKEN)",
                )
            }
            _ => {
                return bad(
                    "onebot.api_url",
                    format!(
                        "{:?} is not an http(s) base URL without query; expected e.g. {DEFAULT_ONEBOT_API_URL}",
                        crate::http::redact_url(&self.api_url)
                    ),
                )
            }
        }
        for (field, secret) in [
            ("onebot.access_token", &self.access_token),
            ("onebot.secret", &self.secret),
        ] {
            if let Some(s) = secret {
                if s.expose().chars().any(|c| c.is_control() || c == ' ') {
                    return bad(field, "must not contain spaces or control characters");
                }
            }
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(600) {
            return bad(
                "onebot.timeout",
                format!(
                    "must be more than 0 and at most 10m, got {}",
                    humantime::format_duration(self.timeout)
                ),
            );
        }
        if self.rate.is_nan() || self.rate <= 0.0 {
            return bad("onebot.rate", format!("must be > 0, got {}", self.rate));
        }
        if self.rate > MAX_ONEBOT_RATE {
            return bad(
                "onebot.rate",
                format!("must be at most {MAX_ONEBOT_RATE}, got {}", self.rate),
            );
        }
        if self.kick_interval > Duration::from_secs(3600) {
            return bad("onebot.kick_interval", "must be at most 1h");
        }
        if self.breaker_open_for < Duration::from_millis(1) {
            return bad(
                "onebot.breaker_open_for",
                "must be at least 1ms (a risk-control signal must pause the account)",
            );
        }
        Ok(())
    }

    /// Least time between two actions of one account: `1 / rate`.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate.clamp(1e-6, MAX_ONEBOT_RATE))
    }
}

/// A secret given as a string, or as a number (the environment layer types `12345` as one);
/// empty is unset.
fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        Some(Raw::Text(s)) if !s.is_empty() => Some(Secret(s)),
        Some(Raw::Int(n)) => Some(Secret(n.to_string())),
        _ => None,
    })
}

/// A rate as a number or a numeric string (the environment layer passes `0.5` as a string).
fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Num(n) => Ok(n),
        Raw::Text(s) => s.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!("{s:?} is not a number of actions per second"))
        }),
    }
}

impl Section for OneBotConfig {
    const NAME: &'static str = "onebot";
    const STRING_FIELDS: &'static [&'static str] = &["api_url", "access_token", "secret"];

    fn validate(&self) -> Result<(), FieldError> {
        OneBotConfig::validate(self).map_err(|e| FieldError::new(e.field, e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<OneBotConfig, String> {
        let v: serde_json::Value = toml_like(toml);
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// Tiny `key = value` reader so the tests need no TOML crate.
    fn toml_like(s: &str) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for line in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line.split_once('=').unwrap();
            map.insert(k.trim().into(), serde_json::from_str(v.trim()).unwrap());
        }
        serde_json::Value::Object(map)
    }

    #[test]
    fn defaults_are_valid() {
        let c = OneBotConfig::default();
        c.validate().unwrap();
        assert_eq!(c.interval(), Duration::from_millis(500));
        assert_eq!(parse("").unwrap().api_url, DEFAULT_ONEBOT_API_URL);
    }

    #[test]
    fn fields_parse_and_validate() {
        let c = parse(
            r#"
            api_url = "http://10.0.0.2:5700"
            access_token = "abc"
            timeout = "3s"
            rate = "0.5"
            kick_interval = "2s"
            breaker_open_for = "300ms"
            pacing = false
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.access_token.as_ref().unwrap().expose(), "abc");
        assert_eq!(c.interval(), Duration::from_secs(2));
        assert_eq!(c.breaker_open_for, Duration::from_millis(300));
        assert!(!c.pacing);
        assert!(!format!("{c:?}").contains("abc"));
        let c = parse(r#"access_token = 12345"#).unwrap();
        assert_eq!(c.access_token.unwrap().expose(), "12345");
        assert!(parse(r#"access_token = """#)
            .unwrap()
            .access_token
            .is_none());
    }

    #[test]
    fn errors_name_the_field() {
        assert!(parse(r#"colour = "red""#).unwrap_err().contains("colour"));
        assert!(parse(r#"timeout = "soon""#)
            .unwrap_err()
            .contains("not a duration"));
        let c = OneBotConfig {
            rate: 0.0,
            ..Default::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "onebot.rate: must be > 0, got 0"
        );
        let c = OneBotConfig {
            rate: f64::NAN,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "onebot.rate");
        for url in ["ftp://x", "127.0.0.1:3000", "http://h/?access_token=t"] {
            let c = OneBotConfig {
                api_url: url.into(),
                ..Default::default()
            };
            assert_eq!(c.validate().unwrap_err().field, "onebot.api_url", "{url}");
        }
        let c = OneBotConfig {
            breaker_open_for: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "onebot.breaker_open_for");
    }
}
