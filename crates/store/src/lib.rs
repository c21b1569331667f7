//! Celeriac's domain data in SQL, through `sqlx`: SQLite embedded by default (a file under
//! `./data/`), PostgreSQL in production. The same queries run on both (written with `$n`
//! placeholders, which both accept); each backend has its own migrations under `migrations/`.
//!
//! - [`Store`]: a pool, opened from a URL (`sqlite://…` or `postgres://…`), with the
//!   migrations applied by [`Store::migrate`].
//! - [`links`]: friend links (the operator's list) — add, list, remove, import, and the state
//!   changes a check run writes.
//! - [`runs`]: check runs and their per-link results.
//! - [`import`]: the CSV and JSON-lines formats `celeriac links import` reads.

pub mod import;
pub mod links;
pub mod runs;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use std::time::Duration;

/// The database used when nothing is configured: a SQLite file beside the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/celeriac.db";

/// Errors of the store. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL names no supported database.
    #[error("database_url {url:?} is not supported: use sqlite://PATH (embedded) or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl {
        /// The URL, with any password removed.
        url: String,
    },
    /// The SQLite file's directory could not be created.
    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    CreateDir {
        /// Directory.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("cannot open the database {url}: {source} (is the server running and the URL right?)")]
    Connect {
        /// The URL, with any password removed.
        url: String,
        /// Cause.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A link with this name exists already.
    #[error("a link named {0:?} exists already (remove it first, or use `celeriac links import` to update it)")]
    DuplicateName(String),
    /// A value does not fit (the message names the field).
    #[error("{0}")]
    Invalid(String),
}

/// Result of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A pool of connections to the domain database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connect to `url` (`sqlite://PATH` creates the file and its directory; `postgres://…`).
    /// Migrations are not run: call [`Store::migrate`] (or use [`Store::open`]).
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let url_to_open = match backend {
            Backend::Sqlite => prepare_sqlite(url)?,
            Backend::Postgres => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time anyway; a few readers beside it.
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url_to_open)
            .await
            .map_err(|source| Error::Connect {
                url: redact(url),
                source,
            })?;
        if backend == Backend::Sqlite {
            // WAL lets the CLI read while a worker writes; it is a property of the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        Ok(Store { pool, backend })
    }

    /// [`Store::connect`], then [`Store::migrate`].
    pub async fn open(url: &str) -> Result<Store> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Apply the migrations not applied yet; returns the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        let migrator = migrator(self.backend);
        let before: Vec<i64> = self.applied().await.unwrap_or_default();
        migrator.run(&self.pool).await?;
        Ok(migrator
            .iter()
            .map(|m| m.version)
            .filter(|v| !before.contains(v))
            .collect())
    }

    async fn applied(&self) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool (for the modules of this crate).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Close every connection.
    pub async fn close(&self) {
        self.pool.close().await
    }
}

fn backend_of(url: &str) -> Result<Backend> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(Error::UnsupportedUrl { url: redact(url) })
    }
}

/// Create the SQLite file's directory and ask for the file to be created.
fn prepare_sqlite(url: &str) -> Result<String> {
    let rest = url
        .split_once(':')
        .map(|(_, r)| r)
        .unwrap_or_default()
        .trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_string());
    }
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// `url` without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal),* $(,)?) => {
        vec![$(Migration::new(
            $version,
            $name.into(),
            MigrationType::Simple,
            include_str!(concat!("../../../migrations/", $dir, "/", $name, ".sql")).into_sql_str(),
            false,
        )),*]
    };
}

/// The migrations of `backend`, embedded in the binary (`migrations/sqlite`,
/// `migrations/postgres`: the same versions, each in its dialect).
fn migrator(backend: Backend) -> Migrator {
    Migrator::with_migrations(match backend {
        Backend::Sqlite => migrations!("sqlite": 1 "0001_links"),
        Backend::Postgres => migrations!("postgres": 1 "0001_links"),
    })
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_classified_and_redacted() {
        assert_eq!(backend_of("sqlite://./x.db").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("postgres://u@h/db").unwrap(), Backend::Postgres);
        let e = backend_of("mysql://root:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sqlite://") && !e.contains("secret"), "{e}");
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn sqlite_urls_ask_for_creation() {
        let dir = std::env::temp_dir().join(format!("celeriac-store-{}", std::process::id()));
        let url = format!("sqlite://{}/sub/x.db", dir.display());
        assert_eq!(prepare_sqlite(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(dir.join("sub").is_dir());
        let _ = std::fs::remove_dir_all(dir);
    }
}
