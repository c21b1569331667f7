//! Domains are opened lazily: a worker touches the database only when a job needs it.

use crate::support::Env;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// With the default `database_url` (a SQLite file under `./data/`) and a working directory
/// nothing can be written to, a worker still starts and runs every kind that needs no data;
/// a `links.check` job then fails with a retry that says why, and the worker goes on.
#[test]
fn a_worker_needs_no_database_until_a_job_does() {
    let mut env = Env::new("database_url = \"sqlite://./data/celeriac.db\"\n");
    // procfs: no directory can be created in it, not even by root.
    env.cwd = Some("/proc".into());
    env.spawn_worker(&[]);
    let id = env.enqueue("noop", "{}", &[]);
    assert_eq!(env.wait_final(&id, T)["state"], "succeeded");
    let log = env.worker(0).log_text();
    assert!(
        !log.contains("database"),
        "nothing about a database yet:\n{log}"
    );

    let check = env.enqueue("links.check", "{}", &["--max-attempts", "1"]);
    let job = env.wait_final(&check, T);
    assert_eq!(job["state"], "dead", "{job}");
    let error = job["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("SQLite") || error.contains("directory"),
        "the error says what failed: {job}"
    );
    let after = env.enqueue("sleep", r#"{"ms": 10}"#, &[]);
    assert_eq!(env.wait_final(&after, T)["state"], "succeeded");
}
