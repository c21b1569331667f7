//! Shared by the integration tests: a world of one test's own — a key prefix on the test
//! Redis, a database (SQLite or PostgreSQL), a fake OneBot server with group 100, a manual
//! clock, and the domain registered with a worker registry.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use celeriac_core::config::Config;
use celeriac_core::Broker;
use celeriac_db::LazyDb;
use celeriac_onebot::fake::FakeOneBot;
use celeriac_onebot::{OneBotConfig, Role, Secret};
use celeriac_producer::Producer;
use celeriac_testkit::{test_redis_url, Keyspace, TestDb};
use celeriac_verification::{Context, ManualClock, Store, VerificationConfig};
use celeriac_worker::testing::TestJob;
use celeriac_worker::{Outcome, Registry};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The bot account.
pub const BOT: i64 = 10000;
/// The verified group (the bot is an admin there).
pub const GROUP: i64 = 100;
/// Another group where the bot is an admin.
pub const OTHER_GROUP: i64 = 200;
/// An admin of the group (the bot may not kick them).
pub const ADMIN: i64 = 2001;
/// Who gets the scan reports.
pub const REPORT_TO: i64 = 9001;
/// 2026-01-01T00:00:00Z: 08:00 in Shanghai, when the default quiet hours end; +4 h, +8 h and
/// +12 h are 12:00, 16:00 and 20:00 there.
pub const START: i64 = 1_767_225_600_000;
/// One hour in ms.
pub const HOUR: i64 = 3_600_000;

/// Runs one test body on each backend.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name("sqlite").await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name("postgres").await })*
        }
    };
}

pub struct World {
    pub fake: FakeOneBot,
    pub clock: Arc<ManualClock>,
    pub context: Arc<Context>,
    pub registry: Registry,
    pub producer: Producer,
    pub broker: Broker,
    pub keyspace: Keyspace,
    pub db: TestDb,
    jobs: std::sync::atomic::AtomicU32,
}

/// The test configuration: reports to [`REPORT_TO`].
pub fn config() -> VerificationConfig {
    VerificationConfig {
        admins: vec![REPORT_TO],
        ..VerificationConfig::default()
    }
}

/// The `[onebot]` section for `fake`: fast pacing (kicks 50 ms apart).
pub fn onebot(fake: &FakeOneBot, token: Option<&str>) -> OneBotConfig {
    OneBotConfig {
        api_url: fake.url(),
        access_token: token.map(Secret::new),
        timeout: Duration::from_secs(5),
        rate: 200.0,
        kick_interval: Duration::from_millis(50),
        ..OneBotConfig::default()
    }
}

impl World {
    pub async fn new(db: &str) -> World {
        Self::with(db, config(), None).await
    }

    /// A world with `config` and a fake requiring `token` (sent by the client too).
    pub async fn with(db: &str, config: VerificationConfig, token: Option<&str>) -> World {
        let mut builder = FakeOneBot::builder()
            .self_id(BOT)
            .group(GROUP, Role::Admin, &[(ADMIN, Role::Admin)])
            .group(OTHER_GROUP, Role::Admin, &[]);
        if let Some(t) = token {
            builder = builder.token(t);
        }
        let fake = builder.start().await.expect("the fake starts");
        let onebot = onebot(&fake, token);
        Self::build(db, config, onebot, fake).await
    }

    pub async fn build(
        db: &str,
        config: VerificationConfig,
        onebot: OneBotConfig,
        fake: FakeOneBot,
    ) -> World {
        let keyspace = Keyspace::new(&test_redis_url());
        let db = TestDb::of(db);
        let broker = Broker::connect(keyspace.url(), keyspace.prefix())
            .await
            .expect("the test Redis (redis-server on 127.0.0.1:6379)");
        let core = Config {
            prefix: keyspace.prefix().into(),
            ..Config::default()
        };
        let producer = Producer::with_broker(broker.clone(), &core);
        let clock = Arc::new(ManualClock::new(START));
        let lazy = Arc::new(LazyDb::new(
            db.url.clone(),
            vec![celeriac_verification::MIGRATIONS],
        ));
        let context = Arc::new(
            Context::new(lazy, broker.clone(), producer.clone(), config, onebot)
                .with_clock(clock.clone()),
        );
        let mut registry = Registry::new();
        celeriac_verification::register(&mut registry, context.clone());
        World {
            fake,
            clock,
            context,
            registry,
            producer,
            broker,
            keyspace,
            db,
            jobs: Default::default(),
        }
    }

