//! The fan-out tables, on the shared database ([`celeriac_db::Db`]):
//!
//! - [`subscribers`](Subscriber): topics and who subscribes to them, with the per-subscriber
//!   results (consecutive failures, when and why it was disabled).
//! - [`broadcasts`](Broadcast): each message stored once, and one [`Delivery`] row per distinct
//!   recipient with its state, attempts, last status and error, and the start of the response.
//!
//! Every state change of a delivery is a guarded `UPDATE … WHERE state = 'pending'`: it
//! happens once, whatever redelivery of its job runs at the same time.

mod broadcasts;
mod subscribers;

pub use broadcasts::{
    AttemptRecord, Broadcast, Delivery, DeliveryToSend, NewDelivery, Results, FAILED_LISTED,
};
pub use subscribers::{validate_topic, Subscriber, TopicInfo};

use celeriac_db::{sqlx, Db};

/// The fan-out tables of a database.
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
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Corrupt(e.to_string())
}
