//! Members under verification: reads, and the guarded transitions that change them.

use super::{Store, Tx};
use crate::error::{Error, Result};
use crate::status::Status;
use celeriac_db::sqlx;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

/// One member of one group, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The group.
    pub group_id: i64,
    /// The member.
    pub user_id: i64,
    /// The bot account that saw the join (and acts in the group).
    pub bot_id: i64,
    /// Joins so far (a new join starts a new round with a new code).
    pub round: i64,
    /// Where the member stands.
    pub status: Status,
    /// The code to answer.
    pub code: String,
    /// When they joined (ms).
    pub joined_at: i64,
    /// Reminders still to send before the kick.
    pub warnings_left: i64,
    /// When the last reminder was decided (ms).
    pub last_warning_at: Option<i64>,
    /// When a scan next acts on them (ms; meaningful while pending).
    pub next_warning_at: i64,
    /// Wrong answers this round.
    pub wrong_answers: i64,
    /// The welcome message, once sent (recalled when verification ends).
    pub prompt_message_id: Option<i64>,
    /// When verification ended (ms).
    pub ended_at: Option<i64>,
    /// Why it ended, in words.
    pub detail: String,
    /// Last change (ms).
    pub updated_at: i64,
}

/// A join to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    /// The group.
    pub group_id: i64,
    /// Who joined.
    pub user_id: i64,
    /// The bot account.
    pub bot_id: i64,
    /// When (ms, the event's time).
    pub joined_at: i64,
    /// Their code.
    pub code: String,
    /// Reminders before the kick.
    pub warnings: i64,
    /// When the first scan step is due (ms).
    pub next_warning_at: i64,
}

/// What a scan decided for a due member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarnOrKick {
    /// Reminded: `warnings_left` went down by one.
    Warned(Member),
    /// Reminders ran out: now `kicking` (the kick is decided, not yet answered).
    Kicked(Member),
}

/// Which members to list.
#[derive(Clone, Debug, Default)]
pub struct MemberFilter {
    /// Only this group.
    pub group: Option<i64>,
    /// Only this member.
    pub user: Option<i64>,
    /// Only this status.
    pub status: Option<Status>,
    /// At most this many, newest change first.
    pub limit: i64,
}

/// Members of one group by status, and its next due step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupStats {
    /// The group.
    pub group_id: i64,
    /// Members by status (every status present, 0 when none).
    pub members: BTreeMap<&'static str, i64>,
    /// The earliest due step of a pending member (ms).
    pub next_warning_at: Option<i64>,
}

const COLUMNS: &str = "group_id, user_id, bot_id, round, status, code, joined_at, warnings_left, \
    last_warning_at, next_warning_at, wrong_answers, prompt_message_id, ended_at, detail, updated_at";

