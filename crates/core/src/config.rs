//! Configuration in layers: the `DEFAULT_*` constants < a TOML file (`--config`) <
//! environment variables < command-line flags. [`Config::validate`] names the offending field.
//!
//! Environment variables are `CELERIAC_` + the field's path in upper case, sections joined by
//! `__`: `CELERIAC_REDIS_URL`, `CELERIAC_WORKER__CONCURRENCY=32`,
//! `CELERIAC_WORKER__QUEUES=mail,default`, `CELERIAC_RETENTION__SUCCEEDED_TTL=2h`. Secrets (the
//! Redis password) belong in the environment, never in a committed file.

mod links;

pub use links::*;

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Redis used when nothing else is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Key prefix of every Celeriac key.
pub const DEFAULT_PREFIX: &str = "celeriac";
/// Queue used when none is named.
pub const DEFAULT_QUEUE: &str = "default";
/// Handlers run at once per worker process.
pub const DEFAULT_CONCURRENCY: usize = 10;
/// Most jobs fetched (and acknowledged) per Redis round trip.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// How long a lease lasts without renewal.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often a worker renews its leases and announces itself.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// How often expired leases are swept.
pub const DEFAULT_RECOVER_INTERVAL: Duration = Duration::from_secs(5);
/// How long after a lease expired the sweep may take the job back (at most a quarter of the
/// lease when `worker.lease_grace` is not set).
pub const DEFAULT_LEASE_GRACE: Duration = Duration::from_secs(2);
/// How often due delayed and retrying jobs are promoted (their worst-case lateness).
pub const DEFAULT_PROMOTE_INTERVAL: Duration = Duration::from_millis(100);
/// How often retention is applied.
pub const DEFAULT_JANITOR_INTERVAL: Duration = Duration::from_secs(10);
/// How long in-flight jobs may run after SIGTERM before they are handed back.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// Deliveries without finishing before a job is dead with reason `worker_lost`.
pub const DEFAULT_MAX_DELIVERIES: u32 = 3;
/// Per-attempt timeout when neither the job nor its kind sets one.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Largest encoded envelope accepted, in bytes.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// How long an idempotency key keeps pointing at its job.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Attempts before a failing job is dead.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 25;
/// Upper bound of the first retry delay.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Upper bound of any retry delay.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(3600);
/// How long succeeded (and cancelled) jobs are kept.
pub const DEFAULT_SUCCEEDED_TTL: Duration = Duration::from_secs(24 * 3600);
/// How many succeeded (and cancelled) jobs are kept per queue.
pub const DEFAULT_SUCCEEDED_MAX: u64 = 100_000;
/// How long dead jobs are kept.
pub const DEFAULT_DEAD_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How many dead jobs are kept per queue.
pub const DEFAULT_DEAD_MAX: u64 = 10_000;

/// Domain database used when nothing else is configured: SQLite, embedded.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/celeriac.db";

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
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
    /// The worker.
    pub worker: WorkerConfig,
    /// Limits applied at enqueue.
    pub jobs: JobsConfig,
    /// Default retry policy.
    pub retry: RetryConfig,
    /// Per-kind overrides of the retry policy and timeout.
    pub kinds: BTreeMap<String, KindConfig>,
    /// Retention of finished jobs.
    pub retention: RetentionConfig,
    /// Logging.
    pub log: LogConfig,
    /// Periodic jobs.
    pub cron: CronConfig,
    /// Domain data: `sqlite://PATH` (embedded) or `postgres://USER@HOST:PORT/DB`.
    pub database_url: String,
    /// The `links.check` job.
    pub links: LinksConfig,
}

/// `[cron]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CronConfig {
    /// `[[cron.schedules]]` entries.
    pub schedules: Vec<ScheduleConfig>,
}

