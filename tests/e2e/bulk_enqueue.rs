//! Bulk enqueue (`enqueue --count N`) against private Redis servers: a failure part way reports
//! exactly what was committed, and the output is streamed in bounded memory.

use crate::support::Env;
use celeriac_testkit::RedisServer;
use std::collections::HashSet;
use std::process::Command;

/// Ids in the queue's pending list.
fn pending_ids(env: &Env, queue: &str) -> HashSet<String> {
    redis::cmd("LRANGE")
        .arg(env.key(queue, "pending"))
        .arg(0)
        .arg(-1)
        .query::<Vec<String>>(&mut env.redis())
        .unwrap()
        .into_iter()
        .collect()
}

/// Fill a Redis of 8 MB with `enqueue --count 100000`: the ids printed are the ids written.
fn fill(json: bool) -> (Env, RedisServer, HashSet<String>, String) {
    let redis = RedisServer::builder()
        .args(["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"])
        .start();
    let env = Env::at(&redis.url(), "");
    let payload = format!(r#"{{"pad": "{}"}}"#, "x".repeat(400));
    let mut args = vec![
        "enqueue",
        "noop",
        "--payload",
        &payload,
        "--count",
        "100000",
        "--queue",
        "bulk",
    ];
    if json {
        args.push("--json");
    }
    let out = env.cli(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "Redis never filled up: {stderr}"
    );
    let printed: Vec<String> = if json {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON array ({e}): {stderr}"));
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    } else {
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let set: HashSet<String> = printed.iter().cloned().collect();
    assert_eq!(set.len(), printed.len(), "no id printed twice");
    (env, redis, set, stderr)
}

// issue 10.4: with Redis full part way, the ids printed are exactly the jobs written, the exit
// code is 1, and the message says how many and how to enqueue the rest.
#[test]
fn bulk_enqueue_failing_part_way_reports_what_was_committed() {
    let (env, _redis, printed, stderr) = fill(false);
    let written = pending_ids(&env, "bulk");
    assert!(!written.is_empty() && written.len() < 100_000, "{stderr}");
    assert_eq!(printed.len(), written.len(), "{stderr}");
    assert!(printed == written, "the ids printed are the ids written");
    let n = written.len();
    assert!(
        stderr.contains(&format!("enqueue stopped after {n} of 100000 jobs"))
            && stderr.contains(&format!("--count {}", 100_000 - n))
            && stderr.contains("Redis is full"),
        "{stderr}"
    );
    assert!(!stderr.contains("nothing was written"), "{stderr}");
}

// issue 10.4: the same with --json: one valid array of exactly the jobs written.
#[test]
fn bulk_enqueue_json_failing_part_way_is_one_array_of_what_was_committed() {
    let (env, _redis, printed, stderr) = fill(true);
    let written = pending_ids(&env, "bulk");
    assert!(!written.is_empty(), "{stderr}");
    assert!(
        printed == written,
        "{} printed, {} written: {stderr}",
        printed.len(),
        written.len()
    );
}

/// Peak resident memory of a command, in KiB (GNU time's "Maximum resident set size").
fn peak_rss_kib(cmd: &mut Command) -> u64 {
    let out = cmd
        .output()
        .expect("run /usr/bin/time (apt-get install time)");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    report
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {report}"))
}

// issue 10.10: `enqueue --count N --json` streams its output: its memory does not grow with N.
#[test]
fn bulk_enqueue_json_runs_in_bounded_memory() {
    let redis = RedisServer::start();
    let env = Env::at(&redis.url(), "");
    let mut peak = Vec::new();
    for count in ["20000", "200000"] {
        let out = env.dir.join(format!("ids-{count}.json"));
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-v")
            .arg(env!("CARGO_BIN_EXE_celeriac"))
            .arg("--config")
            .arg(env.config_path())
            .args([
                "enqueue", "noop", "--count", count, "--queue", "mem", "--json",
            ])
            .env_remove("CELERIAC_REDIS_URL")
            .env_remove("CELERIAC_CONFIG")
            .stdout(std::fs::File::create(&out).unwrap());
        peak.push(peak_rss_kib(&mut cmd));
        let ids: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).expect("one JSON array");
        assert_eq!(ids.as_array().unwrap().len().to_string(), count);
    }
    // Collected in memory, 200,000 results took ~10 times the memory of 20,000.
    assert!(
        peak[1] < peak[0] + 16 * 1024,
        "peak RSS {} KiB for 20,000 jobs, {} KiB for 200,000",
        peak[0],
        peak[1]
    );
}
