//! `make bench-links`: one `links.check` run over many links, against `lychee` on the same
//! URLs with the same concurrency.
//!
//! A local HTTP/1.1 server (keep-alive) listens on 127.0.0.1 … 127.0.0.H (one host per
//! address) and answers every page after `--delay-ms` (50 ms); one page in `--slow-every`
//! answers after `--slow-ms`, one in `--fail-every` answers 404. Pages link back to the site.
//!
//! 1. Celeriac: the links are imported with `celeriac links import`, a `celeriac worker` runs
//!    `links.check` (with the backlink check, so every page body is read) enqueued with
//!    `celeriac enqueue`, twice: the first run has no history, the second orders links by the
//!    first one's durations, as every scheduled run after the first does. Wall time is
//!    enqueue → succeeded; memory is the worker's peak RSS.
//! 2. lychee: `lychee` over the same URL list (one per line), with the same global and
//!    per-host concurrency, timeout and retries; wall time and peak RSS from `/usr/bin/time`.
//!
//! `--scenario dead-link`: the seed article's run instead — 24 links on 24 hosts (`--links`
//! and `--hosts` are ignored), one of which
//! accepts the connection and never answers, the others answering after `--delay-ms`; the
//! `[links]` defaults (5 s timeout, 2 retries); `--runs` runs. It reports each run's wall time
//! as a multiple of the timeout, and how many attempts the dead link got.
//!
//! Prints a Markdown report on stdout.

mod common;

use anyhow::{bail, Context, Result};
use clap::Parser;
use common::{free_port, peak_rss_kib, rss_kib, start_redis};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BACKLINK: &str = "https://celeriac.example";

#[derive(Debug, Parser)]
#[command(about = "Measure one links.check run against lychee (see docs/benchmarks.md)")]
struct Args {
    /// The celeriac binary (build it with --release).
    #[arg(long, default_value = "target/release/celeriac")]
    celeriac: String,
    /// The lychee binary (cargo install lychee); skipped with a note when absent.
    #[arg(long, default_value = "lychee")]
    lychee: String,
    /// Links to check.
    #[arg(long, default_value_t = 10_000)]
    links: usize,
    /// Hosts (127.0.0.1 … 127.0.0.N) the links are spread over.
    #[arg(long, default_value_t = 50)]
    hosts: usize,
    /// Requests in flight at once, for both tools.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Requests in flight at once per host, for both tools.
    #[arg(long, default_value_t = 8)]
    per_host: usize,
    /// Answer time of an ordinary page.
    #[arg(long, default_value_t = 50)]
    delay_ms: u64,
    /// One page in this many is slow.
    #[arg(long, default_value_t = 20)]
    slow_every: usize,
    /// Answer time of a slow page.
    #[arg(long, default_value_t = 2000)]
    slow_ms: u64,
    /// Celeriac runs on one worker (at least 2): the first and the last are reported, and the
    /// worker's peak RSS after each is printed on stderr.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..))]
    runs: u32,
    /// One page in this many answers 404.
    #[arg(long, default_value_t = 20)]
    fail_every: usize,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Lychee)]
    scenario: Scenario,
}

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Many links (`--links`), Celeriac against lychee.
    Lychee,
    /// 24 links, one never answering, default settings: a run's time against the timeout.
    DeadLink,
}

/// Links of the dead-link scenario, as in the seed article.
const SEED_LINKS: usize = 24;
/// `[links] timeout` by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a page behaves.
#[derive(Clone, Copy)]
struct Mix {
    hosts: usize,
    delay_ms: u64,
    slow_every: usize,
    slow_ms: u64,
    fail_every: usize,
    /// The page that never answers, if any.
    dead: Option<usize>,
}

impl Mix {
    /// What kind of page `/page/{i}` is: `ok`, `slow` or `fail`. Page i is on host
    /// i % hosts, and the kinds follow the page's rank on its host, so every host gets the
    /// same mix.
    fn kind(&self, i: usize) -> &'static str {
        if let Some(dead) = self.dead {
            return if i == dead { "dead" } else { "ok" };
        }
        let rank = i / self.hosts;
        if rank.is_multiple_of(self.slow_every) {
            "slow"
        } else if rank % self.fail_every == 1 {
            "fail"
        } else {
            "ok"
        }
    }
}

