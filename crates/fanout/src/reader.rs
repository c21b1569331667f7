//! Grouped reads of the deliveries about to be attempted: the deliveries starting at once in a
//! worker ask one task for their row and their subscriber's status, and it reads whatever has
//! queued up in one query per broadcast (up to [`MAX_GROUP`] rows). Nothing is cached: each
//! delivery's row and subscriber status are read after its attempt started, as a read of its
//! own would be, so a subscriber unsubscribed or disabled before that is seen and the delivery
//! skipped. If a group's query fails, each delivery reads its row on its own, so an error
//! reaches the handler that needs it.

use crate::error::Result;
use crate::store::{DeliveryToSend, Store};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Deliveries read in one query at most.
pub const MAX_GROUP: usize = 256;
/// Group queries running at once (each on its own pooled connection), so a group does not
/// wait for the whole previous one.
const IN_FLIGHT: usize = 2;

struct Wanted {
    broadcast: String,
    key: String,
    /// `Some(row)` when the group was read; `None` when it was not.
    found: oneshot::Sender<Option<Option<DeliveryToSend>>>,
}

/// The reading task's handle.
#[derive(Debug, Clone)]
pub struct Reader {
    queue: mpsc::UnboundedSender<Wanted>,
    store: Store,
}

impl Reader {
    /// Start the task reading from `store` (it ends when every handle is dropped).
    pub fn start(store: Store) -> Reader {
        let (queue, mut rx) = mpsc::unbounded_channel::<Wanted>();
        let reader = store.clone();
        tokio::spawn(async move {
            let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
            while let Some(first) = rx.recv().await {
                // Wait for a free query first: what arrives meanwhile joins this group.
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(w) => group.push(w),
                        Err(_) => break,
                    }
                }
                let reader = reader.clone();
                tokio::spawn(async move {
                    read_group(&reader, group).await;
                    drop(permit);
                });
            }
        });
        Reader { queue, store }
    }

    /// Delivery `key` of broadcast `broadcast` and its subscriber's status now (see
    /// [`Store::delivery_to_send`]).
    pub async fn read(&self, broadcast: &str, key: &str) -> Result<Option<DeliveryToSend>> {
        let (found, read) = oneshot::channel();
        let wanted = Wanted {
            broadcast: broadcast.to_string(),
            key: key.to_string(),
            found,
        };
        if self.queue.send(wanted).is_ok() {
            if let Ok(Some(row)) = read.await {
                return Ok(row);
            }
        }
        self.store.delivery_to_send(broadcast, key).await
    }
}

/// Read `group`, one query per broadcast, and answer each.
async fn read_group(store: &Store, group: Vec<Wanted>) {
    let mut by_broadcast: HashMap<String, Vec<Wanted>> = HashMap::new();
    for w in group {
        by_broadcast.entry(w.broadcast.clone()).or_default().push(w);
    }
    for (broadcast, wanted) in by_broadcast {
        let keys: Vec<&str> = wanted.iter().map(|w| w.key.as_str()).collect();
        match store.deliveries_to_send(&broadcast, &keys).await {
            Ok(found) => {
                for w in wanted {
                    let row = found.get(&w.key).cloned();
                    let _ = w.found.send(Some(row));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, deliveries = wanted.len(), "reading a group of deliveries failed; each is read on its own");
                for w in wanted {
                    let _ = w.found.send(None);
                }
            }
        }
    }
}
