//! A database of each test's own: a SQLite file in a temp directory, or a fresh database on
//! the PostgreSQL at 127.0.0.1:5432 (`CELERIAC_TEST_POSTGRES_URL` overrides the server), dropped
//! when the test ends.

use std::process::Command;

/// The server's maintenance database, where test databases are created.
pub fn postgres_admin_url() -> String {
    std::env::var("CELERIAC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database for one test; dropped (PostgreSQL) or deleted (SQLite) with this value.
pub struct TestDb {
    pub url: String,
    postgres_name: Option<String>,
    sqlite_dir: Option<std::path::PathBuf>,
}

impl TestDb {
    /// A fresh SQLite file.
    pub fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!(
            "celeriac-sql-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        TestDb {
            url: format!("sqlite://{}/celeriac.db", dir.display()),
            postgres_name: None,
            sqlite_dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database.
    pub fn postgres() -> TestDb {
        let name = format!("celeriac_test_{}", uuid::Uuid::now_v7().simple());
        psql(&format!("CREATE DATABASE {name}"));
        let admin = postgres_admin_url();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestDb {
            url: format!("{base}/{name}"),
            postgres_name: Some(name),
            sqlite_dir: None,
        }
    }

    /// A fresh database of the backend named by `kind` (`sqlite` or `postgres`).
    pub fn of(kind: &str) -> TestDb {
        match kind {
            "postgres" => TestDb::postgres(),
            _ => TestDb::sqlite(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres_name {
            let _ = std::panic::catch_unwind(|| {
                psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            });
        }
        if let Some(dir) = &self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .arg(postgres_admin_url())
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("run psql (the PostgreSQL client; apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