async fn serve(mut stream: TcpStream, mix: Mix) {
    let _ = stream.set_nodelay(true);
    let body = format!(
        "<html><body><p>{}</p><a href=\"{BACKLINK}/\">friend</a></body></html>",
        "Lorem ipsum dolor sit amet. ".repeat(100)
    );
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let mut parts = head.split_whitespace();
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("/");
        let i: usize = path
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let kind = mix.kind(i);
        if kind == "dead" {
            // Connected, request read, no answer ever: only the client's deadline ends it.
            std::future::pending::<()>().await;
        }
        let wait = if kind == "slow" {
            mix.slow_ms
        } else {
            mix.delay_ms
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let status = if kind == "fail" {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let mut out = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        if method != "HEAD" {
            out.extend_from_slice(body.as_bytes());
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Start the page server on 127.0.0.1 … 127.0.0.N, all on one port.
fn start_pages(args: &Args) -> Result<(tokio::runtime::Runtime, u16)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let port = free_port()?;
    for h in 1..=args.hosts {
        let addr = format!("127.0.0.{h}:{port}");
        let listener = runtime
            .block_on(TcpListener::bind(&addr))
            .with_context(|| format!("bind {addr}"))?;
        let mix = mix(args);
        runtime.spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, mix));
            }
        });
    }
    Ok((runtime, port))
}

fn mix(args: &Args) -> Mix {
    Mix {
        hosts: args.hosts,
        delay_ms: args.delay_ms,
        slow_every: args.slow_every,
        slow_ms: args.slow_ms,
        fail_every: args.fail_every,
        // The dead-link scenario: every page ordinary but the last one.
        dead: (args.scenario == Scenario::DeadLink).then_some(args.links),
    }
}

