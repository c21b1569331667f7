//! A database of each test's own: a SQLite file in a temporary directory, or a fresh database
//! on the PostgreSQL at 127.0.0.1:5432 (`CELERIAC_TEST_POSTGRES_URL` overrides the server),
//! dropped when the test ends. Created and dropped with `psql`, so this crate needs no SQL
//! driver; the code under test connects to [`TestDb::url`].

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The server's maintenance database, where test databases are created.
pub fn postgres_admin_url() -> String {
    std::env::var("CELERIAC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database for one test; dropped (PostgreSQL) or deleted (SQLite) with this value.
#[derive(Debug)]
pub struct TestDb {
    /// What to connect to: `sqlite://DIR/celeriac.db` or `postgres://…/celeriac_test_…`.
    pub url: String,
    postgres_name: Option<String>,
    sqlite_dir: Option<PathBuf>,
}

/// `PID_COUNTER_RANDOM`: unique across parallel test processes and within one.
fn unique() -> String {
    let n = DATABASES.fetch_add(1, Ordering::SeqCst);
    format!("{}_{n}_{:08x}", std::process::id(), fastrand::u32(..))
}

impl TestDb {
    /// A fresh SQLite file in a new directory (the file is created by whoever opens it).
    pub fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("celeriac-sql-{}", unique()));
        std::fs::create_dir_all(&dir).expect("create the SQLite test directory");
        TestDb {
            url: format!("sqlite://{}/celeriac.db", dir.display()),
            postgres_name: None,
            sqlite_dir: Some(dir),
        }
    }

    /// A fresh, empty PostgreSQL database.
    pub fn postgres() -> TestDb {
        let name = format!("celeriac_test_{}", unique());
        psql(&format!("CREATE DATABASE {name}"));
        let admin = postgres_admin_url();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestDb {
            url: format!("{base}/{name}"),
            postgres_name: Some(name),
            sqlite_dir: None,
        }
    }

    /// A fresh database of the backend named by `kind` (`postgres`, else SQLite).
    pub fn of(kind: &str) -> TestDb {
        match kind {
            "postgres" => TestDb::postgres(),
            _ => TestDb::sqlite(),
        }
    }

    /// The PostgreSQL database's name (`None` for SQLite).
    pub fn postgres_name(&self) -> Option<&str> {
        self.postgres_name.as_deref()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres_name {
            // WITH (FORCE): a pool the test leaked must not keep the database alive.
            let _ = std::panic::catch_unwind(|| {
                psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            });
        }
        if let Some(dir) = &self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Run one SQL statement on the maintenance database; its unaligned, tuples-only output.
/// Panics with psql's error.
pub fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .arg(postgres_admin_url())
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-A", "-t", "-c", sql])
        .output()
        .expect("run psql (the PostgreSQL client; apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