/// One `[[cron.schedules]]` entry. The expression and time zone are checked by `celeriac-cron`
/// when the scheduler starts; [`Config::validate`] checks the rest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique name (A-Z a-z 0-9 _ - ., at most 64): part of every job id it creates.
    pub name: String,
    /// Cron expression: 5 fields, or 6 with seconds first (`*/10 * * * * *`).
    pub schedule: String,
    /// IANA time zone the expression is read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Kind of the jobs enqueued.
    pub kind: String,
    /// Payload of the jobs enqueued (any TOML value; a table becomes a JSON object).
    #[serde(default = "empty_object")]
    pub payload: serde_json::Value,
    /// Queue.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Ticks missed while no scheduler ran: `skip`, `latest` or `all` (at most `catch_up_max`).
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Most missed ticks enqueued by `catch_up = "all"` (the newest ones).
    #[serde(default = "default_catch_up_max")]
    pub catch_up_max: u32,
    /// Attempts of each job (the kind's policy when absent).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// A disabled schedule is listed but enqueues nothing.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// What to do with ticks missed while no scheduler replica ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Enqueue none of them; resume with the next tick.
    #[default]
    Skip,
    /// Enqueue the most recent missed tick only.
    Latest,
    /// Enqueue every missed tick, oldest first, at most `catch_up_max` (the newest).
    All,
}

impl Default for CronConfig {
    /// One schedule: `links-check`, a `links.check` job every day at 04:00 UTC.
    fn default() -> Self {
        CronConfig {
            schedules: vec![ScheduleConfig {
                name: "links-check".into(),
                schedule: "0 4 * * *".into(),
                timezone: default_timezone(),
                kind: "links.check".into(),
                payload: empty_object(),
                queue: default_queue(),
                catch_up: CatchUp::Latest,
                catch_up_max: DEFAULT_CATCH_UP_MAX,
                max_attempts: Some(3),
                enabled: true,
            }],
        }
    }
}

/// Most missed ticks `catch_up = "all"` enqueues by default.
pub const DEFAULT_CATCH_UP_MAX: u32 = 100;

fn default_timezone() -> String {
    "UTC".into()
}
fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}
fn default_queue() -> String {
    DEFAULT_QUEUE.into()
}
fn default_catch_up_max() -> u32 {
    DEFAULT_CATCH_UP_MAX
}
fn default_true() -> bool {
    true
}

/// `[worker]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Queues to serve, fetched round-robin.
    pub queues: Vec<String>,
    /// Handlers running at once.
    pub concurrency: usize,
    /// Most jobs per fetch and per ack.
    pub batch_size: usize,
    /// Lease length.
    #[serde(deserialize_with = "duration")]
    pub lease: Duration,
    /// Lease renewal period.
    #[serde(deserialize_with = "duration")]
    pub heartbeat_interval: Duration,
    /// Expired-lease sweep period.
    #[serde(deserialize_with = "duration")]
    pub recover_interval: Duration,
    /// How long after a lease expired the sweep takes the job back: by then the worker that
    /// held it has stopped the handler on its own (self-fencing). Unset: see
    /// [`WorkerConfig::lease_grace`].
    #[serde(deserialize_with = "opt_duration")]
    pub lease_grace: Option<Duration>,
    /// Delayed/retry promotion period.
    #[serde(deserialize_with = "duration")]
    pub promote_interval: Duration,
    /// Retention period.
    #[serde(deserialize_with = "duration")]
    pub janitor_interval: Duration,
    /// Grace period after SIGTERM.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// Deliveries without finishing before `worker_lost`.
    pub max_deliveries: u32,
    /// Per-attempt timeout.
    #[serde(deserialize_with = "duration")]
    pub job_timeout: Duration,
}

/// `[jobs]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Envelope size cap (enqueue refuses, workers dead-letter `too_large`).
    pub max_payload_bytes: usize,
    /// Idempotency key lifetime.
    #[serde(deserialize_with = "duration")]
    pub idempotency_ttl: Duration,
}

