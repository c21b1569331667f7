//! Fault injection with a ledger (see `ledger.rs`), the faults of Redis itself and of a frozen
//! worker: Redis killed with AOF on, restarted empty, full (`maxmemory`), and a worker stopped
//! with SIGSTOP past its lease. The full sizes run from `chaos.rs`'s `chaos_full`.

use crate::ledger::*;
use celeriac_testkit::{wait_until, RedisServer};
use redis::Commands;
use std::time::Duration;

/// Scenario 4: Redis killed with kill -9 (AOF everysec) and restarted while producers and
/// workers run; nothing is restarted but Redis.
pub fn redis_crash_with_aof(seconds_before: u64, seconds_after: u64) -> Report {
    let redis = RedisServer::builder().aof().start();
    let mut run = Run::with_redis("4 Redis kill -9 (AOF everysec)", "", redis);
    run.env.spawn_worker(&[]);
    run.env.spawn_worker(&[]);
    let config =
        celeriac_core::config::Config::load(Some(&run.env.dir.join("config.toml"))).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let producer = celeriac_producer::Producer::connect(&config).await.unwrap();
                let (mut acked, mut errors) = (Vec::new(), 0usize);
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let job = celeriac_producer::NewJob::new(
                        "drill.record",
                        serde_json::json!({"ms": 5}),
                    );
                    match producer.enqueue(job).await {
                        Ok(e) => acked.push((e.id, celeriac_core::time::now_ms())),
                        Err(_) => errors += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (acked, errors)
            })
        })
    };
    std::thread::sleep(Duration::from_secs(seconds_before));
    let killed_at = celeriac_core::time::now_ms();
    run.redis.kill9();
    std::thread::sleep(Duration::from_millis(500));
    run.redis.restart(false);
    let restarted_at = celeriac_core::time::now_ms();
    std::thread::sleep(Duration::from_secs(seconds_after));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acked, errors) = producer.join().unwrap();
    let after_restart = acked.iter().filter(|(_, t)| *t > restarted_at).count();
    let last_second = acked
        .iter()
        .filter(|(_, t)| *t + 1500 >= killed_at && *t <= killed_at)
        .count();
    run.enqueued = acked.iter().map(|(id, _)| id.clone()).collect();
    let r = run.finish(Duration::from_secs(60));
    eprintln!("{r}\nacked {}, enqueue errors while Redis was down {errors}, acked after restart {after_restart}, acked in the 1.5 s before the kill {last_second}, lost {}", acked.len(), r.lost);
    assert!(after_restart > 0, "the producer resumed without a restart");
    assert!(
        r.lost <= last_second,
        "lost {} > acknowledged in the last 1.5 s before the kill {last_second}",
        r.lost
    );
    assert_eq!(r.unexpected, 0);
    assert_eq!(r.stuck, 0, "{r:?}");
    for w in 0..2 {
        assert!(
            run.env.worker(w).child.try_wait().unwrap().is_none(),
            "workers were not restarted"
        );
    }
    let states = run.states();
    let resumed = acked
        .iter()
        .filter(|(_, t)| *t > restarted_at)
        .all(|(id, _)| states[id] == "succeeded");
    assert!(
        resumed,
        "jobs enqueued after the restart all ran: workers resumed"
    );
    r
}

