//! Topics and subscribers.

use super::{corrupt, Store};
use crate::error::{Error, Result};
use crate::model::{Channel, Recipient, SubscriberStatus};
use celeriac_db::{now_ms, sqlx};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// A subscriber as stored (its secret is never shown).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Subscriber {
    /// Id.
    pub id: i64,
    /// Topic.
    pub topic: String,
    /// How it is reached.
    pub channel: Channel,
    /// URL or QQ number.
    pub target: String,
    /// Its webhook secret.
    #[serde(skip)]
    pub secret: Option<String>,
    /// Whether it receives broadcasts.
    pub status: SubscriberStatus,
    /// Failed attempts in a row (0 after a success).
    pub consecutive_failures: i64,
    /// The latest failure.
    pub last_error: Option<String>,
    /// When it was disabled (ms).
    pub disabled_at: Option<i64>,
    /// Why.
    pub disabled_reason: Option<String>,
    /// When it subscribed (ms).
    pub created_at: i64,
}

impl Subscriber {
    /// Where its deliveries go.
    pub fn recipient(&self) -> Recipient {
        Recipient {
            channel: self.channel,
            target: self.target.clone(),
            secret: self.secret.clone(),
        }
    }
}

/// A topic with its subscriber counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Active subscribers.
    pub active: i64,
    /// Every subscriber (unsubscribed and disabled included).
    pub subscribers: i64,
}

const COLUMNS: &str = "id, topic, channel, target, secret, status, consecutive_failures, \
    last_error, disabled_at, disabled_reason, created_at";

