//! Workers that die: their jobs are taken back and finished elsewhere, and a job that keeps
//! killing its workers ends dead instead of looping.

use crate::support::Env;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn kill_9_mid_job_another_worker_finishes_it() {
    let mut env = Env::new("");
    let a = env.spawn_worker(&[]);
    let id = env.enqueue("sleep", r#"{"ms": 1500}"#, &[]);
    let active = env.wait_state(&id, "active", T);
    env.worker(a).signal("-KILL");
    env.worker(a).wait_exit(T);
    let first_worker = active["worker"].clone();

    env.spawn_worker(&[]);
    let job = env.wait_final(&id, T);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_ne!(job["worker"], first_worker, "{job}");
    let outcomes: Vec<&str> = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["lost", "succeeded"], "{job}");
    assert_eq!(job["history"][0]["worker"], first_worker);
}

#[test]
fn job_that_keeps_losing_its_workers_ends_dead_worker_lost() {
    let mut env = Env::new("[worker]\nmax_deliveries = 2\n");
    let id = env.enqueue("sleep", r#"{"ms": 60000}"#, &[]);
    for round in 0..2 {
        let w = env.spawn_worker(&[]);
        // Active under this worker: the previous delivery was swept as lost first.
        celeriac_testkit::wait_until(T, "the job to run on the new worker", || {
            let job = env.status(&id);
            job["state"] == "active" && job["history"].as_array().unwrap().len() == round + 1
        });
        env.worker(w).signal("-KILL");
        env.worker(w).wait_exit(T);
    }
    // A live worker's recoverer sweeps the expired lease: second loss, so dead.
    env.spawn_worker(&[]);
    let job = env.wait_final(&id, T);
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["reason"], "worker_lost");
    let lost = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["outcome"] == "lost")
        .count();
    assert_eq!(lost, 2, "{job}");
}

#[test]
fn frozen_worker_cannot_complete_a_job_it_lost() {
    let mut env = Env::new("");
    let a = env.spawn_worker(&[]);
    let id = env.enqueue("sleep", r#"{"ms": 2500}"#, &[]);
    env.wait_state(&id, "active", T);
    env.worker(a).signal("-STOP");
    // Another worker takes the job back after the lease (1 s) and runs it.
    env.spawn_worker(&[]);
    let job = env.wait_final(&id, T);
    assert_eq!(job["state"], "succeeded");
    let token_holder = job["worker"].clone();
    env.worker(a).signal("-CONT");
    // The resumed worker's completion is refused by the fencing token (or it notices the lost
    // lease first): the record keeps the second worker's run.
    celeriac_testkit::wait_until(T, "the resumed worker to give the job up", || {
        let log = env.worker(a).log_text();
        log.contains("outcome rejected") || log.contains("lease gone") || log.contains("lease lost")
    });
    let after = env.status(&id);
    assert_eq!(after["state"], "succeeded");
    assert_eq!(after["worker"], token_holder);
    // And it keeps working.
    let next = env.enqueue("noop", "{}", &[]);
    assert_eq!(env.wait_final(&next, T)["state"], "succeeded");
}
