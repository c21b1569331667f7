//! `celeriac cron`: exactly one enqueue per tick across replicas, catch-up, validation.

use crate::support::Env;
use celeriac_testkit::wait_until;
use redis::Commands;
use std::collections::BTreeMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn schedule(name: &str, expr: &str, extra: &str) -> String {
    format!("[[cron.schedules]]\nname = \"{name}\"\nschedule = \"{expr}\"\nkind = \"noop\"\nqueue = \"ticks\"\n{extra}\n")
}

/// (tick ms, job id) of every job the schedule put in the `ticks` queue's pending list.
fn pending_ticks(env: &Env) -> Vec<u64> {
    let mut con = env.redis();
    let ids: Vec<String> = con.lrange(env.key("ticks", "pending"), 0, -1).unwrap();
    ids.iter()
        .map(|id| {
            id.rsplit(':')
                .next()
                .unwrap()
                .parse()
                .expect("cron job id ends with its tick")
        })
        .collect()
}

fn last_tick(env: &Env, name: &str) -> Option<u64> {
    let mut con = env.redis();
    con.hget(env.key("ticks", &format!("cron:{name}")), "last_tick")
        .unwrap()
}

fn redis_now_ms(env: &Env) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query(&mut env.redis()).unwrap();
    s * 1000 + us / 1000
}

#[test]
fn three_replicas_enqueue_every_tick_exactly_once_even_when_one_is_killed() {
    let mut env = Env::new(&schedule("every-second", "* * * * * *", ""));
    let replicas: Vec<usize> = (0..3).map(|_| env.spawn_cron()).collect();
    let start = redis_now_ms(&env);
    wait_until(T, "5 s of ticks", || {
        last_tick(&env, "every-second").is_some_and(|t| t >= start + 5_000)
    });
    env.worker(replicas[0]).signal("-KILL");
    env.worker(replicas[0]).wait_exit(T);
    wait_until(T, "10 s of ticks", || {
        last_tick(&env, "every-second").is_some_and(|t| t >= start + 11_000)
    });
    for &r in &replicas[1..] {
        env.worker(r).signal("-TERM");
        assert_eq!(env.worker(r).wait_exit(T), Some(0));
    }

    let ticks = pending_ticks(&env);
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for t in &ticks {
        *counts.entry(*t).or_default() += 1;
    }
    let dup: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "ticks enqueued more than once: {dup:?}");
    let keys: Vec<u64> = counts.keys().copied().collect();
    assert!(keys.len() >= 11, "{keys:?}");
    for pair in keys.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1000,
            "gap between ticks {} and {}",
            pair[0],
            pair[1]
        );
    }
    assert!(keys.iter().all(|t| t % 1000 == 0));
    // The history agrees with the queue.
    let history: serde_json::Value = serde_json::from_str(&env.ok(&[
        "cron",
        "history",
        "every-second",
        "--limit",
        "100",
        "--json",
    ]))
    .unwrap();
    assert_eq!(history.as_array().unwrap().len(), keys.len().min(100));
    assert_eq!(history[0]["state"], "pending");
}

