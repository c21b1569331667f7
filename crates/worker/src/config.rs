//! The worker's sections: `[worker]` (queues, concurrency, leases, sweeps, shutdown), `[retry]`
//! (the default retry policy) and `[kinds."KIND"]` (per-kind overrides: attempts, backoff or a
//! fixed retry schedule, timeout), with their defaults and validation; [`Settings`] bundles them
//! with core's settings and the defaults domains give their kinds.
//!
//! A kind's policy, field by field: its `[kinds]` entry, else the defaults its domain
//! registered ([`crate::Registry::set_defaults`]), else `[retry]` / `[worker]`. A `[kinds]`
//! entry that sets `retry_schedule` or `backoff_*` replaces the domain's way of retrying
//! (schedule or backoff) as a whole. A schedule sets the attempts (one per entry) unless
//! `max_attempts` is set beside it, which must then equal its length.

use celeriac_core::backoff::{Backoff, Schedule};
use celeriac_core::config::{
    duration, opt_duration, Config, FieldError, Layers, Section, DEFAULT_QUEUE,
};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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
/// Attempts before a failing job is dead.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 25;
/// Upper bound of the first retry delay.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Upper bound of any retry delay.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(3600);
/// How far each delay of a retry schedule is moved either way at random, unless the kind says.
pub const DEFAULT_RETRY_JITTER: f64 = 0.2;
/// Most entries of a retry schedule.
pub const MAX_SCHEDULE_ENTRIES: usize = 100;
/// Longest delay of a retry schedule.
pub const MAX_SCHEDULE_DELAY: Duration = Duration::from_secs(7 * 86400);

/// Everything a worker reads: core's settings and the worker's sections.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// Redis, `[jobs]`, `[retention]`.
    pub core: Config,
    /// `[worker]`.
    pub worker: WorkerConfig,
    /// `[retry]`.
    pub retry: RetryConfig,
    /// `[kinds."KIND"]`.
    pub kinds: KindsConfig,
    /// The defaults domains give their kinds, under `[kinds]` (not read from the
    /// configuration: set by the program that registers the domains, see
    /// [`Settings::with_defaults`]).
    pub defaults: KindsConfig,
}

impl Settings {
    /// The worker's sections of `layers`.
    pub fn from_layers(layers: &Layers) -> celeriac_core::Result<Settings> {
        Ok(Settings {
            core: Config::from_layers(layers)?,
            worker: layers.section()?,
            retry: layers.section()?,
            kinds: layers.section()?,
            defaults: KindsConfig::default(),
        })
    }

    /// These settings with `defaults` as the domains' defaults of their kinds (added to those
    /// already there; a kind given twice keeps the first).
    pub fn with_defaults(
        mut self,
        defaults: impl IntoIterator<Item = (String, KindConfig)>,
    ) -> Settings {
        for (kind, d) in defaults {
            self.defaults.0.entry(kind).or_insert(d);
        }
        self
    }

    /// Refuse a `retry_jitter` that nothing would use: it moves the delays of a retry schedule,
    /// and the kind has none (no `retry_schedule` of its own or from its domain, or its own
    /// `backoff_*` replace the domain's schedule). Run it once the domains' defaults are in.
    pub fn check_kinds(&self) -> Result<(), FieldError> {
        for (kind, k) in &self.kinds.0 {
            if k.retry_jitter.is_some() && self.policy(kind).schedule.is_none() {
                return Err(FieldError::new(
                    format!("kinds.\"{kind}\".retry_jitter"),
                    "moves the delays of a retry_schedule, and this kind has none: it retries on \
                     backoff_base/backoff_cap, whose delays are already spread (full jitter). Add \
                     retry_schedule = [\"0s\", \"5s\", …] beside it, or remove retry_jitter",
                ));
            }
        }
        Ok(())
    }

