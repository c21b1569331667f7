//! Check runs (one per `links.check` job attempt) and the result of every link they checked.

use super::{now_ms, rfc3339, Store};
use crate::error::Result;
use celeriac_db::sqlx;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// A run's counts: what the job returns, as the seed job defined it, and more.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunCounts {
    /// Active links that are not whitelisted (whitelisted links are counted in `whitelisted`
    /// only), as the job this one replaces counted them.
    pub active_num: i64,
    /// Links checked (all of `active_num` once a run has finished).
    pub checked: i64,
    /// Checks that passed.
    pub ok: i64,
    /// Checks that failed (HTTP status, transport failure or missing backlink).
    pub failed: i64,
    /// Links hidden by this run.
    pub to_not_show: i64,
    /// Links shown again by this run (whitelisted hidden links included).
    pub to_show: i64,
    /// Active links skipped because they are whitelisted.
    pub whitelisted: i64,
    /// Distinct URLs fetched (duplicates are fetched once).
    pub fetches: i64,
}

/// One check run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckRun {
    /// Run id.
    pub id: i64,
    /// The job that ran it.
    pub job_id: Option<String>,
    /// `running`, `finished`, `failed` or `abandoned` (cut off by a crash or a timeout).
    pub state: String,
    /// The backlink looked for, if any.
    pub site_link: Option<String>,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339.
    pub finished_at: Option<String>,
    /// Counts.
    #[serde(flatten)]
    pub counts: RunCounts,
    /// Why the run failed.
    pub error: Option<String>,
}

/// The result of one link in one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkResult {
    /// Link row id.
    #[serde(skip)]
    pub link_id: i64,
    /// Link name.
    pub name: String,
    /// URL checked.
    pub url: String,
    /// `ok`, `no_backlink`, `http_status`, or a transport failure (`timeout`, `dns`, `connect`,
    /// `tls`, `too_many_redirects`, `blocked_address`, `body_too_large`, `invalid_url`, …).
    pub outcome: String,
    /// Final HTTP status, if a response came.
    pub status: Option<u16>,
    /// URL after redirects, when it differs.
    pub final_url: Option<String>,
    /// Redirects followed.
    pub redirects: i64,
    /// Requests made (retries included).
    pub attempts: i64,
    /// Time spent on this URL.
    pub elapsed_ms: i64,
    /// Detail of a failure.
    pub error: Option<String>,
    /// `hidden` or `shown` when this run changed the link.
    pub change: Option<String>,
}

