use celeriac_testkit::{wait_until, RedisServer};
use redis::{Commands, Connection};
use std::time::Duration;

fn connect(url: &str) -> redis::RedisResult<Connection> {
    redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(5))
}

fn ping(con: &mut Connection) -> redis::RedisResult<String> {
    redis::cmd("PING").query(con)
}

#[test]
fn plain_answers_ping_keeps_nothing_across_a_restart_and_cleans_up() {
    let mut redis = RedisServer::start();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port));
    let mut con = connect(&redis.url()).unwrap();
    assert_eq!(ping(&mut con).unwrap(), "PONG");
    let _: () = con.set("k", "v").unwrap();

    // No AOF, no RDB: a restart without wipe comes back empty, on the same port.
    let port = redis.port;
    redis.kill9();
    assert!(connect(&redis.url()).is_err(), "killed, yet it answers");
    redis.restart(false);
    assert_eq!(redis.port, port);
    let mut con = connect(&redis.url()).unwrap();
    assert_eq!(con.get::<_, Option<String>>("k").unwrap(), None);

    let dir = redis.dir().to_path_buf();
    assert!(dir.join("data").is_dir());
    drop(redis);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(ping(&mut con).is_err(), "the server outlived its value");
}

#[test]
fn tls_answers_ping_only_to_clients_trusting_its_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let redis = RedisServer::builder().tls().start();
    let url = redis.url();
    assert!(url.starts_with("rediss://127.0.0.1:"), "{url}");
    let ca = std::fs::read(redis.tls_ca().expect("a TLS server has a CA")).unwrap();
    let trusted = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        },
    )
    .unwrap();
    let mut con = trusted
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    assert_eq!(ping(&mut con).unwrap(), "PONG");

    let untrusted = connect(&url).map(|_| ()).unwrap_err();
    assert!(
        untrusted.to_string().to_lowercase().contains("certificate"),
        "{untrusted}"
    );
    let plain = format!("redis://127.0.0.1:{}", redis.port);
    assert!(
        connect(&plain).and_then(|mut c| ping(&mut c)).is_err(),
        "the TLS port answered plain text"
    );
}

#[test]
fn acl_user_is_limited_to_its_pattern_and_survives_a_restart() {
    let mut redis = RedisServer::builder()
        .acl_user("app", "pw-42", "app:*")
        .start();
    assert_eq!(
        redis.user_url(),
        format!("redis://app:pw-42@127.0.0.1:{}", redis.port)
    );
    for round in ["first start", "after a restart"] {
        let mut user = connect(&redis.user_url()).unwrap();
        assert_eq!(ping(&mut user).unwrap(), "PONG", "{round}");
        let _: () = user.set("app:k", "v").unwrap();
        let outside: redis::RedisResult<Option<String>> = user.get("other:k");
        assert!(outside.is_err(), "{round}: read outside its pattern");
        let flush: redis::RedisResult<()> = redis::cmd("FLUSHALL").query(&mut user);
        assert!(flush.is_err(), "{round}: ran a dangerous command");
        // The default user stays open for the test's own setup.
        let mut admin = connect(&redis.url()).unwrap();
        let _: () = admin.set("other:k", "v").unwrap();
        redis.restart(false);
    }
    let wrong = format!("redis://app:wrong@127.0.0.1:{}", redis.port);
    assert!(connect(&wrong).and_then(|mut c| ping(&mut c)).is_err());
}

#[test]
#[should_panic(expected = "no ACL user")]
fn user_url_without_an_acl_user_says_so() {
    RedisServer::start().user_url();
}

/// Wait until everything written is in the AOF file: a kill -9 then loses nothing (the page
/// cache outlives the process).
fn aof_written(con: &mut Connection) {
    wait_until(
        Duration::from_secs(10),
        "the AOF buffer to be written",
        || {
            let info: String = redis::cmd("INFO").arg("persistence").query(con).unwrap();
            assert!(info.contains("aof_enabled:1"), "AOF is off:\n{info}");
            info.lines().any(|l| l.trim() == "aof_buffer_length:0")
                && info
                    .lines()
                    .any(|l| l.trim() == "aof_rewrite_in_progress:0")
        },
    );
}

#[test]
fn aof_restart_keeps_the_data_and_a_wipe_drops_it() {
    let mut redis = RedisServer::builder().aof().start();
    let mut con = connect(&redis.url()).unwrap();
    let _: () = con.set("kept", "yes").unwrap();
    aof_written(&mut con);
    redis.kill9();
    redis.restart(false);
    let mut con = connect(&redis.url()).unwrap();
    assert_eq!(
        con.get::<_, Option<String>>("kept").unwrap().as_deref(),
        Some("yes")
    );

    redis.restart(true);
    let mut con = connect(&redis.url()).unwrap();
    assert_eq!(con.get::<_, Option<String>>("kept").unwrap(), None);
    aof_written(&mut con);
}

#[test]
fn extra_arguments_and_a_bind_list_reach_the_server() {
    let redis = RedisServer::builder()
        .bind(&["127.0.0.1", "127.0.0.2"])
        .args(["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"])
        .start();
    let mut con = connect(&format!("redis://127.0.0.2:{}", redis.port)).unwrap();
    let max: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory*")
        .query(&mut con)
        .unwrap();
    let max: std::collections::HashMap<_, _> = max
        .chunks(2)
        .map(|p| (p[0].as_str(), p[1].as_str()))
        .collect();
    assert_eq!(max["maxmemory"], "4194304");
    assert_eq!(max["maxmemory-policy"], "noeviction");
    assert!(redis.log().contains("Ready to accept connections"));
}