/// Scenario 5: Redis restarted empty. Workers notice (the dataset epoch changed), say so loudly,
/// drop every lease they held, record the loss for `celeriac queues`, and run new jobs.
pub fn redis_restarted_empty() -> Report {
    let mut run = Run::new("5 Redis restarted empty", "");
    run.env.spawn_worker(&[]);
    run.enqueue((0..20).map(|_| record(3000)).collect());
    wait_until(Duration::from_secs(10), "jobs to be running", || {
        read_ledger(&run.ledger).len() >= 10
    });
    let before = run.enqueued.len();
    run.redis.kill9();
    run.redis.restart(true);
    wait_until(
        Duration::from_secs(20),
        "the worker to notice the data loss",
        || run.env.worker(0).log_text().contains("REDIS LOST ITS DATA"),
    );
    // No phantom leases: the worker holds nothing once it noticed.
    wait_until(
        Duration::from_secs(10),
        "the worker to report no jobs in flight",
        || {
            let w: serde_json::Value =
                serde_json::from_str(&run.env.ok(&["workers", "--json"])).unwrap();
            w.as_array()
                .is_some_and(|a| a.len() == 1 && a[0]["in_flight"] == 0)
        },
    );
    let out = run.env.cli(&["queues"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Redis lost its data"),
        "the CLI reports it: {stderr}"
    );
    // New jobs run on the same worker process.
    run.written_off = std::mem::take(&mut run.enqueued);
    run.enqueue((0..20).map(|_| record(5)).collect());
    let r = run.finish(Duration::from_secs(30));
    eprintln!("{r}\n(the {before} jobs enqueued before the restart were lost with Redis's data, as expected without persistence)");
    assert_eq!(r.succeeded, 20, "{r:?}");
    assert_eq!(
        r.lost, before,
        "exactly the jobs stored before the restart: {r:?}"
    );
    assert_eq!((r.unexpected, r.stuck), (0, 0), "{r:?}");
    assert!(run.env.worker(0).child.try_wait().unwrap().is_none());
    r
}

/// Scenario 6: a worker frozen (SIGSTOP) past its lease, then resumed: another worker ran its
/// jobs, its late completions are refused by the fencing token, and it carries on working.
pub fn frozen_worker() -> Report {
    let mut run = Run::new("6 worker frozen past its lease", "");
    run.env.spawn_worker(&[]);
    run.enqueue((0..10).map(|_| record(1500)).collect());
    wait_until(
        Duration::from_secs(10),
        "the first worker to start jobs",
        || read_ledger(&run.ledger).len() >= 5,
    );
    let frozen = pid_prefix(&mut run.env, 0);
    run.faulted.insert(frozen.clone());
    run.env.worker(0).signal("-STOP");
    run.env.spawn_worker(&[]);
    // The second worker takes the frozen one's jobs back after the lease and runs them.
    wait_until(
        Duration::from_secs(30),
        "the other worker to finish every job",
        || run.states().values().all(|s| s == "succeeded"),
    );
    run.env.worker(0).signal("-CONT");
    wait_until(
        Duration::from_secs(20),
        "the resumed worker to give its stale jobs up",
        || {
            let log = run.env.worker(0).log_text();
            log.contains("outcome rejected") || log.contains("lease gone")
        },
    );
    // It recovers: new work still runs to completion with both workers up.
    run.enqueue((0..50).map(|_| record(5)).collect());
    let r = run.finish(Duration::from_secs(30));
    assert_clean(&r);
    let states = run.states();
    assert!(states.values().all(|s| s == "succeeded"));
    assert!(
        run.env.worker(0).child.try_wait().unwrap().is_none(),
        "the resumed worker is alive"
    );
    r
}

/// Scenario 10: Redis `maxmemory` reached with `noeviction`. Enqueue fails with a clear error
/// (nothing half-written, nothing dropped silently); once memory is freed everything resumes.
pub fn redis_full() -> Report {
    let redis = RedisServer::builder()
        .args(["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"])
        .start();
    let mut run = Run::with_redis("10 Redis maxmemory (noeviction)", "", redis);
    let payload = format!(r#"{{"ms": 1, "pad": "{}"}}"#, "x".repeat(400));
    let mut error = String::new();
    let mut accepted = 0;
    for _ in 0..200 {
        let out = run.env.cli(&[
            "enqueue",
            "drill.record",
            "--payload",
            &payload,
            "--count",
            "500",
            "--json",
        ]);
        if out.status.success() {
            let ids: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let ids: Vec<String> = ids
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string())
                .collect();
            accepted += ids.len();
            run.enqueued.extend(ids);
        } else {
            error = String::from_utf8_lossy(&out.stderr).into_owned();
            break;
        }
    }
    assert!(
        !error.is_empty(),
        "Redis never filled up after {accepted} jobs"
    );
    assert!(
        error.contains("Redis is full") && error.contains("maxmemory"),
        "unclear error: {error}"
    );
    // The failed batch left nothing behind: every job in Redis is one the producer was told about.
    let mut con = run.env.redis();
    let pending: usize = con.llen(run.env.key("default", "pending")).unwrap();
    assert_eq!(pending, accepted, "a refused enqueue wrote nothing");
    // A worker starts and drains what was accepted while Redis is still full (it cannot even
    // announce itself, so it is not waited for through `celeriac workers`).
    run.env.spawn_process(&["worker"]);
    let r = run.finish(Duration::from_secs(60));
    assert_clean(&r);
    assert_eq!(r.succeeded, accepted);
    // Memory freed: retention drops the finished jobs, and enqueue works again.
    run.env.ok(&[
        "jobs",
        "purge",
        "--queue",
        "default",
        "--state",
        "succeeded",
    ]);
    let id = run.env.enqueue("drill.record", r#"{"ms": 1}"#, &[]);
    assert_eq!(
        run.env.wait_final(&id, Duration::from_secs(20))["state"],
        "succeeded"
    );
    eprintln!(
        "{r}\nrefused after {accepted} accepted jobs with: {}",
        error.trim()
    );
    r
}

// ---------------------------------------------------------------- quick (make test)

#[test]
fn chaos_quick_redis_crash_with_aof() {
    redis_crash_with_aof(2, 2);
}

#[test]
fn chaos_quick_redis_restarted_empty() {
    redis_restarted_empty();
}

#[test]
fn chaos_quick_frozen_worker() {
    frozen_worker();
}

#[test]
fn chaos_quick_redis_full() {
    redis_full();
}
