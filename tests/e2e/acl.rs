//! Access control: a worker and the CLI run as a Redis ACL user limited to Celeriac's key
//! prefix, with the password in the URL (from the environment); the password never appears in
//! logs or CLI output.

use crate::support::Env;
use celeriac_testkit::{unique_prefix, Keyspace, RedisServer};
use std::time::Duration;

const PASSWORD: &str = "s3cret-Celeriac-pw";

#[test]
fn worker_and_cli_run_as_a_user_limited_to_the_prefix() {
    // The user's key pattern names the prefix, so the prefix comes first.
    let prefix = unique_prefix();
    let redis = RedisServer::builder()
        .acl_user("celeriac", PASSWORD, &format!("{prefix}:*"))
        .start();
    let mut env = Env::on(Keyspace::with_prefix(&redis.url(), &prefix), "");
    let url = redis.user_url();
    assert_eq!(
        url,
        format!("redis://celeriac:{PASSWORD}@127.0.0.1:{}", redis.port)
    );
    env.process_env
        .push(("CELERIAC_REDIS_URL".into(), url.clone()));

    // The restriction is real: this user cannot read outside the prefix.
    let mut limited = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let outside: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg("someone-else:key")
        .query(&mut limited);
    assert!(
        outside.is_err(),
        "the ACL user reached a key outside the prefix"
    );

    env.spawn_worker(&[]);
    let id = env.enqueue("fail", r#"{"times": 1}"#, &["--max-attempts", "3"]);
    let job = env.wait_final(&id, Duration::from_secs(20));
    assert_eq!(job["state"], "succeeded", "{job}");
    for args in [
        vec!["queues"],
        vec!["workers"],
        vec!["jobs", "list", "--queue", "default", "--state", "succeeded"],
    ] {
        let out = env.ok(&args);
        assert!(!out.contains(PASSWORD));
    }
    assert!(
        !env.worker_logs().contains(PASSWORD),
        "the password leaked into the worker log"
    );

    // A wrong password fails with a clear error that does not echo the URL's secret.
    let bad = format!("redis://celeriac:wrong-{PASSWORD}@127.0.0.1:{}", redis.port);
    let out = env.cli(&["--redis-url", &bad, "queues"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("authentication failed") || stderr.contains("WRONGPASS"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    // A bad URL in the config is named without its password.
    let out = env.cli(&["--redis-url", &format!("http://u:{PASSWORD}@h"), "queues"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("redis_url") && !stderr.contains(PASSWORD),
        "{stderr}"
    );
}