/// `[retry]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts before dead.
    pub max_attempts: u32,
    /// First retry delay bound.
    #[serde(deserialize_with = "duration")]
    pub backoff_base: Duration,
    /// Any retry delay bound.
    #[serde(deserialize_with = "duration")]
    pub backoff_cap: Duration,
}

/// `[kinds."name"]`: every field optional, falling back to `[retry]` / `[worker]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindConfig {
    /// Attempts before dead.
    pub max_attempts: Option<u32>,
    /// First retry delay bound.
    #[serde(deserialize_with = "opt_duration")]
    pub backoff_base: Option<Duration>,
    /// Any retry delay bound.
    #[serde(deserialize_with = "opt_duration")]
    pub backoff_cap: Option<Duration>,
    /// Per-attempt timeout.
    #[serde(deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
}

/// `[retention]`.
#[derive(Clone, Debug, Deserialize)]
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

/// `[log]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `celeriac_worker=debug,info`.
    pub level: String,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            redis_url: DEFAULT_REDIS_URL.into(),
            prefix: DEFAULT_PREFIX.into(),
            redis_tls_ca: None,
            redis_timeout: crate::broker::DEFAULT_REDIS_TIMEOUT,
            worker: WorkerConfig::default(),
            jobs: JobsConfig::default(),
            retry: RetryConfig::default(),
            kinds: BTreeMap::new(),
            retention: RetentionConfig::default(),
            log: LogConfig::default(),
            cron: CronConfig::default(),
            database_url: DEFAULT_DATABASE_URL.into(),
            links: LinksConfig::default(),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            queues: vec![DEFAULT_QUEUE.into()],
            concurrency: DEFAULT_CONCURRENCY,
            batch_size: DEFAULT_BATCH_SIZE,
            lease: DEFAULT_LEASE,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            recover_interval: DEFAULT_RECOVER_INTERVAL,
            lease_grace: None,
            promote_interval: DEFAULT_PROMOTE_INTERVAL,
            janitor_interval: DEFAULT_JANITOR_INTERVAL,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            job_timeout: DEFAULT_JOB_TIMEOUT,
        }
    }
}

impl WorkerConfig {
    /// The grace the sweep gives an expired lease: `lease_grace`, or when unset
    /// [`DEFAULT_LEASE_GRACE`] capped at a quarter of the lease.
    pub fn lease_grace(&self) -> Duration {
        self.lease_grace
            .unwrap_or_else(|| DEFAULT_LEASE_GRACE.min(self.lease / 4))
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_cap: DEFAULT_BACKOFF_CAP,
        }
    }
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

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The retry policy and timeout of one kind, with fallbacks applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindPolicy {
    /// Attempts before dead (a job's own `max_attempts` wins).
    pub max_attempts: u32,
    /// Retry delays.
    pub backoff: Backoff,
    /// Per-attempt timeout (a job's own `timeout_ms` wins).
    pub timeout: Duration,
}

/// Settings whose environment value is a comma-separated list.
const LIST_FIELDS: [&str; 3] = ["worker.queues", "links.allowed_networks", "links.whitelist"];
/// Settings whose environment value is always taken as text (never a number or a list).
const STRING_FIELDS: [&str; 8] = [
    "redis_url",
    "database_url",
    "links.site_link",
    "links.user_agent",
    "prefix",
    "redis_tls_ca",
    "log.level",
    "log.format",
];

const TOP_LEVEL_KEYS: [&str; 13] = [
    "cron",
    "redis_timeout",
    "database_url",
    "links",
    "redis_tls_ca",
    "redis_url",
    "prefix",
    "worker",
    "jobs",
    "retry",
    "kinds",
    "retention",
    "log",
];

