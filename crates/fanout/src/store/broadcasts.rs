//! Broadcasts (the message, stored once) and their deliveries (one per distinct recipient).

use super::{corrupt, Store};
use crate::error::Result;
use crate::model::{Channel, DeliveryState, Recipient};
use celeriac_db::{now_ms, sqlx};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// Rows inserted per statement (5 parameters each, far below SQLite's 32,766 and
/// PostgreSQL's 65,535).
const INSERT_CHUNK: usize = 1000;
/// Failed recipients listed in [`Results`] at most.
pub const FAILED_LISTED: i64 = 1000;

/// A broadcast as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Broadcast {
    /// Id (also its batch's id and the parent job's).
    pub id: String,
    /// The topic, for a broadcast to a topic.
    pub topic: Option<String>,
    /// The queue of its deliveries (and of its batch).
    pub queue: String,
    /// The message.
    pub message: String,
    /// Distinct recipients.
    pub total: i64,
    /// When it was stored (ms).
    pub created_at: i64,
    /// When its last delivery ended (ms): set by `fanout.complete`.
    pub completed_at: Option<i64>,
}

/// A delivery to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    /// Its key within the broadcast (`s42` for subscriber 42, `r3` for a listed recipient).
    pub key: String,
    /// The subscriber, for a broadcast to a topic.
    pub subscriber_id: Option<i64>,
    /// Where it goes.
    pub recipient: Recipient,
}

/// One delivery as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The broadcast.
    pub broadcast_id: String,
    /// Its key within the broadcast.
    pub recipient: String,
    /// The subscriber, if any.
    pub subscriber_id: Option<i64>,
    /// How it is reached.
    pub channel: Channel,
    /// URL or QQ number.
    pub target: String,
    /// The webhook secret.
    #[serde(skip)]
    pub secret: Option<String>,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: i64,
    /// HTTP status of the latest attempt.
    pub last_status: Option<i64>,
    /// Error of the latest failed attempt.
    pub last_error: Option<String>,
    /// The start of the latest response.
    pub response: Option<String>,
    /// When it last changed (ms).
    pub updated_at: i64,
}

/// A broadcast's results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Results {
    /// Deliveries.
    pub total: i64,
    /// Not yet final.
    pub pending: i64,
    /// Delivered.
    pub delivered: i64,
    /// Failed for good.
    pub failed: i64,
    /// Skipped (unsubscribed or disabled meanwhile).
    pub skipped: i64,
    /// The failed recipients with their last error (at most [`FAILED_LISTED`]).
    pub failed_recipients: Vec<Delivery>,
}

const COLUMNS: &str = "broadcast_id, recipient, subscriber_id, channel, target, secret, state, \
    attempts, last_status, last_error, response, updated_at";

fn delivery(row: &AnyRow) -> Result<Delivery> {
    let channel: String = row.try_get("channel")?;
    let state: String = row.try_get("state")?;
    Ok(Delivery {
        broadcast_id: row.try_get("broadcast_id")?,
        recipient: row.try_get("recipient")?,
        subscriber_id: row.try_get("subscriber_id")?,
        channel: channel.parse().map_err(corrupt)?,
        target: row.try_get("target")?,
        secret: row.try_get("secret")?,
        state: state.parse().map_err(corrupt)?,
        attempts: row.try_get("attempts")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        response: row.try_get("response")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Insert broadcast `id` unless it exists; true when inserted.
async fn insert_broadcast(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    topic: Option<&str>,
    queue: &str,
    message: &str,
    total: i64,
    now: i64,
) -> Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO fanout_broadcasts (id, topic, queue, message, total, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(topic)
    .bind(queue)
    .bind(message)
    .bind(total)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1)
}

/// A delivery with what its subscriber is now, read together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryToSend {
    /// The delivery.
    pub delivery: Delivery,
    /// Its subscriber's status and consecutive failures; `None` when the delivery has no
    /// subscriber or the subscriber no longer exists.
    pub subscriber: Option<(crate::model::SubscriberStatus, i64)>,
}

fn to_send(row: &AnyRow) -> Result<DeliveryToSend> {
    let status: Option<String> = row.try_get("sub_status")?;
    let failures: Option<i64> = row.try_get("sub_failures")?;
    let subscriber = match status {
        Some(s) => Some((s.parse().map_err(corrupt)?, failures.unwrap_or(0))),
        None => None,
    };
    Ok(DeliveryToSend {
        delivery: delivery(row)?,
        subscriber,
    })
}

/// How an attempt ended, to record.
#[derive(Clone, Debug, Default)]
pub struct AttemptRecord {
    /// HTTP status, if there was a response.
    pub status: Option<i64>,
    /// The error, for a failure.
    pub error: Option<String>,
    /// The start of the response.
    pub response: Option<String>,
}

/// Attempts recorded by one statement at most (6 parameters each).
pub const GROUP_CHUNK: usize = 250;

/// One `UPDATE` recording `attempts` (distinct deliveries, at most [`GROUP_CHUNK`]); for
/// each, whether its delivery was pending.
async fn record_group<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    now: i64,
    attempts: &[&crate::recorder::Attempt],
) -> Result<Vec<bool>> {
    let mut sql = String::with_capacity(600 + attempts.len() * 40);
    sql.push_str("WITH v (b, k, st, status, err, resp) AS (VALUES ");
    // $1 (the time) is shared by every row.
    push_rows(&mut sql, attempts.len(), 6, 2, "(", ")");
    sql.push_str(
        ") UPDATE fanout_deliveries SET state = v.st, \
         attempts = fanout_deliveries.attempts + 1, last_status = v.status, \
         last_error = COALESCE(v.err, fanout_deliveries.last_error), \
         response = v.resp, updated_at = $1 FROM v \
         WHERE fanout_deliveries.broadcast_id = v.b AND fanout_deliveries.recipient = v.k \
         AND fanout_deliveries.state = 'pending' \
         RETURNING fanout_deliveries.broadcast_id, fanout_deliveries.recipient",
    );
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now);
    for a in attempts {
        q = q
            .bind(a.broadcast.as_str())
            .bind(a.key.as_str())
            .bind(a.state.as_str())
            .bind(a.record.status)
            .bind(a.record.error.as_deref())
            .bind(a.record.response.as_deref());
    }
    let rows: Vec<(String, String)> = q
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
    let done: std::collections::HashSet<(&str, &str)> =
        rows.iter().map(|(b, k)| (b.as_str(), k.as_str())).collect();
    Ok(attempts
        .iter()
        .map(|a| done.contains(&(a.broadcast.as_str(), a.key.as_str())))
        .collect())
}

