//! SIGTERM: stop fetching, let short jobs finish, hand long ones back at once, exit 0.

use crate::support::Env;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn sigterm_drains_in_flight_and_hands_back_the_rest() {
    // A long lease proves the hand-back does not wait for lease expiry.
    let mut env = Env::new(
        "[worker]\nlease = \"60s\"\nheartbeat_interval = \"10s\"\nshutdown_grace = \"1s\"\n",
    );
    let w = env.spawn_worker(&["--concurrency", "2"]);
    let short = env.enqueue("sleep", r#"{"ms": 400}"#, &[]);
    let long = env.enqueue("sleep", r#"{"ms": 5000}"#, &[]);
    env.wait_state(&short, "active", T);
    env.wait_state(&long, "active", T);
    let waiting = env.enqueue("noop", "{}", &["--delay", "1ms"]);

    env.worker(w).signal("-TERM");
    let code = env.worker(w).wait_exit(T);
    assert_eq!(
        code,
        Some(0),
        "exit code; log:\n{}",
        env.worker(w).log_text()
    );

    assert_eq!(
        env.status(&short)["state"],
        "succeeded",
        "finished within the grace period"
    );
    let handed_back = env.status(&long);
    assert_eq!(
        handed_back["state"], "pending",
        "handed back at once: {handed_back}"
    );
    assert_eq!(handed_back["history"][0]["outcome"], "release");
    assert_eq!(handed_back["attempts"], 0, "a hand-back is not an attempt");
    let log = env.worker(w).log_text();
    assert!(
        log.contains("SIGTERM received") && log.contains("worker stopped"),
        "{log}"
    );

    // Nothing lost: a new worker runs everything left.
    env.spawn_worker(&[]);
    for id in [&long, &waiting] {
        assert_eq!(env.wait_final(id, T)["state"], "succeeded", "{id}");
    }
    let workers: serde_json::Value = serde_json::from_str(&env.ok(&["workers", "--json"])).unwrap();
    assert_eq!(
        workers.as_array().unwrap().len(),
        1,
        "the stopped worker deregistered: {workers}"
    );
}
