//! Certificates for TLS tests, made with the `openssl` command: a private certificate authority
//! and a server certificate for `127.0.0.1` and `localhost` signed by it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Run `openssl ARGS` in `dir`; panics with openssl's error output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA and a server certificate it signed (valid two days), as PEM files.
#[derive(Clone, Debug)]
pub struct Certs {
    /// The CA's certificate: what a client trusts (`redis_tls_ca`).
    pub ca: PathBuf,
    /// The server's certificate, for `IP:127.0.0.1` and `DNS:localhost`.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl Certs {
    /// Make them in `dir` (created if missing): `ca.pem`, `server.pem`, `server.key`.
    pub fn generate(dir: &Path) -> Certs {
        std::fs::create_dir_all(dir).expect("create the certificates' directory");
        let days = "2";
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
                days,
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
        .expect("write ext.cnf");
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
                days,
                "-extfile",
                "ext.cnf",
            ],
        );
        Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}
