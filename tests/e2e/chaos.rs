//! Fault injection with a ledger (see `ledger.rs`): workers killed, frozen and stopped, Redis
//! crashed, restarted empty or full, poison jobs, operators repairing during a storm.

use crate::ledger::*;
use redis::Commands;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- scenarios

/// Timings of the scenarios that inject no fault: a lease long enough that a stall of the test
/// machine itself (a loaded host can hold a process, or Redis, for a second) is not taken for a
/// cut-off worker. Under the 1 s lease such a stall rightly stops the handler and the job runs
/// again, which these scenarios, asserting no duplicate, would count against the queue.
const NO_FAULT: &str = "[worker]\nlease = \"10s\"\nheartbeat_interval = \"1s\"\n";

/// 1. Baseline: N jobs, two workers: nothing lost, nothing duplicated, nothing stuck.
fn baseline(jobs: usize) -> Report {
    let mut run = Run::new("1 baseline", NO_FAULT);
    run.enqueue((0..jobs).map(|_| record(0)).collect());
    run.env.spawn_worker(&[]);
    run.env.spawn_worker(&[]);
    let r = run.finish(Duration::from_secs(300));
    assert_clean(&r);
    assert_eq!(r.duplicated, 0, "{r:?}");
    assert_eq!(r.succeeded, jobs);
    r
}

/// 2. kill -9 storm: a worker killed every 2-5 s and restarted while jobs of 10-500 ms run.
fn kill_storm(jobs: usize, storm: Duration) -> Report {
    let mut run = Run::new("2 kill -9 storm", "");
    run.enqueue((0..jobs).map(|_| record(fastrand_range(10, 500))).collect());
    run.env.spawn_worker(&[]);
    run.env.spawn_worker(&[]);
    let end = Instant::now() + storm;
    let mut in_flight_at_kills = 0;
    let mut kills = 0;
    let mut kill_times: Vec<(String, u64)> = Vec::new();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(fastrand_range(2000, 5000)));
        let victim = fastrand_range(0, 2) as usize;
        let prefix = pid_prefix(&mut run.env, victim);
        kill_times.push((prefix.clone(), celeriac_core::time::now_us()));
        run.env.worker(victim).signal("-KILL");
        run.env.worker(victim).wait_exit(Duration::from_secs(10));
        in_flight_at_kills += run.leases_of(&prefix);
        run.faulted.insert(prefix);
        kills += 1;
        run.env.respawn_worker(victim, &[]);
    }
    let r = run.finish(Duration::from_secs(300));
    // Orphans are taken back within the lease plus a sweep: the recovery time is the `lost`
    // entry of each job's history, the kill time is ours.
    let mut con = run.env.redis();
    let mut worst_ms = 0u64;
    let mut orphans = 0;
    // A take-back from a worker that was not killed: its lease passed unrenewed because the
    // machine starved it of CPU for longer than the 1 s lease (seen at load 19 on 2 cores).
    // The worker stops such a handler itself (self-fencing, as in a partition), so it may run
    // once more elsewhere; counted and shown, never blamed on a kill.
    let mut starved = 0;
    for id in &run.enqueued {
        let hist: Option<String> = con
            .hget(run.env.key("default", &format!("job:{id}")), "hist")
            .unwrap();
        for line in hist.unwrap_or_default().lines() {
            let h: serde_json::Value = serde_json::from_str(line).unwrap();
            if h["outcome"] != "lost" {
                continue;
            }
            let worker = h["worker"].as_str().unwrap_or("");
            let taken_back: u64 = h["finished_us"].as_str().unwrap().parse().unwrap();
            let Some(killed) = kill_times
                .iter()
                .filter(|(p, at)| worker.starts_with(p.as_str()) && *at <= taken_back)
                .map(|(_, at)| *at)
                .max()
            else {
                starved += 1;
                continue;
            };
            worst_ms = worst_ms.max((taken_back - killed) / 1000);
            orphans += 1;
        }
    }
    eprintln!("kills: {kills}, jobs leased to the killed workers: {in_flight_at_kills}, orphans taken back: {orphans}, slowest after {worst_ms} ms, taken back from starved live workers: {starved}");
    // lease 1 s + sweep every 200 ms, plus scheduling slack on a loaded 2-core machine.
    assert!(
        worst_ms <= 3_000,
        "an orphan waited {worst_ms} ms to be taken back"
    );
    assert_clean(&r);
    assert!(
        r.duplicated <= in_flight_at_kills + starved,
        "duplicated {} > in flight at kills {in_flight_at_kills} + taken back from starved live workers {starved}",
        r.duplicated
    );
    assert_eq!(r.succeeded + r.dead, jobs);
    r
}