impl Config {
    /// Defaults, then the TOML file at `path` (if any), then `CELERIAC_*` environment variables;
    /// validated.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        Self::load_with_env(path, std::env::vars())
    }

    /// [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| Error::ConfigParse {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            apply_env(&mut table, &name, &value);
        }
        let config: Config =
            Config::deserialize(toml::Value::Table(table)).map_err(|e| Error::ConfigParse {
                path: path
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| "<environment>".into()),
                message: e.to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Check every value; the error names the field as written in TOML.
    pub fn validate(&self) -> Result<()> {
        fn bad(field: &str, message: impl Into<String>) -> Result<()> {
            Err(Error::ConfigValue {
                field: field.into(),
                message: message.into(),
            })
        }
        let lower = self.redis_url.to_ascii_lowercase();
        if !["redis://", "rediss://", "unix://", "redis+unix://"]
            .iter()
            .any(|s| lower.starts_with(s))
            || redis::Client::open(self.redis_url.as_str()).is_err()
        {
            return bad(
                "redis_url",
                format!(
                    "{:?} is not a Redis URL; expected redis://[user:password@]host:port[/db] (or rediss:// for TLS)",
                    redact_url(&self.redis_url)
                ),
            );
        }
        if let Some(ca) = &self.redis_tls_ca {
            if !ca.is_file() {
                return bad(
                    "redis_tls_ca",
                    format!("{} is not a readable file", ca.display()),
                );
            }
        }
        if self.prefix.is_empty()
            || self.prefix.len() > 64
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        {
            return bad(
                "prefix",
                format!(
                    "{:?}: use 1-64 characters from A-Z a-z 0-9 _ - . :",
                    self.prefix
                ),
            );
        }
        let w = &self.worker;
        if w.queues.is_empty() {
            return bad("worker.queues", "name at least one queue");
        }
        for q in &w.queues {
            if let Err(e) = crate::keys::validate_queue(q) {
                return bad("worker.queues", e.to_string());
            }
        }
        if !(1..=10_000).contains(&w.concurrency) {
            return bad(
                "worker.concurrency",
                format!("must be 1 to 10000, got {}", w.concurrency),
            );
        }
        if !(1..=1000).contains(&w.batch_size) {
            return bad(
                "worker.batch_size",
                format!("must be 1 to 1000, got {}", w.batch_size),
            );
        }
        if w.lease < Duration::from_millis(500) {
            return bad("worker.lease", "must be at least 500ms");
        }
        if w.heartbeat_interval.is_zero() || w.heartbeat_interval * 2 > w.lease {
            return bad(
                "worker.heartbeat_interval",
                format!(
                    "must be non-zero and at most half of worker.lease ({}), so a lease survives one missed renewal",
                    humantime::format_duration(w.lease)
                ),
            );
        }
        if w.lease_grace.is_some_and(|g| g >= w.lease) {
            return bad(
                "worker.lease_grace",
                format!(
                    "must be shorter than worker.lease ({})",
                    humantime::format_duration(w.lease)
                ),
            );
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&self.redis_timeout) {
            return bad("redis_timeout", "must be 100ms to 10m");
        }
        for (field, d) in [
            ("worker.recover_interval", w.recover_interval),
            ("worker.promote_interval", w.promote_interval),
            ("worker.janitor_interval", w.janitor_interval),
            ("worker.job_timeout", w.job_timeout),
        ] {
            if d.is_zero() {
                return bad(field, "must be greater than zero");
            }
        }
        if w.max_deliveries == 0 {
            return bad("worker.max_deliveries", "must be at least 1");
        }
        if !(64..=512 * 1024 * 1024).contains(&self.jobs.max_payload_bytes) {
            return bad("jobs.max_payload_bytes", "must be 64 bytes to 512 MiB");
        }
        if self.jobs.idempotency_ttl < Duration::from_millis(1) {
            return bad("jobs.idempotency_ttl", "must be at least 1ms");
        }
        check_retry(
            "retry",
            Some(self.retry.max_attempts),
            Some(self.retry.backoff_base),
            Some(self.retry.backoff_cap),
        )?;
        for (kind, k) in &self.kinds {
            check_retry(
                &format!("kinds.\"{kind}\""),
                k.max_attempts,
                k.backoff_base,
                k.backoff_cap,
            )?;
            if k.timeout.is_some_and(|t| t.is_zero()) {
                return bad(
                    &format!("kinds.\"{kind}\".timeout"),
                    "must be greater than zero",
                );
            }
        }
        let r = &self.retention;
        if r.succeeded_max == 0 {
            return bad("retention.succeeded_max", "must be at least 1");
        }
        if r.dead_max == 0 {
            return bad("retention.dead_max", "must be at least 1");
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.cron.schedules.iter().enumerate() {
            let field = format!("cron.schedules[{i}] ({:?})", s.name);
            if s.name.is_empty()
                || s.name.len() > 64
                || !s
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return bad(
                    &format!("{field}.name"),
                    "use 1-64 characters from A-Z a-z 0-9 _ - .",
                );
            }
            if !names.insert(s.name.as_str()) {
                return bad(
                    &format!("{field}.name"),
                    "another schedule has the same name",
                );
            }
            if let Err(e) = crate::keys::validate_queue(&s.queue) {
                return bad(&format!("{field}.queue"), e.to_string());
            }
            if let Err(e) = crate::keys::validate_kind(&s.kind) {
                return bad(&format!("{field}.kind"), e.to_string());
            }
            if s.max_attempts == Some(0) {
                return bad(&format!("{field}.max_attempts"), "must be at least 1");
            }
            if s.catch_up_max == 0 {
                return bad(&format!("{field}.catch_up_max"), "must be at least 1");
            }
        }
        let db = self.database_url.to_ascii_lowercase();
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|s| db.starts_with(s))
        {
            return bad(
                "database_url",
                format!(
                    "{:?}: expected sqlite://PATH (embedded) or postgres://USER@HOST:PORT/DB",
                    redact_url(&self.database_url)
                ),
            );
        }
        if let Err((field, message)) = self.links.validate() {
            return bad(field, message);
        }
        if tracing_level_ok(&self.log.level).is_err() {
            return bad(
                "log.level",
                format!(
                    "{:?} is not a log filter; try info, debug or warn",
                    self.log.level
                ),
            );
        }
        Ok(())
    }

    /// The policy for `kind`: its `[kinds]` entry over `[retry]` and `[worker]`.
    pub fn policy(&self, kind: &str) -> KindPolicy {
        let k = self.kinds.get(kind).cloned().unwrap_or_default();
        KindPolicy {
            max_attempts: k.max_attempts.unwrap_or(self.retry.max_attempts),
            backoff: Backoff {
                base: k.backoff_base.unwrap_or(self.retry.backoff_base),
                cap: k.backoff_cap.unwrap_or(self.retry.backoff_cap),
            },
            timeout: k.timeout.unwrap_or(self.worker.job_timeout),
        }
    }
}

