//! Configuration by owner and section. [`Layers`] lays built-in defaults, a TOML file, the
//! `CELERIAC_*` environment and command-line flags over each other; each part of Celeriac owns
//! its sections (the worker `[worker]`, `[retry]` and `[kinds]`, cron `[cron]`, each domain its
//! own) and reads them with [`Layers::section`]. This module holds the layering and core's own
//! settings, [`Config`]: how to reach Redis (top-level keys), `[jobs]` and `[retention]`.
//!
//! Secrets (a Redis password) belong in the environment, never in a committed file.

mod de;
mod layers;

pub use de::{duration, opt_duration, opt_string};
pub use layers::{FieldError, Layers, Section};

use crate::error::Result;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Redis used when nothing else is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Key prefix of every Celeriac key.
pub const DEFAULT_PREFIX: &str = "celeriac";
/// Queue used when none is named.
pub const DEFAULT_QUEUE: &str = "default";
/// Longest wait for the answer of one Redis call.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest encoded envelope accepted, in bytes.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// How long an idempotency key keeps pointing at its job.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long succeeded (and cancelled) jobs are kept.
pub const DEFAULT_SUCCEEDED_TTL: Duration = Duration::from_secs(24 * 3600);
/// How many succeeded (and cancelled) jobs are kept per queue.
pub const DEFAULT_SUCCEEDED_MAX: u64 = 100_000;
/// How long dead jobs are kept.
pub const DEFAULT_DEAD_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How many dead jobs are kept per queue.
pub const DEFAULT_DEAD_MAX: u64 = 10_000;

/// Core's settings: what every program that talks to Celeriac's Redis needs. The connection
/// settings are top-level keys; `[jobs]` and `[retention]` are sections of their own.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS.
    pub redis_url: String,
    /// Prefix of every key.
    pub prefix: String,
    /// PEM file of the certificate authority of a `rediss://` server (system roots when absent).
    pub redis_tls_ca: Option<std::path::PathBuf>,
    /// Longest wait for one Redis call; the connection is then replaced.
    #[serde(deserialize_with = "duration")]
    pub redis_timeout: Duration,
    /// Limits applied at enqueue (`[jobs]`).
    #[serde(skip)]
    pub jobs: JobsConfig,
    /// Retention of finished jobs (`[retention]`).
    #[serde(skip)]
    pub retention: RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            redis_url: DEFAULT_REDIS_URL.into(),
            prefix: DEFAULT_PREFIX.into(),
            redis_tls_ca: None,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            jobs: JobsConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

impl Section for Config {
    const NAME: &'static str = "";
    const KEYS: &'static [&'static str] = &["redis_url", "prefix", "redis_tls_ca", "redis_timeout"];
    const STRING_FIELDS: &'static [&'static str] = &["redis_url", "prefix", "redis_tls_ca"];

    fn validate(&self) -> std::result::Result<(), FieldError> {
        let lower = self.redis_url.to_ascii_lowercase();
        if !["redis://", "rediss://", "unix://", "redis+unix://"]
            .iter()
            .any(|s| lower.starts_with(s))
            || redis::Client::open(self.redis_url.as_str()).is_err()
        {
            return Err(FieldError::new(
                "redis_url",
                format!(
                    "{:?} is not a Redis URL; expected redis://[user:password@]host:port[/db] or rediss://… for TLS",
                    redact_url(&self.redis_url)
                ),
            ));
        }
        if let Some(ca) = &self.redis_tls_ca {
            if !ca.is_file() {
                return Err(FieldError::new(
                    "redis_tls_ca",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        if self.prefix.is_empty()
            || self.prefix.len() > 64
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        {
            return Err(FieldError::new(
                "prefix",
                format!(
                    "{:?}: use 1-64 characters from A-Z a-z 0-9 _ - . :",
                    self.prefix
                ),
            ));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&self.redis_timeout) {
            return Err(FieldError::new("redis_timeout", "must be 100ms to 10m"));
        }
        Ok(())
    }
}

impl Config {
    /// Core's settings from built-in defaults, the TOML file at `path` (if any) and the
    /// `CELERIAC_*` environment. Sections of other parts are ignored here; the `celeriac`
    /// binary, which knows them all, refuses keys nobody reads.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        Self::from_layers(&Layers::load(path)?)
    }

    /// [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        Self::from_layers(&Layers::load_with_env(path, env)?)
    }

    /// Core's sections of `layers`.
    pub fn from_layers(layers: &Layers) -> Result<Config> {
        let mut config: Config = layers.section()?;
        config.jobs = layers.section()?;
        config.retention = layers.section()?;
        Ok(config)
    }
}

/// `[jobs]`: limits applied at enqueue.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Envelope size cap (enqueue refuses, workers dead-letter `too_large`).
    pub max_payload_bytes: usize,
    /// Idempotency key lifetime.
    #[serde(deserialize_with = "duration")]
    pub idempotency_ttl: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
        }
    }
}

