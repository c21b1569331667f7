//! The one list of Celeriac's domains: each one's config sections, job kinds, the retry
//! policy defaults of those kinds, registration with a worker, default schedules and database
//! migrations. `celeriac worker`, `celeriac
//! cron`'s kind check, `celeriac migrate` and the tests all go through here; adding a domain
//! means adding it here (and its CLI command), nothing in the runtime crates.

use celeriac_core::config::Layers;
use celeriac_core::Broker;
use celeriac_cron::ScheduleConfig;
use celeriac_db::{LazyDb, Migrations};
use celeriac_worker::Registry;
use std::sync::Arc;

/// Every domain's settings, and the sections the domains share.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Configs {
    /// `[links]`.
    pub links: celeriac_links::LinksConfig,
    /// `[onebot]`: the OneBot v11 API the domains that talk to QQ share.
    pub onebot: celeriac_onebot::OneBotConfig,
    /// `[verification]`.
    pub verification: celeriac_verification::VerificationConfig,
    /// `[fanout]`.
    pub fanout: celeriac_fanout::FanoutConfig,
}

impl Configs {
    /// Every domain's sections of `layers`.
    pub fn from_layers(layers: &Layers) -> celeriac_core::Result<Configs> {
        Ok(Configs {
            links: layers.section()?,
            onebot: layers.section()?,
            verification: layers.section()?,
            fanout: layers.section()?,
        })
    }
}

/// Every kind a worker built from this list runs: the built-in kinds and each domain's.
pub fn kinds() -> Vec<String> {
    let mut kinds: Vec<String> = celeriac_worker::kinds::KINDS
        .iter()
        .chain(celeriac_links::KINDS)
        .chain(celeriac_verification::KINDS)
        .chain(celeriac_fanout::KINDS)
        .map(|k| k.to_string())
        .collect();
    kinds.sort();
    kinds
}

/// The retry policy defaults domains give their kinds (under the operator's `[kinds]`); the
/// same ones their `register` gives a worker's registry.
pub fn kind_defaults() -> Vec<(String, celeriac_worker::config::KindConfig)> {
    celeriac_fanout::kind_defaults()
}

/// Every domain's migrations (their versions do not overlap).
pub fn migrations() -> Vec<Migrations> {
    vec![
        celeriac_links::MIGRATIONS,
        celeriac_verification::MIGRATIONS,
        celeriac_fanout::MIGRATIONS,
    ]
}

/// The periodic jobs the domains ship with, the built-in `[[cron.schedules]]`.
pub fn default_schedules() -> Vec<ScheduleConfig> {
    let mut schedules = celeriac_links::default_schedules();
    schedules.extend(celeriac_verification::default_schedules());
    schedules
}

/// The jobs the domains want for one OneBot event (`celeriac onebot receive`); `event` is the
/// body as JSON, `parsed` the same event typed. Each job's id is derived from the event, so a
/// duplicate delivery enqueues nothing new.
pub fn event_jobs(
    event: &serde_json::Value,
    parsed: &celeriac_onebot::Event,
    configs: &Configs,
) -> Vec<celeriac_producer::NewJob> {
    let mut jobs = Vec::new();
    if celeriac_verification::intake::wants(parsed, &configs.verification) {
        jobs.push(celeriac_verification::intake::job(event));
    }
    jobs
}

/// What domains share in a worker: Redis, and the database, opened when a job first needs it.
pub struct Context {
    /// Redis.
    pub broker: Broker,
    /// Enqueues follow-up jobs (on `broker`, with core's limits).
    pub producer: celeriac_producer::Producer,
    /// The domain database (nothing is opened until a job needs it).
    pub db: Arc<LazyDb>,
}

impl Context {
    /// A context over `broker` (with core's settings `core`) and the database at
    /// `database_url`; nothing is opened yet.
    pub fn new(
        broker: Broker,
        core: &celeriac_core::config::Config,
        database_url: &str,
    ) -> Context {
        Context {
            producer: celeriac_producer::Producer::with_broker(broker.clone(), core),
            broker,
            db: Arc::new(LazyDb::new(database_url, migrations())),
        }
    }
}

/// Register every domain's kinds.
pub fn register(registry: &mut Registry, context: &Context, configs: &Configs) {
    celeriac_links::register(
        registry,
        Arc::new(celeriac_links::Context {
            db: context.db.clone(),
            broker: context.broker.clone(),
            config: configs.links.clone(),
        }),
    );
    celeriac_verification::register(
        registry,
        Arc::new(celeriac_verification::Context::new(
            context.db.clone(),
            context.broker.clone(),
            context.producer.clone(),
            configs.verification.clone(),
            configs.onebot.clone(),
        )),
    );
    celeriac_fanout::register(
        registry,
        Arc::new(celeriac_fanout::Context::new(
            context.db.clone(),
            context.broker.clone(),
            context.producer.clone(),
            configs.fanout.clone(),
            configs.onebot.clone(),
        )),
    );
}
