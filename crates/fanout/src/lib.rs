//! The message fan-out domain: a broadcast to a topic's subscribers (or to a list of
//! recipients) stores the message once and becomes one delivery job per distinct recipient,
//! each retried on its own schedule, all in one batch (ADR 0010) that completes exactly once.
//! See `docs/fanout.md` for the flow and `docs/adr/0016-fanout.md` for the decisions.
//!
//! - [`config`]: the `[fanout]` section (timeout, throttling, the network guard) and the
//!   default retry schedule of deliveries ([`kind_defaults`]).
//! - [`model`]: the closed sets stored (channel, subscriber status, delivery state) and a
//!   [`Recipient`].
//! - [`broadcast`]: `fanout.broadcast` (store, create the deliveries, enqueue the batch) and
//!   `fanout.complete` (the batch's completion job).
//! - [`deliver`]: `fanout.deliver`, one attempt to one recipient.
//! - [`channel`]: the webhook (signed, SSRF-guarded) and OneBot channels.
//! - [`sign`]: Standard Webhooks signatures and `whsec_` secrets.
//! - [`reader`]: grouped reads of the deliveries starting at once.
//! - [`recorder`]: group commit of delivery attempts.
//! - [`store`]: the tables (topics, subscribers, broadcasts, deliveries).
//! - [`error`]: the domain's errors and what each means for a job.
//!
//! The program that assembles Celeriac registers the domain with [`register`] (which gives
//! `fanout.deliver` its retry schedule, [`kind_defaults`]) and migrates its tables with
//! [`MIGRATIONS`].

pub mod broadcast;
pub mod channel;
pub mod config;
pub mod deliver;
pub mod error;
pub mod model;
pub mod reader;
pub mod recorder;
pub mod sign;
pub mod store;

pub use broadcast::{BroadcastJob, Complete};
pub use config::FanoutConfig;
pub use deliver::Deliver;
pub use error::{Error, Result};
pub use model::{Channel, DeliveryState, Recipient, SubscriberStatus};
pub use store::Store;

use celeriac_core::connection::Conn;
use celeriac_core::Broker;
use celeriac_db::{LazyDb, Migrations};
use celeriac_http::{reqwest, Guard, HostPacer};
use celeriac_onebot::{HttpClient, OneBotConfig, PacedClient, Pacer};
use celeriac_producer::Producer;
use celeriac_worker::config::KindConfig;
use celeriac_worker::Registry;
use std::sync::{Arc, Mutex};

/// One broadcast: creates its deliveries.
pub const BROADCAST_KIND: &str = "fanout.broadcast";
/// One attempt to one recipient.
pub const DELIVER_KIND: &str = "fanout.deliver";
/// A broadcast's batch completed.
pub const COMPLETE_KIND: &str = "fanout.complete";
/// The kinds of this domain.
pub const KINDS: &[&str] = &[BROADCAST_KIND, DELIVER_KIND, COMPLETE_KIND];

/// The domain's tables, in both dialects (versions 200-299 belong to this domain).
pub const MIGRATIONS: Migrations = &[(
    200,
    "0200_fanout",
    include_str!("../../../migrations/sqlite/0200_fanout.sql"),
    include_str!("../../../migrations/postgres/0200_fanout.sql"),
)];

/// The OneBot client the domain sends through: HTTP, paced per bot account in Redis.
pub type Bot = PacedClient<HttpClient, Conn>;

/// What the domain's jobs need. The database is opened and the clients built on the first job
/// that needs them.
pub struct Context {
    /// The domain database.
    pub db: Arc<LazyDb>,
    /// Redis (OneBot pacing).
    pub broker: Broker,
    /// Enqueues the deliveries of a broadcast.
    pub producer: Producer,
    /// `[fanout]`.
    pub config: FanoutConfig,
    /// `[onebot]`.
    pub onebot: OneBotConfig,
    /// Webhook requests in flight per host.
    pub host_pacer: HostPacer,
    throttled: deliver::Throttled,
    broadcasts: deliver::Broadcasts,
    reader: tokio::sync::OnceCell<reader::Reader>,
    recorder: tokio::sync::OnceCell<recorder::Recorder>,
    http: Mutex<Option<(reqwest::Client, Arc<Guard>)>>,
    bot: tokio::sync::OnceCell<Bot>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context; nothing is opened yet.
    pub fn new(
        db: Arc<LazyDb>,
        broker: Broker,
        producer: Producer,
        config: FanoutConfig,
        onebot: OneBotConfig,
    ) -> Context {
        Context {
            db,
            broker,
            producer,
            host_pacer: HostPacer::new(config.per_host, std::time::Duration::ZERO),
            config,
            onebot,
            throttled: deliver::Throttled::default(),
            broadcasts: deliver::Broadcasts::default(),
            reader: tokio::sync::OnceCell::new(),
            recorder: tokio::sync::OnceCell::new(),
            http: Mutex::new(None),
            bot: tokio::sync::OnceCell::new(),
        }
    }

