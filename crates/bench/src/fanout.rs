//! `make bench-fanout`: a broadcast to `--recipients` (100,000) webhook subscribers on a local
//! keep-alive sink, on this machine.
//!
//! A private `redis-server`, a SQLite database in a temp directory (or `--database-url`), a
//! minimal HTTP/1.1 sink on 127.0.0.1 that answers 200 to every POST and notes when each
//! arrived. Measured:
//!
//! 1. **enqueue**: the `fanout.broadcast` job run in this process (the delivery rows in one
//!    SQL transaction, then the batch: one `fanout.deliver` per recipient in atomic chunks of
//!    1,000) — children enqueued per second; and the batch adds alone, on a queue no worker
//!    serves;
//! 2. **batch memory**: `MEMORY USAGE` of the batch hash of this broadcast and of one to 100
//!    recipients;
//! 3. **deliveries**: `--workers` `celeriac worker` processes (`--concurrency` each) deliver
//!    them — deliveries per second at the sink (first to last request) and end to end;
//! 4. **completion**: the batch's `completed_at` (Redis clock) minus the sink's last request.
//!
//! Prints a Markdown table on stdout.

mod common;

use anyhow::{Context as _, Result};
use celeriac_core::config::Config;
use celeriac_core::Broker;
use celeriac_db::LazyDb;
use celeriac_fanout::{Channel, Context, FanoutConfig, Recipient, Store};
use celeriac_producer::{NewJob, Producer};
use celeriac_worker::testing::TestJob;
use celeriac_worker::{Outcome, Registry};
use clap::Parser;
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Parser)]
#[command(about = "Measure the fan-out domain (see docs/benchmarks.md)")]
struct Args {
    /// Webhook recipients of the broadcast.
    #[arg(long, default_value_t = 100_000)]
    recipients: usize,
    /// Worker processes delivering.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Jobs each worker runs at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The `celeriac` binary.
    #[arg(long, default_value = "./target/release/celeriac")]
    celeriac: String,
    /// The domain database (a SQLite file in a temp directory by default).
    #[arg(long)]
    database_url: Option<String>,
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const QUEUE: &str = "bench";

/// What the sink saw: requests, first and last arrival (Unix ms).
#[derive(Default)]
struct Sink {
    requests: AtomicU64,
    first_ms: AtomicU64,
    last_ms: AtomicU64,
}

async fn sink(listener: tokio::net::TcpListener, seen: Arc<Sink>) {
    while let Ok((conn, _)) = listener.accept().await {
        tokio::spawn(serve(conn, seen.clone()));
    }
}

/// HTTP/1.1 with keep-alive: read a head and its `content-length` body, answer 200, repeat.
/// Each head is parsed in place (request line, every header line, `content-length` found
/// case-insensitively) and each body read in full; nothing is allocated per request.
async fn serve(mut conn: tokio::net::TcpStream, seen: Arc<Sink>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut start: usize = 0;
    loop {
        // Where the head ends, scanning only what was not scanned before.
        let mut scanned = start;
        let head_end = loop {
            let from = scanned.saturating_sub(3).max(start);
            if let Some(p) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                break from + p + 4;
            }
            scanned = buf.len();
            if conn.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let len = content_length(&buf[start..head_end])
            .ok_or_else(|| std::io::Error::other("a request head the sink cannot parse"))?;
        while buf.len() < head_end + len {
            if conn.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        start = head_end + len;
        if start == buf.len() {
            buf.clear();
            start = 0;
        } else if start > 8 * 1024 {
            // A client sending ahead: keep only what is not answered yet.
            buf.drain(..start);
            start = 0;
        }
        let now = celeriac_core::time::now_ms();
        if seen.requests.fetch_add(1, Ordering::SeqCst) == 0 {
            seen.first_ms.store(now, Ordering::SeqCst);
        }
        seen.last_ms.fetch_max(now, Ordering::SeqCst);
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await?;
    }
}

/// The body length a request head declares (0 without `content-length`); `None` when the
/// head is not a request line followed by `name: value` lines.
fn content_length(head: &[u8]) -> Option<usize> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request = lines.next()?;
    if request.split(|&b| b == b' ').count() != 3 {
        return None;
    }
    let mut len = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            len = std::str::from_utf8(value).ok()?.parse().ok()?;
        }
    }
    Some(len)
}

fn webhooks(port: u16, n: usize, path: &str) -> Vec<Recipient> {
    (0..n)
        .map(|i| Recipient {
            channel: Channel::Webhook,
            target: format!("http://127.0.0.1:{port}/{path}/{i}"),
            secret: Some(SECRET.into()),
        })
        .collect()
}

