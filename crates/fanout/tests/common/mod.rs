//! Shared by the integration tests: a world of one test's own — a key prefix on the test
//! Redis, a database (SQLite or PostgreSQL), a fake OneBot server, and the domain registered
//! with a worker registry — plus local sink servers and an independent signature check.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use celeriac_core::config::Config;
use celeriac_core::Broker;
use celeriac_db::LazyDb;
use celeriac_fanout::{Channel, Context, FanoutConfig, Recipient, Store};
use celeriac_onebot::fake::FakeOneBot;
use celeriac_onebot::OneBotConfig;
use celeriac_producer::Producer;
use celeriac_testkit::{test_redis_url, Keyspace, TestDb};
use celeriac_worker::testing::TestJob;
use celeriac_worker::{Outcome, Registry};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The attempts a delivery gets on the default schedule.
pub const ATTEMPTS: u32 = celeriac_fanout::config::DEFAULT_FANOUT_RETRY_SCHEDULE.len() as u32;

/// The retry policy a worker gives `fanout.deliver` by default.
pub fn deliver_policy() -> celeriac_worker::config::KindPolicy {
    celeriac_worker::Settings::default()
        .with_defaults(celeriac_fanout::kind_defaults())
        .policy(celeriac_fanout::DELIVER_KIND)
}

/// The bot account of the fake OneBot server.
pub const BOT: i64 = 10000;

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
    pub context: Arc<Context>,
    pub registry: Registry,
    pub producer: Producer,
    pub broker: Broker,
    pub keyspace: Keyspace,
    pub db: TestDb,
}

/// The test `[fanout]`: sinks on 127.0.0.1 are reachable, short timeout.
pub fn config() -> FanoutConfig {
    FanoutConfig {
        allow_private_networks: true,
        timeout: Duration::from_secs(2),
        ..FanoutConfig::default()
    }
}

impl World {
    pub async fn new(db: &str) -> World {
        Self::with(db, config()).await
    }

    pub async fn with(db: &str, config: FanoutConfig) -> World {
        Self::build(db, config, |_| {}).await
    }

    /// A world whose `[onebot]` is changed by `onebot` (the test one: the fake's URL, a fast
    /// rate).
    pub async fn build(
        db: &str,
        config: FanoutConfig,
        onebot: impl FnOnce(&mut OneBotConfig),
    ) -> World {
        let fake = FakeOneBot::builder()
            .self_id(BOT)
            .group(500, celeriac_onebot::Role::Member, &[])
            .start()
            .await
            .expect("the fake starts");
        let mut onebot_config = OneBotConfig {
            api_url: fake.url(),
            timeout: Duration::from_secs(5),
            rate: 500.0,
            ..OneBotConfig::default()
        };
        onebot(&mut onebot_config);
        let onebot = onebot_config;
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
        let lazy = Arc::new(LazyDb::new(
            db.url.clone(),
            vec![celeriac_fanout::MIGRATIONS],
        ));
        let context = Arc::new(Context::new(
            lazy,
            broker.clone(),
            producer.clone(),
            config,
            onebot,
        ));
        let mut registry = Registry::new();
        celeriac_fanout::register(&mut registry, context.clone());
        World {
            fake,
            context,
            registry,
            producer,
            broker,
            keyspace,
            db,
        }
    }

    pub async fn store(&self) -> Store {
        self.context.store().await.expect("the test database")
    }

    /// Run job `id` of `kind` once, as attempt `attempt` of `max`.
    pub async fn run(
        &self,
        id: &str,
        kind: &str,
        payload: Value,
        attempt: u32,
        max: u32,
    ) -> Outcome {
        TestJob::new(kind, payload)
            .id(id)
            .attempt(attempt)
            .max_attempts(max)
            .run(&self.registry)
            .await
            .outcome
    }

    /// Run the broadcast job `id`.
    pub async fn broadcast(&self, id: &str, payload: Value) -> Outcome {
        self.run(id, celeriac_fanout::BROADCAST_KIND, payload, 1, 3)
            .await
    }

    /// Run attempt `attempt` (of the schedule's 8) of the delivery `broadcast:key`.
    pub async fn deliver(&self, broadcast: &str, key: &str, attempt: u32) -> Outcome {
        let payload = serde_json::json!({"broadcast": broadcast, "recipient": key});
        let id = format!("{broadcast}:{key}");
        self.run(
            &id,
            celeriac_fanout::DELIVER_KIND,
            payload,
            attempt,
            ATTEMPTS,
        )
        .await
    }

    /// Subscribe a webhook with a secret of the given key bytes.
    pub async fn subscribe_webhook(&self, topic: &str, url: &str, key: &[u8]) -> i64 {
        let r = Recipient {
            channel: Channel::Webhook,
            target: url.into(),
            secret: Some(secret_text(key)),
        };
        self.store()
            .await
            .subscribe(topic, &r)
            .await
            .expect("subscribe")
            .id
    }

    /// The job record `id` holds in Redis (field → value), empty if none.
    pub async fn job_fields(&self, id: &str) -> std::collections::HashMap<String, String> {
        let key = self.broker.keys().job("default", id);
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.broker.connection())
            .await
            .expect("HGETALL")
    }
}

/// `whsec_` + base64 of `key`, encoded by `openssl` (not by the code under test).
pub fn secret_text(key: &[u8]) -> String {
    format!("whsec_{}", openssl(&["base64", "-A"], key))
}

/// `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")), computed by `openssl`: an
/// implementation independent of the crate's.
pub fn expected_signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let mac = openssl_bytes(
        &[
            "dgst",
            "-sha256",
            "-mac",
            "HMAC",
            "-macopt",
            &format!("hexkey:{hex}"),
            "-binary",
        ],
        &signed,
    );
    format!("v1,{}", openssl(&["base64", "-A"], &mac))
}

fn openssl(args: &[&str], input: &[u8]) -> String {
    String::from_utf8(openssl_bytes(args, input))
        .expect("openssl prints text")
        .trim()
        .to_string()
}

fn openssl_bytes(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}