fn check_retry(
    section: &str,
    max_attempts: Option<u32>,
    base: Option<Duration>,
    cap: Option<Duration>,
) -> Result<()> {
    if max_attempts == Some(0) {
        return Err(Error::ConfigValue {
            field: format!("{section}.max_attempts"),
            message: "must be at least 1".into(),
        });
    }
    if let (Some(base), Some(cap)) = (base, cap) {
        if base > cap {
            return Err(Error::ConfigValue {
                field: format!("{section}.backoff_base"),
                message: format!(
                    "must not exceed {section}.backoff_cap ({})",
                    humantime::format_duration(cap)
                ),
            });
        }
    }
    Ok(())
}

fn tracing_level_ok(level: &str) -> std::result::Result<(), ()> {
    // Accept what an EnvFilter accepts in the common cases: comma-separated `target=level`
    // or `level` directives.
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let lvl = directive.rsplit('=').next().unwrap_or(directive);
        if !["trace", "debug", "info", "warn", "error", "off"]
            .contains(&lvl.to_ascii_lowercase().as_str())
        {
            return Err(());
        }
    }
    Ok(())
}

/// Replace the password of a Redis URL with `***` (for logs and error messages).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let redacted = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{}{}{}", &url[..scheme_end + 3], redacted, &rest[at..])
        }
        None => url.to_string(),
    }
}

