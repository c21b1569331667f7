//! TLS: a worker and the CLI talk to a `redis-server` that only accepts TLS, trusting a private
//! certificate authority given with `redis_tls_ca`; without it the connection is refused.

use crate::support::{wait_until, Env};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct TlsRedis {
    child: Child,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run openssl in `dir`, failing the test with its error output.
pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a TLS-only redis-server.
fn start(dir: &Path) -> TlsRedis {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Celeriac test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let port = crate::support::free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            "no",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server");
    wait_until(
        Duration::from_secs(5),
        "the TLS redis-server to listen",
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    TlsRedis { child, port }
}

#[test]
fn worker_and_cli_over_tls_with_a_private_ca() {
    let certs = std::env::temp_dir().join(format!("celeriac-tls-{}", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    let redis = start(&certs);
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let ca = certs.join("ca.pem");
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
    let _ = std::fs::remove_dir_all(&certs);
}
