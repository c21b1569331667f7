//! Test environment: a config file, `celeriac` worker and cron processes and CLI calls, on a
//! [`Keyspace`] of the test's own. Only this test binary can name the `celeriac` binary
//! (`CARGO_BIN_EXE_celeriac`), so this stays here; the generic helpers are in
//! `celeriac-testkit`.

use celeriac_testkit::{test_redis_url, wait_until, Keyspace, RawConnection};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Timings that make leases, sweeps and retries fast enough for tests.
pub const FAST: &str = r#"
[worker]
lease = "1s"
heartbeat_interval = "250ms"
recover_interval = "200ms"
promote_interval = "50ms"
janitor_interval = "1s"
shutdown_grace = "2s"

[retry]
backoff_base = "50ms"
backoff_cap = "200ms"
"#;

/// One test's world. Dropping it kills its workers, then deletes its keys (its [`Keyspace`]).
pub struct Env {
    /// The keyspace's prefix, written to the config.
    pub prefix: String,
    pub dir: PathBuf,
    config: PathBuf,
    /// Extra environment variables of every process this env starts.
    pub process_env: Vec<(String, String)>,
    /// Working directory of every process this env starts (the test's own when `None`).
    pub cwd: Option<PathBuf>,
    workers: Vec<Worker>,
    /// Dropped after the workers are killed (fields drop after `Drop::drop`).
    keyspace: Keyspace,
}

/// A running `celeriac worker`.
pub struct Worker {
    pub child: Child,
    pub log: PathBuf,
}

