//! Partitions: a live worker cut off from Redis. The partitioned worker (or cron replica) runs
//! in a network namespace (`celeriac_testkit::Net`) joined to this host by a veth pair on a
//! private /30; cutting the link
//! (`ip link set … down`) drops its packets both ways while the process lives on, so requests
//! already sent are retransmitted and reach Redis when the link comes back, as on a real
//! network; `ss -K` destroys Redis's side of its connections without the worker noticing.
//!
//! Timings are those of the field test: lease 2 s, heartbeat 500 ms, sweep 500 ms, Redis calls
//! bounded at 1 s. Each scenario asserts, from the ledger (`ledger.rs`): nothing lost; no job
//! dead (nothing crashed); no overlap — the partitioned worker's handlers, whose stop times the
//! ledger records, never ran at the same time as another worker's run of the same job; no
//! handler of the partitioned worker still running after its lease passed; no job run twice
//! unless one run was on the partitioned worker during a cut; and no take-back left counted
//! against a job (`lost`) once its worker came back.

use crate::ledger::*;
use celeriac_testkit::{free_port, wait_until, Net, RedisServer};
use redis::Commands;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Redis calls are bounded at 1 s (CELERIAC_REDIS_TIMEOUT) on top of these.
const PARTITION: &str = r#"
[worker]
concurrency = 10
lease = "2s"
heartbeat_interval = "500ms"
recover_interval = "500ms"
promote_interval = "50ms"
shutdown_grace = "1s"
max_deliveries = 3
"#;
const LEASE_US: u64 = 2_000_000;

/// A partition run: Redis reachable on loopback and from the namespace.
struct Cut {
    run: Run,
    net: Net,
    /// (cut, heal) times, µs.
    windows: Vec<(u64, u64)>,
    /// Worker-id prefix of the partitioned worker.
    cut_off: String,
    /// Its index among the run's processes.
    cut_off_n: usize,
}

impl Cut {
    fn new(name: &str) -> Cut {
        let net = Net::new(free_port());
        let redis = RedisServer::builder()
            .bind(&["127.0.0.1", &net.host_ip])
            .args(["--protected-mode", "no"])
            .start();
        let mut run = Run::with_redis(name, PARTITION, redis);
        run.env
            .process_env
            .push(("CELERIAC_REDIS_TIMEOUT".into(), "1s".into()));
        Cut {
            run,
            net,
            windows: Vec::new(),
            cut_off: String::new(),
            cut_off_n: 0,
        }
    }

    fn url_from_ns(&self) -> String {
        format!("redis://{}:{}", self.net.host_ip, self.run.redis.port)
    }

    /// Start the worker to be partitioned (process 0); returns once it registered.
    fn spawn_partitioned_worker(&mut self) {
        let url = self.url_from_ns();
        let exec = self.net.exec().map(String::from);
        let exec: Vec<&str> = exec.iter().map(String::as_str).collect();
        let n = self
            .run
            .env
            .spawn_worker_via(&exec, &["--redis-url", url.as_str()]);
        self.cut_off = pid_prefix(&mut self.run.env, n);
        self.cut_off_n = n;
    }

    /// What the partitioned worker logged, one line per record.
    fn cut_off_log(&mut self) -> String {
        self.run.env.worker(self.cut_off_n).log_text()
    }

    fn partition(&mut self, down: Duration) {
        let cut = self.net.cut();
        std::thread::sleep(down);
        let heal = self.net.heal();
        self.windows.push((cut, heal));
    }

    fn on_cut_off_worker(&self, e: &Exec) -> bool {
        e.worker.starts_with(&self.cut_off)
    }

