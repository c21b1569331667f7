//! The friend-link domain: `links.check` checks every active friend link (200, and with a
//! `site_link` a backlink on the page), hides the broken ones with the reason and shows again
//! the ones that recovered (see [`check`] for the semantics and `docs/links.md`).
//!
//! - [`config`]: the `[links]` section.
//! - [`check`]: the job: one run at a time, results recorded while checks go on.
//! - [`plan`]: what each report leads to, and the order links are fetched in.
//! - [`fetch`]: one URL, the careful way (on `celeriac-http`: SSRF guard, hardened client,
//!   retries of transient failures, per-host pacing).
//! - [`body`]: the backlink search over a streamed, charset-decoded body.
//! - [`store`]: the tables (links, runs, per-link results) on the shared database.
//! - [`import`]: the CSV and JSON-lines formats `celeriac links import` reads.
//! - [`error`]: the domain's errors and what each means for a job.
//!
//! The program that assembles Celeriac registers the domain with [`register`], migrates its
//! tables with [`MIGRATIONS`] and schedules it with [`default_schedules`].

pub mod body;
pub mod check;
pub mod config;
pub mod error;
pub mod fetch;
pub mod import;
pub mod plan;
pub mod store;

pub use config::LinksConfig;
pub use error::{Error, Result};
pub use store::Store;

use celeriac_core::Broker;
use celeriac_db::{LazyDb, Migrations};
use celeriac_worker::Registry;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The job kind.
pub const KIND: &str = "links.check";
/// The kinds of this domain.
pub const KINDS: &[&str] = &[KIND];
/// Name of the lock that keeps runs one at a time.
pub const LOCK: &str = "links.check";
/// Lease of the lock; renewed every third of it while a run goes on.
pub const LOCK_TTL: Duration = Duration::from_secs(60);
/// How long a run that finds another one running waits before trying again.
pub const WAIT_FOR_OTHER_RUN: Duration = Duration::from_secs(10);

/// The domain's tables, in both dialects (versions 1-99 belong to this domain).
pub const MIGRATIONS: Migrations = &[(
    1,
    "0001_links",
    include_str!("../../../migrations/sqlite/0001_links.sql"),
    include_str!("../../../migrations/postgres/0001_links.sql"),
)];

/// The payload of `links.check`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckLinks {
    /// Text (or, with `site_link_regex`, a regular expression) every page must contain.
    #[serde(default)]
    pub site_link: Option<String>,
    /// Names never checked.
    #[serde(default)]
    pub whitelist: Vec<String>,
    /// Read `site_link` as a regular expression (default: `[links] site_link_regex`).
    #[serde(default)]
    pub site_link_regex: Option<bool>,
}

impl celeriac_core::JobKind for CheckLinks {
    const KIND: &'static str = KIND;
}

/// What `links.check` needs: the database (opened on the first job that needs it, so a worker
/// whose database is down still serves its other kinds), Redis for the lock, and the settings.
pub struct Context {
    /// The domain database.
    pub db: Arc<LazyDb>,
    /// Redis (for the one-run-at-a-time lock).
    pub broker: Broker,
    /// `[links]`.
    pub config: LinksConfig,
}

/// Register `links.check`.
pub fn register(registry: &mut Registry, context: Arc<Context>) -> &mut Registry {
    registry.register_typed::<CheckLinks, _, _>(move |payload, job| {
        let context = context.clone();
        async move { check::handle(&context, payload, job).await }
    })
}

/// The domain's default periodic job: `links-check`, daily at 04:00 UTC, the latest missed tick
/// caught up, 3 attempts.
pub fn default_schedules() -> Vec<celeriac_cron::ScheduleConfig> {
    let mut s = celeriac_cron::ScheduleConfig::new("links-check", "0 4 * * *", KIND);
    s.catch_up = celeriac_cron::CatchUp::Latest;
    s.max_attempts = Some(3);
    vec![s]
}
