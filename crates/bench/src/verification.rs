//! `make bench-verification`: the verification domain's throughput on this machine, and the
//! memory of the worker running it, with the OneBot pacing off (`onebot.pacing = false`: the
//! account's rate, 2 actions/s by default, would otherwise be the whole answer) against the
//! fake OneBot server on 127.0.0.1.
//!
//! A private `redis-server`, a SQLite database in a temp directory (or `--database-url`), the
//! fake with `--groups` groups where the bot is an admin, in this process; the jobs run on a
//! `celeriac worker` of its own (`--celeriac`, `--concurrency` jobs at a time), on the system
//! clock. Between phases this process moves the pending members' next step to now in SQL,
//! where the earlier benchmark moved a manual clock 4 h on:
//!
//! 1. **joins**: `--members` `verification.event` jobs of `group_increase` (each: one
//!    transaction, then a mute and a welcome through OneBot, the welcome's id written back);
//! 2. **reminders**: one `verification.group` job per group (each due member reminded in one
//!    transaction, one group message per 30 members, a report);
//! 3. **kicks**: after the second reminder, the same (a notice per 30 members, one kick and
//!    one recall per member, a report);
//! 4. **answers**: `--members` more joins, then a private message with the right code from
//!    each (verified, unmuted, a message, the welcome recalled).
//!
//! Then, on a second worker with the default pacing on (2 actions/s per bot account, kicks 1 s
//! apart), the reminders and kicks of `--paced-members` members in `--paced-groups` more
//! groups: a paced run is bounded by the limiter alone, so the table sets the measured time
//! beside the one computed from the number of actions (a full 10,000-member paced run would
//! take hours: 10,000 kicks at 1/s).
//!
//! Prints Markdown tables on stdout: the worker's RSS after each phase and its peak (VmHWM),
//! and its RSS idle after start. The fake server, which keeps a record of every call, lives
//! in this process and is not counted.

mod common;

use anyhow::{bail, Context as _, Result};
use celeriac_core::config::Config;
use celeriac_core::Keys;
use celeriac_db::sqlx;
use celeriac_db::LazyDb;
use celeriac_onebot::fake::FakeOneBot;
use celeriac_onebot::{OneBotConfig, Role};
use celeriac_producer::{NewJob, Producer};
use celeriac_verification::store::Store;
use clap::Parser;
use redis::AsyncCommands as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Measure the verification domain (see docs/benchmarks.md)")]
struct Args {
    /// The celeriac binary (build it with --release).
    #[arg(long, default_value = "target/release/celeriac")]
    celeriac: String,
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
    /// Jobs running at once on the worker.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The domain database (a SQLite file in a temp directory by default).
    #[arg(long)]
    database_url: Option<String>,
}

const BOT: i64 = 10000;
const PREFIX: &str = "bench";
const QUEUE: &str = "default";

/// A `celeriac worker` of this benchmark, killed when dropped.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    fn start(args: &Args, config: &Path, log: PathBuf) -> Result<Worker> {
        let child = Command::new(&args.celeriac)
            .arg("--config")
            .arg(config)
            .args(["worker", "--concurrency", &args.concurrency.to_string()])
            .env("RUST_LOG", "warn")
            .env("CELERIAC_RETENTION__SUCCEEDED_MAX", "10000000")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| {
                format!(
                    "start {} (build it with cargo build --release -p celeriac-cli)",
                    args.celeriac
                )
            })?;
        Ok(Worker { child, log })
    }

    /// Resident memory now and at its peak (VmHWM), MiB.
    fn rss(&self) -> (f64, f64) {
        let mib = |k: Option<u64>| k.unwrap_or(0) as f64 / 1024.0;
        (
            mib(common::rss_kib(self.child.id())),
            mib(common::peak_rss_kib(self.child.id())),
        )
    }

    /// SIGTERM, and wait for it to exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Bench {
    producer: Producer,
    con: redis::aio::MultiplexedConnection,
    keys: Keys,
    fake: FakeOneBot,
    /// Jobs enqueued so far (each a distinct id).
    enqueued: usize,
}

struct Phase {
    name: &'static str,
    jobs: usize,
    items: usize,
    wall: Duration,
    calls: usize,
    rss_mib: f64,
    peak_mib: f64,
}

