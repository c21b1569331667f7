//! TLS: a worker and the CLI talk to a `redis-server` that only accepts TLS, trusting a private
//! certificate authority given with `redis_tls_ca`; without it the connection is refused.

use crate::support::Env;
use celeriac_testkit::RedisServer;
use std::time::Duration;

#[test]
fn worker_and_cli_over_tls_with_a_private_ca() {
    let redis = RedisServer::builder().tls().start();
    let url = redis.url();
    let ca = redis.tls_ca().expect("a TLS server has a CA");
    let mut env = Env::at(
        &url,
        &format!("redis_tls_ca = {:?}\n", ca.display().to_string()),
    );
    env.spawn_worker(&[]);
    let id = env.enqueue("noop", "{}", &[]);
    assert_eq!(
        env.wait_final(&id, Duration::from_secs(20))["state"],
        "succeeded"
    );

    // Without the CA the server's certificate is not trusted: a clear failure, exit 1.
    let untrusted = Env::at(&url, "");
    let out = untrusted.cli(&["queues"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}
