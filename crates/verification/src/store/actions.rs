//! The outbox: OneBot actions decided by a transition, inserted in its transaction, performed
//! afterwards in order per group, each claimed atomically so that two drains never perform the
//! same action at once.

use super::{Store, Tx};
use crate::error::{Error, Result};
use crate::status::{ActionState, Purpose};
use celeriac_db::sqlx;
use celeriac_onebot::Action;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

/// An action to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAction {
    /// The bot account that performs it.
    pub bot_id: i64,
    /// The group it is about (its drain performs it).
    pub group_id: i64,
    /// The member it is about, if one.
    pub user_id: Option<i64>,
    /// The member's round it is about.
    pub round: Option<i64>,
    /// Why.
    pub purpose: Purpose,
    /// The OneBot action.
    pub action: Action,
    /// Its parameters.
    pub params: Value,
}

/// An action as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionRow {
    /// Id (actions of a group are performed in id order).
    pub id: i64,
    /// Bot account.
    pub bot_id: i64,
    /// Group.
    pub group_id: i64,
    /// Member, if one.
    pub user_id: Option<i64>,
    /// Member's round.
    pub round: Option<i64>,
    /// Why.
    pub purpose: Purpose,
    /// OneBot action name.
    pub action: String,
    /// Parameters.
    pub params: Value,
    /// Where it stands.
    pub state: ActionState,
    /// Tries so far.
    pub attempts: i64,
    /// The last failure.
    pub error: Option<String>,
    /// What OneBot answered (a message id).
    pub result: Option<String>,
    /// The reply's retcode: 0 for `ok`, the failure's when OneBot reported one.
    pub retcode: Option<i64>,
    /// When it was decided (ms).
    pub created_at: i64,
    /// When it ended (ms).
    pub finished_at: Option<i64>,
    /// While running: until when its drain owns it (ms).
    #[serde(skip)]
    pub claimed_until: Option<i64>,
}

/// Actions by state, all groups together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ActionCounts {
    /// Count per state (every state present).
    pub by_state: BTreeMap<&'static str, i64>,
}

const COLUMNS: &str = "id, bot_id, group_id, user_id, round, purpose, action, params, state, \
    attempts, error, result, retcode, created_at, finished_at, claimed_until";

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Corrupt(e.to_string())
}

fn action_from_row(row: &AnyRow) -> Result<ActionRow> {
    let purpose: String = row.try_get("purpose")?;
    let state: String = row.try_get("state")?;
    let params: String = row.try_get("params")?;
    Ok(ActionRow {
        id: row.try_get("id")?,
        bot_id: row.try_get("bot_id")?,
        group_id: row.try_get("group_id")?,
        user_id: row.try_get("user_id")?,
        round: row.try_get("round")?,
        purpose: purpose.parse().map_err(corrupt)?,
        action: row.try_get("action")?,
        params: serde_json::from_str(&params).map_err(corrupt)?,
        state: state.parse().map_err(corrupt)?,
        attempts: row.try_get("attempts")?,
        error: row.try_get("error")?,
        result: row.try_get("result")?,
        retcode: row.try_get("retcode")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
        claimed_until: row.try_get("claimed_until")?,
    })
}