    /// The tables.
    pub async fn store(&self) -> Result<Store> {
        Ok(Store::new(self.db.get().await?.clone()))
    }

    /// The grouped reader of deliveries about to be attempted, started on first use.
    pub async fn reader(&self) -> Result<&reader::Reader> {
        self.reader
            .get_or_try_init(|| async { Ok(reader::Reader::start(self.store().await?)) })
            .await
    }

    /// The group-commit recorder of delivery attempts, started on first use.
    pub async fn recorder(&self) -> Result<&recorder::Recorder> {
        self.recorder
            .get_or_try_init(|| async { Ok(recorder::Recorder::start(self.store().await?)) })
            .await
    }

    /// The webhook client and its guard, built on first use.
    pub fn http(&self) -> Result<(reqwest::Client, Arc<Guard>)> {
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = &*http {
            return Ok(h.clone());
        }
        let built = celeriac_http::build(&celeriac_http::ClientOptions {
            user_agent: self.config.user_agent.clone(),
            policy: self.config.address_policy(),
            connect_timeout: self.config.timeout,
            idle_per_host: self.config.per_host,
            idle_timeout: std::time::Duration::from_secs(90),
        })
        .map_err(|e| Error::Client(format!("webhook client: {e}")))?;
        *http = Some(built.clone());
        Ok(built)
    }

    /// The OneBot client, acting as the account `[onebot] api_url` logs in as.
    pub async fn bot(&self) -> Result<Bot> {
        self.bot
            .get_or_try_init(|| async {
                let client = HttpClient::from_config(&self.onebot).map_err(|e| {
                    Error::Client(format!("OneBot client: {e}; check [onebot] api_url"))
                })?;
                let pacer = Pacer::new(
                    self.broker.connection(),
                    self.broker.keys().prefix(),
                    &self.onebot,
                );
                PacedClient::discover(client, pacer)
                    .await
                    .map_err(|e| Error::Attempt {
                        error: format!("cannot ask OneBot which account it is: {e}"),
                        at_least: Some(std::time::Duration::from_secs(5)),
                    })
            })
            .await
            .cloned()
    }
}

/// The retry policy defaults of the domain's kinds: `fanout.deliver` retries on Standard
/// Webhooks' schedule ([`config::DEFAULT_FANOUT_RETRY_SCHEDULE`], ±20 %), eight attempts. The
/// operator's `[kinds."fanout.deliver"]` overrides it.
pub fn kind_defaults() -> Vec<(String, KindConfig)> {
    vec![(
        DELIVER_KIND.to_string(),
        KindConfig::schedule(
            config::DEFAULT_FANOUT_RETRY_SCHEDULE,
            config::DEFAULT_FANOUT_RETRY_JITTER,
        ),
    )]
}

/// Register `fanout.broadcast`, `fanout.deliver` (with its retry schedule, [`kind_defaults`])
/// and `fanout.complete`.
pub fn register(registry: &mut Registry, context: Arc<Context>) -> &mut Registry {
    for (kind, defaults) in kind_defaults() {
        registry.set_defaults(&kind, defaults);
    }
    let c = context.clone();
    registry.register_typed::<BroadcastJob, _, _>(move |payload, job| {
        let c = c.clone();
        async move { broadcast::broadcast(&c, payload, job).await }
    });
    let c = context.clone();
    registry.register_typed::<Deliver, _, _>(move |payload, job| {
        let c = c.clone();
        async move { deliver::deliver(&c, payload, job).await }
    });
    registry.register_typed::<Complete, _, _>(move |payload, _job| {
        let c = context.clone();
        async move { broadcast::complete(&c, payload).await }
    })
}
