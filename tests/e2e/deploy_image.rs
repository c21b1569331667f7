//! The image test: deploy/Dockerfile's final stage built with buildah from this build's binary
//! (laid out by `deploy/rootfs.sh`, as the Dockerfile's builder does), then a worker run in it as
//! its non-root user against a private Redis: jobs drain, SIGTERM exits 0 in time. The other
//! deployment files are checked in `deploy.rs`.

use crate::deploy::{ensure_tools, is_root, repo, run_ok, stdout_ok, GRACE, T};
use crate::support::Env;
use celeriac_testkit::{free_port, wait_until, RedisServer};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The image test's buildah image and container; removed when dropped.
struct Image {
    name: String,
    container: String,
    dir: PathBuf,
    mounted: bool,
}

impl Drop for Image {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("buildah")
                .args(["umount", &self.container])
                .output();
        }
        let _ = Command::new("buildah")
            .args(["rm", &self.container])
            .output();
        let _ = Command::new("buildah")
            .args(["rmi", "-f", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `buildah run` of the worker, and the worker process inside it.
struct Running {
    buildah: Child,
    pid: Option<u32>,
    log: PathBuf,
}

impl Running {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .output();
        }
        let _ = self.buildah.kill();
        let _ = self.buildah.wait();
        if std::thread::panicking() {
            eprintln!("--- worker in the image ---\n{}", self.log_text());
        }
    }
}

/// The final stage of deploy/Dockerfile, taking its files from the build context instead of
/// the builder stage: `COPY --from=builder [--chown=…] /out/X Y` becomes `COPY [--chown=…] X Y`.
fn runtime_stage(dockerfile: &str) -> String {
    let start = dockerfile
        .find("FROM scratch AS runtime")
        .expect("deploy/Dockerfile has a `FROM scratch AS runtime` stage");
    let stage: String = dockerfile[start..]
        .lines()
        .map(|line| {
            if line.starts_with("COPY --from=builder ") {
                line.replacen("--from=builder ", "", 1)
                    .replace(" /out/", " ")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !stage.contains("--from=") && !stage[1..].contains("\nFROM "),
        "the runtime stage must be last and take files only from the builder's /out:\n{stage}"
    );
    stage + "\n"
}

/// Pids of the descendants of `root` (from /proc), with their command names.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parent: HashMap<u32, (u32, String)> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        parent.insert(pid, (ppid, comm));
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (&child, (ppid, comm)) in &parent {
            if *ppid == p {
                found.push((child, comm.clone()));
                frontier.push(child);
            }
        }
    }
    found
}

/// One line of /proc/PID/status, e.g. `Uid`.
fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// `GET path` on 127.0.0.1:port over plain TCP; the response's status code.
fn http_status(port: u16, path: &str) -> std::io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP status line: {line:?}")))
}