impl Store {
    /// Insert `actions` (in this order) in the transition's transaction.
    pub async fn insert_actions(&self, tx: &mut Tx, actions: &[NewAction], now: i64) -> Result<()> {
        for a in actions {
            sqlx::query(
                "INSERT INTO verification_actions (bot_id, group_id, user_id, round, purpose, \
                 action, params, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)",
            )
            .bind(a.bot_id)
            .bind(a.group_id)
            .bind(a.user_id)
            .bind(a.round)
            .bind(a.purpose.as_str())
            .bind(a.action.as_str())
            .bind(a.params.to_string())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// The open (pending or running) actions of `group`, oldest first, at most `limit`.
    pub async fn open_actions(&self, group: i64, limit: i64) -> Result<Vec<ActionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM verification_actions \
             WHERE group_id = $1 AND state IN ('pending', 'running') ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(group)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(action_from_row).collect()
    }

    /// Groups with open actions.
    pub async fn groups_with_open_actions(&self) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT DISTINCT group_id FROM verification_actions \
             WHERE state IN ('pending', 'running') ORDER BY group_id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(g,)| g).collect())
    }

    /// Take action `id` to perform it until `until`: it must be pending, or running under a
    /// lease that ended before `now` (its drain died). Counts a try. False if another drain
    /// has it.
    pub async fn claim_action(&self, id: i64, now: i64, until: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE verification_actions SET state = 'running', claimed_until = $1, \
             attempts = attempts + 1 WHERE id = $2 AND \
             (state = 'pending' OR (state = 'running' AND claimed_until < $3))",
        )
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// End a running action as `state` (done, skipped or failed) with what OneBot answered or
    /// the error, and the reply's retcode. Only the drain that claimed it (`until`, its lease)
    /// ends it.
    #[allow(
        clippy::too_many_arguments,
        reason = "one column each; a struct would only rename them"
    )]
    pub async fn finish_action(
        &self,
        id: i64,
        until: i64,
        state: ActionState,
        result: Option<String>,
        error: Option<String>,
        retcode: Option<i64>,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE verification_actions SET state = $1, result = $2, error = $3, \
             finished_at = $4, claimed_until = NULL, retcode = $7 \
             WHERE id = $5 AND state = 'running' AND claimed_until = $6",
        )
        .bind(state.as_str())
        .bind(result)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(until)
        .bind(retcode)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Hand a running action back (a transient failure) for a later try, or end it as failed
    /// once it had `max_attempts` tries. Returns the state it is left in.
    pub async fn release_action(
        &self,
        id: i64,
        until: i64,
        error: &str,
        retcode: Option<i64>,
        max_attempts: i64,
        now: i64,
    ) -> Result<ActionState> {
        let done = sqlx::query(
            "UPDATE verification_actions SET \
             state = CASE WHEN attempts >= $1 THEN 'failed' ELSE 'pending' END, \
             finished_at = CASE WHEN attempts >= $1 THEN $2 ELSE NULL END, \
             error = $3, claimed_until = NULL, retcode = $6 \
             WHERE id = $4 AND state = 'running' AND claimed_until = $5",
        )
        .bind(max_attempts)
        .bind(now)
        .bind(error.to_string())
        .bind(id)
        .bind(until)
        .bind(retcode)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Ok(ActionState::Running);
        }
        let (state,): (String,) =
            sqlx::query_as("SELECT state FROM verification_actions WHERE id = $1")
                .bind(id)
                .fetch_one(self.pool())
                .await?;
        state.parse().map_err(corrupt)
    }

    /// Hand back a running action untried (risk control paused the account, or the group
    /// was blocked): back to `pending` with the try it was claimed with taken back, so a
    /// pause never uses up `action_attempts`.
    pub async fn unclaim_action(&self, id: i64, until: i64, error: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE verification_actions SET state = 'pending', claimed_until = NULL, \
             attempts = attempts - 1, error = $1 \
             WHERE id = $2 AND state = 'running' AND claimed_until = $3",
        )
        .bind(error.to_string())
        .bind(id)
        .bind(until)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Delete the finished actions (done, skipped, failed) that ended before `before`: the
    /// retention that bounds the log. The number deleted.
    pub async fn prune_actions(&self, before: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM verification_actions WHERE finished_at < $1 \
             AND state IN ('done', 'skipped', 'failed')",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// A member's actions, oldest first (every round).
    pub async fn member_actions(&self, group: i64, user: i64) -> Result<Vec<ActionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM verification_actions \
             WHERE group_id = $1 AND (user_id = $2 OR params LIKE $3) ORDER BY id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(group)
            .bind(user)
            .bind(format!("%\"qq\":\"{user}\"%"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(action_from_row).collect()
    }

    /// Actions by state.
    pub async fn action_counts(&self) -> Result<ActionCounts> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM verification_actions GROUP BY state")
                .fetch_all(self.pool())
                .await?;
        let mut by_state: BTreeMap<&'static str, i64> =
            ActionState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for (state, n) in rows {
            let state: ActionState = state.parse().map_err(corrupt)?;
            by_state.insert(state.as_str(), n);
        }
        Ok(ActionCounts { by_state })
    }

    /// The failed actions, newest first.
    pub async fn failed_actions(&self, limit: i64) -> Result<Vec<ActionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM verification_actions WHERE state = 'failed' \
             ORDER BY id DESC LIMIT $1"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(action_from_row).collect()
    }
}