fn run_from_row(row: &AnyRow) -> Result<CheckRun> {
    Ok(CheckRun {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        state: row.try_get("state")?,
        site_link: row.try_get("site_link")?,
        started_at: rfc3339(row.try_get("started_at")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(rfc3339),
        counts: RunCounts {
            active_num: row.try_get("active_num")?,
            checked: row.try_get("checked")?,
            ok: row.try_get("ok")?,
            failed: row.try_get("failed")?,
            to_not_show: row.try_get("to_not_show")?,
            to_show: row.try_get("to_show")?,
            whitelisted: row.try_get("whitelisted")?,
            fetches: row.try_get("fetches")?,
        },
        error: row.try_get("error")?,
    })
}

const RUN_COLUMNS: &str = "id, job_id, state, site_link, started_at, finished_at, active_num, \
     checked, ok, failed, to_not_show, to_show, whitelisted, fetches, error";

/// Rows per multi-row INSERT of results (12 values each, well under every bind limit).
const RESULTS_PER_INSERT: usize = 200;

impl Store {
    /// Record the start of a run; returns its id. Runs still marked `running` are marked
    /// `abandoned` (runs are one at a time, so they were cut off by a crash or a timeout).
    pub async fn start_run(&self, job_id: Option<&str>, site_link: Option<&str>) -> Result<i64> {
        sqlx::query(
            "UPDATE link_check_runs SET state = 'abandoned', finished_at = $1 WHERE state = 'running'",
        )
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        let row = sqlx::query(
            "INSERT INTO link_check_runs (job_id, state, site_link, started_at) VALUES ($1, 'running', $2, $3) RETURNING id",
        )
        .bind(job_id.map(str::to_string))
        .bind(site_link.map(str::to_string))
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Store the results of some links of run `run_id` (batched inserts, one transaction).
    pub async fn record_results(&self, run_id: i64, results: &[LinkResult]) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for chunk in results.chunks(RESULTS_PER_INSERT) {
            let mut values = Vec::with_capacity(chunk.len());
            for i in 0..chunk.len() {
                let b = i * 12;
                values.push(format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8,
                    b + 9,
                    b + 10,
                    b + 11,
                    b + 12
                ));
            }
            let sql = format!(
                "INSERT INTO link_check_results (run_id, link_id, name, url, outcome, status, final_url, \
                 redirects, attempts, elapsed_ms, error, change) VALUES {}",
                values.join(", ")
            );
            // Not cached: the text depends on the row count, and a cache of such statements
            // (up to 2,400 parameters each) would hold memory for nothing.
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for r in chunk {
                q = q
                    .bind(run_id)
                    .bind(r.link_id)
                    .bind(r.name.clone())
                    .bind(r.url.clone())
                    .bind(r.outcome.clone())
                    .bind(r.status.map(i64::from))
                    .bind(r.final_url.clone())
                    .bind(r.redirects)
                    .bind(r.attempts)
                    .bind(r.elapsed_ms)
                    .bind(r.error.clone())
                    .bind(r.change.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record the end of a run: `finished` with its counts, or `failed` with `error`.
    pub async fn finish_run(
        &self,
        run_id: i64,
        counts: &RunCounts,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE link_check_runs SET state = $1, finished_at = $2, active_num = $3, checked = $4, \
             ok = $5, failed = $6, to_not_show = $7, to_show = $8, whitelisted = $9, fetches = $10, \
             error = $11 WHERE id = $12",
        )
        .bind(if error.is_some() { "failed" } else { "finished" })
        .bind(now_ms())
        .bind(counts.active_num)
        .bind(counts.checked)
        .bind(counts.ok)
        .bind(counts.failed)
        .bind(counts.to_not_show)
        .bind(counts.to_show)
        .bind(counts.whitelisted)
        .bind(counts.fetches)
        .bind(error.map(str::to_string))
        .bind(run_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The `limit` most recent runs, newest first.
    pub async fn runs(&self, limit: i64) -> Result<Vec<CheckRun>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM link_check_runs ORDER BY id DESC LIMIT $1");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// One run (the newest when `id` is none).
    pub async fn run(&self, id: Option<i64>) -> Result<Option<CheckRun>> {
        let sql = match id {
            Some(_) => format!("SELECT {RUN_COLUMNS} FROM link_check_runs WHERE id = $1"),
            None => format!("SELECT {RUN_COLUMNS} FROM link_check_runs ORDER BY id DESC LIMIT 1"),
        };
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(id) = id {
            q = q.bind(id);
        }
        let row = q.fetch_optional(self.pool()).await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The results of run `run_id` by link name (byte order); only the failed ones and the changes when
    /// `problems_only`.
    pub async fn results(&self, run_id: i64, problems_only: bool) -> Result<Vec<LinkResult>> {
        let filter = if problems_only {
            " AND (outcome <> 'ok' OR change IS NOT NULL)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT link_id, name, url, outcome, status, final_url, redirects, attempts, elapsed_ms, \
             error, change FROM link_check_results WHERE run_id = $1{filter}"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(run_id)
            .fetch_all(self.pool())
            .await?;
        let mut results = rows
            .iter()
            .map(|row| {
                Ok(LinkResult {
                    link_id: row.try_get("link_id")?,
                    name: row.try_get("name")?,
                    url: row.try_get("url")?,
                    outcome: row.try_get("outcome")?,
                    status: row
                        .try_get::<Option<i64>, _>("status")?
                        .and_then(|s| u16::try_from(s).ok()),
                    final_url: row.try_get("final_url")?,
                    redirects: row.try_get("redirects")?,
                    attempts: row.try_get("attempts")?,
                    elapsed_ms: row.try_get("elapsed_ms")?,
                    error: row.try_get("error")?,
                    change: row.try_get("change")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Byte order, the same on every backend.
        results.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(results)
    }

    /// How long each link took in the newest finished run (link id → milliseconds).
    pub async fn last_durations(&self) -> Result<std::collections::HashMap<i64, i64>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT link_id, elapsed_ms FROM link_check_results WHERE run_id = \
             (SELECT MAX(id) FROM link_check_runs WHERE state = 'finished')",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Keep the `keep` most recent runs and their results; delete the older ones.
    pub async fn prune_runs(&self, keep: i64) -> Result<u64> {
        let cutoff: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM link_check_runs ORDER BY id DESC LIMIT 1 OFFSET $1")
                .bind(keep.max(1) - 1)
                .fetch_optional(self.pool())
                .await?;
        let Some((cutoff,)) = cutoff else {
            return Ok(0);
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM link_check_results WHERE run_id < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM link_check_runs WHERE id < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