impl Bench {
    /// Enqueue `jobs` and wait until the worker has run them all: wall time (enqueue to the
    /// last one succeeded) and OneBot calls. A dead job ends the benchmark.
    async fn run(&mut self, worker: &Worker, jobs: Vec<NewJob>) -> Result<(Duration, usize)> {
        let calls = self.fake.calls().len();
        let n = jobs.len();
        let started = Instant::now();
        for chunk in jobs.chunks(5_000) {
            self.producer.enqueue_many(chunk.to_vec()).await?;
        }
        self.enqueued += n;
        let deadline = started + Duration::from_secs(3600);
        loop {
            let done: usize = self.con.zcard(self.keys.succeeded(QUEUE)).await?;
            if done >= self.enqueued {
                break;
            }
            // A job to retry is retried by the worker, as in production; a dead one ends it.
            let dead: usize = self.con.zcard(self.keys.dead(QUEUE)).await?;
            if dead > 0 {
                bail!("{dead} jobs dead; the worker's log:\n{}", worker.log_text());
            }
            if Instant::now() > deadline {
                bail!(
                    "only {done} of {} jobs succeeded within an hour",
                    self.enqueued
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok((started.elapsed(), self.fake.calls().len() - calls))
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

/// One `verification.group` job per group, with ids of their own for the step `step`.
fn group_jobs(groups: &[i64], step: &str) -> Vec<NewJob> {
    groups
        .iter()
        .map(|g| {
            NewJob::new(celeriac_verification::GROUP_KIND, json!({ "group": g }))
                .id(format!("bench-{step}-{g}"))
        })
        .collect()
}

/// The pending members' next step (reminder or kick) due now, as if its time had come: the
/// worker runs on the system clock.
async fn make_due(db: &celeriac_db::Db) -> Result<()> {
    sqlx::query("UPDATE verification_members SET next_warning_at = $1 WHERE status = 'pending'")
        .bind(celeriac_db::now_ms() - 1)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// What a paced phase is bounded by: `actions` slots at `rate`, and `kicks` each
/// `kick_interval` after the last.
fn paced_bound(actions: usize, kicks: usize, onebot: &OneBotConfig) -> Duration {
    let slots = Duration::from_secs_f64(actions.saturating_sub(1) as f64 / onebot.rate);
    let kicks = onebot.kick_interval * kicks.saturating_sub(1) as u32;
    slots.max(kicks)
}

/// A worker's configuration file: the fake's API, `pacing` on or off, no quiet hours (the
/// benchmark runs at any time of day).
fn write_config(path: &Path, url: &str, database_url: &str, api: &str, pacing: bool) -> Result<()> {
    std::fs::write(
        path,
        format!(
            "redis_url = {url:?}\nprefix = {PREFIX:?}\ndatabase_url = {database_url:?}\n\n\
             [onebot]\napi_url = {api:?}\npacing = {pacing}\n\n\
             [verification]\nadmins = [9001]\nquiet_hours = \"\"\n"
        ),
    )?;
    Ok(())
}

/// Wait until the worker has registered in Redis (started, fetching).
async fn wait_registered(
    con: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
    worker: &mut Worker,
    before: usize,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: usize = con.zcard(keys.workers()).await.unwrap_or(0);
        if n > before {
            return Ok(());
        }
        if let Some(status) = worker.child.try_wait()? {
            bail!("the worker exited ({status}):\n{}", worker.log_text());
        }
        if Instant::now() > deadline {
            bail!(
                "the worker did not register within 30 s:\n{}",
                worker.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let core = Config {
        redis_url: url.clone(),
        prefix: PREFIX.into(),
        ..Config::default()
    };
    let keys = Keys::new(PREFIX);
    let mut con = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let config = dir.join("celeriac.toml");
    write_config(&config, &url, &database_url, &fake.url(), false)?;
    let paced_config = dir.join("celeriac-paced.toml");
    write_config(&paced_config, &url, &database_url, &fake.url(), true)?;

    let mut worker = Worker::start(&args, &config, dir.join("worker.log"))?;
    let registered: usize = con.zcard(keys.workers()).await?;
    wait_registered(&mut con, &keys, &mut worker, registered).await?;
    let (idle_mib, _) = worker.rss();
    let mut bench = Bench {
        producer: Producer::connect(&core).await?,
        con: con.clone(),
        keys: keys.clone(),
        fake,
        enqueued: 0,
    };
    let groups: Vec<i64> = (0..args.groups).map(|g| group_of(g, args.groups)).collect();
    let mut phases = Vec::new();
    let now_s = || celeriac_db::now_ms() / 1000;

    let joins: Vec<NewJob> = (0..args.members)
        .map(|i| {
            celeriac_verification::intake::job(&join(
                group_of(i, args.groups),
                100_000 + i as i64,
                now_s(),
            ))
        })
        .collect();
    let (wall, calls) = bench.run(&worker, joins).await?;
    let (rss_mib, peak_mib) = worker.rss();
    phases.push(Phase {
        name: "joins (mute + welcome)",
        jobs: args.members,
        items: args.members,
        wall,
        calls,
        rss_mib,
        peak_mib,
    });

    // The worker has created the tables by now.
    let db = LazyDb::new(
        database_url.clone(),
        vec![celeriac_verification::MIGRATIONS],
    );
    let store = Store::new(db.get().await?.clone());
    make_due(db.get().await?).await?;
    let (wall, calls) = bench.run(&worker, group_jobs(&groups, "remind-1")).await?;
    let (rss_mib, peak_mib) = worker.rss();
    phases.push(Phase {
        name: "reminder scan (a message per 30 members, a report)",
        jobs: args.groups,
        items: args.members,
        wall,
        calls,
        rss_mib,
        peak_mib,
    });

    // The second reminder, then the kicks.
    make_due(db.get().await?).await?;
    bench.run(&worker, group_jobs(&groups, "remind-2")).await?;
    make_due(db.get().await?).await?;
    let (wall, calls) = bench.run(&worker, group_jobs(&groups, "kick")).await?;
    let (rss_mib, peak_mib) = worker.rss();
    phases.push(Phase {
        name: "kick scan (notices, kick, recall, report)",
        jobs: args.groups,
        items: args.members,
        wall,
        calls,
        rss_mib,
        peak_mib,
    });

    let second: Vec<NewJob> = (args.members..2 * args.members)
        .map(|i| {
            celeriac_verification::intake::job(&join(
                group_of(i, args.groups),
                100_000 + i as i64,
                now_s(),
            ))
        })
        .collect();
    bench.run(&worker, second).await?;
    let mut answers = Vec::with_capacity(args.members);
    for i in args.members..2 * args.members {
        let user = 100_000 + i as i64;
        let m = store
            .member(group_of(i, args.groups), user)
            .await?
            .context("a joined member")?;
        answers.push(celeriac_verification::intake::job(
            &json!({"post_type": "message", "message_type": "private", "sub_type": "group",
            "time": now_s(), "self_id": BOT, "message_id": i, "user_id": user,
            "message": format!("my code is {}", m.code), "raw_message": ""}),
        ));
    }
    let (wall, calls) = bench.run(&worker, answers).await?;
    let (rss_mib, peak_mib) = worker.rss();
    phases.push(Phase {
        name: "answers (verify, unmute, message, recall)",
        jobs: args.members,
        items: args.members,
        wall,
        calls,
        rss_mib,
        peak_mib,
    });

    let mut paced = Vec::new();
    let mut paced_peak = None;
    if args.paced_members > 0 {
        // The joins on the unpaced worker, then a paced one for the scans.
        let joins: Vec<NewJob> = (0..args.paced_members)
            .map(|i| {
                let group = paced_group_of(i, args.paced_groups);
                celeriac_verification::intake::job(&join(group, 5_000_000 + i as i64, now_s()))
            })
            .collect();
        bench.run(&worker, joins).await?;
        worker.stop();
        let mut paced_worker = Worker::start(&args, &paced_config, dir.join("worker-paced.log"))?;
        let registered: usize = con.zcard(keys.workers()).await?;
        wait_registered(&mut con, &keys, &mut paced_worker, registered).await?;
        let groups: Vec<i64> = (0..args.paced_groups)
            .map(|g| paced_group_of(g, args.paced_groups))
            .collect();
        let kicks_before = bench.fake.calls_of("set_group_kick").len();
        make_due(db.get().await?).await?;
        let (wall, calls) = bench
            .run(&paced_worker, group_jobs(&groups, "paced-remind-1"))
            .await?;
        paced.push(("reminders", calls, 0, wall));
        make_due(db.get().await?).await?;
        bench
            .run(&paced_worker, group_jobs(&groups, "paced-remind-2"))
            .await?;
        make_due(db.get().await?).await?;
        let (wall, calls) = bench
            .run(&paced_worker, group_jobs(&groups, "paced-kick"))
            .await?;
        let kicks = bench.fake.calls_of("set_group_kick").len() - kicks_before;
        paced.push(("kicks", calls, kicks, wall));
        paced_peak = Some(paced_worker.rss().1);
        paced_worker.stop();
    } else {
        worker.stop();
    }

    println!(
        "| phase ({} members in {} groups, {} jobs at once, pacing off) | jobs | wall | members/s | OneBot calls | calls/s | worker RSS after | worker peak RSS so far |",
        args.members, args.groups, args.concurrency
    );
    println!("|---|---|---|---|---|---|---|---|");
    for p in &phases {
        let secs = p.wall.as_secs_f64();
        println!(
            "| {} | {} | {:.2} s | {:.0} | {} | {:.0} | {:.1} MiB | {:.1} MiB |",
            p.name,
            p.jobs,
            secs,
            p.items as f64 / secs,
            p.calls,
            p.calls as f64 / secs,
            p.rss_mib,
            p.peak_mib
        );
    }
    if !paced.is_empty() {
        let onebot = OneBotConfig::default();
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
                paced_bound(*calls, *kicks, &onebot).as_secs_f64(),
                wall.as_secs_f64()
            );
        }
    }
    println!();
    println!("worker RSS idle after start (before the first job): {idle_mib:.1} MiB");
    if let Some(peak) = paced_peak {
        println!("paced worker peak RSS: {peak:.1} MiB");
    }
    eprintln!(
        "database: {}",
        celeriac_core::config::redact_url(&database_url)
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
