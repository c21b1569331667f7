//! The QQ group verification domain: a member who joins a covered group is muted and told a
//! code; answering it (by private or group message) lets them in; scans remind those who do
//! not answer and kick them when the reminders run out, then report to the admins. See
//! `docs/verification.md` for the flow and `docs/adr/0015-verification.md` for the decisions.
//!
//! - [`config`]: the `[verification]` section, with its templates.
//! - [`status`]: the closed sets stored (member [`Status`] with its legal transitions, action
//!   states and purposes).
//! - [`intake`]: which OneBot events the receiver turns into `verification.event` jobs, and
//!   their deterministic ids.
//! - [`event`]: `verification.event` — joins, answers, leaves, mutes lifted by hand.
//! - [`scan`]: `verification.scan` (fans out per group) and `verification.group` (one group
//!   under its lock: remind, kick, report).
//! - [`outbox`]: performing the OneBot actions transitions decided, in order, resumably.
//! - [`store`]: the tables (members, actions) on the shared database.
//! - [`template`], [`code`], [`quiet`], [`clock`]: messages, codes, quiet hours, time.
//! - [`error`]: the domain's errors and what each means for a job.
//!
//! The program that assembles Celeriac registers the domain with [`register`], migrates its
//! tables with [`MIGRATIONS`] and schedules it with [`default_schedules`].

pub mod clock;
pub mod code;
pub mod config;
pub mod error;
pub mod event;
pub mod intake;
pub mod outbox;
pub mod quiet;
pub mod scan;
pub mod status;
pub mod store;
pub mod template;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::VerificationConfig;
pub use error::{Error, Result};
pub use status::Status;
pub use store::Store;

use celeriac_core::connection::Conn;
use celeriac_core::Broker;
use celeriac_db::{LazyDb, Migrations};
use celeriac_onebot::{HttpClient, OneBotConfig, PacedClient, Pacer};
use celeriac_producer::Producer;
use celeriac_worker::Registry;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// One OneBot event to act on (the payload is the event itself).
pub const EVENT_KIND: &str = "verification.event";
/// The periodic scan: enqueues one group job per group with work due.
pub const SCAN_KIND: &str = "verification.scan";
/// One group's scan.
pub const GROUP_KIND: &str = "verification.group";
/// The kinds of this domain.
pub const KINDS: &[&str] = &[EVENT_KIND, SCAN_KIND, GROUP_KIND];

/// The domain's tables, in both dialects (versions 100-199 belong to this domain).
pub const MIGRATIONS: Migrations = &[
    (
        100,
        "0100_verification",
        include_str!("../../../migrations/sqlite/0100_verification.sql"),
        include_str!("../../../migrations/postgres/0100_verification.sql"),
    ),
    (
        101,
        "0101_verification_names",
        include_str!("../../../migrations/sqlite/0101_verification_names.sql"),
        include_str!("../../../migrations/postgres/0101_verification_names.sql"),
    ),
];

/// The payload of `verification.scan`: every group with work due, or only `group`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScanVerification {
    /// Only this group.
    #[serde(default)]
    pub group: Option<i64>,
}

impl celeriac_core::JobKind for ScanVerification {
    const KIND: &'static str = SCAN_KIND;
}

/// The payload of `verification.group`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScanGroup {
    /// The group.
    pub group: i64,
}

impl celeriac_core::JobKind for ScanGroup {
    const KIND: &'static str = GROUP_KIND;
}

/// The OneBot client the domain acts through: HTTP, paced per bot account in Redis.
pub type Bot = PacedClient<HttpClient, Conn>;

/// What the domain's jobs need. The database is opened and the HTTP client built on the first
/// job that needs them.
pub struct Context {
    /// The domain database.
    pub db: Arc<LazyDb>,
    /// Redis (per-group locks, OneBot pacing).
    pub broker: Broker,
    /// Enqueues the per-group jobs of a scan.
    pub producer: Producer,
    /// `[verification]`.
    pub config: VerificationConfig,
    /// `[onebot]`.
    pub onebot: OneBotConfig,
    /// Now.
    pub clock: Arc<dyn Clock>,
    http: Mutex<Option<HttpClient>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .field("onebot", &self.onebot)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context on the system clock.
    pub fn new(
        db: Arc<LazyDb>,
        broker: Broker,
        producer: Producer,
        config: VerificationConfig,
        onebot: OneBotConfig,
    ) -> Context {
        Context {
            db,
            broker,
            producer,
            config,
            onebot,
            clock: Arc::new(SystemClock),
            http: Mutex::new(None),
        }
    }

    /// The same on another clock (tests, benchmarks).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Context {
        self.clock = clock;
        self
    }

    /// The tables.
    pub async fn store(&self) -> Result<Store> {
        Ok(Store::new(self.db.get().await?.clone()))
    }

    /// The OneBot client acting as bot account `bot`, paced with every other process acting
    /// as it.
    pub fn bot(&self, bot: i64) -> Result<Bot> {
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let client = match &*http {
            Some(c) => c.clone(),
            None => {
                let c = HttpClient::new(
                    &self.onebot.api_url,
                    self.onebot.access_token.clone(),
                    self.onebot.timeout,
                )
                .map_err(|e| Error::Client(e.to_string()))?;
                *http = Some(c.clone());
                c
            }
        };
        let pacer = Pacer::new(
            self.broker.connection(),
            self.broker.keys().prefix(),
            &self.onebot,
        );
        Ok(PacedClient::new(client, pacer, bot))
    }
}

/// Register `verification.event`, `verification.scan` and `verification.group`.
pub fn register(registry: &mut Registry, context: Arc<Context>) -> &mut Registry {
    let c = context.clone();
    registry.register(EVENT_KIND, move |job: celeriac_worker::Job| {
        let c = c.clone();
        async move { event::handle(&c, job).await }
    });
    let c = context.clone();
    registry.register_typed::<ScanVerification, _, _>(move |payload, job| {
        let c = c.clone();
        async move { scan::scan(&c, payload, job).await }
    });
    registry.register_typed::<ScanGroup, _, _>(move |payload, job| {
        let c = context.clone();
        async move { scan::group(&c, payload, job).await }
    })
}

/// The domain's default periodic job: `verification-scan`, every 15 minutes, a missed tick
/// not caught up (the next one does the same work), 3 attempts.
pub fn default_schedules() -> Vec<celeriac_cron::ScheduleConfig> {
    let mut s = celeriac_cron::ScheduleConfig::new(
        "verification-scan",
        config::DEFAULT_SCAN_SCHEDULE,
        SCAN_KIND,
    );
    s.catch_up = celeriac_cron::CatchUp::Skip;
    s.max_attempts = Some(3);
    vec![s]
}