/// 3. Rolling SIGTERM of every worker under load; some jobs longer than the 1 s grace.
fn rolling_sigterm(rounds: usize) -> Report {
    let mut run = Run::new("3 rolling SIGTERM", "");
    let mut long = HashSet::new();
    let mut jobs = Vec::new();
    for i in 0..(rounds * 60) {
        jobs.push(if i % 10 == 0 {
            record(fastrand_range(1500, 2500))
        } else {
            record(fastrand_range(20, 300))
        });
    }
    run.enqueue(jobs.clone());
    for (i, id) in run.enqueued.iter().enumerate() {
        if i % 10 == 0 {
            long.insert(id.clone());
        }
    }
    run.env.spawn_worker(&[]);
    run.env.spawn_worker(&[]);
    for round in 0..rounds {
        let w = round % 2;
        std::thread::sleep(Duration::from_millis(800));
        run.env.worker(w).signal("-TERM");
        let code = run.env.worker(w).wait_exit(Duration::from_secs(10));
        assert_eq!(code, Some(0), "a drained worker exits 0");
        run.env.respawn_worker(w, &[]);
    }
    let r = run.finish(Duration::from_secs(300));
    assert_clean(&r);
    let execs = read_ledger(&run.ledger);
    let mut starts: HashMap<&str, usize> = HashMap::new();
    for e in &execs {
        *starts.entry(e.id.as_str()).or_default() += 1;
    }
    let short_dups = starts
        .iter()
        .filter(|(id, n)| **n > 1 && !long.contains(**id))
        .count();
    assert_eq!(
        short_dups, 0,
        "jobs shorter than the grace period ran twice"
    );
    assert_eq!(r.succeeded, run.enqueued.len());
    r
}

/// 7. Jobs longer than the lease, the heartbeat renewing it: never redelivered.
fn long_jobs() -> Report {
    let mut run = Run::new("7 jobs longer than the lease", "");
    run.enqueue((0..20).map(|_| record(2500)).collect());
    run.env.spawn_worker(&[]);
    run.env.spawn_worker(&[]);
    let r = run.finish(Duration::from_secs(60));
    assert_clean(&r);
    assert_eq!(r.duplicated, 0, "{r:?}");
    r
}

/// 8. Delayed jobs spread over the next `spread`: each runs exactly once, never early.
fn delayed(jobs: usize, spread: Duration) -> Report {
    let mut run = Run::new("8 delayed jobs", NO_FAULT);
    let now = celeriac_core::time::now_ms();
    let span = spread.as_millis() as u64;
    let at: Vec<u64> = (0..jobs)
        .map(|i| now + 500 + span * i as u64 / jobs as u64)
        .collect();
    run.enqueue(
        at.iter()
            .map(|&t| ("drill.record", serde_json::json!({"ms": 0}), Some(t)))
            .collect(),
    );
    let due: HashMap<String, u64> = run.enqueued.iter().cloned().zip(at).collect();
    run.env.spawn_worker(&[]);
    run.env.spawn_worker(&[]);
    let r = run.finish(spread + Duration::from_secs(60));
    assert_clean(&r);
    assert_eq!(r.duplicated, 0, "{r:?}");
    let early: Vec<_> = read_ledger(&run.ledger)
        .into_iter()
        .filter(|e| e.start < due[&e.id] * 1000)
        .map(|e| (e.start / 1000, due[&e.id], e.id))
        .collect();
    assert!(early.is_empty(), "jobs ran early: {early:?}");
    r
}