/// `/readyz` answers 200 while the worker in the image runs (Redis reachable, not draining).
fn check_readyz(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = http_status(port, "/readyz");
        if matches!(status, Ok(200)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET /readyz on 127.0.0.1:{port} did not answer 200 within 10 s: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The image as deploy/Dockerfile's final stage builds it, from this build's binary: its
/// configuration, its files, and a worker run in it as its non-root user (chroot isolation,
/// the host's network) against a private Redis: it drains jobs, and on SIGTERM finishes the job
/// that fits in the grace period, hands the other back and exits 0 within the grace period.
#[test]
fn image_runs_a_worker_as_non_root_and_drains_on_sigterm() {
    let started = Instant::now();
    if let Err(why) = ensure_tools("buildah") {
        if is_root() {
            panic!("the image test needs buildah:\n{why}");
        }
        eprintln!("SKIPPED image test: buildah is missing and cannot be installed here:\n{why}");
        return;
    }
    if !is_root() {
        eprintln!(
            "SKIPPED image test: it mounts the image and runs it with buildah's chroot isolation, \
             which needs root here"
        );
        return;
    }

    // 1. The runtime files, laid out by the script the Dockerfile's builder runs.
    let tag = format!(
        "celeriac-e2e-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            & 0xffff_ffff
    );
    let dir = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&dir).unwrap();
    let mut image = Image {
        name: format!("localhost/{tag}:test"),
        container: tag.clone(),
        dir: dir.clone(),
        mounted: false,
    };
    run_ok(
        Command::new(repo().join("deploy/rootfs.sh"))
            .arg(env!("CARGO_BIN_EXE_celeriac"))
            .arg(&dir),
    );
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    std::fs::write(dir.join("Containerfile"), runtime_stage(&dockerfile)).unwrap();
    run_ok(
        Command::new("buildah")
            .args([
                "build",
                "--isolation",
                "chroot",
                "--layers=false",
                "--quiet",
            ])
            .arg("-f")
            .arg(dir.join("Containerfile"))
            .args(["-t", &image.name])
            .arg(&dir),
    );

    // 2. What the image declares.
    let inspect: Value = serde_json::from_str(&stdout_ok(Command::new("buildah").args([
        "inspect",
        "--type",
        "image",
        &image.name,
    ])))
    .expect("buildah inspect JSON");
    let config = &inspect["OCIv1"]["config"];
    let user = config["User"].as_str().unwrap_or("").to_string();
    let uid: u32 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("USER must be a numeric UID, got {user:?}"));
    assert_ne!(uid, 0, "the image must not run as root");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/celeriac"])
    );
    assert_eq!(config["Cmd"], serde_json::json!(["worker"]));
    assert_eq!(config["StopSignal"], "SIGTERM");
    assert!(config["ExposedPorts"].get("9464/tcp").is_some(), "{config}");
    assert!(config["Volumes"].get("/data").is_some(), "{config}");
    let env: Vec<&str> = config["Env"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        env.contains(&"CELERIAC_HTTP__LISTEN=0.0.0.0:9464"),
        "{env:?}"
    );
    for label in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.version",
        "org.opencontainers.image.licenses",
    ] {
        assert!(
            config["Labels"].get(label).is_some(),
            "label {label}: {config}"
        );
    }

    // 3. What it holds: the binary, its libraries, CA roots, passwd/group; no shell.
    run_ok(Command::new("buildah").args(["from", "--name", &image.container, &image.name]));
    let root = PathBuf::from(
        stdout_ok(Command::new("buildah").args(["mount", &image.container]))
            .trim()
            .to_string(),
    );
    image.mounted = true;
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ty = e.file_type().unwrap();
            let rel = e
                .path()
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if ty.is_dir() {
                stack.push(e.path());
            } else {
                files.push(rel);
            }
        }
    }
    files.sort();
    for f in &files {
        let allowed = f == "usr/local/bin/celeriac"
            || f.starts_with("lib/")
            || f.starts_with("lib64/")
            || f.starts_with("usr/lib")
            || [
                "etc/passwd",
                "etc/group",
                "etc/nsswitch.conf",
                "etc/ssl/certs/ca-certificates.crt",
            ]
            .contains(&f.as_str());
        assert!(
            allowed,
            "unexpected file in the image: /{f} (all: {files:?})"
        );
    }
    assert!(
        !root.join("bin/sh").exists(),
        "the image must have no shell"
    );
    let data = std::fs::metadata(root.join("data")).expect("/data in the image");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(data.uid(), uid, "/data must belong to the image's user");
    run_ok(Command::new("buildah").args(["umount", &image.container]));
    image.mounted = false;
    eprintln!("image built and inspected after {:?}", started.elapsed());

    // 4. A worker in it: redis_url from the environment (by name: resolved inside the image),
    //    the rest from a config file mounted read-only, a flag after the image's CMD.
    let redis = RedisServer::start();
    let env = Env::at(&redis.url(), "");
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("celeriac.toml"),
        format!(
            "prefix = {:?}\n[worker]\nshutdown_grace = \"{}s\"\nlease = \"30s\"\nheartbeat_interval = \"1s\"\n",
            env.prefix,
            GRACE.as_secs()
        ),
    )
    .unwrap();
    let http_port = free_port();
    let log = dir.join("worker.log");
    let entrypoint: Vec<String> = serde_json::from_value(config["Entrypoint"].clone()).unwrap();
    let cmd: Vec<String> = serde_json::from_value(config["Cmd"].clone()).unwrap();
    let mut buildah = Command::new("buildah");
    buildah
        .args(["run", "--isolation=chroot", "--user", &user])
        .args([
            "-e",
            &format!("CELERIAC_REDIS_URL=redis://localhost:{}", redis.port),
        ])
        .args([
            "-e",
            &format!("CELERIAC_HTTP__LISTEN=127.0.0.1:{http_port}"),
        ])
        .args(["-e", "RUST_LOG=info"])
        .arg("-v")
        .arg(format!("{}:/etc/celeriac:ro", etc.display()))
        .args([&image.container, "--"])
        .args(&entrypoint)
        .args(["--config", "/etc/celeriac/celeriac.toml"])
        .args(&cmd)
        .args(["--concurrency", "4"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut worker = Running {
        buildah: buildah.spawn().expect("spawn buildah run"),
        pid: None,
        log,
    };
    let buildah_pid = worker.buildah.id();
    let mut pid = 0;
    wait_until(
        Duration::from_secs(15),
        "celeriac to start inside buildah run",
        || {
            if let Some(status) = worker.buildah.try_wait().unwrap() {
                panic!("buildah run exited ({status}):\n{}", worker.log_text());
            }
            match descendants(buildah_pid)
                .into_iter()
                .find(|(_, comm)| comm == "celeriac")
            {
                Some((p, _)) => {
                    pid = p;
                    true
                }
                None => false,
            }
        },
    );
    worker.pid = Some(pid);
    let uids = proc_status(pid, "Uid");
    assert!(
        uids.split_whitespace().all(|u| u == uid.to_string()),
        "the worker must run as {uid} (real, effective, saved, fs), got {uids}"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ
            .split('\0')
            .any(|v| v == "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        "the image's ENV must reach the process"
    );
    wait_until(T, "the worker in the image to register", || {
        let list: Value =
            serde_json::from_str(&env.ok(&["workers", "--json"])).unwrap_or(Value::Null);
        list.as_array()
            .is_some_and(|a| a.iter().any(|w| w["pid"] == pid))
    });

    // 5. It drains jobs enqueued from the host. It opens its SQLite database in /data only when
    //    a job needs it (a links.check), as the image's user.
    let ids = env.ok(&["enqueue", "noop", "--count", "20"]);
    let ids: Vec<&str> = ids
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(ids.len(), 20, "{ids:?}");
    for id in &ids {
        assert_eq!(env.wait_final(id, T)["state"], "succeeded", "{id}");
    }
    let db_path = format!("/proc/{pid}/root/data/celeriac.db");
    assert!(
        !std::path::Path::new(&db_path).exists(),
        "no job needed the database yet: it is not opened"
    );
    let check = env.enqueue("links.check", "{}", &[]);
    assert_eq!(env.wait_final(&check, T)["state"], "succeeded", "{check}");
    let db = std::fs::metadata(&db_path).expect("the worker's SQLite database in /data");
    assert_eq!(db.uid(), uid, "written by the image's user");

    check_readyz(http_port);

    // 6. SIGTERM to the process inside the container (buildah run does not forward it: a
    //    signal to buildah kills its child): the short job finishes, the long one is handed
    //    back at once, and the worker exits 0 within the grace period.
    let short = env.enqueue("sleep", r#"{"ms": 1000}"#, &[]);
    let long = env.enqueue("sleep", r#"{"ms": 60000}"#, &[]);
    env.wait_state(&short, "active", T);
    env.wait_state(&long, "active", T);
    let term = Instant::now();
    run_ok(Command::new("kill").args(["-TERM", &pid.to_string()]));
    // The container's grace period is what SIGKILL waits for: the manifests set it 10–15 s
    // above worker.shutdown_grace (worker.yaml 40 s, compose.yaml 35 s, for 25 s). The worker
    // must be gone well inside that: shutdown_grace for the long job, then the hand-back,
    // deregistration and buildah's teardown, with 3 s of room on a loaded machine.
    let slack = Duration::from_secs(3);
    let mut status = None;
    wait_until(
        GRACE + slack,
        "the worker in the image to exit after SIGTERM",
        || {
            status = worker.buildah.try_wait().unwrap();
            status.is_some()
        },
    );
    let took = term.elapsed();
    worker.pid = None;
    let log = worker.log_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit code after SIGTERM:\n{log}"
    );
    assert!(
        log.contains("SIGTERM received") && log.contains("worker stopped"),
        "{log}"
    );
    assert_eq!(
        env.status(&short)["state"],
        "succeeded",
        "finished within the grace period"
    );
    let handed_back = env.status(&long);
    assert_eq!(
        handed_back["state"], "pending",
        "handed back at once: {handed_back}"
    );
    assert_eq!(handed_back["attempts"], 0, "a hand-back is not an attempt");
    eprintln!(
        "worker exited 0 {took:?} after SIGTERM (grace {GRACE:?}); image test took {:?}",
        started.elapsed()
    );
}
