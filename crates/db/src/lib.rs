//! Domain data in SQL, through `sqlx`: SQLite embedded by default (a file under `./data/`),
//! PostgreSQL in production. Queries are written once with `$n` placeholders, which both
//! accept; each domain ships its migrations for both dialects (`migrations/sqlite`,
//! `migrations/postgres`, same versions) and hands them to [`Db::migrate`].
//!
//! - [`Db`]: a pool opened from a URL (`sqlite://…` or `postgres://…`).
//! - [`Migrations`]: one domain's migrations, both dialects; versions are unique across domains.
//! - [`LazyDb`]: a database opened and migrated on first use, so a worker that never runs a
//!   kind needing it never touches it.
//! - [`DbConfig`]: the `database_url` setting.
//! - [`now_ms`]: the time helper every domain stores.

mod config;
mod lazy;

pub use config::{DbConfig, DEFAULT_DATABASE_URL};
pub use lazy::LazyDb;
pub use sqlx;

use celeriac_core::config::redact_url;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use std::time::Duration;

/// Errors of the database layer. Each message says what to check.
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
}

/// Result of the database layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which database a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// One domain's migrations: `(version, name, SQLite text, PostgreSQL text)`. Versions are
/// unique across domains (they share the database's `_sqlx_migrations` table); names say
/// which domain a migration belongs to (`0001_links`).
pub type Migrations = &'static [(i64, &'static str, &'static str, &'static str)];

/// A pool of connections to the domain database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connect to `url` (`sqlite://PATH` creates the file and its directory; `postgres://…`).
    /// Migrations are not run: call [`Db::migrate`] (or use [`Db::open`]).
    pub async fn connect(url: &str) -> Result<Db> {
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
            // A SQLite connection is a file in this process: pinging it before each use (one
            // more round trip to its thread per query) finds nothing a query would not.
            .test_before_acquire(backend == Backend::Postgres)
            .connect(&url_to_open)
            .await
            .map_err(|source| Error::Connect {
                url: redact_url(url),
                source,
            })?;
        if backend == Backend::Sqlite {
            // WAL lets the CLI read while a worker writes; it is a property of the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        Ok(Db { pool, backend })
    }

    /// [`Db::connect`], then [`Db::migrate`].
    pub async fn open(url: &str, migrations: &[Migrations]) -> Result<Db> {
        let db = Self::connect(url).await?;
        db.migrate(migrations).await?;
        Ok(db)
    }

    /// Apply the migrations of every domain in `migrations` not applied yet, in version order;
    /// returns the versions applied now.
    pub async fn migrate(&self, migrations: &[Migrations]) -> Result<Vec<i64>> {
        let migrator = migrator(self.backend, migrations);
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

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
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
        Err(Error::UnsupportedUrl {
            url: redact_url(url),
        })
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

/// The migrator of `backend` over the migrations of every domain, sorted by version.
fn migrator(backend: Backend, domains: &[Migrations]) -> Migrator {
    let mut all: Vec<_> = domains.iter().flat_map(|m| m.iter()).collect();
    all.sort_by_key(|m| m.0);
    // A program built with fewer domains (or a domain's own tests) may open a database whose
    // other domains' migrations it does not know: those are left alone.
    let mut migrator = Migrator::with_migrations(
        all.into_iter()
            .map(|(version, name, sqlite, postgres)| {
                Migration::new(
                    *version,
                    (*name).into(),
                    MigrationType::Simple,
                    match backend {
                        Backend::Sqlite => sqlite,
                        Backend::Postgres => postgres,
                    }
                    .into_sql_str(),
                    false,
                )
            })
            .collect(),
    );
    migrator.set_ignore_missing(true);
    migrator
}

/// Milliseconds since the Unix epoch, as domains store times (UTC epochs).
pub fn now_ms() -> i64 {
    i64::try_from(celeriac_core::time::now_ms()).unwrap_or(i64::MAX)
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
    }

    #[test]
    fn sqlite_urls_ask_for_creation() {
        let dir = std::env::temp_dir().join(format!("celeriac-db-{}", std::process::id()));
        let url = format!("sqlite://{}/sub/x.db", dir.display());
        assert_eq!(prepare_sqlite(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(dir.join("sub").is_dir());
        let _ = std::fs::remove_dir_all(dir);
    }
}