    /// The policy for `kind`: its `[kinds]` entry, over its domain's defaults, over `[retry]`
    /// and `[worker]` (see the module's documentation).
    pub fn policy(&self, kind: &str) -> KindPolicy {
        let none = KindConfig::default();
        let k = self.kinds.0.get(kind).unwrap_or(&none);
        let d = self.defaults.0.get(kind).unwrap_or(&none);
        // The operator's way of retrying replaces the domain's as a whole.
        let own_backoff = k.backoff_base.is_some() || k.backoff_cap.is_some();
        let delays = match &k.retry_schedule {
            Some(s) => Some(s),
            None if own_backoff => None,
            None => d.retry_schedule.as_ref(),
        };
        let schedule = delays.map(|delays| Schedule {
            delays: delays.clone(),
            jitter: k
                .retry_jitter
                .or(d.retry_jitter)
                .unwrap_or(DEFAULT_RETRY_JITTER),
        });
        KindPolicy {
            max_attempts: k
                .max_attempts
                .or(schedule.as_ref().map(Schedule::attempts))
                .or(d.max_attempts)
                .unwrap_or(self.retry.max_attempts),
            backoff: Backoff {
                base: k
                    .backoff_base
                    .or(d.backoff_base)
                    .unwrap_or(self.retry.backoff_base),
                cap: k
                    .backoff_cap
                    .or(d.backoff_cap)
                    .unwrap_or(self.retry.backoff_cap),
            },
            schedule,
            timeout: k.timeout.or(d.timeout).unwrap_or(self.worker.job_timeout),
        }
    }
}

/// The retry policy and timeout of one kind, with fallbacks applied.
#[derive(Clone, Debug, PartialEq)]
pub struct KindPolicy {
    /// Attempts before dead (a job's own `max_attempts` wins).
    pub max_attempts: u32,
    /// Retry delays, unless the kind has a schedule.
    pub backoff: Backoff,
    /// The kind's fixed retry schedule, used instead of `backoff`.
    pub schedule: Option<Schedule>,
    /// Per-attempt timeout (a job's own `timeout_ms` wins).
    pub timeout: Duration,
}

impl KindPolicy {
    /// The delay before the next attempt after `failed` failed attempts (1-based): the
    /// schedule's entry, jittered, or the backoff.
    pub fn retry_delay(&self, failed: u32) -> Duration {
        match &self.schedule {
            Some(s) => s.delay(failed),
            None => self.backoff.delay(failed),
        }
    }

    /// When a job whose attempt `failed` ended with `outcome` runs again, if it is a retry:
    /// `Retry` after [`KindPolicy::retry_delay`], `RetryAfter` after the handler's delay,
    /// `RetryAtLeast` after the longer of the two. Whether attempts are left is not checked.
    pub fn delay_after(&self, outcome: &crate::Outcome, failed: u32) -> Option<Duration> {
        use crate::Outcome;
        match outcome {
            Outcome::Retry(_) => Some(self.retry_delay(failed)),
            Outcome::RetryAfter(_, d) => Some(*d),
            Outcome::RetryAtLeast(_, d) => Some(self.retry_delay(failed).max(*d)),
            Outcome::Done(_) | Outcome::Discard(_) | Outcome::Snooze(_) => None,
        }
    }
}

/// `[worker]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
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