    /// Every assertion a partition scenario makes; prints the figures and returns the number
    /// of jobs that ran more than once.
    fn check(&self, r: &Report) -> usize {
        assert_clean(r);
        assert_eq!(r.dead, 0, "no job dead without a crash: {r:?}");
        let execs = read_ledger(&self.run.ledger);
        // No handler of the cut-off worker ran past its lease: a run going at a cut ends (or is
        // stopped) within a lease of it, plus timer and ledger slack.
        let slack_us = 400_000;
        for e in execs.iter().filter(|e| self.on_cut_off_worker(e)) {
            for &(cut, heal) in &self.windows {
                if e.start < cut {
                    let end = e.end.unwrap_or(u64::MAX);
                    assert!(
                        end <= cut + LEASE_US + slack_us || end < cut,
                        "a handler ran {} ms past its lease on the cut-off worker: {e:?}",
                        (end.saturating_sub(cut + LEASE_US)) / 1000
                    );
                }
                assert!(
                    !(e.start > cut + 200_000 && e.start < heal),
                    "the cut-off worker started a job while cut off: {e:?}"
                );
            }
        }
        // No job ran twice on a healthy link: a second run needs a first one on the cut-off
        // worker that a cut interrupted.
        let mut by_id: BTreeMap<&str, Vec<&Exec>> = BTreeMap::new();
        for e in &execs {
            by_id.entry(e.id.as_str()).or_default().push(e);
        }
        let mut rerun = 0;
        for (id, runs) in &by_id {
            if runs.len() < 2 {
                continue;
            }
            rerun += 1;
            let explained = runs.iter().any(|e| {
                self.on_cut_off_worker(e)
                    && self.windows.iter().any(|&(cut, heal)| {
                        e.start < heal && e.end.is_none_or(|end| end + LEASE_US >= cut)
                    })
            });
            assert!(
                explained,
                "job {id} ran {} times without a partition to explain it: {runs:?}",
                runs.len()
            );
        }
        // A partition is not a death: every take-back of a delivery of the cut-off worker is
        // absolved once it came back (history `cut_off`), unless the job's next run recorded
        // its outcome first (which clears the count anyway); nothing is left counted (`lost`).
        let last_heal = self.windows.iter().map(|w| w.1).max().unwrap_or(0);
        let mut con = self.run.env.redis();
        for id in &self.run.enqueued {
            let settled_first = by_id.get(id.as_str()).is_some_and(|runs| {
                runs.iter().any(|e| {
                    !self.on_cut_off_worker(e)
                        && !e.stopped
                        && e.end.is_some_and(|t| t < last_heal + 2_000_000)
                })
            });
            let key = self.run.env.key("default", &format!("job:{id}"));
            let (hist, lost): (Option<String>, Option<u64>) = redis::cmd("HMGET")
                .arg(&key)
                .arg("hist")
                .arg("lost")
                .query(&mut con)
                .unwrap();
            let hist = hist.unwrap_or_default();
            let entries: Vec<serde_json::Value> = hist
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let taken_back = entries
                .iter()
                .filter(|h| {
                    h["outcome"] == "lost"
                        && h["worker"]
                            .as_str()
                            .is_some_and(|w| w.starts_with(&self.cut_off))
                })
                .count();
            let absolved = entries.iter().filter(|h| h["outcome"] == "cut_off").count();
            assert!(
                absolved == taken_back || settled_first && absolved < taken_back,
                "job {id}: {taken_back} take-backs from the cut-off worker, {absolved} absolved:\n{hist}"
            );
            assert_eq!(
                lost.unwrap_or(0),
                0,
                "job {id} still charged a lost delivery"
            );
        }
        let stats: BTreeMap<String, u64> =
            con.hgetall(self.run.env.key("default", "stats")).unwrap();
        eprintln!(
            "{r}\nre-run after a cut: {rerun}; take-backs absolved: {}; partitions (s): {:?}",
            stats.get("cut_off").copied().unwrap_or(0),
            self.windows
                .iter()
                .map(|(c, h)| format!("{:.1}", (h - c) as f64 / 1e6))
                .collect::<Vec<_>>()
        );
        rerun
    }

    fn runs_started_on_cut_off_worker(&self) -> usize {
        read_ledger(&self.run.ledger)
            .iter()
            .filter(|e| self.on_cut_off_worker(e))
            .count()
    }
}