impl Store {
    /// Store broadcast `id` with its message and its deliveries, in one transaction, unless
    /// it exists; true when created now (a broadcast that exists keeps what it was created
    /// with).
    pub async fn create_broadcast(
        &self,
        id: &str,
        topic: Option<&str>,
        queue: &str,
        message: &str,
        deliveries: &[NewDelivery],
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        if !insert_broadcast(
            &mut tx,
            id,
            topic,
            queue,
            message,
            deliveries.len() as i64,
            now,
        )
        .await?
        {
            return Ok(false);
        }
        for chunk in deliveries.chunks(INSERT_CHUNK) {
            // $1 and $2 (the broadcast and the time) are shared by every row.
            let mut sql = String::with_capacity(100 + chunk.len() * 40);
            sql.push_str(
                "INSERT INTO fanout_deliveries (broadcast_id, recipient, subscriber_id, channel, \
                 target, secret, updated_at) VALUES ",
            );
            push_rows(&mut sql, chunk.len(), 5, 3, "($1, ", ", $2)");
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(id).bind(now);
            for d in chunk {
                q = q
                    .bind(d.key.clone())
                    .bind(d.subscriber_id)
                    .bind(d.recipient.channel.as_str())
                    .bind(d.recipient.target.clone())
                    .bind(d.recipient.secret.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Store broadcast `id` to every active subscriber of `topic`, one delivery row each
    /// (key `s<subscriber id>`), in one transaction and one `INSERT … SELECT` (the subscribers
    /// are not read out of the database and written back), unless it exists. `Some(total)`
    /// when created now; `None` when it existed.
    pub async fn create_topic_broadcast(
        &self,
        id: &str,
        topic: &str,
        queue: &str,
        message: &str,
    ) -> Result<Option<i64>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        if !insert_broadcast(&mut tx, id, Some(topic), queue, message, 0, now).await? {
            return Ok(None);
        }
        let total = sqlx::query(
            "INSERT INTO fanout_deliveries (broadcast_id, recipient, subscriber_id, channel, \
             target, secret, updated_at) \
             SELECT $1, 's' || CAST(id AS TEXT), id, channel, target, secret, $2 \
             FROM fanout_subscribers WHERE topic = $3 AND status = 'active'",
        )
        .bind(id)
        .bind(now)
        .bind(topic)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
        sqlx::query("UPDATE fanout_broadcasts SET total = $1 WHERE id = $2")
            .bind(total)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(total))
    }

    /// The keys of broadcast `id`'s deliveries, sorted.
    pub async fn delivery_keys(&self, id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT recipient FROM fanout_deliveries WHERE broadcast_id = $1 ORDER BY recipient",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(k,)| k).collect())
    }

    /// Broadcast `id`.
    pub async fn broadcast(&self, id: &str) -> Result<Option<Broadcast>> {
        let row = sqlx::query(
            "SELECT id, topic, queue, message, total, created_at, completed_at FROM fanout_broadcasts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| -> Result<Broadcast> {
            Ok(Broadcast {
                id: r.try_get("id")?,
                topic: r.try_get("topic")?,
                queue: r.try_get("queue")?,
                message: r.try_get("message")?,
                total: r.try_get("total")?,
                created_at: r.try_get("created_at")?,
                completed_at: r.try_get("completed_at")?,
            })
        })
        .transpose()
    }

    /// Delivery `key` of broadcast `id`.
    pub async fn delivery(&self, id: &str, key: &str) -> Result<Option<Delivery>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM fanout_deliveries WHERE broadcast_id = $1 AND recipient = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(delivery).transpose()
    }

