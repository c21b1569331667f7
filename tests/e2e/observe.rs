//! The health and metrics endpoint (`[http] listen`) of `celeriac worker` and `celeriac cron`:
//! metrics scraped during a run of jobs and parsed by Prometheus's own Python client equal what
//! was run; `/readyz` turns 503 while Redis is down and 200 when it is back.

use crate::deploy::{require_python_tools, venv_bin};
use crate::support::Env;
use celeriac_testkit::{free_port, wait_until, RedisServer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// `GET path` on 127.0.0.1:`port`: the status and the body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// The samples of a Prometheus text exposition, parsed by `prometheus_client.parser`:
/// (name, sorted labels) → value.
fn parse(text: &str) -> BTreeMap<(String, String), f64> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())), s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(venv_bin("python"))
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the tools venv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the text:\n{text}"
    );
    let rows: Vec<(String, String, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter().map(|(n, l, v)| ((n, l), v)).collect()
}

fn sample(m: &BTreeMap<(String, String), f64>, name: &str, labels: &str) -> f64 {
    m.get(&(name.to_string(), labels.to_string()))
        .copied()
        .unwrap_or(0.0)
}

#[test]
fn metrics_count_what_ran_and_parse_as_prometheus() {
    require_python_tools();
    let port = free_port();
    let mut env = Env::new(&format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    env.spawn_worker(&[]);
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(env.enqueue("noop", "{}", &[]));
    }
    for _ in 0..3 {
        ids.push(env.enqueue("fail", r#"{"message": "no"}"#, &["--max-attempts", "1"]));
    }
    ids.push(env.enqueue("sleep", r#"{"ms": 20}"#, &[]));
    ids.push(env.enqueue("no.such.kind", "{}", &[]));
    for id in &ids {
        env.wait_final(id, T);
    }
    let (status, text) = get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    let m = parse(&text);
    let finished = "celeriac_jobs_finished_total";
    assert_eq!(
        sample(&m, finished, "kind=noop,outcome=succeeded,queue=default"),
        12.0
    );
    assert_eq!(
        sample(&m, finished, "kind=sleep,outcome=succeeded,queue=default"),
        1.0
    );
    assert_eq!(
        sample(&m, finished, "kind=fail,outcome=dead,queue=default"),
        3.0
    );
    assert_eq!(
        sample(
            &m,
            "celeriac_jobs_dead_total",
            "kind=fail,queue=default,reason=max_attempts"
        ),
        3.0
    );
    // A kind this worker does not run is `unknown`: labels stay bounded.
    assert_eq!(
        sample(
            &m,
            "celeriac_jobs_dead_total",
            "kind=unknown,queue=default,reason=unknown_kind"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "celeriac_job_duration_seconds_count",
            "kind=noop,queue=default"
        ),
        12.0
    );
    assert_eq!(
        sample(&m, "celeriac_queue_jobs", "queue=default,state=succeeded"),
        13.0
    );
    assert_eq!(
        sample(&m, "celeriac_queue_jobs", "queue=default,state=dead"),
        4.0
    );
    assert_eq!(sample(&m, "celeriac_jobs_in_flight", "queue=default"), 0.0);
    assert!(sample(&m, "celeriac_fetch_batch_size_count", "queue=default") >= 1.0);

    // The scheduler's endpoint: ticks enqueued by this replica.
    let cron_port = free_port();
    let cron = {
        let mut e = Env::new(&format!(
            "[http]\nlisten = \"127.0.0.1:{cron_port}\"\n[[cron.schedules]]\nname = \"tick\"\nschedule = \"* * * * * *\"\nkind = \"noop\"\nqueue = \"ticks\"\n"
        ));
        e.spawn_cron();
        e
    };
    let mut ticks = 0.0;
    wait_until(T, "two ticks on the cron endpoint", || {
        let Ok((200, text)) = get(cron_port, "/metrics") else {
            return false;
        };
        ticks = sample(
            &parse(&text),
            "celeriac_cron_ticks_total",
            "result=enqueued,schedule=tick",
        );
        ticks >= 2.0
    });
    let (status, body) = get(cron_port, "/readyz").unwrap();
    assert_eq!(status, 200, "{body}");
    drop(cron);
}

#[test]
fn readyz_follows_redis_and_healthz_the_loops() {
    let mut redis = RedisServer::start();
    let port = free_port();
    let mut env = Env::at(
        &redis.url(),
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n[worker]\nshutdown_grace = \"30s\"\n"),
    );
    env.spawn_worker(&[]);
    let status = |path: &str| get(port, path).map(|(s, _)| s).unwrap_or(0);
    assert_eq!(status("/readyz"), 200);
    let (_, body) = get(port, "/healthz").unwrap();
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["live"], true, "{report}");
    assert!(report["loops"]["heartbeat"].is_object(), "{report}");

    let health = |path: &str| {
        let url = format!("http://127.0.0.1:{port}{path}");
        env.cli(&["health", "--url", &url]).status.code()
    };
    assert_eq!(
        health("/healthz"),
        Some(0),
        "celeriac health, for images without curl"
    );

    redis.kill9();
    wait_until(T, "/readyz to say 503 with Redis down", || {
        status("/readyz") == 503
    });
    assert_eq!(
        status("/healthz"),
        200,
        "the loops still run: the process is alive"
    );
    assert_eq!(health("/readyz"), Some(1));
    redis.restart(false);
    wait_until(T, "/readyz to say 200 with Redis back", || {
        status("/readyz") == 200
    });

    // Draining: while a job still runs after SIGTERM the process is alive but not ready (a
    // load balancer or KEDA stops counting on it), then it exits 0 once the job is done.
    let job = env.enqueue("sleep", r#"{"ms": 5000}"#, &[]);
    env.wait_state(&job, "active", T);
    env.worker(0).signal("-TERM");
    let mut body = String::new();
    wait_until(T, "/readyz to say 503 while draining", || {
        match get(port, "/readyz") {
            Ok((503, b)) => {
                body = b;
                true
            }
            _ => false,
        }
    });
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["draining"], true, "{report}");
    assert_eq!(
        env.status(&job)["state"],
        "active",
        "observed while the job still ran"
    );
    assert_eq!(status("/healthz"), 200, "draining is alive: {report}");
    assert_eq!(env.worker(0).wait_exit(T), Some(0));
    assert_eq!(
        env.status(&job)["state"],
        "succeeded",
        "the drain let it finish"
    );
}

/// The sum of every sample of `name`, whatever its labels.
fn total(m: &BTreeMap<(String, String), f64>, name: &str) -> f64 {
    m.iter()
        .filter(|((n, _), _)| n == name)
        .map(|(_, v)| *v)
        .sum()
}

// The metrics a quiet run never moves: a lease taken back from a killed worker, a job in
// flight at the scrape, Redis errors during an outage; and the scheduler's /readyz with Redis
// down.
#[test]
fn metrics_count_recoveries_jobs_in_flight_and_redis_errors() {
    require_python_tools();
    let mut redis = RedisServer::start();
    let port = free_port();
    let cron_port = free_port();
    let mut env = Env::at(
        &redis.url(),
        &format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[[cron.schedules]]\nname = \"tick\"\nschedule = \"* * * * * *\"\nkind = \"noop\"\nqueue = \"ticks\"\n"
        ),
    );
    let scrape = || {
        let (status, text) = get(port, "/metrics").unwrap();
        assert_eq!(status, 200);
        parse(&text)
    };
    // A worker without the endpoint takes a job and is killed -9 while it runs it.
    env.process_env
        .push(("CELERIAC_HTTP__LISTEN".into(), String::new()));
    let doomed = env.spawn_worker(&[]);
    env.process_env.pop();
    let job = env.enqueue("sleep", r#"{"ms": 1500}"#, &[]);
    env.wait_state(&job, "active", T);
    env.worker(doomed).signal("-KILL");
    env.worker(doomed).wait_exit(T);
    // The worker with the endpoint takes the expired lease back and runs the job.
    env.spawn_worker(&[]);
    assert_eq!(env.wait_final(&job, T)["state"], "succeeded");
    let m = scrape();
    assert_eq!(
        sample(
            &m,
            "celeriac_lease_recoveries_total",
            "queue=default,result=requeued"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "celeriac_jobs_finished_total",
            "kind=sleep,outcome=succeeded,queue=default"
        ),
        1.0
    );

    // Scraped while a job runs: it is in flight.
    let running = env.enqueue("sleep", r#"{"ms": 3000}"#, &[]);
    env.wait_state(&running, "active", T);
    let m = scrape();
    assert_eq!(sample(&m, "celeriac_jobs_in_flight", "queue=default"), 1.0);
    assert_eq!(env.status(&running)["state"], "active", "scraped mid-run");
    assert_eq!(env.wait_final(&running, T)["state"], "succeeded");
    assert_eq!(total(&scrape(), "celeriac_redis_errors_total"), 0.0);

    // The scheduler, on its own port.
    env.process_env.push((
        "CELERIAC_HTTP__LISTEN".into(),
        format!("127.0.0.1:{cron_port}"),
    ));
    env.spawn_cron();
    env.process_env.pop();
    let ready = |port: u16| get(port, "/readyz").map(|(s, _)| s).unwrap_or(0);
    wait_until(T, "the scheduler to be ready", || ready(cron_port) == 200);

    redis.kill9();
    wait_until(T, "both /readyz to say 503 with Redis down", || {
        ready(port) == 503 && ready(cron_port) == 503
    });
    redis.restart(false);
    wait_until(T, "both /readyz to say 200 with Redis back", || {
        ready(port) == 200 && ready(cron_port) == 200
    });
    let errors = total(&scrape(), "celeriac_redis_errors_total");
    assert!(errors >= 1.0, "Redis errors during the outage: {errors}");
}
