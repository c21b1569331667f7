//! What a worker leaves behind when a job ends and when it is stopped: the handler's last
//! progress on the finished record, and a second SIGTERM that cuts the grace period short.

use crate::support::Env;
use celeriac_testkit::wait_until;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

#[test]
fn the_last_progress_a_handler_set_is_on_the_finished_record() {
    // Heartbeats far apart: no renewal stores the progress of these short runs, only the
    // outcome can.
    let mut env = Env::new("[worker]\nlease = \"20s\"\nheartbeat_interval = \"10s\"\n");
    env.spawn_worker(&[]);
    // The last step's progress is set just before the handler returns.
    let id = env.enqueue("sleep", r#"{"ms": 300, "steps": 3}"#, &[]);
    let job = env.wait_final(&id, T);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["progress"],
        serde_json::json!({"done": 3, "total": 3}),
        "the record shows where the run ended: {job}"
    );
    // An attempt that fails (here: timed out at 350 ms, steps every 100 ms) keeps its last
    // progress too.
    let failing = env.enqueue(
        "sleep",
        r#"{"ms": 100000, "steps": 1000}"#,
        &["--max-attempts", "1", "--timeout", "350ms"],
    );
    let dead = env.wait_final(&failing, T);
    assert_eq!(dead["reason"], "max_attempts", "{dead}");
    assert!(
        dead["progress"]["done"].as_u64().is_some_and(|d| d >= 1),
        "{dead}"
    );
}

#[test]
fn a_second_sigterm_hands_in_flight_jobs_back_at_once() {
    second_signal_hands_back_at_once("-TERM", "-TERM");
}

#[test]
fn a_second_ctrl_c_hands_in_flight_jobs_back_at_once() {
    second_signal_hands_back_at_once("-INT", "-INT");
    second_signal_hands_back_at_once("-TERM", "-INT");
}

fn second_signal_hands_back_at_once(first: &str, then: &str) {
    // A grace period far longer than the test waits: only the second signal can end it.
    let mut env = Env::new(
        "[worker]\nlease = \"60s\"\nheartbeat_interval = \"10s\"\nshutdown_grace = \"120s\"\n",
    );
    let w = env.spawn_worker(&[]);
    let long = env.enqueue("sleep", r#"{"ms": 600000}"#, &[]);
    env.wait_state(&long, "active", T);

    env.worker(w).signal(first);
    wait_until(T, "the worker to start draining", || {
        env.worker(w)
            .log_text()
            .contains("waiting for in-flight jobs")
    });
    let second = Instant::now();
    env.worker(w).signal(then);
    let code = env.worker(w).wait_exit(Duration::from_secs(15));
    let took = second.elapsed();
    let log = env.worker(w).log_text();
    assert_eq!(code, Some(0), "exit code; log:\n{log}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(
        log.contains("second signal"),
        "the second signal is acknowledged in the log:\n{log}"
    );
    let job = env.status(&long);
    assert_eq!(job["state"], "pending", "handed back at once: {job}");
    assert_eq!(job["history"][0]["outcome"], "release", "{job}");
    assert_eq!(job["attempts"], 0, "a hand-back is not an attempt: {job}");
}
