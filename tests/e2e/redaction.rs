//! issue 10.3: a Redis URL's password never shows, even when the URL is malformed.

use crate::support::Env;
use std::time::Duration;

#[test]
fn a_malformed_redis_url_never_prints_its_password() {
    let mut env = Env::new("");
    for url in [
        "redis//:S3cret@127.0.0.1:6379",
        "redis:/:S3cret@127.0.0.1:6379",
        "redis://:S3cret@127.0.0.1:1",
    ] {
        for args in [
            vec!["--redis-url", url, "status", "nope"],
            vec!["--redis-url", url, "queues"],
        ] {
            let out = env.cli(&args);
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.status.success(), "{args:?}: {all}");
            assert!(
                !all.contains("S3cret"),
                "{args:?} printed the password: {all}"
            );
            assert!(all.contains("***") || all.contains("redis_url"), "{all}");
        }
    }
    // A worker and a scheduler given a malformed URL refuse to start without printing it.
    for url in [
        "redis//:S3cret@127.0.0.1:6379",
        "redis:/:S3cret@127.0.0.1:6379",
    ] {
        for role in ["worker", "cron"] {
            let n = env.spawn_process(&["--redis-url", url, role]);
            let code = env.worker(n).wait_exit(Duration::from_secs(20));
            let log = env.worker(n).log_text();
            assert_eq!(
                code,
                Some(2),
                "{role} {url}: an invalid setting; log:\n{log}"
            );
            assert!(!log.contains("S3cret") && log.contains("***"), "{log}");
        }
    }
    // A worker's logs too, while it fails to reach Redis at start.
    let n = env.spawn_process(&["--redis-url", "redis://:S3cret@127.0.0.1:1", "worker"]);
    let code = env.worker(n).wait_exit(Duration::from_secs(20));
    let log = env.worker(n).log_text();
    assert_ne!(code, Some(0), "{log}");
    assert!(!log.contains("S3cret") && log.contains("***"), "{log}");
}