fn url(i: usize, args: &Args, port: u16) -> String {
    format!("http://127.0.0.{}:{port}/page/{i}", i % args.hosts + 1)
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

struct Measured {
    wall: f64,
    /// The run itself, as the job reports it (Celeriac only).
    run: Option<f64>,
    peak_mib: f64,
    checked: u64,
    failed: u64,
}

/// Two runs on one worker: the first with no history (cold), the second ordered by the first
/// one's durations (warm, as every scheduled run after the first). Peak RSS is the worker's
/// high-water mark after each run.
fn celeriac(args: &Args, dir: &std::path::Path, port: u16) -> Result<(Measured, Measured, f64)> {
    let redis = start_redis()?;
    let config = dir.join("celeriac.toml");
    std::fs::write(
        &config,
        format!(
            "redis_url = \"redis://127.0.0.1:{}\"\nprefix = \"bench\"\ndatabase_url = \"sqlite://{}/celeriac.db\"\n\
             [links]\nconcurrency = {}\nper_host = {}\nhost_interval = \"0ms\"\ntimeout = \"5s\"\nretries = 2\nallow_private_networks = true\n",
            redis.port,
            dir.display(),
            args.concurrency,
            args.per_host
        ),
    )?;
    let cli = |a: &[&str]| {
        let mut c = Command::new(&args.celeriac);
        c.arg("--config").arg(&config).args(a);
        c
    };
    let csv = dir.join("links.csv");
    let mut text = String::from("name,url\n");
    for i in 1..=args.links {
        text.push_str(&format!("link-{i},{}\n", url(i, args, port)));
    }
    std::fs::write(&csv, text)?;
    run(
        &mut cli(&["links", "import", csv.to_str().unwrap_or_default()]),
        "celeriac links import",
    )?;
    let mut worker = cli(&["worker", "--concurrency", "2"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("start the worker")?;
    std::thread::sleep(Duration::from_millis(500));
    let idle = peak_rss_kib(worker.id()).unwrap_or(0) as f64 / 1024.0;
    let payload = format!("{{\"site_link\": \"{BACKLINK}\"}}");
    let mut runs = Vec::new();
    for n in 1..=args.runs {
        let started = Instant::now();
        let id = run(
            &mut cli(&["enqueue", "links.check", "--payload", &payload]),
            "celeriac enqueue",
        )?;
        let status = run(
            &mut cli(&["status", id.trim(), "--wait", "--timeout", "30m", "--json"]),
            "celeriac status --wait",
        )?;
        let wall = started.elapsed().as_secs_f64();
        let peak = peak_rss_kib(worker.id()).unwrap_or(0) as f64 / 1024.0;
        let job: serde_json::Value = serde_json::from_str(&status)?;
        let r = &job["result"];
        let now = rss_kib(worker.id()).unwrap_or(0) as f64 / 1024.0;
        eprintln!("   run {n}: {wall:.2} s, worker peak RSS {peak:.1} MiB, RSS after the run {now:.1} MiB");
        runs.push(Measured {
            wall,
            run: r["elapsed_ms"].as_f64().map(|ms| ms / 1000.0),
            peak_mib: peak,
            checked: r["checked"].as_u64().unwrap_or(0),
            failed: r["failed"].as_u64().unwrap_or(0),
        });
    }
    let _ = worker.kill();
    let _ = worker.wait();
    let warm = runs.pop().context("two runs")?;
    let cold = runs.into_iter().next().context("two runs")?;
    Ok((cold, warm, idle))
}

fn lychee(args: &Args, dir: &std::path::Path, port: u16) -> Result<Option<Measured>> {
    if Command::new(&args.lychee)
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "lychee not found ({}); install it with `cargo install lychee`",
            args.lychee
        );
        return Ok(None);
    }
    let list = dir.join("urls.txt");
    let text: String = (1..=args.links)
        .map(|i| url(i, args, port) + "\n")
        .collect();
    std::fs::write(&list, text)?;
    let report = dir.join("lychee.json");
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kib=%M"])
        .arg(&args.lychee)
        .args([
            "--no-progress",
            "--cache=false",
            "--max-concurrency",
            &args.concurrency.to_string(),
            "--host-concurrency",
            &args.per_host.to_string(),
            "--host-request-interval",
            "0ms",
            "--timeout",
            "5",
            "--max-retries",
            "2",
            "--format",
            "json",
            "--output",
        ])
        .arg(&report)
        .arg(&list)
        .output()
        .context("run lychee under /usr/bin/time (apt-get install time)")?;
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak_kib: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("no peak RSS from /usr/bin/time; lychee said: {stderr}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap_or_default()).unwrap_or_default();
    Ok(Some(Measured {
        wall,
        run: None,
        peak_mib: peak_kib / 1024.0,
        checked: json["total"].as_u64().unwrap_or(0),
        failed: json["errors"].as_u64().unwrap_or(0),
    }))
}

/// The seed article's run: 24 links, one dead, the `[links]` defaults.
fn dead_link(args: &Args, dir: &std::path::Path, port: u16) -> Result<()> {
    let redis = start_redis()?;
    let config = dir.join("celeriac.toml");
    std::fs::write(
        &config,
        format!(
            "redis_url = \"redis://127.0.0.1:{}\"\nprefix = \"bench\"\ndatabase_url = \"sqlite://{}/celeriac.db\"\n\
             [links]\nallow_private_networks = true\n",
            redis.port,
            dir.display(),
        ),
    )?;
    let cli = |a: &[&str]| {
        let mut c = Command::new(&args.celeriac);
        c.arg("--config").arg(&config).args(a);
        c
    };
    let csv = dir.join("links.csv");
    let mut text = String::from("name,url\n");
    for i in 1..=args.links {
        text.push_str(&format!("link-{i},{}\n", url(i, args, port)));
    }
    std::fs::write(&csv, text)?;
    run(
        &mut cli(&["links", "import", csv.to_str().unwrap_or_default()]),
        "celeriac links import",
    )?;
    let mut worker = cli(&["worker"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("start the worker")?;
    let timeout = DEFAULT_TIMEOUT.as_secs_f64();
    println!(
        "### links.check with one dead link: {} links on {} hosts, `[links]` defaults\n",
        args.links, args.hosts
    );
    println!(
        "{} pages answer after {} ms; link-{} accepts the connection and never answers. \
         Timeout {timeout} s, 2 retries.\n",
        args.links - 1,
        args.delay_ms,
        args.links
    );
    println!("| run | wall time (the run itself) | ÷ timeout | dead link: attempts, outcome | checked | failed |");
    println!("|---|---|---|---|---|---|");
    let payload = format!("{{\"site_link\": \"{BACKLINK}\"}}");
    for n in 1..=args.runs {
        let started = Instant::now();
        let id = run(
            &mut cli(&["enqueue", "links.check", "--payload", &payload]),
            "celeriac enqueue",
        )?;
        let status = run(
            &mut cli(&["status", id.trim(), "--wait", "--timeout", "5m", "--json"]),
            "celeriac status --wait",
        )?;
        let wall = started.elapsed().as_secs_f64();
        let job: serde_json::Value = serde_json::from_str(&status)?;
        let r = &job["result"];
        let run_id = r["run_id"].as_i64().context("a run id in the result")?;
        let results: serde_json::Value = serde_json::from_str(&run(
            &mut cli(&["links", "results", &run_id.to_string(), "--json"]),
            "celeriac links results",
        )?)?;
        let dead_name = format!("link-{}", args.links);
        let dead = results["results"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == dead_name.as_str()))
            .context("the dead link's result")?;
        let itself = r["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        println!(
            "| {n} | {wall:.2} s ({itself:.2} s) | {:.2} ({:.2}) | {}, {} | {} | {} |",
            wall / timeout,
            itself / timeout,
            dead["attempts"],
            dead["outcome"].as_str().unwrap_or("?"),
            r["checked"],
            r["failed"]
        );
    }
    let _ = worker.kill();
    let _ = worker.wait();
    drop(redis);
    Ok(())
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.scenario == Scenario::DeadLink {
        args.links = SEED_LINKS;
        args.hosts = SEED_LINKS;
        let dir = std::env::temp_dir().join(format!("celeriac-bench-dead-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (pages, port) = start_pages(&args)?;
        let outcome = dead_link(&args, &dir, port);
        drop(pages);
        let _ = std::fs::remove_dir_all(&dir);
        return outcome;
    }
    let dir = std::env::temp_dir().join(format!("celeriac-bench-links-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (pages, port) = start_pages(&args)?;
    let slow = (1..=args.links)
        .filter(|i| mix(&args).kind(*i) == "slow")
        .count();
    let failing = (1..=args.links)
        .filter(|i| mix(&args).kind(*i) == "fail")
        .count();
    eprintln!(
        "{} links on {} hosts ({} slow at {} ms, {} answering 404, the rest after {} ms)",
        args.links, args.hosts, slow, args.slow_ms, failing, args.delay_ms
    );
    eprintln!("1/2 celeriac links.check…");
    let (ours, warm, idle) = celeriac(&args, &dir, port)?;
    eprintln!("2/2 lychee…");
    let theirs = lychee(&args, &dir, port)?;
    drop(pages);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "### links.check: {} links, {} hosts, concurrency {} (per host {})\n",
        args.links, args.hosts, args.concurrency, args.per_host
    );
    println!(
        "Pages answer after {} ms; {slow} after {} ms; {failing} answer 404.\n",
        args.delay_ms, args.slow_ms
    );
    println!("| tool | wall time (the run itself) | peak RSS | checked | failed |");
    println!("|---|---|---|---|---|");
    let run = |m: &Measured| m.run.map(|r| format!(" ({r:.2} s)")).unwrap_or_default();
    println!(
        "| celeriac links.check, first run (backlink searched in every body) | {:.2} s{} | {:.1} MiB (idle worker: {:.1} MiB) | {} | {} |",
        ours.wall, run(&ours), ours.peak_mib, idle, ours.checked, ours.failed
    );
    println!(
        "| celeriac links.check, next run (slowest links of the last run first) | {:.2} s{} | {:.1} MiB | {} | {} |",
        warm.wall, run(&warm), warm.peak_mib, warm.checked, warm.failed
    );
    if let Some(t) = &theirs {
        println!(
            "| lychee (status only) | {:.2} s | {:.1} MiB | {} | {} |",
            t.wall, t.peak_mib, t.checked, t.failed
        );
        println!(
            "\nlychee / celeriac: wall time {:.2}× (first run), {:.2}× (next run); peak memory {:.2}×",
            t.wall / ours.wall,
            t.wall / warm.wall,
            t.peak_mib / warm.peak_mib.max(ours.peak_mib)
        );
    }
    if ours.checked != args.links as u64 {
        bail!("celeriac checked {} of {} links", ours.checked, args.links);
    }
    Ok(())
}