/// Scenario 9, poison: jobs that abort their worker end dead (`worker_lost`) after
/// `max_deliveries`; the other jobs are unaffected.
fn poison_abort(good: usize, poison: usize) -> Report {
    let mut run = Run::new(
        "9 poison (aborts its worker)",
        "[worker]\nmax_deliveries = 3\n",
    );
    let mut jobs: Vec<_> = (0..good).map(|_| record(5)).collect();
    jobs.extend((0..poison).map(|_| ("drill.abort", serde_json::json!({}), None)));
    run.enqueue(jobs);
    let poison_ids: Vec<String> = run.enqueued[good..].to_vec();
    run.env.spawn_worker(&[]);
    run.env.spawn_worker(&[]);
    // Supervise: restart crashed workers until every poison job is dead.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for w in 0..2 {
            if run.env.worker(w).child.try_wait().unwrap().is_some() {
                run.env.respawn_worker(w, &[]);
            }
        }
        let states = run.states();
        if poison_ids.iter().all(|id| states[id] == "dead") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "poison jobs not dead in time: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = run.finish(Duration::from_secs(60));
    assert_clean(&r);
    assert_eq!(r.dead, poison);
    assert_eq!(r.succeeded, good);
    for id in &poison_ids {
        let job = run.env.status(id);
        assert_eq!(job["reason"], "worker_lost", "{job}");
    }
    r
}