    pub async fn store(&self) -> Store {
        self.context.store().await.expect("the test database")
    }

    /// Run a job of `kind` once (a fresh id each time unless `id` is given).
    pub async fn run(&self, kind: &str, payload: Value) -> Outcome {
        let n = self.jobs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.run_as(&format!("test-{n}"), kind, payload).await
    }

    pub async fn run_as(&self, id: &str, kind: &str, payload: Value) -> Outcome {
        TestJob::new(kind, payload)
            .id(id)
            .run(&self.registry)
            .await
            .outcome
    }

    /// Deliver an event as the receiver would (the payload is the event).
    pub async fn event(&self, event: Value) -> Outcome {
        self.run("verification.event", event).await
    }

    /// A member joins `group` at the clock's time (the fake learns them first).
    pub async fn join(&self, group: i64, user: i64) -> Outcome {
        self.fake.add_member(group, user, Role::Member);
        self.event(join_event(BOT, group, user, self.clock_secs()))
            .await
    }

    pub fn clock_secs(&self) -> i64 {
        use celeriac_verification::Clock;
        self.clock.now_ms() / 1000
    }

    /// One group's scan, now.
    pub async fn scan_group(&self, group: i64) -> Outcome {
        self.run("verification.group", json!({ "group": group }))
            .await
    }

    /// The texts of the group messages sent to `group`.
    pub fn group_texts(&self, group: i64) -> Vec<String> {
        use celeriac_onebot::fake::Target;
        self.fake
            .messages()
            .into_iter()
            .filter(|m| m.target == Target::Group(group))
            .map(|m| m.text)
            .collect()
    }

    /// The texts of the private messages sent to `user`.
    pub fn private_texts(&self, user: i64) -> Vec<String> {
        use celeriac_onebot::fake::Target;
        self.fake
            .messages()
            .into_iter()
            .filter(|m| m.target == Target::Private(user))
            .map(|m| m.text)
            .collect()
    }

    pub async fn member(&self, group: i64, user: i64) -> celeriac_verification::store::Member {
        self.store()
            .await
            .member(group, user)
            .await
            .unwrap()
            .expect("the member has a row")
    }
}

pub fn join_event(bot: i64, group: i64, user: i64, time: i64) -> Value {
    json!({"post_type": "notice", "notice_type": "group_increase", "sub_type": "approve",
        "time": time, "self_id": bot, "group_id": group, "user_id": user, "operator_id": 0})
}

pub fn private_event(user: i64, text: &str) -> Value {
    json!({"post_type": "message", "message_type": "private", "sub_type": "group",
        "time": 1, "self_id": BOT, "message_id": 77, "user_id": user, "message": text,
        "raw_message": text, "sender": {"nickname": "n"}})
}

pub fn group_event(group: i64, user: i64, text: &str) -> Value {
    json!({"post_type": "message", "message_type": "group", "sub_type": "normal",
        "time": 1, "self_id": BOT, "message_id": 78, "group_id": group, "user_id": user,
        "message": text, "raw_message": text, "sender": {"nickname": "n"}})
}

pub fn decrease_event(group: i64, user: i64, sub_type: &str, operator: i64) -> Value {
    json!({"post_type": "notice", "notice_type": "group_decrease", "sub_type": sub_type,
        "time": 1, "self_id": BOT, "group_id": group, "user_id": user, "operator_id": operator})
}

pub fn lift_ban_event(group: i64, user: i64, operator: i64) -> Value {
    json!({"post_type": "notice", "notice_type": "group_ban", "sub_type": "lift_ban",
        "time": 1, "self_id": BOT, "group_id": group, "user_id": user, "operator_id": operator,
        "duration": 0})
}

pub fn is_done(o: &Outcome) -> bool {
    matches!(o, Outcome::Done(_))
}
