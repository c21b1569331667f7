//! Groups: the per-group switch (`enabled`) and `state` (`blocked` when the bot was found not
//! manageable there). A group without a row is enabled and active; a row appears the first
//! time an operator or the domain changes something about the group.

use super::{Store, Tx};
use crate::error::{Error, Result};
use crate::status::GroupState;
use celeriac_db::sqlx;
use serde::Serialize;

/// One group's switch and state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupRow {
    /// The group.
    pub group_id: i64,
    /// The operator's switch: a disabled group's joins are ignored and nothing is sent there.
    pub enabled: bool,
    /// `active`, or `blocked` until an operator enables the group again.
    pub state: GroupState,
    /// Why it is blocked, in words.
    pub detail: String,
    /// When it was blocked (ms).
    pub blocked_at: Option<i64>,
    /// Last change (ms).
    pub updated_at: i64,
}

impl GroupRow {
    /// Whether scans decide and actions are sent there (enabled and not blocked).
    pub fn runs(&self) -> bool {
        self.enabled && self.state == GroupState::Active
    }
}

type Raw = (i64, i64, String, String, Option<i64>, i64);

fn from_raw((group_id, enabled, state, detail, blocked_at, updated_at): Raw) -> Result<GroupRow> {
    Ok(GroupRow {
        group_id,
        enabled: enabled != 0,
        state: state
            .parse()
            .map_err(|e: crate::status::UnknownWord| Error::Corrupt(e.to_string()))?,
        detail,
        blocked_at,
        updated_at,
    })
}

const COLUMNS: &str = "group_id, enabled, state, detail, blocked_at, updated_at";

impl Store {
    /// One group's row (`None`: never changed, so enabled and active).
    pub async fn group(&self, group: i64) -> Result<Option<GroupRow>> {
        let sql = format!("SELECT {COLUMNS} FROM verification_groups WHERE group_id = $1");
        let row: Option<Raw> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(group)
            .fetch_optional(self.pool())
            .await?;
        row.map(from_raw).transpose()
    }

    /// Whether scans decide and actions are sent in `group`.
    pub async fn group_runs(&self, group: i64) -> Result<bool> {
        Ok(self.group(group).await?.is_none_or(|g| g.runs()))
    }

    /// Every group with a row.
    pub async fn groups(&self) -> Result<Vec<GroupRow>> {
        let sql = format!("SELECT {COLUMNS} FROM verification_groups ORDER BY group_id");
        let rows: Vec<Raw> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(from_raw).collect()
    }

    /// The groups that do not run (disabled or blocked).
    pub async fn stopped_groups(&self) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT group_id FROM verification_groups WHERE enabled = 0 OR state <> 'active' \
             ORDER BY group_id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(g,)| g).collect())
    }

    /// Turn the operator's switch of `group`; enabling also clears a block. The row after.
    pub async fn set_group_enabled(&self, group: i64, enabled: bool, now: i64) -> Result<GroupRow> {
        let sql = if enabled {
            "INSERT INTO verification_groups (group_id, enabled, state, updated_at) \
             VALUES ($1, 1, 'active', $2) ON CONFLICT (group_id) DO UPDATE SET enabled = 1, \
             state = 'active', detail = '', blocked_at = NULL, updated_at = $2"
        } else {
            "INSERT INTO verification_groups (group_id, enabled, state, updated_at) \
             VALUES ($1, 0, 'active', $2) ON CONFLICT (group_id) DO UPDATE SET enabled = 0, \
             updated_at = $2"
        };
        sqlx::query(sql)
            .bind(group)
            .bind(now)
            .execute(self.pool())
            .await?;
        self.group(group)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("group {group} has no row after its upsert")))
    }

    /// Block `group` (the bot is not manageable there); true only for the call that blocked
    /// it, so the admins are alerted once per block.
    pub async fn block_group(
        &self,
        tx: &mut Tx,
        group: i64,
        detail: &str,
        now: i64,
    ) -> Result<bool> {
        sqlx::query(
            "INSERT INTO verification_groups (group_id, enabled, state, updated_at) \
             VALUES ($1, 1, 'active', $2) ON CONFLICT (group_id) DO NOTHING",
        )
        .bind(group)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let done = sqlx::query(
            "UPDATE verification_groups SET state = 'blocked', detail = $1, blocked_at = $2, \
             updated_at = $2 WHERE group_id = $3 AND state = 'active'",
        )
        .bind(detail.to_string())
        .bind(now)
        .bind(group)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