impl Section for WorkerConfig {
    const NAME: &'static str = "worker";
    const LIST_FIELDS: &'static [&'static str] = &["queues"];

    fn validate(&self) -> Result<(), FieldError> {
        let bad = |field: &str, message: String| Err(FieldError::new(field, message));
        if self.queues.is_empty() {
            return bad("worker.queues", "name at least one queue".into());
        }
        for q in &self.queues {
            if let Err(e) = celeriac_core::keys::validate_queue(q) {
                return bad("worker.queues", e.to_string());
            }
        }
        if !(1..=10_000).contains(&self.concurrency) {
            return bad(
                "worker.concurrency",
                format!("must be 1 to 10000, got {}", self.concurrency),
            );
        }
        if !(1..=1000).contains(&self.batch_size) {
            return bad(
                "worker.batch_size",
                format!("must be 1 to 1000, got {}", self.batch_size),
            );
        }
        if self.lease < Duration::from_millis(500) {
            return bad("worker.lease", "must be at least 500ms".into());
        }
        let lease = humantime::format_duration(self.lease);
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval * 2 > self.lease {
            return bad(
                "worker.heartbeat_interval",
                format!("must be non-zero and at most half of worker.lease ({lease}), so a lease survives one missed renewal"),
            );
        }
        if self.lease_grace.is_some_and(|g| g >= self.lease) {
            return bad(
                "worker.lease_grace",
                format!("must be shorter than worker.lease ({lease})"),
            );
        }
        for (field, d) in [
            ("worker.recover_interval", self.recover_interval),
            ("worker.promote_interval", self.promote_interval),
            ("worker.janitor_interval", self.janitor_interval),
            ("worker.job_timeout", self.job_timeout),
        ] {
            if d.is_zero() {
                return bad(field, "must be greater than zero".into());
            }
        }
        if self.max_deliveries == 0 {
            return bad("worker.max_deliveries", "must be at least 1".into());
        }
        Ok(())
    }
}

/// `[retry]`: the retry policy of every kind without its own.
#[derive(Clone, Debug, PartialEq, Deserialize)]
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

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_cap: DEFAULT_BACKOFF_CAP,
        }
    }
}

impl Section for RetryConfig {
    const NAME: &'static str = "retry";

    fn validate(&self) -> Result<(), FieldError> {
        check_retry(
            "retry",
            Some(self.max_attempts),
            Some(self.backoff_base),
            Some(self.backoff_cap),
        )
    }
}

/// `[kinds."name"]`: every field optional, falling back to the kind's defaults and to
/// `[retry]` / `[worker]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
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
    /// A fixed retry schedule instead of backoff: entry `n` (from 1) is when attempt `n` runs
    /// after attempt `n - 1` failed; the first, the first attempt's, is `"0s"`. One attempt per
    /// entry.
    #[serde(deserialize_with = "opt_durations")]
    pub retry_schedule: Option<Arc<[Duration]>>,
    /// Fraction (0 to 1) by which each delay of the schedule is moved either way at random.
    pub retry_jitter: Option<f64>,
}

impl KindConfig {
    /// A kind retried on `delays` (see [`KindConfig::retry_schedule`]) moved by ±`jitter`.
    pub fn schedule(delays: &[Duration], jitter: f64) -> KindConfig {
        KindConfig {
            retry_schedule: Some(delays.into()),
            retry_jitter: Some(jitter),
            ..KindConfig::default()
        }
    }
}

fn opt_durations<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<[Duration]>>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            humantime::parse_duration(s).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a duration ({e}); write it like \"0s\", \"5s\", \"5m\" or \"10h\""
                ))
            })
        })
        .collect::<Result<Arc<[Duration]>, _>>()
        .map(Some)
}

/// `[kinds]`: per-kind overrides of the retry policy and timeout.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct KindsConfig(pub BTreeMap<String, KindConfig>);

impl Section for KindsConfig {
    const NAME: &'static str = "kinds";

    fn validate(&self) -> Result<(), FieldError> {
        for (kind, k) in &self.0 {
            let section = format!("kinds.\"{kind}\"");
            check_kind(&section, k)?;
        }
        Ok(())
    }
}

