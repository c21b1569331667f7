//! The links domain's tables, on the shared database ([`celeriac_db::Db`]):
//!
//! - [`links`]: friend links (the operator's list) — add, list, remove, import, and the state
//!   changes a check run writes.
//! - [`runs`]: check runs and their per-link results.

mod links;
mod runs;

pub use links::{ImportSummary, Link, LinkState, NewLink, MAX_NAME_LEN, MAX_URL_LEN};
pub use runs::{CheckRun, LinkResult, RunCounts};

use celeriac_db::{Backend, Db};

/// The links tables of a database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

impl Store {
    /// The tables of `db` (migrated with [`crate::MIGRATIONS`]).
    pub fn new(db: Db) -> Store {
        Store { db }
    }

    /// Open the database at `url` and apply this domain's migrations.
    pub async fn open(url: &str) -> crate::Result<Store> {
        Ok(Store::new(Db::open(url, &[crate::MIGRATIONS]).await?))
    }

    /// Close the database's connections.
    pub async fn close(&self) {
        self.db.close().await
    }

    pub(crate) fn pool(&self) -> &celeriac_db::sqlx::AnyPool {
        self.db.pool()
    }

    pub(crate) fn backend(&self) -> Backend {
        self.db.backend()
    }
}

fn now_ms() -> i64 {
    celeriac_core::time::now_ms() as i64
}

fn rfc3339(ms: i64) -> String {
    celeriac_core::time::rfc3339_ms_signed(ms)
}
