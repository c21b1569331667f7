//! A private `redis-server` on a free port, for tests that kill, restart, fill or reconfigure
//! Redis, or need TLS or an ACL user: one builder for every variant.
//!
//! ```no_run
//! use celeriac_testkit::RedisServer;
//! let plain = RedisServer::start();
//! let tls = RedisServer::builder().tls().start(); // rediss://, trust tls.tls_ca()
//! let limited = RedisServer::builder()
//!     .acl_user("app", "secret", "app:*")
//!     .start(); // limited.user_url() carries the credentials
//! let mut durable = RedisServer::builder().aof().start();
//! durable.kill9();
//! durable.restart(false); // same port, the AOF replayed
//! ```

use crate::tls::Certs;
use crate::wait::{free_port, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long a start or restart may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Ports tried when another process takes the free port first.
const PORT_ATTEMPTS: u32 = 3;

static SERVERS: AtomicU32 = AtomicU32::new(0);

/// How to start a [`RedisServer`]; from [`RedisServer::builder`].
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until .start()"]
pub struct RedisServerBuilder {
    tls: bool,
    aof: bool,
    acl: Option<AclUser>,
    bind: Option<Vec<String>>,
    args: Vec<String>,
}

#[derive(Clone, Debug)]
struct AclUser {
    name: String,
    password: String,
    key_pattern: String,
}

impl RedisServerBuilder {
    /// TLS only (no plain port): a private CA and a server certificate for 127.0.0.1 are made
    /// with `openssl`; [`RedisServer::url`] is `rediss://…` and [`RedisServer::tls_ca`] the CA.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// `appendonly yes`, `appendfsync everysec`: a restart without wipe keeps what was
    /// fsynced (at most about a second is lost to a kill -9).
    pub fn aof(mut self) -> Self {
        self.aof = true;
        self
    }

    /// A user `name` with `password`, limited to keys matching `key_pattern`, allowed every
    /// command but the dangerous and admin ones (`+@all -@dangerous -@admin`). It is part of
    /// the server's configuration, so it survives restarts; the default user stays open for
    /// the test's own setup ([`RedisServer::url`]). The password must be URL-safe.
    pub fn acl_user(mut self, name: &str, password: &str, key_pattern: &str) -> Self {
        let url_safe = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        };
        assert!(
            url_safe(name) && url_safe(password),
            "the ACL user's name and password go into a URL: use [A-Za-z0-9-_.~]"
        );
        self.acl = Some(AclUser {
            name: name.into(),
            password: password.into(),
            key_pattern: key_pattern.into(),
        });
        self
    }

    /// Listen on these addresses instead of `127.0.0.1` (e.g. loopback and a veth address).
    /// Non-loopback clients of the passwordless default user also need
    /// `.args(["--protected-mode", "no"])`.
    pub fn bind(mut self, addrs: &[&str]) -> Self {
        self.bind = Some(addrs.iter().map(|a| a.to_string()).collect());
        self
    }

    /// Extra `redis-server` arguments, after the builder's own (a later directive wins):
    /// `["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Start it and wait until it answers; panics with its log when it cannot start.
    pub fn start(self) -> RedisServer {
        let n = SERVERS.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "celeriac-redis-{}-{n}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(dir.join("data")).expect("create the server's directory");
        let certs = self.tls.then(|| Certs::generate(&dir.join("tls")));
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            args: Vec::new(),
            certs,
            user: self.acl.clone(),
            starts: 0,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port();
            server.args = self.args_for(server.port, server.certs.as_ref());
            match server.spawn() {
                Ok(()) => return server,
                Err(log) if attempt < PORT_ATTEMPTS && log.contains("Address already in use") => {}
                Err(log) => panic!("redis-server did not start:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn args_for(&self, port: u16, certs: Option<&Certs>) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        match certs {
            Some(c) => {
                let (cert, key, ca) = (path(&c.cert), path(&c.key), path(&c.ca));
                push(&mut a, &["--port", "0", "--tls-port", &port.to_string()]);
                push(&mut a, &["--tls-cert-file", &cert, "--tls-key-file", &key]);
                push(
                    &mut a,
                    &["--tls-ca-cert-file", &ca, "--tls-auth-clients", "no"],
                );
            }
            None => push(&mut a, &["--port", &port.to_string()]),
        }
        a.push("--bind".into());
        match &self.bind {
            Some(addrs) => a.extend(addrs.iter().cloned()),
            None => a.push("127.0.0.1".into()),
        }
        push(&mut a, &["--save", ""]);
        if self.aof {
            push(
                &mut a,
                &["--appendonly", "yes", "--appendfsync", "everysec"],
            );
        } else {
            push(&mut a, &["--appendonly", "no"]);
        }
        if let Some(u) = &self.acl {
            let (pw, keys) = (format!(">{}", u.password), format!("~{}", u.key_pattern));
            push(&mut a, &["--user", &u.name, "on", &pw, &keys]);
            push(&mut a, &["+@all", "-@dangerous", "-@admin"]);
        }
        a.extend(self.args.iter().cloned());
        a
    }
}

fn push(args: &mut Vec<String>, items: &[&str]) {
    args.extend(items.iter().map(|s| s.to_string()));
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A private `redis-server` on a free port of 127.0.0.1. Dropping it kills the server and
/// removes its directory (data, log, certificates).
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// The port it listens on (the TLS port for a TLS server); kept across restarts.
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    certs: Option<Certs>,
    user: Option<AclUser>,
    starts: u32,
}

impl RedisServer {
    /// A plain server: no TLS, no persistence, no password.
    pub fn start() -> RedisServer {
        Self::builder().start()
    }

    /// The other variants: TLS, ACL user, AOF, bind list, extra arguments.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` with TLS), as the default user (no password).
    pub fn url(&self) -> String {
        let scheme = if self.certs.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The URL of the [`RedisServerBuilder::acl_user`], credentials included.
    pub fn user_url(&self) -> String {
        let u = self
            .user
            .as_ref()
            .expect("no ACL user: build the server with .acl_user(..)");
        let url = self.url();
        let (scheme, rest) = url.split_once("://").expect("a URL");
        format!("{scheme}://{}:{}@{rest}", u.name, u.password)
    }

    /// The private CA's certificate (PEM) to trust, for a TLS server.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.certs.as_ref().map(|c| c.ca.as_path())
    }

    /// Its directory: `data/` (the `--dir`), `tls/`, one log per start; removed when dropped.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log of the current run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// kill -9 the server (nothing flushed, clients see the connection drop).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port with the same configuration (killing it first if it
    /// still runs): with [`RedisServerBuilder::aof`] the data comes back, unless `wipe`
    /// deletes it first. Returns once it answers.
    pub fn restart(&mut self, wipe: bool) {
        self.kill9();
        if wipe {
            let data = self.dir.join("data");
            let _ = std::fs::remove_dir_all(&data);
            std::fs::create_dir_all(&data).expect("recreate the data directory");
        }
        if let Err(log) = self.spawn() {
            panic!("redis-server did not restart on port {}:\n{log}", self.port);
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("redis-{}.log", self.starts))
    }

    /// Spawn with `self.args` and wait until it answers, or return its log if it exited.
    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).expect("create the server's log");
        let mut child = Command::new("redis-server")
            .args(&self.args)
            .arg("--dir")
            .arg(self.dir.join("data"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (make test installs it when missing)");
        let mut exited: Option<ExitStatus> = None;
        let what = format!(
            "redis-server on port {} to answer (log: {})",
            self.port,
            self.log_path().display()
        );
        wait_until(START_TIMEOUT, &what, || {
            exited = child.try_wait().ok().flatten();
            exited.is_some() || self.ready()
        });
        match exited {
            Some(status) => Err(format!("exited with {status}\n{}", self.log())),
            None => {
                self.child = Some(child);
                Ok(())
            }
        }
    }

    /// A plain server answers PING (not while it loads its AOF); a TLS one, whose probe would
    /// need a client certificate store, has logged that it is ready.
    fn ready(&self) -> bool {
        if self.certs.is_some() {
            return self.log().contains("Ready to accept connections");
        }
        redis::Client::open(self.url().as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
