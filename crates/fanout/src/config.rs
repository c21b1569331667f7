//! `[fanout]`: how deliveries are sent and throttled. When they are retried is the retry
//! policy of their kind, `[kinds."fanout.deliver"]` (default: [`DEFAULT_FANOUT_RETRY_SCHEDULE`],
//! see [`crate::kind_defaults`]).

use celeriac_core::config::{duration, FieldError, Section};
use celeriac_http::{AddressPolicy, Network};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::time::Duration;

/// Deadline of one webhook request (connect, headers and body).
pub const DEFAULT_FANOUT_TIMEOUT: Duration = Duration::from_secs(15);
/// When each attempt of a delivery runs, unless `[kinds."fanout.deliver"] retry_schedule` says
/// otherwise: the first attempt at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h
/// (Standard Webhooks' schedule).
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
    /// Moved to `[kinds."fanout.deliver"] retry_schedule`: refused with a message saying so.
    pub retry_schedule: Option<IgnoredAny>,
    /// Moved to `[kinds."fanout.deliver"] retry_jitter`: refused with a message saying so.
    pub retry_jitter: Option<IgnoredAny>,
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
            retry_schedule: None,
            retry_jitter: None,
            retry_after_cap: DEFAULT_FANOUT_RETRY_AFTER_CAP,
            per_host: DEFAULT_FANOUT_PER_HOST,
            keep_response_bytes: DEFAULT_FANOUT_KEEP_RESPONSE_BYTES,
            user_agent: DEFAULT_FANOUT_USER_AGENT.into(),
            allow_private_networks: false,
            allowed_networks: Vec::new(),
        }
    }
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
        for (field, set) in [
            ("fanout.retry_schedule", self.retry_schedule.is_some()),
            ("fanout.retry_jitter", self.retry_jitter.is_some()),
        ] {
            if set {
                let name = &field["fanout.".len()..];
                return Err((
                    field,
                    format!(
                        "has moved: the retry schedule is the retry policy of the kind now; write it as {name} under [kinds.\"fanout.deliver\"] (same values) and remove it from [fanout]"
                    ),
                ));
            }
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
    fn deliveries_retry_on_the_standard_webhooks_schedule_by_default() {
        let settings = celeriac_worker::Settings::default().with_defaults(crate::kind_defaults());
        for (kind, d) in crate::kind_defaults() {
            celeriac_worker::config::check_kind(&kind, &d).unwrap();
        }
        let p = settings.policy(crate::DELIVER_KIND);
        assert_eq!(p.max_attempts, 8);
        for failed in 1..8u32 {
            let base = DEFAULT_FANOUT_RETRY_SCHEDULE[failed as usize];
            for _ in 0..200 {
                let d = p.retry_delay(failed);
                assert!(
                    d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2),
                    "{failed}: {d:?}"
                );
            }
        }
        assert_eq!(
            settings.policy(crate::BROADCAST_KIND).schedule,
            None,
            "the other kinds keep the backoff"
        );
        assert!(FanoutConfig::default().validate().is_ok());
    }

    #[test]
    fn bad_values_name_their_field() {
        let bad = [
            (
                FanoutConfig {
                    retry_schedule: Some(IgnoredAny),
                    ..Default::default()
                },
                "fanout.retry_schedule",
            ),
            (
                FanoutConfig {
                    retry_jitter: Some(IgnoredAny),
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