fn apply_env(table: &mut toml::Table, name: &str, value: &str) {
    let Some(rest) = name.strip_prefix("CELERIAC_") else {
        return;
    };
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if !TOP_LEVEL_KEYS.contains(&path[0].as_str()) || path.iter().any(String::is_empty) {
        return;
    }
    let parsed = parse_env_value(&path.join("."), value);
    let mut node = table;
    for (i, segment) in path.iter().enumerate() {
        if i + 1 == path.len() {
            node.insert(segment.clone(), parsed);
            return;
        }
        let entry = node
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        node = next;
    }
}

fn parse_env_value(path: &str, value: &str) -> toml::Value {
    if LIST_FIELDS.contains(&path) {
        return toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        );
    }
    if STRING_FIELDS.contains(&path) {
        return toml::Value::String(value.to_string());
    }
    if let Ok(v) = value.parse::<i64>() {
        return toml::Value::Integer(v);
    }
    if let Ok(v) = value.parse::<bool>() {
        return toml::Value::Boolean(v);
    }
    toml::Value::String(value.to_string())
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration ({e}); write it like \"500ms\", \"30s\", \"5m\" or \"24h\""
        ))
    })
}

fn opt_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    Ok(Some(s).filter(|s| !s.is_empty()))
}

fn opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile_lite::TempFile {
        let f = tempfile_lite::TempFile::new();
        std::fs::File::create(&f.path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        f
    }

    /// A file in the temp dir removed on drop (no extra dependency for one test helper).
    mod tempfile_lite {
        pub struct TempFile {
            pub path: std::path::PathBuf,
        }
        impl TempFile {
            pub fn new() -> Self {
                let path = std::env::temp_dir().join(format!(
                    "celeriac-config-test-{}-{}.toml",
                    std::process::id(),
                    fastrand::u64(..)
                ));
                TempFile { path }
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    #[test]
    fn defaults_are_valid_and_match_the_constants() {
        let c = Config::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.worker.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(c.retention.dead_max, DEFAULT_DEAD_MAX);
        assert_eq!(c.policy("anything").max_attempts, DEFAULT_MAX_ATTEMPTS);
    }

    #[test]
    fn the_shipped_default_toml_is_valid_and_equals_the_constants() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
        let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
        let d = Config::default();
        assert_eq!(c.redis_url, d.redis_url);
        assert_eq!(c.worker.lease, d.worker.lease);
        assert_eq!(c.worker.shutdown_grace, d.worker.shutdown_grace);
        assert_eq!(c.retention.succeeded_ttl, d.retention.succeeded_ttl);
        assert_eq!(c.jobs.max_payload_bytes, d.jobs.max_payload_bytes);
        assert_eq!(c.database_url, d.database_url);
        assert_eq!(c.links.timeout, d.links.timeout);
        assert_eq!(c.links.concurrency, d.links.concurrency);
        assert_eq!(c.links.per_host, d.links.per_host);
        assert_eq!(c.links.host_interval, d.links.host_interval);
        assert_eq!(c.links.max_body_bytes, d.links.max_body_bytes);
        assert_eq!(c.links.retries, d.links.retries);
        assert_eq!(c.links.user_agent, d.links.user_agent);
        assert_eq!(
            c.links.allow_private_networks,
            d.links.allow_private_networks
        );
        assert_eq!(c.links.keep_runs, d.links.keep_runs);
        assert_eq!(c.links.hide_after_failures, d.links.hide_after_failures);
        assert_eq!(c.cron.schedules.len(), d.cron.schedules.len());
        let (a, b) = (&c.cron.schedules[0], &d.cron.schedules[0]);
        assert_eq!(
            (&a.name, &a.schedule, &a.kind, a.catch_up, a.max_attempts),
            (&b.name, &b.schedule, &b.kind, b.catch_up, b.max_attempts)
        );
    }

    #[test]
    fn layers_file_then_env() {
        let f = file("prefix = \"from-file\"\n[worker]\nconcurrency = 4\nlease = \"10s\"\nheartbeat_interval = \"2s\"\n[kinds.fail]\nmax_attempts = 3\n");
        let c = Config::load_with_env(
            Some(&f.path),
            env(&[
                ("CELERIAC_WORKER__CONCURRENCY", "7"),
                ("CELERIAC_WORKER__QUEUES", "a,b"),
                ("CELERIAC_UNRELATED", "x"),
                ("CELERIAC_LOG__LEVEL", "celeriac_worker=debug,info"),
            ]),
        )
        .unwrap();
        assert_eq!(c.prefix, "from-file");
        assert_eq!(c.worker.concurrency, 7);
        assert_eq!(c.worker.queues, vec!["a", "b"]);
        assert_eq!(c.worker.lease, Duration::from_secs(10));
        assert_eq!(c.policy("fail").max_attempts, 3);
        assert_eq!(c.policy("noop").max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(c.log.level, "celeriac_worker=debug,info");
        let one = Config::load_with_env(
            None,
            env(&[
                ("CELERIAC_WORKER__QUEUES", "mail"),
                ("CELERIAC_PREFIX", "2024"),
            ]),
        )
        .unwrap();
        assert_eq!(one.worker.queues, vec!["mail"]);
        assert_eq!(one.prefix, "2024");
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            ("[worker]\nconcurrency = 0\n", "worker.concurrency"),
            ("[worker]\nqueues = [\"a{b\"]\n", "worker.queues"),
            (
                "[worker]\nlease = \"1s\"\nheartbeat_interval = \"1s\"\n",
                "worker.heartbeat_interval",
            ),
            ("[retry]\nbackoff_base = \"2h\"\n", "retry.backoff_base"),
            ("redis_url = \"http://x\"\n", "redis_url"),
            (
                "[kinds.fail]\nmax_attempts = 0\n",
                "kinds.\"fail\".max_attempts",
            ),
            ("database_url = \"mysql://x\"\n", "database_url"),
            ("[links]\nconcurrency = 0\n", "links.concurrency"),
            ("[links]\nper_host = 100\n", "links.per_host"),
            (
                "[links]\nhide_after_failures = 0\n",
                "links.hide_after_failures",
            ),
            ("[links]\ntimeout = \"0s\"\n", "links.timeout"),
            (
                "[links]\nsite_link = \"(unclosed\"\nsite_link_regex = true\n",
                "links.site_link",
            ),
        ];
        for (text, field) in cases {
            let f = file(text);
            let err = Config::load_with_env(Some(&f.path), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
        let f = file("[links]\nallowed_networks = [\"10.0.0.0/33\"]\n");
        let err = Config::load_with_env(Some(&f.path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("10.0.0.0/33") && err.contains("not a network"),
            "{err}"
        );
        let c = Config::load_with_env(
            None,
            env(&[
                ("CELERIAC_LINKS__ALLOWED_NETWORKS", "127.0.0.1/32, fd00::/8"),
                ("CELERIAC_LINKS__WHITELIST", "Ours,Partner"),
                ("CELERIAC_DATABASE_URL", "postgres://u@h/db"),
            ]),
        )
        .unwrap();
        assert_eq!(c.links.allowed_networks.len(), 2);
        assert_eq!(c.links.whitelist, ["Ours", "Partner"]);
        assert_eq!(c.database_url, "postgres://u@h/db");
        let f = file("[worker]\nconcurency = 3\n");
        let err = Config::load_with_env(Some(&f.path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("concurency"), "{err}");
        let f = file("[worker]\nlease = \"soon\"\n");
        let err = Config::load_with_env(Some(&f.path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a duration"), "{err}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://u:secret@h:6379/0"),
            "redis://u:***@h:6379/0"
        );
        assert_eq!(redact_url("rediss://secret@h"), "rediss://***@h");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