/// Scenario 12: A partition longer than the lease while the cut-off worker runs 10 jobs longer than
/// the lease: it stops them when their lease passes, another worker takes them back after the
/// grace; when the link returns the take-backs stop counting, and the jobs taken back are no
/// longer run one at a time as crash suspects.
fn partition_longer_than_the_lease(jobs: usize, down: Duration) -> Report {
    let mut c = Cut::new("12 partition longer than the lease");
    c.spawn_partitioned_worker();
    c.run.enqueue((0..jobs).map(|_| record(3000)).collect());
    wait_until(
        Duration::from_secs(20),
        "the worker to hold 10 jobs",
        || c.runs_started_on_cut_off_worker() >= 10,
    );
    c.run.env.spawn_worker(&[]);
    c.partition(down);
    let heal = Instant::now();
    let r = c.run.finish(Duration::from_secs(120));
    let after_heal = heal.elapsed();
    c.check(&r);
    check_partition_log(&c.cut_off_log());
    // Ten 3 s jobs taken back as crash suspects would run one at a time: 20+ s after the
    // heal. Absolved at the heal, they run side by side.
    eprintln!(
        "all jobs done {:.1} s after the heal",
        after_heal.as_secs_f64()
    );
    assert!(
        after_heal < Duration::from_secs(10),
        "jobs taken back were serialised after their worker came back: done {after_heal:?} after the heal"
    );
    r
}

/// Scenario 13: A flapping link: `cycles` × (`down` cut, `up` restored) while jobs run on both workers.
fn flapping_link(jobs: usize, cycles: usize, down: Duration, up: Duration) -> Report {
    let mut c = Cut::new("13 flapping link");
    c.spawn_partitioned_worker();
    c.run.env.spawn_worker(&[]);
    c.run.enqueue(
        (0..jobs)
            .map(|_| record(fastrand_range(500, 3000)))
            .collect(),
    );
    for _ in 0..cycles {
        c.partition(down);
        std::thread::sleep(up);
    }
    let r = c.run.finish(Duration::from_secs(120));
    c.check(&r);
    r
}

/// What the cut-off worker says during a partition longer than the lease: the outage at once,
/// with the leases at stake, before any lease passes; then that handlers were stopped; never a
/// hint that Redis is not running (the connection was established), and no "lease gone" for a
/// job whose outcome was accepted (there is no cancel or crash in these scenarios).
fn check_partition_log(log: &str) {
    let outage = log
        .find("Redis does not answer; the leases held expire unless")
        .unwrap_or_else(|| panic!("the outage was not logged with the leases at stake:\n{log}"));
    let fenced = log
        .find("lease passed unrenewed with the handler still running")
        .unwrap_or_else(|| panic!("handlers stopped at their lease were not logged:\n{log}"));
    assert!(
        outage < fenced,
        "the outage was logged only after leases had passed:\n{log}"
    );
    assert!(
        log[outage..]
            .lines()
            .next()
            .is_some_and(|l| l.contains("leases_held=")),
        "{log}"
    );
    assert!(
        !log.contains("is Redis running at the configured URL"),
        "a timeout on an established connection is not a missing server:\n{log}"
    );
    assert!(
        !log.contains("lease gone (cancelled or taken back)"),
        "no job was cancelled or taken back from a dead worker:\n{log}"
    );
}

/// The longest partition that costs nothing whatever the timing of the last renewal before
/// it, with these timings (ADR 0011): lease − heartbeat − min(heartbeat, 1 s) − min(call bound,
/// heartbeat).
const BUDGET: Duration = Duration::from_millis(2000 - 500 - 500 - 500);

