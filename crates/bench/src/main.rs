//! `make bench`: Celeriac's throughput, latency and Redis cost on this machine.
//!
//! Starts a private `redis-server` on a free port (so its statistics are ours alone), then:
//! 1. bulk-enqueues N `noop` jobs with the producer (jobs/s);
//! 2. drains them with one `celeriac worker` process (jobs/s from first start to last finish),
//!    counting Redis commands and Redis CPU per job, and the worker's peak RSS;
//! 3. enqueues at a steady rate (default 1,000 jobs/s) and measures enqueue → start latency
//!    (p50, p99, max) from the job records;
//! 4. enqueues N more and drains them with a worker serving `[http] listen`, its `/metrics`
//!    scraped every 100 ms, to show what the endpoint costs;
//! 5. runs `redis-benchmark -P 16 -t lpush` as the ceiling of the same Redis and prints each
//!    throughput as a fraction of it.
//!
//! Prints a Markdown report on stdout.

mod common;

use anyhow::{bail, Context, Result};
use celeriac_core::config::Config;
use celeriac_producer::{NewJob, Producer};
use clap::Parser;
use common::{cpu_secs, peak_rss_kib, start_redis};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Measure Celeriac on this machine (see docs/benchmarks.md)")]
struct Args {
    /// The celeriac binary to run as the worker (build it with --release).
    #[arg(long, default_value = "target/release/celeriac")]
    celeriac: String,
    /// Jobs to enqueue in bulk and drain.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Worker concurrency.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Worker fetch/ack batch size.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Rate of the latency phase, jobs/s.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Duration of the latency phase.
    #[arg(long, default_value = "10s", value_parser = humantime_parse)]
    latency_for: Duration,
}

fn humantime_parse(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s}"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("bad duration {s}; use e.g. 10s")),
    }
}

async fn info(
    con: &mut redis::aio::MultiplexedConnection,
    section: &str,
) -> Result<HashMap<String, String>> {
    let text: String = redis::cmd("INFO").arg(section).query_async(con).await?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect())
}

/// Total commands executed (including those called from scripts) and CPU seconds used.
async fn redis_cost(con: &mut redis::aio::MultiplexedConnection) -> Result<(u64, f64)> {
    let stats = info(con, "commandstats").await?;
    let calls = stats
        .values()
        .filter_map(|v| v.split(',').find_map(|kv| kv.strip_prefix("calls=")))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    let cpu = info(con, "cpu").await?;
    let secs = ["used_cpu_sys", "used_cpu_user"]
        .iter()
        .filter_map(|k| cpu.get(*k)?.parse::<f64>().ok())
        .sum();
    Ok((calls, secs))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn lpush_ceiling(port: u16) -> Result<f64> {
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-P",
            "16",
            "-n",
            "1000000",
            "-t",
            "lpush",
            "-q",
            "--csv",
        ])
        .output()
        .context("run redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // CSV: "test","rps",…  then "LPUSH","123456.78",…
    for line in text.lines() {
        let cols: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        if cols.first() == Some(&"LPUSH") {
            return cols
                .get(1)
                .and_then(|v| v.parse().ok())
                .context("parse redis-benchmark output");
        }
    }
    bail!("unexpected redis-benchmark output: {text}")
}

async fn job_times(
    con: &mut redis::aio::MultiplexedConnection,
    keys: &celeriac_core::Keys,
    ids: &[String],
) -> Result<Vec<(u64, u64)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(5000) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.cmd("HMGET")
                .arg(keys.job("bench", id))
                .arg("started_us")
                .arg("finished_us");
        }
        let rows: Vec<(Option<u64>, Option<u64>)> = pipe.query_async(con).await?;
        out.extend(
            rows.into_iter()
                .map(|(s, f)| (s.unwrap_or(0), f.unwrap_or(0))),
        );
    }
    Ok(out)
}

async fn wait_drained(
    con: &mut redis::aio::MultiplexedConnection,
    keys: &celeriac_core::Keys,
    n: usize,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done: usize = con.zcard(keys.succeeded("bench")).await?;
        if done >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {done} of {n} jobs succeeded within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn enqueue_bulk(producer: &Producer, n: usize) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let batch: Vec<NewJob> = chunk
            .iter()
            .map(|_| NewJob::new("noop", serde_json::json!({})).queue("bench"))
            .collect();
        ids.extend(
            producer
                .enqueue_many(batch)
                .await?
                .into_iter()
                .map(|e| e.id),
        );
    }
    Ok(ids)
}

struct Drain {
    rate: f64,
    secs: f64,
    spawn_to_first_ms: f64,
    worker_cpu: Option<f64>,
    scrapes: usize,
}