/// A `[kinds]` entry (or a domain's defaults) in itself: each field, and the schedule against
/// the fields it replaces.
pub fn check_kind(section: &str, k: &KindConfig) -> Result<(), FieldError> {
    check_retry(section, k.max_attempts, k.backoff_base, k.backoff_cap)?;
    let bad =
        |field: &str, message: String| Err(FieldError::new(format!("{section}.{field}"), message));
    if k.timeout.is_some_and(|t| t.is_zero()) {
        return bad("timeout", "must be greater than zero".into());
    }
    if let Some(j) = k.retry_jitter {
        if !(0.0..=1.0).contains(&j) {
            return bad("retry_jitter", format!("must be 0 to 1, got {j}"));
        }
    }
    let Some(s) = &k.retry_schedule else {
        return Ok(());
    };
    if !(1..=MAX_SCHEDULE_ENTRIES).contains(&s.len()) {
        return bad(
            "retry_schedule",
            format!(
                "must list 1 to {MAX_SCHEDULE_ENTRIES} delays, one per attempt (the first is the first attempt's, \"0s\"), got {}",
                s.len()
            ),
        );
    }
    if !s[0].is_zero() {
        return bad(
            "retry_schedule",
            format!(
                "the first entry is the first attempt, which runs when the job is due: write \"0s\" there, got {}",
                humantime::format_duration(s[0])
            ),
        );
    }
    if let Some(d) = s.iter().find(|d| **d > MAX_SCHEDULE_DELAY) {
        return bad(
            "retry_schedule",
            format!(
                "each delay must be at most {}, got {}",
                humantime::format_duration(MAX_SCHEDULE_DELAY),
                humantime::format_duration(*d)
            ),
        );
    }
    if let Some(n) = k.max_attempts.filter(|n| *n as usize != s.len()) {
        return bad(
            "max_attempts",
            format!(
                "is {n} but {section}.retry_schedule lists {} attempts; a schedule sets the attempts (one per entry): leave max_attempts out or make them agree",
                s.len()
            ),
        );
    }
    for (field, set) in [
        ("backoff_base", k.backoff_base.is_some()),
        ("backoff_cap", k.backoff_cap.is_some()),
    ] {
        if set {
            return bad(
                field,
                format!("is not used with {section}.retry_schedule: a kind retries on a schedule or on backoff, remove one"),
            );
        }
    }
    Ok(())
}

