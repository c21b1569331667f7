//! The fault-injection harness: worker processes and a ledger. Each scenario runs against a
//! private `redis-server` on a free port (`celeriac_testkit::RedisServer`) and real
//! `celeriac worker` processes running the `drill.record` kind, which appends every
//! execution's start and end (job id, attempt, fencing token, worker, time) to fsynced
//! files outside Redis. After the scenario, [`Report`] counts, Jepsen-style:
//!
//! - **lost**: acknowledged enqueues that never finished (no final state after the drain);
//! - **unexpected**: executions of ids never enqueued;
//! - **duplicated**: ids started more than once;
//! - **overlap**: two completed executions of one id overlapping in time;
//! - **stuck**: jobs still pending, scheduled, retrying or active after the drain deadline;
//! - **inconsistent**: keyspace anomalies (active without a lease, a lease without an active job,
//!   an index entry without a record).
//!
//! The scenarios are in `chaos.rs` (crashes, freezes, Redis faults) and `partition.rs` (a
//! live worker cut off from Redis). The quick sizes run in `make test`; `make chaos` runs the
//! full sizes (ignored tests) and prints each report (results in docs/reliability.md).

use crate::support::Env;
use celeriac_testkit::{RawConnection, RedisServer};
use redis::Commands;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Lease, sweep and grace short enough for fault injection.
pub const CHAOS: &str = r#"
[worker]
concurrency = 10
lease = "1s"
heartbeat_interval = "250ms"
recover_interval = "200ms"
promote_interval = "50ms"
shutdown_grace = "1s"
max_deliveries = 5
"#;

/// One execution read from the ledger.
#[derive(Clone, Debug)]
pub struct Exec {
    pub id: String,
    pub worker: String,
    pub start: u64,
    /// When it ended (`E`) or was stopped by its worker (`X`), µs.
    pub end: Option<u64>,
    /// Stopped by its worker before its end (`X`).
    pub stopped: bool,
}

pub fn read_ledger(dir: &Path) -> Vec<Exec> {
    let mut execs: HashMap<(String, u64), Exec> = HashMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let [tag, id, _attempt, token, worker, at] = f[..] else {
                continue;
            };
            let (token, at) = (token.parse().unwrap(), at.parse().unwrap());
            let e = execs
                .entry((id.to_string(), token))
                .or_insert_with(|| Exec {
                    id: id.to_string(),
                    worker: worker.to_string(),
                    start: 0,
                    end: None,
                    stopped: false,
                });
            match tag {
                "S" => e.start = at,
                "E" => e.end = Some(at),
                "X" => {
                    e.end = Some(at);
                    e.stopped = true;
                }
                _ => {}
            }
        }
    }
    execs.into_values().collect()
}

/// What a scenario found.
#[derive(Debug, Default)]
pub struct Report {
    pub scenario: String,
    pub enqueued: usize,
    pub succeeded: usize,
    pub dead: usize,
    pub executions: usize,
    pub lost: usize,
    pub unexpected: usize,
    pub duplicated: usize,
    pub overlap: usize,
    pub stuck: usize,
    pub inconsistent: Vec<String>,
    pub seconds: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
            self.scenario,
            self.enqueued,
            self.succeeded,
            self.dead,
            self.executions,
            self.lost,
            self.unexpected,
            self.duplicated,
            self.overlap,
            self.stuck,
            self.inconsistent.len(),
            self.seconds
        )
    }
}

/// A chaos run: a private Redis, an environment on it, a ledger directory.
pub struct Run {
    pub redis: RedisServer,
    /// Id prefixes of workers that were frozen or killed: their executions may overlap others
    /// legitimately (their lease had expired), so they are left out of `overlap`.
    pub faulted: HashSet<String>,
    /// Ids enqueued before Redis lost its data: counted as lost, not waited for.
    pub written_off: Vec<String>,
    pub env: Env,
    pub ledger: PathBuf,
    pub enqueued: Vec<String>,
    started: Instant,
    name: String,
}

impl Run {
    pub fn new(name: &str, extra: &str) -> Run {
        Self::with_redis(name, extra, RedisServer::start())
    }

    pub fn with_redis(name: &str, extra: &str, redis: RedisServer) -> Run {
        let config = format!("{CHAOS}\n{extra}");
        let mut env = Env::at(&redis.url(), &merge_sections(&config));
        let ledger = env.dir.join("ledger");
        env.process_env
            .push(("CELERIAC_DRILL_LEDGER".into(), ledger.display().to_string()));
        Run {
            redis,
            faulted: HashSet::new(),
            written_off: Vec::new(),
            env,
            ledger,
            enqueued: Vec::new(),
            started: Instant::now(),
            name: name.into(),
        }
    }

    /// Enqueue `jobs` (kind, payload, run-at ms) in one bulk call through the producer.
    pub fn enqueue(&mut self, jobs: Vec<(&str, serde_json::Value, Option<u64>)>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config =
            celeriac_core::config::Config::load(Some(&self.env.dir.join("config.toml"))).unwrap();
        let ids = rt.block_on(async {
            let producer = celeriac_producer::Producer::connect(&config).await.unwrap();
            let batch = jobs
                .into_iter()
                .map(|(kind, payload, at)| {
                    let job = celeriac_producer::NewJob::new(kind, payload);
                    match at {
                        Some(ms) => job.run_at_ms(ms),
                        None => job,
                    }
                })
                .collect();
            producer.enqueue_many(batch).await.unwrap()
        });
        self.enqueued.extend(ids.into_iter().map(|e| e.id));
    }

