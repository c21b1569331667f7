//! `[fanout]`: how deliveries are sent and retried.

use celeriac_core::config::{duration, FieldError, Section};
use celeriac_http::{AddressPolicy, Network};
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Deadline of one webhook request (connect, headers and body).
pub const DEFAULT_FANOUT_TIMEOUT: Duration = Duration::from_secs(15);
/// When each attempt of a delivery runs, from the first failure's view: the first attempt at
/// once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (Standard Webhooks' schedule).
pub const DEFAULT_FANOUT_RETRY_SCHEDULE: &[Duration] = &[
    Duration::from_secs(0),
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// Each retry delay is moved by up to this fraction either way.
pub const DEFAULT_FANOUT_RETRY_JITTER: f64 = 0.2;
/// Longest `Retry-After` honoured (a longer one is capped to this).
pub const DEFAULT_FANOUT_RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);
/// Webhook requests in flight at once to one host, per worker process.
pub const DEFAULT_FANOUT_PER_HOST: usize = 16;
/// Response bytes kept with a delivery.
pub const DEFAULT_FANOUT_KEEP_RESPONSE_BYTES: usize = 1024;
/// User-Agent of every webhook request.
pub const DEFAULT_FANOUT_USER_AGENT: &str = concat!("Celeriac-Webhook/", env!("CARGO_PKG_VERSION"));

/// `[fanout]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FanoutConfig {
    /// Deadline of one webhook request.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// When each attempt runs: the first entry is the first attempt (normally `"0s"`), entry
    /// `n` the delay after attempt `n` failed. Its length is the attempts a delivery gets.
    #[serde(deserialize_with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// Fraction (0 to 1) by which each retry delay is moved either way at random.
    pub retry_jitter: f64,
    /// Longest `Retry-After` (of a 429, 502, 503 or 504) honoured.
    #[serde(deserialize_with = "duration")]
    pub retry_after_cap: Duration,
    /// Webhook requests in flight at once to one host, per worker process.
    pub per_host: usize,
    /// Response bytes kept with a delivery (the start of the body).
    pub keep_response_bytes: usize,
    /// User-Agent header.
    pub user_agent: String,
    /// Let webhooks reach loopback, private, link-local and CGNAT addresses. Off by default: a
    /// subscriber's URL must not make the worker call internal services.
    pub allow_private_networks: bool,
    /// Networks reachable even when `allow_private_networks` is off.
    pub allowed_networks: Vec<Network>,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            timeout: DEFAULT_FANOUT_TIMEOUT,
            retry_schedule: DEFAULT_FANOUT_RETRY_SCHEDULE.to_vec(),
            retry_jitter: DEFAULT_FANOUT_RETRY_JITTER,
            retry_after_cap: DEFAULT_FANOUT_RETRY_AFTER_CAP,
            per_host: DEFAULT_FANOUT_PER_HOST,
            keep_response_bytes: DEFAULT_FANOUT_KEEP_RESPONSE_BYTES,
            user_agent: DEFAULT_FANOUT_USER_AGENT.into(),
            allow_private_networks: false,
            allowed_networks: Vec::new(),
        }
    }
}

fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            humantime::parse_duration(s).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a duration ({e}); write it like \"0s\", \"5s\", \"5m\" or \"10h\""
                ))
            })
        })
        .collect()
}

impl FanoutConfig {
    /// The address policy of the webhook client.
    pub fn address_policy(&self) -> AddressPolicy {
        AddressPolicy {
            allow_private: self.allow_private_networks,
            allowed: self.allowed_networks.clone(),
            section: "fanout",
        }
    }

    /// Attempts a delivery gets: one per schedule entry.
    pub fn attempts(&self) -> u32 {
        self.retry_schedule.len() as u32
    }

    /// The delay before the attempt after attempt `attempt` (from 1) failed, jittered; `None`
    /// when the schedule has no further attempt.
    pub fn retry_delay(&self, attempt: u32) -> Option<Duration> {
        let base = *self.retry_schedule.get(attempt as usize)?;
        let jitter = (fastrand::f64() * 2.0 - 1.0) * self.retry_jitter;
        Some(base.mul_f64((1.0 + jitter).max(0.0)))
    }
}

impl Section for FanoutConfig {
    const NAME: &'static str = "fanout";
    const LIST_FIELDS: &'static [&'static str] = &["allowed_networks", "retry_schedule"];
    const STRING_FIELDS: &'static [&'static str] = &["user_agent"];

    fn validate(&self) -> Result<(), FieldError> {
        self.check()
            .map_err(|(field, message)| FieldError::new(field, message))
    }
}

impl FanoutConfig {
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(300) {
            return Err((
                "fanout.timeout",
                "must be more than 0 and at most 5m".into(),
            ));
        }
        if !(1..=50).contains(&self.retry_schedule.len()) {
            return Err((
                "fanout.retry_schedule",
                format!(
                    "must list 1 to 50 delays (the first is the first attempt's, normally \"0s\"), got {}",
                    self.retry_schedule.len()
                ),
            ));
        }
        if let Some(d) = self
            .retry_schedule
            .iter()
            .find(|d| **d > Duration::from_secs(7 * 86400))
        {
            return Err((
                "fanout.retry_schedule",
                format!(
                    "each delay must be at most 7d, got {}",
                    humantime::format_duration(*d)
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            return Err((
                "fanout.retry_jitter",
                format!("must be 0 to 1, got {}", self.retry_jitter),
            ));
        }
        if !(1..=1024).contains(&self.per_host) {
            return Err((
                "fanout.per_host",
                format!("must be 1 to 1024, got {}", self.per_host),
            ));
        }
        if self.keep_response_bytes > 64 * 1024 {
            return Err((
                "fanout.keep_response_bytes",
                "must be at most 64 KiB".into(),
            ));
        }
        if self.user_agent.is_empty() || !self.user_agent.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            return Err((
                "fanout.user_agent",
                "must be non-empty printable ASCII".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_jittered_within_bounds_and_ends() {
        let c = FanoutConfig::default();
        assert_eq!(c.attempts(), 8);
        for attempt in 1..8u32 {
            let base = DEFAULT_FANOUT_RETRY_SCHEDULE[attempt as usize];
            for _ in 0..200 {
                let d = c.retry_delay(attempt).unwrap();
                assert!(
                    d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2),
                    "{attempt}: {d:?}"
                );
            }
        }
        assert_eq!(c.retry_delay(8), None, "no ninth attempt");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_values_name_their_field() {
        let bad = [
            (
                FanoutConfig {
                    retry_schedule: vec![],
                    ..Default::default()
                },
                "fanout.retry_schedule",
            ),
            (
                FanoutConfig {
                    retry_jitter: 1.5,
                    ..Default::default()
                },
                "fanout.retry_jitter",
            ),
            (
                FanoutConfig {
                    timeout: Duration::ZERO,
                    ..Default::default()
                },
                "fanout.timeout",
            ),
            (
                FanoutConfig {
                    per_host: 0,
                    ..Default::default()
                },
                "fanout.per_host",
            ),
        ];
        for (c, field) in bad {
            assert_eq!(c.validate().unwrap_err().field, field);
        }
    }
}