impl Worker {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal (`-KILL`, `-TERM`, `-STOP`…).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {} failed", self.pid());
    }

    /// Wait for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "worker {} did not exit within {timeout:?}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Env {
    /// A new environment whose config is [`FAST`] plus `extra` TOML.
    pub fn new(extra: &str) -> Env {
        Env::at(&test_redis_url(), extra)
    }

    /// Like [`Env::new`], against the Redis at `url` (a private server).
    pub fn at(url: &str, extra: &str) -> Env {
        Env::on(Keyspace::new(url), extra)
    }

    /// Like [`Env::new`], in `keyspace` (whose prefix had to be known first, e.g. by an ACL).
    pub fn on(keyspace: Keyspace, extra: &str) -> Env {
        let (url, prefix) = (keyspace.url().to_string(), keyspace.prefix().to_string());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("config.toml");
        let db = format!("sqlite://{}/celeriac.db", dir.display());
        let head = format!("redis_url = {url:?}\nprefix = {prefix:?}\ndatabase_url = {db:?}\n");
        let text = merge(&format!("{head}{FAST}"), extra);
        std::fs::File::create(&config)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .expect("write config");
        Env {
            prefix,
            dir,
            config,
            process_env: Vec::new(),
            cwd: None,
            workers: Vec::new(),
            keyspace,
        }
    }

    fn command(&self) -> Command {
        self.command_via(&[])
    }

    /// The CLI, started through `wrapper` (e.g. `ip netns exec NS`) when it is not empty.
    fn command_via(&self, wrapper: &[&str]) -> Command {
        let bin = env!("CARGO_BIN_EXE_celeriac");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("--config").arg(&self.config);
        cmd.env_remove("CELERIAC_REDIS_URL")
            .env_remove("CELERIAC_CONFIG");
        cmd.envs(self.process_env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// Run the CLI to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run celeriac")
    }

    /// Run the CLI and require exit 0; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "celeriac {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Enqueue one job; its id.
    pub fn enqueue(&self, kind: &str, payload: &str, extra: &[&str]) -> String {
        let mut args = vec!["enqueue", kind, "--payload", payload];
        args.extend_from_slice(extra);
        let out = self.ok(&args);
        let id = out.trim().to_string();
        assert!(
            !id.is_empty() && !id.contains('\n'),
            "unexpected enqueue output {out:?}"
        );
        id
    }

    /// The object `queues --json` prints for `queue` (the queue must be listed).
    pub fn queue(&self, queue: &str) -> Value {
        let all: Value =
            serde_json::from_str(&self.ok(&["queues", "--json"])).expect("queues JSON");
        all.as_array()
            .and_then(|a| a.iter().find(|q| q["queue"] == queue).cloned())
            .unwrap_or_else(|| panic!("queue {queue} not listed: {all}"))
    }

    /// `status ID --json` (the job must exist).
    pub fn status(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["status", id, "--json"])).expect("status JSON")
    }

    /// `status ID --wait --json`: the job once final (panics after `timeout`).
    pub fn wait_final(&self, id: &str, timeout: Duration) -> Value {
        let t = format!("{}ms", timeout.as_millis());
        let out = self.cli(&["status", id, "--wait", "--timeout", &t, "--json"]);
        let job: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let state = job["state"].as_str().unwrap_or("");
        assert!(
            ["succeeded", "dead", "cancelled"].contains(&state),
            "job {id} not final after {timeout:?}: {job}\nstderr: {}\nworker logs:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.worker_logs()
        );
        job
    }

    /// Wait until `status` of `id` is in `state`.
    pub fn wait_state(&self, id: &str, state: &str, timeout: Duration) -> Value {
        let mut last = Value::Null;
        wait_until(timeout, &format!("job {id} to be {state}"), || {
            last = self.status(id);
            last["state"] == state
        });
        last
    }

    /// Start `celeriac cron` (a scheduler replica); returns once it logged its start.
    pub fn spawn_cron(&mut self) -> usize {
        self.spawn_cron_via(&[], &[])
    }

    /// [`Env::spawn_cron`] through `wrapper` (see [`Env::command_via`]), with extra flags.
    pub fn spawn_cron_via(&mut self, wrapper: &[&str], extra: &[&str]) -> usize {
        let mut args = extra.to_vec();
        args.push("cron");
        let n = self.spawn_process_via(wrapper, &args);
        wait_until(Duration::from_secs(10), "cron to start", || {
            let w = &mut self.workers[n];
            assert!(
                w.child.try_wait().unwrap().is_none(),
                "cron exited:\n{}",
                w.log_text()
            );
            w.log_text().contains("cron started")
        });
        n
    }

    pub fn spawn_process(&mut self, args: &[&str]) -> usize {
        self.spawn_process_via(&[], args)
    }

    /// [`Env::spawn_process`] through `wrapper` (see [`Env::command_via`]).
    pub fn spawn_process_via(&mut self, wrapper: &[&str], args: &[&str]) -> usize {
        let n = self.workers.len();
        let log = self.dir.join(format!("process-{n}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = self
            .command_via(wrapper)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn worker");
        self.workers.push(Worker { child, log });
        n
    }

    /// Start a worker with extra flags; returns once it is registered.
    pub fn spawn_worker(&mut self, extra: &[&str]) -> usize {
        self.spawn_worker_via(&[], extra)
    }

    /// [`Env::spawn_worker`] through `wrapper` (see [`Env::command_via`]).
    pub fn spawn_worker_via(&mut self, wrapper: &[&str], extra: &[&str]) -> usize {
        let mut args = vec!["worker"];
        args.extend_from_slice(extra);
        let n = self.spawn_process_via(wrapper, &args);
        let pid = self.workers[n].pid();
        wait_until(Duration::from_secs(10), "the worker to register", || {
            let out = self.ok(&["workers", "--json"]);
            let list: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
            list.as_array()
                .is_some_and(|a| a.iter().any(|w| w["pid"] == pid))
        });
        n
    }

    /// The config file's path.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config
    }

    /// Replace process `n` (dead or alive) with a new worker started with `extra`.
    pub fn respawn_worker(&mut self, n: usize, extra: &[&str]) {
        let _ = self.workers[n].child.kill();
        let _ = self.workers[n].child.wait();
        let fresh = self.spawn_worker(extra);
        self.workers.swap(n, fresh);
        self.workers.pop();
    }

    pub fn worker(&mut self, n: usize) -> &mut Worker {
        &mut self.workers[n]
    }

    pub fn worker_logs(&self) -> String {
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| format!("--- process {i} (pid {}) ---\n{}", w.pid(), w.log_text()))
            .collect()
    }

    /// A synchronous Redis connection (for writing raw keys as a foreign producer would); a
    /// cluster connection when the test Redis is a cluster.
    pub fn redis(&self) -> RawConnection {
        self.keyspace.connection()
    }

    /// A key of this environment's namespace for `queue`.
    pub fn key(&self, queue: &str, name: &str) -> String {
        format!("{}:{{{queue}}}:{name}", self.prefix)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.worker_logs());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `base` with every value of `extra` laid over it (tables merged key by key).
fn merge(base: &str, extra: &str) -> String {
    fn lay(base: &mut toml::Table, extra: toml::Table) {
        for (k, v) in extra {
            match (base.get_mut(&k), v) {
                (Some(toml::Value::Table(b)), toml::Value::Table(e)) => lay(b, e),
                (_, v) => {
                    base.insert(k, v);
                }
            }
        }
    }
    let mut table: toml::Table = base.parse().expect("base TOML");
    lay(&mut table, extra.parse().expect("test TOML"));
    table.to_string()
}
