//! A database opened, and migrated, on first use.

use crate::{Db, Migrations, Result};
use tokio::sync::OnceCell;

/// The domain database of a worker, opened when a job first needs it: a worker that serves
/// only kinds without data never opens it (nor creates a SQLite file), and one whose database
/// is down still runs its other kinds. Migrations run before the first use; a failure is not
/// kept, so the next job tries again.
#[derive(Debug)]
pub struct LazyDb {
    url: String,
    migrations: Vec<Migrations>,
    db: OnceCell<Db>,
}

impl LazyDb {
    /// Nothing is opened yet.
    pub fn new(url: impl Into<String>, migrations: Vec<Migrations>) -> LazyDb {
        LazyDb {
            url: url.into(),
            migrations,
            db: OnceCell::new(),
        }
    }

    /// The database, opened and migrated if it was not yet.
    pub async fn get(&self) -> Result<&Db> {
        self.db
            .get_or_try_init(|| Db::open(&self.url, &self.migrations))
            .await
    }

    /// Whether it was opened.
    pub fn is_open(&self) -> bool {
        self.db.initialized()
    }
}