impl Section for JobsConfig {
    const NAME: &'static str = "jobs";

    fn validate(&self) -> std::result::Result<(), FieldError> {
        if !(64..=512 * 1024 * 1024).contains(&self.max_payload_bytes) {
            return Err(FieldError::new(
                "jobs.max_payload_bytes",
                "must be 64 bytes to 512 MiB",
            ));
        }
        if self.idempotency_ttl < Duration::from_millis(1) {
            return Err(FieldError::new(
                "jobs.idempotency_ttl",
                "must be at least 1ms",
            ));
        }
        Ok(())
    }
}

/// `[retention]`: how long finished jobs are kept, by age and by count per queue.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Age limit of succeeded and cancelled jobs.
    #[serde(deserialize_with = "duration")]
    pub succeeded_ttl: Duration,
    /// Count limit of succeeded and cancelled jobs per queue.
    pub succeeded_max: u64,
    /// Age limit of dead jobs.
    #[serde(deserialize_with = "duration")]
    pub dead_ttl: Duration,
    /// Count limit of dead jobs per queue.
    pub dead_max: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            succeeded_ttl: DEFAULT_SUCCEEDED_TTL,
            succeeded_max: DEFAULT_SUCCEEDED_MAX,
            dead_ttl: DEFAULT_DEAD_TTL,
            dead_max: DEFAULT_DEAD_MAX,
        }
    }
}

impl Section for RetentionConfig {
    const NAME: &'static str = "retention";

    fn validate(&self) -> std::result::Result<(), FieldError> {
        if self.succeeded_max == 0 {
            return Err(FieldError::new(
                "retention.succeeded_max",
                "must be at least 1",
            ));
        }
        if self.dead_max == 0 {
            return Err(FieldError::new("retention.dead_max", "must be at least 1"));
        }
        Ok(())
    }
}

/// Replace the password of a URL (Redis, PostgreSQL, a webhook, an HTTP API) with `***`, and
/// the values of query parameters that carry secrets (`access_token`, `token`, `secret`,
/// `password`, `key`, `sig`…), for logs, errors and output. Malformed URLs are redacted too:
/// whatever stands before the last `@` of the part after the scheme is taken for credentials.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = redact_userinfo(head);
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if secret_param(k) => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

fn secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "token", "secret", "password", "passwd", "key", "sig", "auth",
    ]
    .iter()
    .any(|s| n.contains(s))
}

fn redact_userinfo(url: &str) -> String {
    // Where the authority starts: after "://", or "//", or ":" (a scheme with slashes
    // missing), else at the beginning.
    let start = url
        .find("://")
        .map(|i| i + 3)
        .or_else(|| url.find("//").map(|i| i + 2))
        .unwrap_or(0);
    let rest = &url[start..];
    let authority_end = rest
        .rfind('@')
        .map(|at| rest[at..].find('/').map_or(rest.len(), |s| at + s))
        .unwrap_or_else(|| rest.find('/').unwrap_or(rest.len()));
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let redacted = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    };
    format!("{}{redacted}{}", &url[..start], &rest[at..])
}

#[cfg(test)]
mod tests;
