//! The deployment files under `deploy/`, each checked with the tool that knows its format:
//!
//! - the image (`deploy_image.rs`);
//! - `deploy/Dockerfile` linted with hadolint;
//! - `deploy/compose.yaml` against the Compose specification's JSON schema, and
//!   `deploy/k8s/` with kubernetes-validate and the KEDA / Prometheus Operator CRD models
//!   (`deploy_check.py` beside this file, run in the venv of `scripts/ensure-deploy-tools.sh`);
//! - `deploy/grafana/celeriac.json` against the metric names the binary exports.
//!
//! The tools are installed by `scripts/ensure-deploy-tools.sh` (which `make test` runs first).

use celeriac_testkit::{free_port, wait_until};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub(crate) const T: Duration = Duration::from_secs(20);

/// The worker's grace period inside the image test (`worker.shutdown_grace`).
pub(crate) const GRACE: Duration = Duration::from_secs(3);

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

pub(crate) fn tools_dir() -> PathBuf {
    std::env::var_os("DEPLOY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/deploy-tools"))
}

/// A program of the tools venv (`hadolint`, `python`, …).
pub(crate) fn venv_bin(name: &str) -> PathBuf {
    tools_dir().join("venv/bin").join(name)
}

/// Run `scripts/ensure-deploy-tools.sh TOOL`; the script's message when it could not.
pub(crate) fn ensure_tools(tool: &str) -> Result<(), String> {
    let out = Command::new(repo().join("scripts/ensure-deploy-tools.sh"))
        .arg(tool)
        .output()
        .expect("run scripts/ensure-deploy-tools.sh");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub(crate) fn require_python_tools() {
    if let Err(why) = ensure_tools("python") {
        panic!("the deployment checks need their tools (scripts/ensure-deploy-tools.sh python):\n{why}");
    }
}

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Run a command to completion; (success, stdout + stderr).
pub(crate) fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Run a command that must succeed; its stdout alone (for output that is parsed).
pub(crate) fn stdout_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn run_ok(cmd: &mut Command) -> String {
    let (ok, text) = run(cmd);
    assert!(ok, "{cmd:?} failed:\n{text}");
    text
}

// --- lint and schema checks ------------------------------------------------------------------

#[test]
fn dockerfile_passes_hadolint() {
    require_python_tools();
    let (ok, text) = run(Command::new(venv_bin("hadolint"))
        .arg("--failure-threshold")
        .arg("style")
        .arg(repo().join("deploy/Dockerfile")));
    assert!(
        ok && text.trim().is_empty(),
        "hadolint deploy/Dockerfile:\n{text}"
    );
}

/// `deploy_check.py compose`: the Compose specification's JSON schema (as check-jsonschema
/// ships it) and the settings docs/deploy.md promises.
#[test]
fn compose_file_validates() {
    require_python_tools();
    let text = run_ok(
        Command::new(venv_bin("python"))
            .arg(repo().join("tests/e2e/deploy_check.py"))
            .arg("compose")
            .current_dir(repo()),
    );
    eprintln!("{text}");

    // deploy/redis.conf loads in this machine's redis-server (7.0), started as compose starts
    // it (the file, then a password), on a free loopback port. Its `dir /data` (the redis
    // image's volume) becomes a scratch directory: Redis applies `dir` as it reads it.
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("celeriac-redis-conf-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = std::fs::read_to_string(repo().join("deploy/redis.conf")).unwrap();
    assert_eq!(
        conf.matches("\ndir /data\n").count(),
        1,
        "deploy/redis.conf: dir /data"
    );
    let conf_path = dir.join("redis.conf");
    std::fs::write(
        &conf_path,
        conf.replace("\ndir /data\n", &format!("\ndir {}\n", dir.display())),
    )
    .unwrap();
    let log = dir.join("redis.log");
    let mut server = Command::new("redis-server")
        .arg(&conf_path)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            "pw",
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("redis.err")).unwrap())
        .spawn()
        .expect("start redis-server (make test installs it when missing)");
    let url = format!("redis://:pw@127.0.0.1:{port}");
    let mut settings = HashMap::new();
    wait_until(
        Duration::from_secs(10),
        "redis-server with deploy/redis.conf",
        || {
            if let Some(status) = server.try_wait().unwrap() {
                panic!(
                    "redis-server refused deploy/redis.conf ({status}):\n{}{}",
                    std::fs::read_to_string(&log).unwrap_or_default(),
                    std::fs::read_to_string(dir.join("redis.err")).unwrap_or_default()
                );
            }
            let Ok(mut con) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection())
            else {
                return false;
            };
            for key in [
                "appendonly",
                "appendfsync",
                "maxmemory-policy",
                "protected-mode",
            ] {
                let Ok((_, value)) = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(key)
                    .query::<(String, String)>(&mut con)
                else {
                    return false;
                };
                settings.insert(key, value);
            }
            true
        },
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(settings["appendonly"], "yes");
    assert_eq!(settings["appendfsync"], "everysec");
    assert_eq!(settings["maxmemory-policy"], "noeviction");
    assert_eq!(settings["protected-mode"], "yes");
}

