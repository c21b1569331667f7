//! The verification tables, on the shared database ([`celeriac_db::Db`]):
//!
//! - [`members`](Member): one row per (group, member) under verification — the status, the
//!   code, the reminders left and when the next step is due.
//! - [`actions`](ActionRow): the outbox of OneBot actions that transitions decide, written in
//!   the same transaction as the transition and performed afterwards by `outbox::drain`;
//!   the log of what was sent, the reply and its retcode, bounded by `action_retention`.
//! - [`groups`](GroupRow): the per-group switch and state (`blocked`).
//!
//! Every status change is a guarded `UPDATE … WHERE status = <expected> AND round = <read>`:
//! it happens once or not at all, whatever else runs at the same time.

mod actions;
mod groups;
mod members;

pub use actions::{ActionCounts, ActionRow, NewAction};
pub use groups::GroupRow;
pub use members::{GroupStats, Join, Member, MemberFilter, WarnOrKick};

use celeriac_db::{sqlx, Backend, Db};

/// A transaction on the domain database.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The verification tables of a database.
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

    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        self.db.pool()
    }

    /// A write transaction. On SQLite it takes the write lock up front, so a transaction that
    /// reads before it writes waits for another writer instead of failing on a stale snapshot.
    pub async fn begin(&self) -> crate::Result<Tx> {
        Ok(match self.db.backend() {
            Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool().begin().await?,
        })
    }
}
