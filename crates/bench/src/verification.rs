//! `make bench-verification`: the verification domain's throughput on this machine, with the
//! OneBot pacing off (`onebot.pacing = false`: the account's rate, 2 actions/s by default, would
//! otherwise be the whole answer) against the fake OneBot server on 127.0.0.1.
//!
//! A private `redis-server`, a SQLite database in a temp directory (or `--database-url`), the
//! fake with `--groups` groups where the bot is an admin; the domain's handlers run in this
//! process, `--concurrency` jobs at a time, as a worker would run them:
//!
//! 1. **joins**: `--members` `verification.event` jobs of `group_increase` (each: one
//!    transaction, then a mute and a welcome through OneBot, the welcome's id written back);
//! 2. **reminders**: the clock moved 4 h on, one `verification.group` job per group (each due
//!    member reminded in one transaction, one group message per group);
//! 3. **kicks**: the clock moved to 12 h, the same (a notice per group, one kick and one recall
//!    per member, a report);
//! 4. **answers**: `--members` more joins, then a private message with the right code from
//!    each (verified, unmuted, a message, the welcome recalled).
//!
//! Then, with the default pacing on (2 actions/s per bot account, kicks 1 s apart), the
//! reminders and kicks of `--paced-members` members in `--paced-groups` more groups: a paced
//! run is bounded by the limiter alone, so the table sets the measured time beside the one
//! computed from the number of actions (a full 10,000-member paced run would take hours:
//! 10,000 kicks at 1/s).
//!
//! Prints Markdown tables on stdout, and the process's peak RSS (the handlers, the fake
//! server and the SQLite connection all live in this one process: an upper bound on what a
//! worker running these jobs needs).

mod common;

use anyhow::{Context as _, Result};
use celeriac_core::config::Config;
use celeriac_core::Broker;
use celeriac_db::LazyDb;
use celeriac_onebot::fake::FakeOneBot;
use celeriac_onebot::{OneBotConfig, Role};
use celeriac_producer::Producer;
use celeriac_verification::{Context, ManualClock, VerificationConfig};
use celeriac_worker::testing::TestJob;
use celeriac_worker::{Outcome, Registry};
use clap::Parser;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Measure the verification domain (see docs/benchmarks.md)")]
struct Args {
    /// Members joining (and, in the last phase, as many more answering).
    #[arg(long, default_value_t = 10_000)]
    members: usize,
    /// Groups they join, round-robin.
    #[arg(long, default_value_t = 100)]
    groups: usize,
    /// Members of the paced run (0: none).
    #[arg(long, default_value_t = 40)]
    paced_members: usize,
    /// Groups of the paced run.
    #[arg(long, default_value_t = 2)]
    paced_groups: usize,
    /// Jobs running at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The domain database (a SQLite file in a temp directory by default).
    #[arg(long)]
    database_url: Option<String>,
}

const BOT: i64 = 10000;
/// 2026-01-01T00:00:00Z: 08:00 in Shanghai (outside the quiet hours, as +4 h and +12 h are).
const START_MS: i64 = 1_767_225_600_000;
const HOUR_MS: i64 = 3_600_000;

struct Bench {
    registry: Registry,
    context: Arc<Context>,
    clock: Arc<ManualClock>,
    fake: Arc<FakeOneBot>,
    concurrency: usize,
}

struct Phase {
    name: &'static str,
    jobs: usize,
    items: usize,
    wall: Duration,
    calls: usize,
    rss_mib: u64,
}

/// This process's resident memory now (MiB).
fn rss_mib() -> u64 {
    common::rss_kib(std::process::id()).unwrap_or(0) / 1024
}

impl Bench {
    /// Run `payloads` as jobs of `kind`, `concurrency` at a time; wall time and OneBot calls.
    async fn run(&self, kind: &str, payloads: Vec<Value>) -> Result<(Duration, usize)> {
        let calls = self.fake.calls().len();
        let started = Instant::now();
        let mut failures = Vec::new();
        let mut outcomes = futures_util::stream::iter(payloads.into_iter().enumerate())
            .map(|(i, p)| {
                TestJob::new(kind, p)
                    .id(&format!("bench-{kind}-{i}"))
                    .run(&self.registry)
            })
            .buffer_unordered(self.concurrency);
        while let Some(ran) = outcomes.next().await {
            if !matches!(ran.outcome, Outcome::Done(_)) {
                failures.push(ran.outcome);
            }
        }
        let wall = started.elapsed();
        anyhow::ensure!(
            failures.is_empty(),
            "{} jobs failed, e.g. {:?}",
            failures.len(),
            failures[0]
        );
        Ok((wall, self.fake.calls().len() - calls))
    }
}