/// Scenario 11: operators cancel, retry and purge while workers are being killed. Each
/// operation is atomic (a job reported cancelled from a waiting state never starts afterwards)
/// and idempotent (repeating it changes nothing).
fn operator_repairs_during_kill_storm(jobs: usize, storm: Duration) -> Report {
    let mut run = Run::new("11 cancel/retry/purge during a kill -9 storm", "");
    run.enqueue((0..jobs).map(|_| record(fastrand_range(10, 300))).collect());
    run.env.spawn_worker(&[]);
    run.env.spawn_worker(&[]);
    let targets: Vec<String> = run
        .enqueued
        .iter()
        .rev()
        .step_by(7)
        .take(60)
        .cloned()
        .collect();
    let mut cancelled_waiting = Vec::new();
    let mut cancelled_all: Vec<String> = Vec::new();
    let end = Instant::now() + storm;
    let mut round = 0;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(fastrand_range(1000, 2500)));
        let victim = (round % 2) as usize;
        let prefix = pid_prefix(&mut run.env, victim);
        run.faulted.insert(prefix);
        run.env.worker(victim).signal("-KILL");
        run.env.worker(victim).wait_exit(Duration::from_secs(10));
        if round == 0 {
            let mut args = vec!["jobs", "cancel", "--json"];
            args.extend(targets.iter().map(String::as_str));
            let at = celeriac_core::time::now_us();
            let first: serde_json::Value = serde_json::from_str(&run.env.ok(&args)).unwrap();
            for r in first.as_array().unwrap() {
                if r["changed"] == true {
                    cancelled_all.push(r["id"].as_str().unwrap().to_string());
                }
                if r["changed"] == true
                    && ["pending", "scheduled", "retrying"]
                        .contains(&r["previous"].as_str().unwrap())
                {
                    cancelled_waiting.push((r["id"].as_str().unwrap().to_string(), at));
                }
            }
            let again: serde_json::Value = serde_json::from_str(&run.env.ok(&args)).unwrap();
            assert!(
                again
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["changed"] == false),
                "cancel is idempotent: {again}"
            );
        }
        run.env.respawn_worker(victim, &[]);
        round += 1;
    }
    assert!(
        !cancelled_waiting.is_empty(),
        "nothing was still waiting when cancelled"
    );
    // Nothing cancelled while waiting ever started after the cancel.
    let starts_after: Vec<_> = read_ledger(&run.ledger)
        .into_iter()
        .filter(|e| {
            cancelled_waiting
                .iter()
                .any(|(id, at)| *id == e.id && e.start > *at)
        })
        .collect();
    assert!(
        starts_after.is_empty(),
        "cancelled jobs started later: {starts_after:?}"
    );
    // Retry half of them (twice: the second is a no-op), purge the other half.
    let (retry, purge): (Vec<_>, Vec<_>) = cancelled_waiting
        .iter()
        .map(|(id, _)| id.clone())
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let retry: Vec<String> = retry.into_iter().map(|(_, id)| id).collect();
    let mut args = vec!["jobs", "retry", "--json"];
    args.extend(retry.iter().map(String::as_str));
    run.env.ok(&args);
    let again: serde_json::Value = serde_json::from_str(&run.env.ok(&args)).unwrap();
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["changed"] == false || r["previous"] == "pending"),
        "a second retry changes nothing: {again}"
    );
    let _ = purge;
    // Everything cancelled and not retried is purged (jobs cancelled while running too).
    let purged: Vec<String> = cancelled_all
        .iter()
        .filter(|id| !retry.contains(id))
        .cloned()
        .collect();
    let purge = [
        "jobs",
        "purge",
        "--queue",
        "default",
        "--state",
        "cancelled",
        "--json",
    ];
    let out = run.env.ok(&purge);
    let n: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        n["purged"].as_u64().unwrap() as usize,
        purged.len(),
        "{out}"
    );
    let again: serde_json::Value = serde_json::from_str(&run.env.ok(&purge)).unwrap();
    assert_eq!(again["purged"], 0, "purge is idempotent");
    run.enqueued.retain(|id| !purged.contains(id));
    let r = run.finish(Duration::from_secs(120));
    assert_clean(&r);
    assert_eq!(r.succeeded, run.enqueued.len(), "{r:?}");
    r
}

// ---------------------------------------------------------------- quick (make test)

#[test]
fn chaos_quick_baseline() {
    baseline(2_000);
}

#[test]
fn chaos_quick_kill_storm() {
    kill_storm(600, Duration::from_secs(10));
}

#[test]
fn chaos_quick_rolling_sigterm() {
    rolling_sigterm(4);
}

#[test]
fn chaos_quick_long_jobs_keep_their_lease() {
    long_jobs();
}

#[test]
fn chaos_quick_delayed() {
    delayed(1_000, Duration::from_secs(8));
}

#[test]
fn chaos_quick_operator_repairs_during_kill_storm() {
    operator_repairs_during_kill_storm(800, Duration::from_secs(6));
}

#[test]
fn chaos_quick_poison_abort() {
    poison_abort(200, 4);
}

// ---------------------------------------------------------------- full (make chaos)

#[test]
#[ignore = "full size: run with make chaos"]
fn chaos_full() {
    let reports = [
        baseline(20_000),
        kill_storm(5_000, Duration::from_secs(60)),
        rolling_sigterm(12),
        crate::chaos_redis::redis_crash_with_aof(10, 10),
        crate::chaos_redis::redis_restarted_empty(),
        crate::chaos_redis::frozen_worker(),
        long_jobs(),
        delayed(10_000, Duration::from_secs(120)),
        poison_abort(2_000, 10),
        crate::chaos_redis::redis_full(),
        operator_repairs_during_kill_storm(3_000, Duration::from_secs(30)),
    ];
    println!("| scenario | enqueued | succeeded | dead | executions | lost | unexpected | duplicated | overlap | stuck | inconsistent | time |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        println!("{r}");
    }
}