fn from_row(row: &AnyRow) -> Result<Subscriber> {
    let channel: String = row.try_get("channel")?;
    let status: String = row.try_get("status")?;
    Ok(Subscriber {
        id: row.try_get("id")?,
        topic: row.try_get("topic")?,
        channel: channel.parse().map_err(corrupt)?,
        target: row.try_get("target")?,
        secret: row.try_get("secret")?,
        status: status.parse().map_err(corrupt)?,
        consecutive_failures: row.try_get("consecutive_failures")?,
        last_error: row.try_get("last_error")?,
        disabled_at: row.try_get("disabled_at")?,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Check a topic name: 1 to 200 printable characters, no whitespace.
pub fn validate_topic(topic: &str) -> Result<()> {
    if topic.is_empty()
        || topic.len() > 200
        || topic.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Invalid(format!(
            "{topic:?} is not a topic name: 1 to 200 characters without whitespace"
        )));
    }
    Ok(())
}

impl Store {
    /// Subscribe `recipient` to `topic` (creating the topic). Subscribing again re-activates an
    /// unsubscribed or disabled subscriber, resets its failures and replaces its secret when
    /// one is given.
    pub async fn subscribe(&self, topic: &str, recipient: &Recipient) -> Result<Subscriber> {
        validate_topic(topic)?;
        recipient.validate().map_err(Error::Invalid)?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO fanout_topics (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(topic)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO fanout_subscribers (topic, channel, target, secret, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $5) \
             ON CONFLICT (topic, channel, target) DO UPDATE SET status = 'active', \
             consecutive_failures = 0, disabled_at = NULL, disabled_reason = NULL, \
             secret = COALESCE(excluded.secret, fanout_subscribers.secret), updated_at = $5",
        )
        .bind(topic)
        .bind(recipient.channel.as_str())
        .bind(&recipient.target)
        .bind(recipient.secret.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.find_subscriber(topic, recipient.channel, &recipient.target)
            .await?
            .ok_or_else(|| Error::Corrupt("a subscriber just written is not there".into()))
    }

    /// Subscribe many recipients to `topic` at once (an import), in one transaction, rows
    /// of 200 per statement; those already subscribed are left as they are. How many were
    /// added.
    pub async fn subscribe_many(&self, topic: &str, recipients: &[Recipient]) -> Result<u64> {
        validate_topic(topic)?;
        for r in recipients {
            r.validate().map_err(Error::Invalid)?;
        }
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO fanout_topics (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(topic)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let mut added = 0;
        for chunk in recipients.chunks(200) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    format!(
                        "($1, ${}, ${}, ${}, 'active', $2, $2)",
                        3 * i + 3,
                        3 * i + 4,
                        3 * i + 5
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO fanout_subscribers (topic, channel, target, secret, status, created_at, updated_at) \
                 VALUES {} ON CONFLICT (topic, channel, target) DO NOTHING",
                rows.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(topic).bind(now);
            for r in chunk {
                q = q
                    .bind(r.channel.as_str())
                    .bind(r.target.clone())
                    .bind(r.secret.clone());
            }
            added += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Unsubscribe; false when it was not subscribed (or already unsubscribed).
    pub async fn unsubscribe(&self, topic: &str, channel: Channel, target: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE fanout_subscribers SET status = 'unsubscribed', updated_at = $1 \
             WHERE topic = $2 AND channel = $3 AND target = $4 AND status <> 'unsubscribed'",
        )
        .bind(now_ms())
        .bind(topic)
        .bind(channel.as_str())
        .bind(target)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The subscriber of `topic` reached by `channel` at `target`.
    pub async fn find_subscriber(
        &self,
        topic: &str,
        channel: Channel,
        target: &str,
    ) -> Result<Option<Subscriber>> {
        let sql = format!("SELECT {COLUMNS} FROM fanout_subscribers WHERE topic = $1 AND channel = $2 AND target = $3");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(topic)
            .bind(channel.as_str())
            .bind(target)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Subscriber `id`.
    pub async fn subscriber(&self, id: i64) -> Result<Option<Subscriber>> {
        let sql = format!("SELECT {COLUMNS} FROM fanout_subscribers WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Whether `topic` exists.
    pub async fn topic_exists(&self, topic: &str) -> Result<bool> {
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT name FROM fanout_topics WHERE name = $1")
                .bind(topic)
                .fetch_optional(self.pool())
                .await?;
        Ok(exists.is_some())
    }

    /// Every subscriber of `topic` (any status), by id; `None` when there is no such topic.
    pub async fn subscribers(&self, topic: &str) -> Result<Option<Vec<Subscriber>>> {
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT name FROM fanout_topics WHERE name = $1")
                .bind(topic)
                .fetch_optional(self.pool())
                .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let sql = format!("SELECT {COLUMNS} FROM fanout_subscribers WHERE topic = $1 ORDER BY id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(topic)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect::<Result<_>>().map(Some)
    }

    /// Every topic, by name, with its counts.
    pub async fn topics(&self) -> Result<Vec<TopicInfo>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT t.name, \
             CAST(COALESCE(SUM(CASE WHEN s.status = 'active' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COUNT(s.id) AS BIGINT) \
             FROM fanout_topics t LEFT JOIN fanout_subscribers s ON s.topic = t.name \
             GROUP BY t.name ORDER BY t.name",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, active, subscribers)| TopicInfo {
                name,
                active,
                subscribers,
            })
            .collect())
    }

    /// A failed attempt to subscriber `id`.
    pub async fn subscriber_failed(&self, id: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE fanout_subscribers SET consecutive_failures = consecutive_failures + 1, \
             last_error = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A delivery to subscriber `id` succeeded.
    pub async fn subscriber_succeeded(&self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE fanout_subscribers SET consecutive_failures = 0, updated_at = $1 \
             WHERE id = $2 AND consecutive_failures <> 0",
        )
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Disable subscriber `id` (its endpoint is gone): it receives nothing until subscribed
    /// again.
    pub async fn disable(&self, id: i64, reason: &str) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE fanout_subscribers SET status = 'disabled', disabled_at = $1, \
             disabled_reason = $2, consecutive_failures = consecutive_failures + 1, \
             last_error = $2, updated_at = $1 WHERE id = $3 AND status = 'active'",
        )
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