async fn memory_usage(con: &mut redis::aio::MultiplexedConnection, key: &str) -> Result<u64> {
    let n: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .query_async(con)
        .await?;
    n.with_context(|| format!("no key {key}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let redis_server = common::start_redis()?;
    let dir = std::env::temp_dir().join(format!("celeriac-bench-fanout-{}", redis_server.port));
    std::fs::create_dir_all(&dir)?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/celeriac.db", dir.display()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let seen = Arc::new(Sink::default());
    tokio::spawn(sink(listener, seen.clone()));

    let url = format!("redis://127.0.0.1:{}", redis_server.port);
    let broker = Broker::connect(&url, "bench").await?;
    let core = Config {
        redis_url: url.clone(),
        prefix: "bench".into(),
        ..Config::default()
    };
    let producer = Producer::with_broker(broker.clone(), &core);
    let mut con = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;

    eprintln!("1/4 subscribing {} webhooks…", args.recipients);
    let store = Store::open(&database_url).await?;
    store
        .subscribe_many("bench", &webhooks(port, args.recipients, "r"))
        .await?;
    store
        .subscribe_many("small", &webhooks(port, 100, "s"))
        .await?;
    let lazy = Arc::new(LazyDb::new(
        database_url.clone(),
        vec![celeriac_fanout::MIGRATIONS],
    ));
    let config = FanoutConfig {
        allow_private_networks: true,
        ..FanoutConfig::default()
    };
    let context = Arc::new(Context::new(
        lazy,
        broker.clone(),
        producer.clone(),
        config,
        Default::default(),
    ));
    let mut registry = Registry::new();
    celeriac_fanout::register(&mut registry, context);

    eprintln!("2/4 broadcast: delivery rows and the batch…");
    let run = |id: &str, topic: &str| {
        TestJob::new(
            celeriac_fanout::BROADCAST_KIND,
            json!({"topic": topic, "message": "benchmark"}),
        )
        .id(id)
        .queue(QUEUE)
        .run(&registry)
    };
    let small = run("bc-small", "small").await.outcome;
    anyhow::ensure!(
        matches!(small, Outcome::Done(_)),
        "small broadcast: {small:?}"
    );
    let started = Instant::now();
    let big = run("bc-big", "bench").await.outcome;
    let broadcast_wall = started.elapsed();
    anyhow::ensure!(matches!(big, Outcome::Done(_)), "broadcast: {big:?}");
    let keys = broker.keys().clone();
    let mem_small = memory_usage(&mut con, &keys.batch(QUEUE, "bc-small")).await?;
    let mem_big = memory_usage(&mut con, &keys.batch(QUEUE, "bc-big")).await?;

    // The batch adds alone, on a queue no worker serves.
    let children: Vec<NewJob> = (0..args.recipients)
        .map(|i| {
            NewJob::new(
                celeriac_fanout::DELIVER_KIND,
                json!({"broadcast": "only", "recipient": format!("s{i}")}),
            )
            .id(format!("only:s{i}"))
            .max_attempts(8)
        })
        .collect();
    let started = Instant::now();
    producer
        .batch("only", "bench-enqueue-only")
        .add(children)
        .await?;
    let add_wall = started.elapsed();

    eprintln!(
        "3/4 delivering with {} worker(s), concurrency {}…",
        args.workers, args.concurrency
    );
    let spawned = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let child = Command::new(&args.celeriac)
            .args([
                "--redis-url",
                &url,
                "--prefix",
                "bench",
                "--database-url",
                &database_url,
                "worker",
            ])
            .args([
                "--queues",
                QUEUE,
                "--concurrency",
                &args.concurrency.to_string(),
            ])
            .env("CELERIAC_FANOUT__ALLOW_PRIVATE_NETWORKS", "true")
            .env("CELERIAC_FANOUT__PER_HOST", args.concurrency.to_string())
            .env("CELERIAC_RETENTION__SUCCEEDED_MAX", "10000000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "start {} (build it with cargo build --release)",
                    args.celeriac
                )
            })?;
        workers.push(child);
    }
    let batch = producer.batch("bc-big", QUEUE);
    let counts = loop {
        let c = batch.counts().await?.context("the batch is gone")?;
        if c.completed_at_ms.is_some() {
            break c;
        }
        anyhow::ensure!(
            spawned.elapsed() < Duration::from_secs(1800),
            "not complete after 30 min: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let end_to_end = spawned.elapsed();
    for mut w in workers {
        let _ = Command::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status();
        let _ = w.wait();
    }
    eprintln!("4/4 results…");
    let r = store.results("bc-big").await?;
    anyhow::ensure!(
        r.delivered as usize == args.recipients && r.failed == 0,
        "not all delivered: {r:?}"
    );
    let (first, last) = (
        seen.first_ms.load(Ordering::SeqCst),
        seen.last_ms.load(Ordering::SeqCst),
    );
    let sink_secs = (last.saturating_sub(first)) as f64 / 1000.0;
    let completed = counts.completed_at_ms.unwrap_or(0);
    let n = args.recipients as f64;

    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| children enqueued by `fanout.broadcast` (SQL rows + batch) | {:.0}/s ({} in {:.2} s) | ≥ 50,000/s |",
        n / broadcast_wall.as_secs_f64(),
        args.recipients,
        broadcast_wall.as_secs_f64()
    );
    println!(
        "| children added to a batch alone (Redis, chunks of 1,000) | {:.0}/s ({:.2} s) | |",
        n / add_wall.as_secs_f64(),
        add_wall.as_secs_f64()
    );
    println!("| batch hash `MEMORY USAGE`, 100 recipients | {mem_small} B | |");
    println!(
        "| batch hash `MEMORY USAGE`, {} recipients | {mem_big} B | independent of N |",
        args.recipients
    );
    println!(
        "| deliveries at the sink (first to last request) | {:.0}/s ({:.2} s) | ≥ 10,000/s |",
        seen.requests.load(Ordering::SeqCst) as f64 / sink_secs.max(0.001),
        sink_secs
    );
    println!(
        "| deliveries end to end (worker spawn to batch completed) | {:.0}/s ({:.2} s) | |",
        n / end_to_end.as_secs_f64(),
        end_to_end.as_secs_f64()
    );
    println!(
        "| batch completed after the last delivery | {} ms | ≤ 100 ms |",
        completed as i64 - last as i64
    );
    println!(
        "\nRedis on 127.0.0.1 (private server, no persistence), {}, {} cores; {} worker(s) × concurrency {}; {} requests at the sink for {} recipients.",
        if database_url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        args.workers,
        args.concurrency,
        seen.requests.load(Ordering::SeqCst),
        args.recipients
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