/// Scenario 14: A partition shorter than the lease. Inside the partition budget no job may run
/// twice; past it (still shorter than the lease) only jobs the cut-off worker was running may.
fn short_partition(jobs: usize, down: Duration) -> Report {
    let mut c = Cut::new(&format!(
        "14 partition shorter than the lease ({} ms)",
        down.as_millis()
    ));
    c.spawn_partitioned_worker();
    c.run.enqueue((0..jobs).map(|_| record(1000)).collect());
    wait_until(Duration::from_secs(20), "the worker to hold jobs", || {
        c.runs_started_on_cut_off_worker() >= 5
    });
    c.run.env.spawn_worker(&[]);
    c.partition(down);
    let r = c.run.finish(Duration::from_secs(120));
    let rerun = c.check(&r);
    if down <= BUDGET {
        assert_eq!(rerun, 0, "a partition inside the budget cost a re-run: {r}");
    }
    r
}

/// Scenario 15: An idle worker after a partition, its server-side connections destroyed during it or
/// not: it fetches again within 5 s of the heal.
fn idle_worker_after_heal(down: Duration, destroy: bool) -> Report {
    let name = if destroy {
        "15 idle worker, server side of its connections destroyed"
    } else {
        "15 idle worker after a partition"
    };
    let mut c = Cut::new(name);
    c.spawn_partitioned_worker();
    // It is idle, blocked on the wake-up list.
    std::thread::sleep(Duration::from_millis(1500));
    let cut = c.net.cut();
    if destroy {
        c.net.destroy_server_side();
    }
    std::thread::sleep(down);
    let heal = c.net.heal();
    c.windows.push((cut, heal));
    c.run.enqueue((0..20).map(|_| record(0)).collect());
    wait_until(
        Duration::from_secs(30),
        "the idle worker to fetch again",
        || c.runs_started_on_cut_off_worker() > 0,
    );
    let first = read_ledger(&c.run.ledger)
        .iter()
        .map(|e| e.start)
        .min()
        .unwrap();
    let r = c.run.finish(Duration::from_secs(30));
    c.check(&r);
    let back_ms = first.saturating_sub(heal) / 1000;
    eprintln!("first job started {back_ms} ms after the heal");
    assert!(
        back_ms <= 5_000,
        "the idle worker fetched again only {back_ms} ms after the heal"
    );
    r
}

/// Scenario 16: A `celeriac cron` replica partitioned for `down` while another runs: every tick of a
/// per-second schedule is enqueued exactly once, before, during and after the cut.
fn cron_replica_partitioned(down: Duration) -> Report {
    let mut c = Cut::new("16 cron replica partitioned");
    let schedule = "[[cron.schedules]]\nname = \"every-second\"\nschedule = \"* * * * * *\"\nkind = \"noop\"\nqueue = \"ticks\"\n";
    std::fs::write(
        c.run.env.config_path(),
        format!(
            "{}\n{schedule}",
            std::fs::read_to_string(c.run.env.config_path()).unwrap()
        ),
    )
    .unwrap();
    let url = c.url_from_ns();
    let exec = c.net.exec().map(String::from);
    let exec: Vec<&str> = exec.iter().map(String::as_str).collect();
    let cut_off = c
        .run
        .env
        .spawn_cron_via(&exec, &["--redis-url", url.as_str()]);
    let healthy = c.run.env.spawn_cron();
    std::thread::sleep(Duration::from_secs(3));
    c.partition(down);
    std::thread::sleep(Duration::from_secs(4));
    for p in [cut_off, healthy] {
        c.run.env.worker(p).signal("-TERM");
        assert_eq!(
            c.run.env.worker(p).wait_exit(Duration::from_secs(20)),
            Some(0)
        );
    }
    let mut con = c.run.env.redis();
    let ids: Vec<String> = con
        .lrange(c.run.env.key("ticks", "pending"), 0, -1)
        .unwrap();
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for id in &ids {
        let tick: u64 = id.rsplit(':').next().unwrap().parse().unwrap();
        *counts.entry(tick).or_default() += 1;
    }
    let dup: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "ticks enqueued more than once: {dup:?}");
    let ticks: Vec<u64> = counts.keys().copied().collect();
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "a tick was skipped: {ticks:?}");
    }
    let log = c.run.env.worker(cut_off).log_text();
    eprintln!(
        "{} ticks, each enqueued once; the cut-off replica logged:\n{}",
        ticks.len(),
        log.lines()
            .filter(|l| !l.contains("tick enqueued"))
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(ticks.len() as u64 >= 3 + down.as_secs() + 3, "{ticks:?}");
    assert!(
        log.contains("Redis does not answer") && log.contains("Redis answers again"),
        "the outage and its end are logged:\n{log}"
    );
    assert!(
        !log.contains("is Redis running at the configured URL"),
        "a cut network is not a missing server:\n{log}"
    );
    c.run.report()
}