    /// Delivery `key` of broadcast `id` and its subscriber's current status, in one query.
    pub async fn delivery_to_send(&self, id: &str, key: &str) -> Result<Option<DeliveryToSend>> {
        let row = sqlx::query(
            "SELECT d.broadcast_id, d.recipient, d.subscriber_id, d.channel, d.target, d.secret, \
             d.state, d.attempts, d.last_status, d.last_error, d.response, d.updated_at, \
             s.status AS sub_status, s.consecutive_failures AS sub_failures \
             FROM fanout_deliveries d LEFT JOIN fanout_subscribers s ON s.id = d.subscriber_id \
             WHERE d.broadcast_id = $1 AND d.recipient = $2",
        )
        .bind(id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(to_send).transpose()
    }

    /// [`Store::delivery_to_send`] for several deliveries of broadcast `id`, in one query:
    /// those found, by key.
    pub async fn deliveries_to_send(
        &self,
        id: &str,
        keys: &[&str],
    ) -> Result<std::collections::HashMap<String, DeliveryToSend>> {
        let mut found = std::collections::HashMap::with_capacity(keys.len());
        let Some(last) = keys.last() else {
            return Ok(found);
        };
        // The list is padded to a power of two with its last key (harmless in an `IN`), so a
        // handful of statements are prepared and cached instead of one per group size.
        let n = keys.len().next_power_of_two();
        let mut sql = String::with_capacity(400 + n * 6);
        sql.push_str(
            "SELECT d.broadcast_id, d.recipient, d.subscriber_id, d.channel, d.target, d.secret, \
             d.state, d.attempts, d.last_status, d.last_error, d.response, d.updated_at, \
             s.status AS sub_status, s.consecutive_failures AS sub_failures \
             FROM fanout_deliveries d LEFT JOIN fanout_subscribers s ON s.id = d.subscriber_id \
             WHERE d.broadcast_id = $1 AND d.recipient IN (",
        );
        for i in 0..n {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", i + 2));
        }
        sql.push(')');
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(id);
        for i in 0..n {
            q = q.bind(*keys.get(i).unwrap_or(last));
        }
        for row in q.fetch_all(self.pool()).await? {
            let d = to_send(&row)?;
            found.insert(d.delivery.recipient.clone(), d);
        }
        Ok(found)
    }

    /// Record an attempt of a pending delivery; with `state` other than pending it ends there.
    /// False when the delivery was not pending (another run of its job ended it).
    pub async fn record_attempt(
        &self,
        id: &str,
        key: &str,
        state: DeliveryState,
        a: &AttemptRecord,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE fanout_deliveries SET state = $1, attempts = attempts + 1, last_status = $2, \
             last_error = COALESCE($3, last_error), response = $4, updated_at = $5 \
             WHERE broadcast_id = $6 AND recipient = $7 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(a.status)
        .bind(a.error.clone())
        .bind(a.response.clone())
        .bind(now_ms())
        .bind(id)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// [`Store::record_attempt`] for each of `attempts`, all or none: one `UPDATE` for all of
    /// them, a statement being atomic on its own; when they need more than one statement (more
    /// than [`GROUP_CHUNK`], or the attempts of one delivery after its first, which only a
    /// redelivery running beside its job would make, and which follow one by one, in order),
    /// in one transaction.
    pub async fn record_attempts(
        &self,
        attempts: &[&crate::recorder::Attempt],
    ) -> Result<Vec<bool>> {
        let now = now_ms();
        let mut seen = std::collections::HashSet::with_capacity(attempts.len());
        let (mut firsts, mut repeats) = (Vec::with_capacity(attempts.len()), Vec::new());
        for (i, a) in attempts.iter().enumerate() {
            if seen.insert((a.broadcast.as_str(), a.key.as_str())) {
                firsts.push(*a);
            } else {
                repeats.push(i);
            }
        }
        if repeats.is_empty() && firsts.len() <= GROUP_CHUNK {
            // One statement, no BEGIN and COMMIT around it: two round trips fewer.
            return record_group(self.pool(), now, &firsts).await;
        }
        let mut changed = Vec::with_capacity(attempts.len());
        let mut tx = self.pool().begin().await?;
        for chunk in firsts.chunks(GROUP_CHUNK) {
            changed.extend(record_group(&mut *tx, now, chunk).await?);
        }
        // `changed` is in the order of `firsts`; the repeats go back where they were.
        for i in repeats {
            let a = attempts[i];
            let done = sqlx::query(
                "UPDATE fanout_deliveries SET state = $1, attempts = attempts + 1, last_status = $2, \
                 last_error = COALESCE($3, last_error), response = $4, updated_at = $5 \
                 WHERE broadcast_id = $6 AND recipient = $7 AND state = 'pending'",
            )
            .bind(a.state.as_str())
            .bind(a.record.status)
            .bind(a.record.error.clone())
            .bind(a.record.response.clone())
            .bind(now)
            .bind(a.broadcast.clone())
            .bind(a.key.clone())
            .execute(&mut *tx)
            .await?;
            changed.insert(i, done.rows_affected() == 1);
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// End a pending delivery as `state` without an attempt (skipped; or failed when its
    /// job died without recording its last attempt). False when it was not pending.
    pub async fn end_delivery(
        &self,
        id: &str,
        key: &str,
        state: DeliveryState,
        why: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE fanout_deliveries SET state = $1, last_error = $2, updated_at = $3 \
             WHERE broadcast_id = $4 AND recipient = $5 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(why)
        .bind(now_ms())
        .bind(id)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The results of broadcast `id`.
    pub async fn results(&self, id: &str) -> Result<Results> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, CAST(COUNT(*) AS BIGINT) FROM fanout_deliveries WHERE broadcast_id = $1 GROUP BY state",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let mut r = Results::default();
        for (state, n) in rows {
            match state.parse::<DeliveryState>().map_err(corrupt)? {
                DeliveryState::Pending => r.pending = n,
                DeliveryState::Delivered => r.delivered = n,
                DeliveryState::Failed => r.failed = n,
                DeliveryState::Skipped => r.skipped = n,
            }
            r.total += n;
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM fanout_deliveries WHERE broadcast_id = $1 AND state = 'failed' \
             ORDER BY recipient LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(FAILED_LISTED)
            .fetch_all(self.pool())
            .await?;
        r.failed_recipients = rows.iter().map(delivery).collect::<Result<_>>()?;
        Ok(r)
    }

    /// Take every failed delivery of broadcast `id` back to pending (an operator's retry);
    /// their keys.
    pub async fn reopen_failed(&self, id: &str) -> Result<Vec<String>> {
        let mut tx = self.pool().begin().await?;
        let keys: Vec<(String,)> = sqlx::query_as(
            "SELECT recipient FROM fanout_deliveries WHERE broadcast_id = $1 AND state = 'failed' ORDER BY recipient",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE fanout_deliveries SET state = 'pending', updated_at = $1 WHERE broadcast_id = $2 AND state = 'failed'",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(keys.into_iter().map(|(k,)| k).collect())
    }

    /// End every delivery of broadcast `id` still pending as failed with `why` (its job ended
    /// without recording its last attempt: a crash or a timeout); how many.
    pub async fn fail_pending(&self, id: &str, why: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE fanout_deliveries SET state = 'failed', last_error = COALESCE(last_error, $1), \
             updated_at = $2 WHERE broadcast_id = $3 AND state = 'pending'",
        )
        .bind(why)
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Mark broadcast `id` completed (once: a later call changes nothing); true if now.
    pub async fn complete(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE fanout_broadcasts SET completed_at = $1 WHERE id = $2 AND completed_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Append `rows` comma-separated tuples of `width` numbered placeholders to `sql`, numbered
/// from `$first` on, each written `{open}$a, $b, …{close}` (`open` and `close` may hold
/// placeholders shared by every row).
fn push_rows(sql: &mut String, rows: usize, width: usize, first: usize, open: &str, close: &str) {
    use std::fmt::Write;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(open);
        for col in 0..width {
            if col > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "${}", first + row * width + col);
        }
        sql.push_str(close);
    }
}

#[cfg(test)]
mod tests {
    use super::push_rows;

    #[test]
    fn rows_of_placeholders_are_numbered_on_from_the_first() {
        let mut sql = String::new();
        push_rows(&mut sql, 2, 3, 3, "($1, ", ", $2)");
        assert_eq!(sql, "($1, $3, $4, $5, $2), ($1, $6, $7, $8, $2)");
        let mut one = String::new();
        push_rows(&mut one, 1, 2, 2, "(", ")");
        assert_eq!(one, "($2, $3)");
    }
}
