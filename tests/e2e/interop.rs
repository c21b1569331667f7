//! Another language enqueues with nothing but a Redis client, following docs/wire-format.md.

use crate::support::Env;
use celeriac_testkit::{is_cluster, test_redis_url};
use std::process::Command;
use std::time::Duration;

#[test]
fn python_example_enqueues_a_job_a_worker_runs() {
    if is_cluster(&test_redis_url()) {
        // The example uses a plain client and MULTI; redis-py needs RedisCluster for a
        // cluster. The wire format is the same; this run checks it on a single node.
        eprintln!(
            "skipped against a cluster: examples/python/enqueue.py uses a single-node client"
        );
        return;
    }
    let mut env = Env::new("");
    env.spawn_worker(&[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/python/enqueue.py"
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let run = |args: &[&str]| {
        let out = Command::new(&python)
            .arg(script)
            .args(["--redis-url", &test_redis_url(), "--prefix", &env.prefix])
            .args(args)
            .output()
            .expect("run python3 (make test installs redis-py)");
        assert!(
            out.status.success(),
            "enqueue.py failed: {}\n(make test installs redis-py: scripts/ensure-python-redis.sh)",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let id = run(&[
        "fail",
        "--payload",
        r#"{"times": 1}"#,
        "--max-attempts",
        "3",
    ]);
    let job = env.wait_final(&id, Duration::from_secs(20));
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "fail");
    assert_eq!(job["attempts"], 2);

    let delayed = run(&["noop", "--delay-ms", "300"]);
    let job = env.wait_final(&delayed, Duration::from_secs(20));
    assert_eq!(job["state"], "succeeded", "{job}");
}