fn join(group: i64, user: i64, time_s: i64) -> Value {
    json!({"post_type": "notice", "notice_type": "group_increase", "sub_type": "approve",
        "time": time_s, "self_id": BOT, "group_id": group, "user_id": user, "operator_id": 0})
}

fn group_of(i: usize, groups: usize) -> i64 {
    1_000_000 + (i % groups) as i64
}

/// The groups of the paced run.
fn paced_group_of(i: usize, groups: usize) -> i64 {
    3_000_000 + (i % groups) as i64
}

/// What a paced phase is bounded by: `actions` slots at `rate`, and `kicks` each
/// `kick_interval` after the last.
fn paced_bound(actions: usize, kicks: usize, onebot: &OneBotConfig) -> Duration {
    let slots = Duration::from_secs_f64(actions.saturating_sub(1) as f64 / onebot.rate);
    let kicks = onebot.kick_interval * kicks.saturating_sub(1) as u32;
    slots.max(kicks)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let redis = common::start_redis()?;
    let dir = std::env::temp_dir().join(format!("celeriac-bench-verification-{}", redis.port));
    std::fs::create_dir_all(&dir)?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/celeriac.db", dir.display()));
    let mut builder = FakeOneBot::builder().self_id(BOT);
    for g in 0..args.groups {
        builder = builder.group(group_of(g, args.groups), Role::Admin, &[]);
    }
    for g in 0..args.paced_groups {
        builder = builder.group(paced_group_of(g, args.paced_groups), Role::Admin, &[]);
    }
    let fake = builder.start().await.context("start the fake OneBot")?;
    for i in 0..2 * args.members {
        fake.add_member(group_of(i, args.groups), 100_000 + i as i64, Role::Member);
    }
    for i in 0..args.paced_members {
        let group = paced_group_of(i, args.paced_groups);
        fake.add_member(group, 5_000_000 + i as i64, Role::Member);
    }
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let broker = Broker::connect(&url, "bench").await?;
    let core = Config {
        redis_url: url,
        prefix: "bench".into(),
        ..Config::default()
    };
    let onebot = OneBotConfig {
        api_url: fake.url(),
        pacing: false,
        ..OneBotConfig::default()
    };
    let clock = Arc::new(ManualClock::new(START_MS));
    let db = Arc::new(LazyDb::new(
        database_url.clone(),
        vec![celeriac_verification::MIGRATIONS],
    ));
    let config = VerificationConfig {
        admins: vec![9001],
        ..VerificationConfig::default()
    };
    let paced_onebot = OneBotConfig {
        pacing: true,
        ..onebot.clone()
    };
    let paced_context = Arc::new(
        Context::new(
            db.clone(),
            broker.clone(),
            Producer::with_broker(broker.clone(), &core),
            config.clone(),
            paced_onebot.clone(),
        )
        .with_clock(clock.clone()),
    );
    let context = Arc::new(
        Context::new(
            db,
            broker.clone(),
            Producer::with_broker(broker, &core),
            config,
            onebot,
        )
        .with_clock(clock.clone()),
    );
    let mut paced_registry = Registry::new();
    celeriac_verification::register(&mut paced_registry, paced_context);
    let mut registry = Registry::new();
    celeriac_verification::register(&mut registry, context.clone());
    let bench = Bench {
        registry,
        context,
        clock,
        fake: Arc::new(fake),
        concurrency: args.concurrency,
    };
    let groups: Vec<Value> = (0..args.groups)
        .map(|g| json!({ "group": group_of(g, args.groups) }))
        .collect();
    let mut phases = Vec::new();

    let joins: Vec<Value> = (0..args.members)
        .map(|i| {
            join(
                group_of(i, args.groups),
                100_000 + i as i64,
                START_MS / 1000,
            )
        })
        .collect();
    let (wall, calls) = bench.run("verification.event", joins).await?;
    phases.push(Phase {
        name: "joins (mute + welcome)",
        jobs: args.members,
        items: args.members,
        wall,
        calls,
        rss_mib: rss_mib(),
    });

    bench.clock.set(START_MS + 4 * HOUR_MS);
    let (wall, calls) = bench.run("verification.group", groups.clone()).await?;
    phases.push(Phase {
        name: "reminder scan (a message per 30 members, a report)",
        jobs: args.groups,
        items: args.members,
        wall,
        calls,
        rss_mib: rss_mib(),
    });

    // The second reminder is due at +8 h; run it, then the kicks at +12 h.
    bench.clock.set(START_MS + 8 * HOUR_MS);
    bench.run("verification.group", groups.clone()).await?;
    bench.clock.set(START_MS + 12 * HOUR_MS);
    let (wall, calls) = bench.run("verification.group", groups.clone()).await?;
    phases.push(Phase {
        name: "kick scan (notices, kick, recall, report)",
        jobs: args.groups,
        items: args.members,
        wall,
        calls,
        rss_mib: rss_mib(),
    });

    let second: Vec<Value> = (args.members..2 * args.members)
        .map(|i| {
            join(
                group_of(i, args.groups),
                100_000 + i as i64,
                START_MS / 1000 + 12 * 3600,
            )
        })
        .collect();
    bench.run("verification.event", second).await?;
    let store = bench.context.store().await?;
    let mut answers = Vec::with_capacity(args.members);
    for i in args.members..2 * args.members {
        let user = 100_000 + i as i64;
        let m = store
            .member(group_of(i, args.groups), user)
            .await?
            .context("a joined member")?;
        answers.push(
            json!({"post_type": "message", "message_type": "private", "sub_type": "group",
            "time": START_MS / 1000, "self_id": BOT, "message_id": i, "user_id": user,
            "message": format!("my code is {}", m.code), "raw_message": ""}),
        );
    }
    let (wall, calls) = bench.run("verification.event", answers).await?;
    phases.push(Phase {
        name: "answers (verify, unmute, message, recall)",
        jobs: args.members,
        items: args.members,
        wall,
        calls,
        rss_mib: rss_mib(),
    });

    let mut paced = Vec::new();
    if args.paced_members > 0 {
        let joins: Vec<Value> = (0..args.paced_members)
            .map(|i| {
                let group = paced_group_of(i, args.paced_groups);
                join(group, 5_000_000 + i as i64, START_MS / 1000 + 24 * 3600)
            })
            .collect();
        // 08:00, 12:00, 16:00 and 20:00 in Shanghai the next day: outside the quiet hours.
        bench.clock.set(START_MS + 24 * HOUR_MS);
        bench.run("verification.event", joins).await?;
        let paced_bench = Bench {
            registry: paced_registry,
            context: bench.context.clone(),
            clock: bench.clock.clone(),
            fake: bench.fake.clone(),
            concurrency: args.concurrency,
        };
        let groups: Vec<Value> = (0..args.paced_groups)
            .map(|g| json!({ "group": paced_group_of(g, args.paced_groups) }))
            .collect();
        let kicks_before = bench.fake.calls_of("set_group_kick").len();
        bench.clock.set(START_MS + 28 * HOUR_MS);
        let (wall, calls) = paced_bench
            .run("verification.group", groups.clone())
            .await?;
        paced.push(("reminders", calls, 0, wall));
        // The second reminder unpaced, then the kicks paced.
        bench.clock.set(START_MS + 32 * HOUR_MS);
        bench.run("verification.group", groups.clone()).await?;
        bench.clock.set(START_MS + 36 * HOUR_MS);
        let (wall, calls) = paced_bench.run("verification.group", groups).await?;
        let kicks = bench.fake.calls_of("set_group_kick").len() - kicks_before;
        paced.push(("kicks", calls, kicks, wall));
    }

    println!(
        "| phase ({} members in {} groups, {} jobs at once, pacing off) | jobs | wall | members/s | OneBot calls | calls/s | RSS after |",
        args.members, args.groups, args.concurrency
    );
    println!("|---|---|---|---|---|---|---|");
    for p in &phases {
        let secs = p.wall.as_secs_f64();
        println!(
            "| {} | {} | {:.2} s | {:.0} | {} | {:.0} | {} MiB |",
            p.name,
            p.jobs,
            secs,
            p.items as f64 / secs,
            p.calls,
            p.calls as f64 / secs,
            p.rss_mib
        );
    }
    if !paced.is_empty() {
        let onebot = &bench.context.onebot;
        println!();
        println!(
            "| paced phase ({} members in {} groups, rate {}/s, kicks {:?} apart) | OneBot calls | kicks | computed (limiter) | measured |",
            args.paced_members,
            args.paced_groups,
            onebot.rate,
            onebot.kick_interval
        );
        println!("|---|---|---|---|---|");
        for (name, calls, kicks, wall) in &paced {
            println!(
                "| {name} | {calls} | {kicks} | {:.1} s | {:.1} s |",
                paced_bound(*calls, *kicks, onebot).as_secs_f64(),
                wall.as_secs_f64()
            );
        }
    }
    println!();
    println!(
        "peak RSS of the process (handlers, fake OneBot, SQLite): {} MiB",
        common::peak_rss_kib(std::process::id()).unwrap_or(0) / 1024
    );
    eprintln!(
        "database: {}",
        celeriac_core::config::redact_url(&database_url)
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