/// `deploy_check.py k8s`: kubernetes-validate (strict) for built-in kinds, the CRD models for
/// KEDA and Prometheus Operator kinds, the kustomizations' references, and the settings
/// docs/deploy.md promises. Then the ConfigMap's celeriac.toml is loaded by the binary itself.
#[test]
fn k8s_manifests_validate() {
    require_python_tools();
    let dir = std::env::temp_dir().join(format!("celeriac-k8s-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("celeriac.toml");
    let text = run_ok(
        Command::new(venv_bin("python"))
            .arg(repo().join("tests/e2e/deploy_check.py"))
            .arg("k8s")
            .arg("--write-config")
            .arg(&toml)
            .current_dir(repo()),
    );
    eprintln!("{text}");

    // The binary loads the ConfigMap's file (unknown keys and bad values are errors): `migrate`
    // reads the config and touches nothing but a scratch SQLite file.
    let db = format!("sqlite://{}/check.db", dir.display());
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_celeriac"))
            .arg("--config")
            .arg(&toml)
            .args(["--database-url", &db, "migrate"])
            .env_remove("CELERIAC_CONFIG")
            .env_remove("CELERIAC_DATABASE_URL"),
    );
    assert!(out.contains("check.db"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The metric names of the `/metrics` contract (issue 13) and their labels.
const METRICS: &[(&str, &[&str])] = &[
    (
        "celeriac_jobs_finished_total",
        &["queue", "kind", "outcome"],
    ),
    ("celeriac_jobs_dead_total", &["queue", "kind", "reason"]),
    ("celeriac_job_duration_seconds", &["queue", "kind"]),
    ("celeriac_jobs_in_flight", &["queue"]),
    ("celeriac_fetch_batch_size", &["queue"]),
    ("celeriac_lease_recoveries_total", &["queue", "result"]),
    ("celeriac_redis_errors_total", &["operation"]),
    ("celeriac_queue_jobs", &["queue", "state"]),
    ("celeriac_queue_oldest_pending_seconds", &["queue"]),
    ("celeriac_cron_ticks_total", &["schedule", "result"]),
    ("celeriac_cron_lag_seconds", &["schedule"]),
];
const HISTOGRAMS: &[&str] = &["celeriac_job_duration_seconds", "celeriac_fetch_batch_size"];

#[test]
fn grafana_dashboard_uses_the_metrics_contract() {
    let path = repo().join("deploy/grafana/celeriac.json");
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read the dashboard"))
            .expect("the dashboard is JSON");
    fn exprs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "query", Value::String(s)) if s.contains("celeriac_") => {
                            out.push(s.clone())
                        }
                        _ => exprs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    assert!(!all.is_empty(), "no queries in {}", path.display());

    let known: HashMap<String, &[&str]> = METRICS
        .iter()
        .flat_map(|(name, labels)| {
            let mut names = vec![(name.to_string(), *labels)];
            if HISTOGRAMS.contains(name) {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.push((format!("{name}{suffix}"), *labels));
                }
            }
            names
        })
        .collect();
    let metric = regex::Regex::new(r"celeriac_[a-z_]+").unwrap();
    let grouping = regex::Regex::new(r"\b(?:by|without)\s*\(([^)]*)\)").unwrap();
    let matcher = regex::Regex::new(r#"([a-z_]+)\s*(?:=~|!~|!=|=)\s*""#).unwrap();
    let all_labels: BTreeSet<&str> = METRICS
        .iter()
        .flat_map(|(_, l)| l.iter().copied())
        .chain(["le"])
        .collect();
    let mut used = BTreeSet::new();
    for expr in &all {
        for m in metric.find_iter(expr) {
            let name = m.as_str();
            assert!(
                known.contains_key(name),
                "{name} in {expr:?} is not an exported metric"
            );
            used.insert(
                name.trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count")
                    .to_string(),
            );
        }
        for g in grouping.captures_iter(expr) {
            for label in g[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
                assert!(all_labels.contains(label), "label {label} in {expr:?}");
            }
        }
        for m in matcher.captures_iter(expr) {
            assert!(all_labels.contains(&m[1]), "label {} in {expr:?}", &m[1]);
        }
    }
    let missing: Vec<&str> = METRICS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !used.contains(*n))
        .collect();
    assert!(missing.is_empty(), "metrics without a panel: {missing:?}");

    // Panels: unique ids, every one on the dashboard's Prometheus data source variable.
    let panels = dash["panels"].as_array().expect("panels");
    let ids: BTreeSet<i64> = panels.iter().filter_map(|p| p["id"].as_i64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids must be unique");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {:?} must use the datasource variable",
            p["title"]
        );
    }
}

// --- the image ---------------------------------------------------------------------------------