/// Start a worker on the waiting `ids` and wait until they all succeeded; with `http_port`, the
/// worker serves `[http] listen` there and its `/metrics` is scraped every 100 ms meanwhile.
/// Returns the worker, still running.
async fn run_drain(
    args: &Args,
    url: &str,
    con: &mut redis::aio::MultiplexedConnection,
    ids: &[String],
    http_port: Option<u16>,
) -> Result<(std::process::Child, Drain)> {
    let keys = celeriac_core::Keys::new("bench");
    let already: usize = con.zcard(keys.succeeded("bench")).await?;
    let spawned_us = celeriac_core::time::now_us();
    let mut cmd = Command::new(&args.celeriac);
    cmd.args(["--redis-url", url, "--prefix", "bench", "worker"])
        .args(["--queues", "bench"])
        .args(["--concurrency", &args.concurrency.to_string()])
        .env("CELERIAC_WORKER__BATCH_SIZE", args.batch.to_string())
        .env("CELERIAC_RETENTION__SUCCEEDED_MAX", "10000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(port) = http_port {
        cmd.env("CELERIAC_HTTP__LISTEN", format!("127.0.0.1:{port}"));
    }
    let worker = cmd.spawn().with_context(|| {
        format!(
            "start {} (build it with cargo build --release)",
            args.celeriac
        )
    })?;
    let scrapes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let scraper = http_port.map(|port| tokio::spawn(scrape_metrics(port, scrapes.clone())));
    let drained = wait_drained(con, &keys, already + ids.len()).await;
    if let Some(task) = scraper {
        task.abort();
    }
    drained?;
    let scrapes = scrapes.load(std::sync::atomic::Ordering::Relaxed);
    let worker_cpu = cpu_secs(worker.id());
    let times = job_times(con, &keys, ids).await?;
    let first_start = times
        .iter()
        .map(|t| t.0)
        .filter(|&s| s > 0)
        .min()
        .unwrap_or(0);
    let last_finish = times.iter().map(|t| t.1).max().unwrap_or(0);
    let secs = (last_finish.saturating_sub(first_start)) as f64 / 1e6;
    Ok((
        worker,
        Drain {
            rate: ids.len() as f64 / secs,
            secs,
            // The jobs were waiting: the first one starts as soon as the new process can fetch.
            spawn_to_first_ms: first_start.saturating_sub(spawned_us) as f64 / 1000.0,
            worker_cpu,
            scrapes,
        },
    ))
}