fn member_from_row(row: &AnyRow) -> Result<Member> {
    let status: String = row.try_get("status")?;
    Ok(Member {
        group_id: row.try_get("group_id")?,
        user_id: row.try_get("user_id")?,
        bot_id: row.try_get("bot_id")?,
        round: row.try_get("round")?,
        status: status
            .parse()
            .map_err(|e: crate::status::UnknownWord| Error::Corrupt(e.to_string()))?,
        code: row.try_get("code")?,
        joined_at: row.try_get("joined_at")?,
        warnings_left: row.try_get("warnings_left")?,
        last_warning_at: row.try_get("last_warning_at")?,
        next_warning_at: row.try_get("next_warning_at")?,
        wrong_answers: row.try_get("wrong_answers")?,
        prompt_message_id: row.try_get("prompt_message_id")?,
        ended_at: row.try_get("ended_at")?,
        detail: row.try_get("detail")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// One member.
    pub async fn member(&self, group: i64, user: i64) -> Result<Option<Member>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM verification_members WHERE group_id = $1 AND user_id = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(group)
            .bind(user)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(member_from_row).transpose()
    }

    /// The member inside a transaction.
    pub async fn member_in(&self, tx: &mut Tx, group: i64, user: i64) -> Result<Option<Member>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM verification_members WHERE group_id = $1 AND user_id = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(group)
            .bind(user)
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(member_from_row).transpose()
    }

    /// A user's pending rows in every group.
    pub async fn pending_of_user(&self, user: i64) -> Result<Vec<Member>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM verification_members WHERE user_id = $1 AND status = 'pending' ORDER BY group_id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// Members matching `filter`, newest change first.
    pub async fn list(&self, filter: &MemberFilter) -> Result<Vec<Member>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM verification_members \
             WHERE ($1 = 0 OR group_id = $2) AND ($3 = 0 OR user_id = $4) AND ($5 = '' OR status = $6) \
             ORDER BY updated_at DESC, group_id, user_id LIMIT $7"
        );
        let status = filter.status.map(Status::as_str).unwrap_or("");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(i64::from(filter.group.is_some()))
            .bind(filter.group.unwrap_or(0))
            .bind(i64::from(filter.user.is_some()))
            .bind(filter.user.unwrap_or(0))
            .bind(status)
            .bind(status)
            .bind(filter.limit.max(1))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// Groups with a pending member whose next step is due at `now`, less the groups that do
    /// not run (disabled or blocked).
    pub async fn due_groups(&self, now: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT DISTINCT m.group_id FROM verification_members m \
             LEFT JOIN verification_groups g ON g.group_id = m.group_id \
             WHERE m.status = 'pending' AND m.next_warning_at <= $1 \
             AND (g.group_id IS NULL OR (g.enabled = 1 AND g.state = 'active')) \
             ORDER BY m.group_id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(g,)| g).collect())
    }

    /// How many members of `group` are pending (one group's count, through the group's index:
    /// a group job's report must not count every group's members).
    pub async fn pending_in(&self, group: i64) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM verification_members WHERE group_id = $1 AND status = 'pending'",
        )
        .bind(group)
        .fetch_one(self.pool())
        .await?;
        Ok(n)
    }

    /// Members by status per group, with each group's next due step.
    pub async fn group_stats(&self) -> Result<Vec<GroupStats>> {
        let rows: Vec<(i64, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT group_id, status, COUNT(*), MIN(CASE WHEN status = 'pending' THEN next_warning_at END) \
             FROM verification_members GROUP BY group_id, status ORDER BY group_id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut groups: Vec<GroupStats> = Vec::new();
        for (group, status, count, due) in rows {
            let status: Status = status
                .parse()
                .map_err(|e: crate::status::UnknownWord| Error::Corrupt(e.to_string()))?;
            if groups.last().is_none_or(|g| g.group_id != group) {
                groups.push(GroupStats {
                    group_id: group,
                    members: Status::ALL.iter().map(|s| (s.as_str(), 0)).collect(),
                    next_warning_at: None,
                });
            }
            let g = groups.last_mut().expect("pushed above");
            g.members.insert(status.as_str(), count);
            if due.is_some() {
                g.next_warning_at = due;
            }
        }
        Ok(groups)
    }

    /// Record a first join; false if the member already has a row.
    pub async fn insert_join(&self, tx: &mut Tx, join: &Join, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO verification_members (group_id, user_id, bot_id, round, status, code, \
             joined_at, warnings_left, next_warning_at, updated_at) \
             VALUES ($1, $2, $3, 1, 'pending', $4, $5, $6, $7, $8) \
             ON CONFLICT (group_id, user_id) DO NOTHING",
        )
        .bind(join.group_id)
        .bind(join.user_id)
        .bind(join.bot_id)
        .bind(join.code.clone())
        .bind(join.joined_at)
        .bind(join.warnings)
        .bind(join.next_warning_at)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Start a new round for a member seen before (round `round`); false if the row changed
    /// meanwhile.
    pub async fn rejoin(&self, tx: &mut Tx, round: i64, join: &Join, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE verification_members SET bot_id = $1, round = round + 1, status = 'pending', \
             code = $2, joined_at = $3, warnings_left = $4, last_warning_at = NULL, next_warning_at = $5, \
             wrong_answers = 0, prompt_message_id = NULL, ended_at = NULL, detail = '', \
             updated_at = $6 WHERE group_id = $7 AND user_id = $8 AND round = $9",
        )
        .bind(join.bot_id)
        .bind(join.code.clone())
        .bind(join.joined_at)
        .bind(join.warnings)
        .bind(join.next_warning_at)
        .bind(now)
        .bind(join.group_id)
        .bind(join.user_id)
        .bind(round)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Move `member` (as read) from `from` to `to`, recording `detail`; false if it was no
    /// longer in `from` in that round (someone else moved it first).
    pub async fn transition(
        &self,
        tx: &mut Tx,
        member: &Member,
        from: Status,
        to: Status,
        detail: &str,
        now: i64,
    ) -> Result<bool> {
        debug_assert!(from.can_transition_to(to), "{from} -> {to}");
        if !from.can_transition_to(to) {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE verification_members SET status = $1, detail = $2, \
             ended_at = CASE WHEN $8 = 1 THEN COALESCE(ended_at, $3) ELSE NULL END, \
             updated_at = $3 \
             WHERE group_id = $4 AND user_id = $5 AND round = $6 AND status = $7",
        )
        .bind(to.as_str())
        .bind(detail.to_string())
        .bind(now)
        .bind(member.group_id)
        .bind(member.user_id)
        .bind(member.round)
        .bind(from.as_str())
        .bind(i64::from(to.is_closed()))
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A kick that failed for good (neither gone nor not manageable): the member `(group,
    /// user, round)` goes from `kicking` back to `pending`, the kick due again at `next`;
    /// false if the row moved meanwhile.
    pub async fn kick_failed(
        &self,
        tx: &mut Tx,
        (group, user, round): (i64, i64, i64),
        next: i64,
        detail: &str,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE verification_members SET status = 'pending', next_warning_at = $1, \
             detail = $2, updated_at = $3 \
             WHERE group_id = $4 AND user_id = $5 AND round = $6 AND status = 'kicking'",
        )
        .bind(next)
        .bind(detail.to_string())
        .bind(now)
        .bind(group)
        .bind(user)
        .bind(round)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Pending members of `group` due at `now`.
    pub async fn due_members(&self, tx: &mut Tx, group: i64, now: i64) -> Result<Vec<Member>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM verification_members \
             WHERE group_id = $1 AND status = 'pending' AND next_warning_at <= $2 ORDER BY next_warning_at, user_id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(group)
            .bind(now)
            .fetch_all(&mut **tx)
            .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// The scan's step for a due member: a reminder while some are left (the next step due
    /// `next_in_ms` from now), else the kick. `None` if the member changed since it was read.
    pub async fn warn_or_kick(
        &self,
        tx: &mut Tx,
        member: &Member,
        next_in_ms: i64,
        now: i64,
    ) -> Result<Option<WarnOrKick>> {
        let guard = "WHERE group_id = $1 AND user_id = $2 AND round = $3 AND status = 'pending' AND next_warning_at = $4";
        if member.warnings_left > 0 {
            let sql = format!(
                "UPDATE verification_members SET warnings_left = warnings_left - 1, \
                 last_warning_at = $5, next_warning_at = $6, updated_at = $5 {guard}"
            );
            let done = sqlx::query(AssertSqlSafe(sql))
                .bind(member.group_id)
                .bind(member.user_id)
                .bind(member.round)
                .bind(member.next_warning_at)
                .bind(now)
                .bind(now + next_in_ms)
                .execute(&mut **tx)
                .await?;
            let mut after = member.clone();
            after.warnings_left -= 1;
            after.last_warning_at = Some(now);
            after.next_warning_at = now + next_in_ms;
            return Ok((done.rows_affected() == 1).then_some(WarnOrKick::Warned(after)));
        }
        // `kicking`, not `kicked`: the kick is decided (and in the outbox) but only OneBot's
        // `ok` makes it `kicked`.
        let sql = format!(
            "UPDATE verification_members SET status = 'kicking', updated_at = $5, \
             detail = $6 {guard}"
        );
        let detail = "no answer after every reminder: kick decided";
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(member.group_id)
            .bind(member.user_id)
            .bind(member.round)
            .bind(member.next_warning_at)
            .bind(now)
            .bind(detail)
            .execute(&mut **tx)
            .await?;
        let mut after = member.clone();
        after.status = Status::Kicking;
        after.detail = detail.into();
        Ok((done.rows_affected() == 1).then_some(WarnOrKick::Kicked(after)))
    }

    /// Count a wrong answer of a pending member (round `round`), up to `max`; the wrong
    /// answers left after it, or `None` when it was not counted (no longer pending, or none
    /// left).
    pub async fn count_wrong_answer(
        &self,
        tx: &mut Tx,
        member: &Member,
        max: i64,
        now: i64,
    ) -> Result<Option<i64>> {
        let done = sqlx::query(
            "UPDATE verification_members SET wrong_answers = wrong_answers + 1, updated_at = $1 \
             WHERE group_id = $2 AND user_id = $3 AND round = $4 AND status = 'pending' \
             AND wrong_answers < $5",
        )
        .bind(now)
        .bind(member.group_id)
        .bind(member.user_id)
        .bind(member.round)
        .bind(max)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let (wrong,): (i64,) = sqlx::query_as(
            "SELECT wrong_answers FROM verification_members WHERE group_id = $1 AND user_id = $2",
        )
        .bind(member.group_id)
        .bind(member.user_id)
        .fetch_one(&mut **tx)
        .await?;
        Ok(Some(max - wrong))
    }

    /// Remember the welcome message of round `round` (to recall it later).
    pub async fn set_prompt_message(
        &self,
        group: i64,
        user: i64,
        round: i64,
        message_id: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE verification_members SET prompt_message_id = $1 \
             WHERE group_id = $2 AND user_id = $3 AND round = $4",
        )
        .bind(message_id)
        .bind(group)
        .bind(user)
        .bind(round)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
