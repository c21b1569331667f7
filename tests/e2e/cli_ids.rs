//! Job ids are unique per queue only: commands that take an id accept --queue, and refuse to
//! guess when several queues hold the id.

use crate::support::Env;

fn run(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env.cli(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// issue 10.5
#[test]
fn an_id_in_several_queues_needs_queue() {
    let env = Env::new("");
    env.enqueue("noop", "{}", &["--id", "my-job-1", "--delay", "1h"]);
    let (code, _, note) = run(
        &env,
        &[
            "enqueue", "noop", "--id", "my-job-1", "--queue", "other", "--delay", "1h",
        ],
    );
    assert_eq!(code, Some(0), "{note}");
    assert!(
        note.contains("also names a job in queue default"),
        "the second my-job-1 is not created silently: {note}"
    );

    for args in [
        &["status", "my-job-1"][..],
        &["jobs", "cancel", "my-job-1"],
        &["jobs", "retry", "my-job-1"],
    ] {
        let (code, _, err) = run(&env, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains("default, other") && err.contains("--queue"),
            "{args:?}: {err}"
        );
    }
    // Nothing was changed by the refused calls.
    for queue in ["default", "other"] {
        let job = env.ok(&["status", "my-job-1", "--queue", queue, "--json"]);
        let job: serde_json::Value = serde_json::from_str(&job).unwrap();
        assert_eq!(
            (job["queue"].as_str(), job["state"].as_str()),
            (Some(queue), Some("scheduled"))
        );
    }

    let (code, out, err) = run(&env, &["jobs", "cancel", "my-job-1", "--queue", "other"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "my-job-1: cancelled (was scheduled)");
    let job = env.ok(&["status", "my-job-1", "--queue", "default", "--json"]);
    assert!(
        job.contains(r#""state": "scheduled""#),
        "the other job runs on: {job}"
    );

    let (code, out, err) = run(&env, &["jobs", "retry", "my-job-1", "--queue", "other"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "my-job-1: requeued (was cancelled)");

    let (code, _, err) = run(&env, &["status", "my-job-1", "--queue", "nowhere"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("in queue nowhere"), "{err}");
}