fn check_retry(
    section: &str,
    max_attempts: Option<u32>,
    base: Option<Duration>,
    cap: Option<Duration>,
) -> Result<(), FieldError> {
    if max_attempts == Some(0) {
        return Err(FieldError::new(
            format!("{section}.max_attempts"),
            "must be at least 1",
        ));
    }
    if let (Some(base), Some(cap)) = (base, cap) {
        if base > cap {
            return Err(FieldError::new(
                format!("{section}.backoff_base"),
                format!(
                    "must not exceed {section}.backoff_cap ({})",
                    humantime::format_duration(cap)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(text: &str, env: &[(&str, &str)]) -> celeriac_core::Result<Settings> {
        let path = std::env::temp_dir().join(format!(
            "celeriac-worker-config-{}-{}.toml",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, text).unwrap();
        let env = env.iter().map(|(a, b)| (a.to_string(), b.to_string()));
        let r = Layers::load_with_env(Some(&path), env).and_then(|l| Settings::from_layers(&l));
        let _ = std::fs::remove_file(&path);
        r
    }

    #[test]
    fn sections_layer_and_policies_fall_back() {
        let s = layers(
            "[worker]\nconcurrency = 4\nlease = \"10s\"\nheartbeat_interval = \"2s\"\n[kinds.fail]\nmax_attempts = 3\n",
            &[("CELERIAC_WORKER__CONCURRENCY", "7"), ("CELERIAC_WORKER__QUEUES", "a,b")],
        )
        .unwrap();
        assert_eq!(s.worker.concurrency, 7);
        assert_eq!(s.worker.queues, ["a", "b"]);
        assert_eq!(s.worker.lease, Duration::from_secs(10));
        assert_eq!(s.policy("fail").max_attempts, 3);
        assert_eq!(s.policy("noop").max_attempts, DEFAULT_MAX_ATTEMPTS);
        let one = layers("", &[("CELERIAC_WORKER__QUEUES", "mail")]).unwrap();
        assert_eq!(one.worker.queues, ["mail"], "one name is a list of one");
        assert_eq!(layers("", &[]).unwrap(), Settings::default());
    }

    #[test]
    fn bad_values_name_their_field() {
        for (text, field) in [
            ("[worker]\nconcurrency = 0\n", "worker.concurrency"),
            ("[worker]\nqueues = [\"a{b\"]\n", "worker.queues"),
            (
                "[worker]\nlease = \"1s\"\nheartbeat_interval = \"1s\"\n",
                "worker.heartbeat_interval",
            ),
            (
                "[worker]\nlease = \"1s\"\nlease_grace = \"1s\"\nheartbeat_interval = \"500ms\"\n",
                "worker.lease_grace",
            ),
            ("[retry]\nbackoff_base = \"2h\"\n", "retry.backoff_base"),
            (
                "[kinds.fail]\nmax_attempts = 0\n",
                "kinds.\"fail\".max_attempts",
            ),
            ("[kinds.fail]\ntimeout = \"0s\"\n", "kinds.\"fail\".timeout"),
            (
                "[kinds.hook]\nretry_schedule = [\"0s\", \"soon\"]\n",
                "`hook.retry_schedule`",
            ),
            (
                "[kinds.hook]\nretry_schedule = []\n",
                "kinds.\"hook\".retry_schedule",
            ),
            (
                "[kinds.hook]\nretry_schedule = [\"5s\", \"5m\"]\n",
                "kinds.\"hook\".retry_schedule",
            ),
            (
                "[kinds.hook]\nretry_schedule = [\"0s\", \"8d\"]\n",
                "kinds.\"hook\".retry_schedule",
            ),
            (
                "[kinds.hook]\nretry_schedule = [\"0s\", \"5s\"]\nmax_attempts = 5\n",
                "kinds.\"hook\".max_attempts",
            ),
            (
                "[kinds.hook]\nretry_schedule = [\"0s\", \"5s\"]\nbackoff_cap = \"1m\"\n",
                "kinds.\"hook\".backoff_cap",
            ),
            (
                "[kinds.hook]\nretry_jitter = 1.5\n",
                "kinds.\"hook\".retry_jitter",
            ),
            ("[worker]\nconcurency = 3\n", "concurency"),
        ] {
            let err = layers(text, &[]).unwrap_err().to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
    }

    #[test]
    fn a_jitter_without_a_schedule_to_move_is_refused() {
        let defaults = || {
            vec![(
                "hook".to_string(),
                KindConfig::schedule(&[0, 5].map(Duration::from_secs), 0.2),
            )]
        };
        // A kind with no schedule of its own and none from a domain.
        let alone = layers("[kinds.other]\nretry_jitter = 0.1\n", &[])
            .unwrap()
            .with_defaults(defaults());
        let err = alone.check_kinds().unwrap_err();
        assert_eq!(err.field, "kinds.\"other\".retry_jitter");
        assert!(err.message.contains("retry_schedule"), "{}", err.message);
        // Its own backoff replaces the domain's schedule: the jitter would be ignored too.
        let backoff = layers(
            "[kinds.hook]\nbackoff_base = \"2s\"\nretry_jitter = 0.1\n",
            &[],
        )
        .unwrap()
        .with_defaults(defaults());
        assert!(backoff.check_kinds().is_err());
        // On the domain's schedule, or on its own, the jitter is used.
        for text in [
            "[kinds.hook]\nretry_jitter = 0.1\n",
            "[kinds.other]\nretry_schedule = [\"0s\", \"1s\"]\nretry_jitter = 0.1\n",
        ] {
            let s = layers(text, &[]).unwrap().with_defaults(defaults());
            assert!(s.check_kinds().is_ok(), "{text}");
        }
        assert_eq!(
            layers("[kinds.hook]\nretry_jitter = 0.1\n", &[])
                .unwrap()
                .with_defaults(defaults())
                .policy("hook")
                .schedule
                .unwrap()
                .jitter,
            0.1
        );
    }

    #[test]
    fn a_kind_retries_on_its_schedule_within_the_jitter() {
        let s = layers(
            "[kinds.hook]\nretry_schedule = [\"0s\", \"10s\", \"1m\"]\nretry_jitter = 0.1\n",
            &[],
        )
        .unwrap();
        let p = s.policy("hook");
        assert_eq!(p.max_attempts, 3, "one attempt per entry");
        for (failed, base) in [(1, 10.0), (2, 60.0), (5, 60.0)] {
            for _ in 0..200 {
                let d = p.retry_delay(failed).as_secs_f64();
                assert!(d >= base * 0.9 && d <= base * 1.1, "after {failed}: {d}");
            }
        }
        // A server's Retry-After is honoured when longer, not when shorter.
        let at_least = |d| crate::Outcome::RetryAtLeast("503".into(), d);
        let long = p
            .delay_after(&at_least(Duration::from_secs(600)), 1)
            .unwrap();
        assert_eq!(long, Duration::from_secs(600));
        let short = p.delay_after(&at_least(Duration::from_secs(1)), 1).unwrap();
        assert!(short >= Duration::from_secs(9), "{short:?}");
        // Other kinds keep the backoff.
        assert_eq!(s.policy("other").schedule, None);
        assert!(s.policy("other").retry_delay(1) <= DEFAULT_BACKOFF_BASE);
    }

    #[test]
    fn a_domains_default_schedule_yields_to_the_operator() {
        let defaults = || {
            vec![(
                "hook".to_string(),
                KindConfig::schedule(&[0, 5, 300].map(Duration::from_secs), 0.2),
            )]
        };
        let plain = layers("", &[]).unwrap().with_defaults(defaults());
        let p = plain.policy("hook");
        assert_eq!(p.max_attempts, 3);
        let s = p.schedule.unwrap();
        assert_eq!((s.base(1), s.jitter), (Duration::from_secs(5), 0.2));
        assert!(check_kind("hook", &defaults()[0].1).is_ok());

        // Fewer attempts on the same schedule (the last entry repeats past its end).
        let fewer = layers("[kinds.hook]\nmax_attempts = 2\nretry_jitter = 0.0\n", &[])
            .unwrap()
            .with_defaults(defaults());
        let p = fewer.policy("hook");
        assert_eq!(p.max_attempts, 2);
        assert_eq!(p.retry_delay(1), Duration::from_secs(5));

        // The operator's own schedule, or backoff, replaces the domain's.
        let own = layers("[kinds.hook]\nretry_schedule = [\"0s\", \"1s\"]\n", &[])
            .unwrap()
            .with_defaults(defaults());
        assert_eq!(own.policy("hook").max_attempts, 2);
        assert_eq!(
            own.policy("hook").schedule.unwrap().base(1),
            Duration::from_secs(1)
        );
        let backoff = layers("[kinds.hook]\nbackoff_base = \"2s\"\n", &[])
            .unwrap()
            .with_defaults(defaults());
        let p = backoff.policy("hook");
        assert_eq!((p.schedule, p.max_attempts), (None, DEFAULT_MAX_ATTEMPTS));
    }

    #[test]
    fn the_lease_grace_defaults_to_a_quarter_of_a_short_lease() {
        let mut w = WorkerConfig::default();
        assert_eq!(w.lease_grace(), DEFAULT_LEASE_GRACE);
        w.lease = Duration::from_secs(2);
        assert_eq!(w.lease_grace(), Duration::from_millis(500));
        w.lease_grace = Some(Duration::from_millis(100));
        assert_eq!(w.lease_grace(), Duration::from_millis(100));
    }
}