/// Scenario 17: The only worker is cut off past its lease while its jobs finish: the outcomes it
/// computed during the cut are recorded at the heal (no sweep, stale or its own, throws them
/// away), and the jobs it had to stop run once more, no more.
fn lone_worker_cut_off(jobs: usize, down: Duration) -> Report {
    let mut c = Cut::new("17 lone worker cut off past its lease");
    c.spawn_partitioned_worker();
    // Five that finish during the cut, five that outlive the lease and are stopped.
    let mut batch: Vec<_> = (0..jobs / 2).map(|_| record(1000)).collect();
    batch.extend((0..jobs - jobs / 2).map(|_| record(4000)));
    c.run.enqueue(batch);
    wait_until(
        Duration::from_secs(20),
        "the worker to hold every job",
        || c.runs_started_on_cut_off_worker() >= jobs,
    );
    c.partition(down);
    let r = c.run.finish(Duration::from_secs(60));
    c.check(&r);
    let (cut, heal) = c.windows[0];
    let execs = read_ledger(&c.run.ledger);
    let mut runs: BTreeMap<&str, Vec<&Exec>> = BTreeMap::new();
    for e in &execs {
        runs.entry(e.id.as_str()).or_default().push(e);
    }
    for (id, rs) in &runs {
        let finished_in_cut = rs
            .iter()
            .any(|e| !e.stopped && e.end.is_some_and(|t| t > cut && t < heal));
        let max = if finished_in_cut { 1 } else { 2 };
        assert!(
            rs.len() <= max,
            "job {id} ran {} times (at most {max}): {rs:?}",
            rs.len()
        );
    }
    r
}

// ---------------------------------------------------------------- quick (make test)

#[test]
fn partition_quick_longer_than_the_lease() {
    partition_longer_than_the_lease(30, Duration::from_secs(6));
}

#[test]
fn partition_quick_flapping_link() {
    flapping_link(60, 3, Duration::from_secs(3), Duration::from_secs(2));
}

#[test]
fn partition_quick_shorter_than_the_lease() {
    short_partition(20, Duration::from_secs(1));
}

#[test]
fn partition_quick_idle_worker_server_side_destroyed() {
    // A blip too short for any timeout: only the destroyed connections are left to notice.
    idle_worker_after_heal(Duration::from_millis(300), true);
}

#[test]
fn partition_quick_idle_worker_long_partition() {
    idle_worker_after_heal(Duration::from_secs(8), false);
}

#[test]
fn partition_quick_lone_worker() {
    lone_worker_cut_off(10, Duration::from_secs(5));
}

#[test]
fn partition_quick_cron_replica() {
    cron_replica_partitioned(Duration::from_secs(5));
}

// ---------------------------------------------------------------- full (make chaos)

#[test]
#[ignore = "full size: run with make chaos"]
fn chaos_full_partitions() {
    let reports = [
        partition_longer_than_the_lease(60, Duration::from_secs(15)),
        flapping_link(200, 5, Duration::from_secs(4), Duration::from_secs(3)),
        short_partition(60, Duration::from_millis(400)),
        short_partition(60, Duration::from_secs(1)),
        idle_worker_after_heal(Duration::from_secs(15), false),
        idle_worker_after_heal(Duration::from_millis(300), true),
        cron_replica_partitioned(Duration::from_secs(10)),
        lone_worker_cut_off(10, Duration::from_secs(15)),
    ];
    println!("| scenario | enqueued | succeeded | dead | executions | lost | unexpected | duplicated | overlap | stuck | inconsistent | time |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        println!("{r}");
    }
}