    pub fn states(&self) -> HashMap<String, String> {
        let mut con = self.env.redis();
        let mut out = HashMap::new();
        for chunk in self.enqueued.chunks(2000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hget(self.env.key("default", &format!("job:{id}")), "state");
            }
            let states: Vec<Option<String>> = pipe.query(&mut con).unwrap();
            for (id, s) in chunk.iter().zip(states) {
                out.insert(id.clone(), s.unwrap_or_default());
            }
        }
        out
    }

    /// Wait until every enqueued job is final (or `deadline` passes), then report.
    pub fn finish(&mut self, deadline: Duration) -> Report {
        let until = Instant::now() + deadline;
        loop {
            let states = self.states();
            let open = states
                .values()
                .filter(|s| !["succeeded", "dead", "cancelled"].contains(&s.as_str()))
                .count();
            if open == 0 || Instant::now() > until {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.report()
    }

    pub fn report(&self) -> Report {
        let states = self.states();
        let execs = read_ledger(&self.ledger);
        let enqueued: HashSet<&str> = self
            .enqueued
            .iter()
            .chain(&self.written_off)
            .map(String::as_str)
            .collect();
        let mut by_id: BTreeMap<&str, Vec<&Exec>> = BTreeMap::new();
        for e in &execs {
            by_id.entry(e.id.as_str()).or_default().push(e);
        }
        let mut overlap = 0;
        for runs in by_id.values() {
            let done: Vec<&&Exec> = runs
                .iter()
                .filter(|e| {
                    e.end.is_some() && !self.faulted.iter().any(|f| e.worker.starts_with(f))
                })
                .collect();
            for (i, a) in done.iter().enumerate() {
                for b in &done[i + 1..] {
                    if a.start < b.end.unwrap() && b.start < a.end.unwrap() {
                        overlap += 1;
                    }
                }
            }
        }
        let mut con = self.env.redis();
        let k = |name: &str| self.env.key("default", name);
        let count = |con: &mut RawConnection, key: String, list: bool| -> usize {
            if list {
                con.llen(key).unwrap()
            } else {
                con.zcard(key).unwrap()
            }
        };
        let stuck = count(&mut con, k("pending"), true)
            + count(&mut con, k("scheduled"), false)
            + count(&mut con, k("retry"), false)
            + count(&mut con, k("active"), false);
        let mut inconsistent = Vec::new();
        let active: Vec<String> = con.zrange(k("active"), 0, -1).unwrap();
        for id in &active {
            let st: Option<String> = con.hget(k(&format!("job:{id}")), "state").unwrap();
            if st.as_deref() != Some("active") {
                inconsistent.push(format!("lease without an active job: {id} ({st:?})"));
            }
        }
        let active: HashSet<&String> = active.iter().collect();
        for (id, st) in &states {
            if st == "active" && !active.contains(id) {
                inconsistent.push(format!("active without a lease: {id}"));
            }
            if st.is_empty() {
                inconsistent.push(format!("enqueued job without a record: {id}"));
            }
        }
        Report {
            scenario: self.name.clone(),
            enqueued: self.enqueued.len() + self.written_off.len(),
            succeeded: states.values().filter(|s| *s == "succeeded").count(),
            dead: states.values().filter(|s| *s == "dead").count(),
            executions: execs.len(),
            lost: self.written_off.len()
                + states
                    .values()
                    .filter(|s| !["succeeded", "dead", "cancelled"].contains(&s.as_str()))
                    .count(),
            unexpected: by_id.keys().filter(|id| !enqueued.contains(*id)).count(),
            duplicated: by_id.values().filter(|runs| runs.len() > 1).count(),
            overlap,
            stuck,
            inconsistent,
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }

    /// Jobs leased to a worker (by id prefix): running, about to start, or finished with their
    /// outcome not yet recorded — what a kill of that worker sends back to the queue.
    pub fn leases_of(&self, worker_id_prefix: &str) -> usize {
        let mut con = self.env.redis();
        let active: Vec<String> = con
            .zrange(self.env.key("default", "active"), 0, -1)
            .unwrap();
        active
            .iter()
            .filter(|id| {
                let w: Option<String> = con
                    .hget(self.env.key("default", &format!("job:{id}")), "worker")
                    .unwrap();
                w.is_some_and(|w| w.starts_with(worker_id_prefix))
            })
            .count()
    }
}

/// `extra` may repeat `[worker]`; fold repeated sections so the TOML stays valid.
fn merge_sections(text: &str) -> String {
    let mut sections: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            match sections.iter().position(|(name, _)| name == t) {
                Some(i) => {
                    let s = sections.remove(i);
                    sections.push(s);
                }
                None => sections.push((t.to_string(), Vec::new())),
            }
        } else if !t.is_empty() {
            let key = t.split('=').next().unwrap_or("").trim().to_string();
            let lines = &mut sections.last_mut().unwrap().1;
            lines.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
            lines.push(t.to_string());
        }
    }
    sections
        .into_iter()
        .map(|(name, lines)| format!("{name}\n{}\n", lines.join("\n")))
        .collect()
}

pub fn record(ms: u64) -> (&'static str, serde_json::Value, Option<u64>) {
    ("drill.record", serde_json::json!({ "ms": ms }), None)
}

pub fn assert_clean(r: &Report) {
    eprintln!("{r}");
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.unexpected, 0, "{r:?}");
    assert_eq!(r.stuck, 0, "{r:?}");
    assert_eq!(r.overlap, 0, "{r:?}");
    assert!(r.inconsistent.is_empty(), "{r:?}");
}

pub fn pid_prefix(env: &mut Env, n: usize) -> String {
    // Worker ids are HOST-PID-RAND.
    let pid = env.worker(n).pid();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| host.trim().to_string());
    format!("{host}-{pid}-")
}

pub fn fastrand_range(lo: u64, hi: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let x = nanos
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 17;
    lo + x % (hi - lo).max(1)
}