/// GET /metrics every 100 ms (a hundred times what a Prometheus would ask) until aborted;
/// counts in `ok` the answers that were metrics.
async fn scrape_metrics(port: u16, ok: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticker.tick().await;
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            continue; // not listening yet
        };
        let mut body = Vec::new();
        let sent = s
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await;
        if sent.is_ok() && s.read_to_end(&mut body).await.is_ok() {
            let text = String::from_utf8_lossy(&body);
            if (text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"))
                && text.contains("celeriac_jobs_finished_total")
            {
                ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

fn stop(worker: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let redis = start_redis()?;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let config = Config {
        redis_url: url.clone(),
        prefix: "bench".into(),
        ..Config::default()
    };
    let producer = Producer::connect(&config).await?;
    let keys = celeriac_core::Keys::new("bench");
    let mut con = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;

    eprintln!("1/5 bulk enqueue of {} noop jobs…", args.jobs);
    let t = Instant::now();
    let ids = enqueue_bulk(&producer, args.jobs).await?;
    let enqueue_secs = t.elapsed().as_secs_f64();
    let enqueue_rate = args.jobs as f64 / enqueue_secs;

    eprintln!(
        "2/5 drain with one worker (concurrency {}, batch {})…",
        args.concurrency, args.batch
    );
    let (calls0, cpu0) = redis_cost(&mut con).await?;
    let before = info(&mut con, "commandstats").await?;
    let (mut worker, drain) = run_drain(&args, &url, &mut con, &ids, None).await?;
    let (calls1, cpu1) = redis_cost(&mut con).await?;
    let breakdown = info(&mut con, "commandstats").await?;
    let calls_per_job = (calls1 - calls0) as f64 / args.jobs as f64;
    let cpu_us_per_job = (cpu1 - cpu0) * 1e6 / args.jobs as f64;

    eprintln!(
        "3/5 latency at {} jobs/s for {:?}…",
        args.rate, args.latency_for
    );
    let n = (args.rate as f64 * args.latency_for.as_secs_f64()) as usize;
    let period = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::with_capacity(n);
    for _ in 0..n {
        ticker.tick().await;
        let at = celeriac_core::time::now_us();
        let id = producer
            .enqueue(NewJob::new("noop", serde_json::json!({})).queue("bench"))
            .await?
            .id;
        sent.push((id, at));
    }
    wait_drained(&mut con, &keys, args.jobs + n).await?;
    let lat_ids: Vec<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    let lat_times = job_times(&mut con, &keys, &lat_ids).await?;
    let mut lat_ms: Vec<f64> = sent
        .iter()
        .zip(&lat_times)
        .map(|((_, at), (start, _))| (*start as f64 - *at as f64) / 1000.0)
        .collect();
    lat_ms.sort_by(|a, b| a.total_cmp(b));
    let rss = peak_rss_kib(worker.id());
    stop(&mut worker);

    eprintln!("4/5 the drain again, with [http] listen and /metrics scraped every 100 ms…");
    let ids2 = enqueue_bulk(&producer, args.jobs).await?;
    let port = common::free_port()?;
    let (mut worker2, drain2) = run_drain(&args, &url, &mut con, &ids2, Some(port)).await?;
    stop(&mut worker2);

    eprintln!("5/5 redis-benchmark -P 16 LPUSH ceiling…");
    let ceiling = lpush_ceiling(redis.port)?;
    let version = info(&mut con, "server")
        .await?
        .get("redis_version")
        .cloned()
        .unwrap_or_default();

    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!("| bulk enqueue, {} noop jobs | {:.0} jobs/s ({:.2} s; {:.0}% of the LPUSH ceiling) | ≥ 100,000 jobs/s |", args.jobs, enqueue_rate, enqueue_secs, 100.0 * enqueue_rate / ceiling);
    println!("| drain, one worker process | {:.0} jobs/s ({:.2} s; {:.0}% of the LPUSH ceiling) | ≥ 50,000 jobs/s |", drain.rate, drain.secs, 100.0 * drain.rate / ceiling);
    println!("| drain with `[http] listen`, /metrics scraped every 100 ms ({} scrapes) | {:.0} jobs/s ({:.2} s) | within the noise of the drain |", drain2.scrapes, drain2.rate, drain2.secs);
    println!("| worker spawn → first job started (jobs waiting) | {:.1} ms ({:.1} ms with `[http] listen`) | |", drain.spawn_to_first_ms, drain2.spawn_to_first_ms);
    println!("| Redis commands per job (enqueue excluded, scripts' inner calls included) | {calls_per_job:.2} | |");
    println!("| Redis CPU per job during the drain | {cpu_us_per_job:.1} µs | |");
    println!(
        "| worker CPU per job during the drain (incl. start-up) | {} | |",
        drain
            .worker_cpu
            .map(|c| format!("{:.1} µs", c * 1e6 / args.jobs as f64))
            .unwrap_or_else(|| "n/a".into())
    );
    println!("| enqueue → start at {} jobs/s ({} jobs): p50 / p99 / max | {:.2} / {:.2} / {:.2} ms | p99 ≤ 2 ms |", args.rate, n, percentile(&lat_ms, 0.5), percentile(&lat_ms, 0.99), lat_ms.last().copied().unwrap_or(f64::NAN));
    println!(
        "| worker peak RSS (VmHWM) | {} | ≤ 30 MiB |",
        rss.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into())
    );
    println!("| ceiling: redis-benchmark -P 16 -t lpush | {ceiling:.0} req/s | |");
    println!();
    println!("Redis commands during the drain (calls per job, µs per call; a script's time includes its inner calls):");
    println!();
    let stat = |stats: &HashMap<String, String>, key: &str, f: &str| -> f64 {
        stats
            .get(key)
            .and_then(|v| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix(f))?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    let mut rows: Vec<(String, f64, f64)> = breakdown
        .keys()
        .filter_map(|k| {
            let name = k.strip_prefix("cmdstat_")?;
            let calls = stat(&breakdown, k, "calls=") - stat(&before, k, "calls=");
            let usec = stat(&breakdown, k, "usec=") - stat(&before, k, "usec=");
            (calls > 0.0).then(|| (name.to_string(), calls, usec / calls))
        })
        .filter(|(_, calls, _)| *calls >= args.jobs as f64 / 100.0)
        .collect();
    rows.sort_by(|a, b| (b.1 * b.2).total_cmp(&(a.1 * a.2)));
    for (name, calls, usec) in rows {
        println!(
            "- `{name}`: {:.2} per job, {usec:.2} µs per call",
            calls / args.jobs as f64
        );
    }
    println!();
    println!("Redis {version} on 127.0.0.1 (private server, no persistence), {} cores; worker concurrency {}, batch {}.", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), args.concurrency, args.batch);
    Ok(())
}
