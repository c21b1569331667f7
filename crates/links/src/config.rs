//! `[links]`: how the `links.check` job fetches friend links.

use celeriac_core::config::{duration, opt_string, FieldError, Section};
use celeriac_http::{AddressPolicy, Network};
use serde::Deserialize;
use std::time::Duration;

/// Whole-request deadline of one attempt (headers and body), as in the seed job.
pub const DEFAULT_LINKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests in flight at once, all hosts together.
pub const DEFAULT_LINKS_CONCURRENCY: usize = 64;
/// Requests in flight at once to one host.
pub const DEFAULT_LINKS_PER_HOST: usize = 4;
/// Least time between the starts of two requests to one host.
pub const DEFAULT_LINKS_HOST_INTERVAL: Duration = Duration::from_millis(20);
/// Redirects followed before `too_many_redirects`.
pub const DEFAULT_LINKS_MAX_REDIRECTS: usize = 10;
/// Most body bytes read when looking for the backlink.
pub const DEFAULT_LINKS_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Retries of a transient failure (5xx, 408, 429, timeout, reset).
pub const DEFAULT_LINKS_RETRIES: u32 = 2;
/// Bound of the first retry delay (doubles per retry, full jitter).
pub const DEFAULT_LINKS_RETRY_BASE: Duration = Duration::from_millis(500);
/// Longest `Retry-After` honoured (longer ones are capped to this).
pub const DEFAULT_LINKS_RETRY_AFTER_CAP: Duration = Duration::from_secs(10);
/// User-Agent of every request.
pub const DEFAULT_LINKS_USER_AGENT: &str =
    concat!("Celeriac-LinkCheck/", env!("CARGO_PKG_VERSION"));
/// Failed checks in a row before a shown link is hidden.
pub const DEFAULT_LINKS_HIDE_AFTER_FAILURES: u32 = 1;
/// Check runs (with their per-link results) kept in the database.
pub const DEFAULT_LINKS_KEEP_RUNS: i64 = 50;

/// `[links]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinksConfig {
    /// Deadline of one attempt: connect, headers and body together.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests in flight at once to one host.
    pub per_host: usize,
    /// Least time between two request starts to one host.
    #[serde(deserialize_with = "duration")]
    pub host_interval: Duration,
    /// Redirects followed.
    pub max_redirects: usize,
    /// Body bytes read at most.
    pub max_body_bytes: usize,
    /// Retries of transient failures.
    pub retries: u32,
    /// First retry delay bound.
    #[serde(deserialize_with = "duration")]
    pub retry_base: Duration,
    /// Longest `Retry-After` honoured.
    #[serde(deserialize_with = "duration")]
    pub retry_after_cap: Duration,
    /// User-Agent header.
    pub user_agent: String,
    /// Let checks reach loopback, private (RFC 1918, ULA), link-local and CGNAT addresses.
    /// Off by default: a friend link must not make the worker fetch internal services.
    pub allow_private_networks: bool,
    /// Networks reachable even when `allow_private_networks` is off (`"10.1.2.0/24"`,
    /// `"fd00::/8"`, or one address).
    pub allowed_networks: Vec<Network>,
    /// Backlink every page must contain when the job's payload gives none (unset: no check).
    #[serde(deserialize_with = "opt_string")]
    pub site_link: Option<String>,
    /// Read `site_link` as a regular expression instead of literal text.
    pub site_link_regex: bool,
    /// Names never checked (added to the job's own whitelist).
    pub whitelist: Vec<String>,
    /// Failed checks in a row before a shown link is hidden (1: at the first failure, as the
    /// job this one replaces did; 2 or 3 ride out a friend's short outage).
    pub hide_after_failures: u32,
    /// Check runs kept in the database with their per-link results.
    pub keep_runs: i64,
}

impl Default for LinksConfig {
    fn default() -> Self {
        LinksConfig {
            timeout: DEFAULT_LINKS_TIMEOUT,
            concurrency: DEFAULT_LINKS_CONCURRENCY,
            per_host: DEFAULT_LINKS_PER_HOST,
            host_interval: DEFAULT_LINKS_HOST_INTERVAL,
            max_redirects: DEFAULT_LINKS_MAX_REDIRECTS,
            max_body_bytes: DEFAULT_LINKS_MAX_BODY_BYTES,
            retries: DEFAULT_LINKS_RETRIES,
            retry_base: DEFAULT_LINKS_RETRY_BASE,
            retry_after_cap: DEFAULT_LINKS_RETRY_AFTER_CAP,
            user_agent: DEFAULT_LINKS_USER_AGENT.into(),
            allow_private_networks: false,
            allowed_networks: Vec::new(),
            site_link: None,
            site_link_regex: false,
            whitelist: Vec::new(),
            hide_after_failures: DEFAULT_LINKS_HIDE_AFTER_FAILURES,
            keep_runs: DEFAULT_LINKS_KEEP_RUNS,
        }
    }
}

impl LinksConfig {
    /// The address policy of the link checker's HTTP client.
    pub fn address_policy(&self) -> AddressPolicy {
        AddressPolicy {
            allow_private: self.allow_private_networks,
            allowed: self.allowed_networks.clone(),
            section: "links",
        }
    }
}

impl Section for LinksConfig {
    const NAME: &'static str = "links";
    const LIST_FIELDS: &'static [&'static str] = &["allowed_networks", "whitelist"];
    const STRING_FIELDS: &'static [&'static str] = &["site_link", "user_agent"];

    fn validate(&self) -> Result<(), FieldError> {
        self.check()
            .map_err(|(field, message)| FieldError::new(field, message))
    }
}

impl LinksConfig {
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(600) {
            return Err((
                "links.timeout",
                "must be more than 0 and at most 10m".into(),
            ));
        }
        if !(1..=10_000).contains(&self.concurrency) {
            return Err((
                "links.concurrency",
                format!("must be 1 to 10000, got {}", self.concurrency),
            ));
        }
        if self.per_host == 0 || self.per_host > self.concurrency {
            return Err((
                "links.per_host",
                format!(
                    "must be 1 to links.concurrency ({}), got {}",
                    self.concurrency, self.per_host
                ),
            ));
        }
        if self.max_redirects > 50 {
            return Err(("links.max_redirects", "must be at most 50".into()));
        }
        if !(1024..=256 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(("links.max_body_bytes", "must be 1 KiB to 256 MiB".into()));
        }
        if self.retries > 10 {
            return Err(("links.retries", "must be at most 10".into()));
        }
        if self.user_agent.is_empty() || !self.user_agent.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            return Err((
                "links.user_agent",
                "must be non-empty printable ASCII".into(),
            ));
        }
        if let Some(site) = &self.site_link {
            if self.site_link_regex {
                if let Err(e) = regex::Regex::new(site) {
                    return Err(("links.site_link", format!("not a valid regex: {e}")));
                }
            }
        }
        if !(1..=100).contains(&self.hide_after_failures) {
            return Err((
                "links.hide_after_failures",
                format!("must be 1 to 100, got {}", self.hide_after_failures),
            ));
        }
        if self.keep_runs < 1 {
            return Err(("links.keep_runs", "must be at least 1".into()));
        }
        Ok(())
    }
}
