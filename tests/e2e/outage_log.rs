//! Redis down for a few seconds: a worker and a cron replica each log the outage once, at most
//! a reminder, and the recovery once — not a line per failed call — and carry on.

use crate::support::Env;
use celeriac_testkit::{wait_until, RedisServer};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// How long Redis stays down: past the first reminder (5 s).
const OUTAGE: Duration = Duration::from_millis(5_500);

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_redis_outage_is_logged_once_with_its_recovery() {
    // Every acknowledged write survives the kill (fsync before each reply): the outage is the
    // only thing that happens to the worker and the scheduler.
    let mut redis = RedisServer::builder()
        .aof()
        .args(["--appendfsync", "always"])
        .start();
    let schedule =
        "[[cron.schedules]]\nname = \"tick\"\nschedule = \"* * * * * *\"\nkind = \"noop\"\n";
    // A long lease: the running job outlives the outage, so nothing but the outage is logged.
    let mut env = Env::at(
        &redis.url(),
        &format!("[worker]\nlease = \"30s\"\nheartbeat_interval = \"1s\"\n{schedule}"),
    );
    let worker = env.spawn_worker(&[]);
    let cron = env.spawn_cron();
    let long = env.enqueue("sleep", r#"{"ms": 20000}"#, &[]);
    env.wait_state(&long, "active", T);
    wait_until(T, "a tick to be enqueued", || {
        env.worker(cron).log_text().contains("tick enqueued")
    });

    let before: Vec<usize> = [worker, cron]
        .iter()
        .map(|&p| env.worker(p).log_text().len())
        .collect();
    redis.kill9();
    std::thread::sleep(OUTAGE);
    let during: Vec<String> = [worker, cron]
        .iter()
        .zip(&before)
        .map(|(&p, &from)| env.worker(p).log_text()[from..].to_string())
        .collect();
    redis.restart(false);

    // Both notice, and carry on: a new job runs, a new tick is enqueued.
    for p in [worker, cron] {
        wait_until(T, "the recovery to be logged", || {
            env.worker(p).log_text().contains("Redis answers again")
        });
    }
    let after = env.enqueue("noop", "{}", &[]);
    assert_eq!(env.wait_final(&after, T)["state"], "succeeded");
    let ticks = count(&env.worker(cron).log_text(), "tick enqueued");
    wait_until(T, "a tick after the outage", || {
        count(&env.worker(cron).log_text(), "tick enqueued") > ticks
    });

    for (i, (&p, window)) in [worker, cron].iter().zip(&during).enumerate() {
        let name = ["worker", "cron"][i];
        let log = env.worker(p).log_text()[before[i]..].to_string();
        assert_eq!(
            count(&log, "Redis does not answer"),
            1,
            "{name}: the outage is logged once:\n{log}"
        );
        assert_eq!(
            count(&log, "Redis answers again"),
            1,
            "{name}: the recovery is logged once:\n{log}"
        );
        let lines = window.lines().count();
        assert!(
            (1..=2).contains(&lines),
            "{name}: {lines} lines while Redis was down for {OUTAGE:?}, expected the outage and at most one reminder:\n{window}"
        );
        let noisy = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .count();
        assert!(
            noisy <= 3,
            "{name}: {noisy} warnings and errors for one outage:\n{log}"
        );
    }
    assert!(
        env.worker(worker).child.try_wait().unwrap().is_none()
            && env.worker(cron).child.try_wait().unwrap().is_none(),
        "both still run"
    );
}