#[test]
fn missed_ticks_follow_each_catch_up_policy() {
    let config = [
        schedule("skip", "* * * * *", "catch_up = \"skip\""),
        schedule("latest", "* * * * *", "catch_up = \"latest\""),
        schedule("all", "* * * * *", "catch_up = \"all\"\ncatch_up_max = 5"),
    ]
    .concat();
    let mut env = Env::new(&config);
    // Stay clear of a minute boundary so "the ticks missed so far" cannot change under the test.
    wait_until(
        Duration::from_secs(10),
        "a time away from a minute boundary",
        || (redis_now_ms(&env) % 60_000) < 50_000,
    );
    let now = redis_now_ms(&env);
    let minute = now - now % 60_000;
    let long_ago = minute - 30 * 60_000;
    let mut con = env.redis();
    for name in ["skip", "latest", "all"] {
        let _: () = con
            .hset_multiple(
                env.key("ticks", &format!("cron:{name}")),
                &[
                    ("last_tick", long_ago.to_string()),
                    ("last_id", "old".into()),
                ],
            )
            .unwrap();
    }
    env.spawn_cron();
    wait_until(T, "catch-up of `all`", || {
        last_tick(&env, "all") == Some(minute)
    });
    wait_until(T, "catch-up of `latest`", || {
        last_tick(&env, "latest") == Some(minute)
    });

    let history = |name: &str| -> Vec<u64> {
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["cron", "history", name, "--json"])).unwrap();
        let mut ticks: Vec<u64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|t| humantime::parse_rfc3339(t["tick_utc"].as_str().unwrap()).unwrap())
            .map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64)
            .collect();
        ticks.sort();
        ticks
    };
    let all: Vec<u64> = (0..5).rev().map(|i| minute - i * 60_000).collect();
    assert_eq!(history("all"), all, "the newest 5 missed minutes");
    assert_eq!(history("latest"), vec![minute]);
    assert!(history("skip").is_empty());
    assert_eq!(last_tick(&env, "skip"), Some(long_ago));

    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["cron", "list", "--json"])).unwrap();
    let latest = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "latest")
        .unwrap();
    assert_eq!(latest["last_job_state"], "pending", "{latest}");
    assert_eq!(latest["next_runs"].as_array().unwrap().len(), 3, "{latest}");
    assert!(
        latest["next_runs"][0]["utc"]
            .as_str()
            .unwrap()
            .ends_with(":00.000Z"),
        "{latest}"
    );
}

#[test]
fn a_ticked_job_runs_on_a_worker() {
    let mut env = Env::new(&schedule(
        "run",
        "* * * * * *",
        "payload = { ms = 1 }\nmax_attempts = 2",
    ));
    let cfg = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("kind = \"noop\"", "kind = \"sleep\"");
    std::fs::write(env.config_path(), cfg).unwrap();
    env.spawn_worker(&["--queues", "ticks"]);
    env.spawn_cron();
    wait_until(T, "a tick", || last_tick(&env, "run").is_some());
    let id = format!("cron:run:{}", last_tick(&env, "run").unwrap());
    let job = env.wait_final(&id, T);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "sleep");
    assert_eq!(job["max_attempts"], 2);
    assert_eq!(job["payload"], serde_json::json!({"ms": 1}));
}

#[test]
fn bad_schedules_stop_cron_at_start_with_name_and_reason() {
    let cases = [
        (
            schedule("bad-expr", "61 * * * *", ""),
            "invalid cron expression",
        ),
        (
            schedule("bad-zone", "* * * * *", "timezone = \"Mars/Olympus\""),
            "unknown time zone",
        ),
        (
            schedule("bad-kind", "* * * * *", "").replace("noop", "no.such.kind"),
            "unknown job kind",
        ),
        (
            schedule("bad-policy", "* * * * *", "catch_up = \"sometimes\""),
            "sometimes",
        ),
    ];
    for (config, reason) in cases {
        let env = Env::new(&config);
        let out = env.cli(&["cron"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config}: {stderr}");
        assert!(stderr.contains(reason), "{config}: {stderr}");
        let name = config
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .unwrap()
            .trim_matches('"');
        assert!(stderr.contains(name) || reason == "sometimes", "{stderr}");
    }
}

#[test]
fn the_shipped_configuration_schedules_the_link_check() {
    // The Env's config sets no schedules, so the built-in ones apply, as with
    // config/default.toml: `celeriac cron` must accept them.
    let env = Env::new("");
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["cron", "list", "--json"])).expect("cron list JSON");
    let links = list
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "links-check"))
        .unwrap_or_else(|| panic!("no links-check schedule: {list}"));
    assert_eq!(links["kind"], "links.check");
    assert_eq!(links["schedule"], "0 4 * * *");
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_celeriac"))
        .arg("--config")
        .arg(&shipped)
        .args([
            "--redis-url",
            &celeriac_testkit::test_redis_url(),
            "--prefix",
            &env.prefix,
        ])
        .args(["cron", "list"])
        .output()
        .expect("run celeriac");
    assert!(
        out.status.success(),
        "cron list with config/default.toml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
