//! `links.check`: check every active friend link, hide the broken ones and show again the ones
//! that recovered.
//!
//! Payload (every field optional): `{"site_link": "https://our.site", "whitelist": ["name"],
//! "site_link_regex": false}`. `site_link` falls back to `[links] site_link`; the whitelist is
//! joined with `[links] whitelist`.
//!
//! Semantics (kept from the job this one replaces, where users rely on them):
//! - every active link is checked, except whitelisted names, which are never fetched (a hidden
//!   whitelisted link is shown again, and counted in `to_show`);
//! - a link that does not answer 200 is hidden with the reason `网页请求返回{code}`; with a
//!   `site_link`, a page without it is hidden with `网站未设置本站外链`; transport failures get
//!   their own reasons (see [`fetch::Failure::reason`]), never a made-up status code;
//! - a hidden link that passes again is shown again;
//! - the result is `{"active_num", "to_not_show", "to_show", …}` (`active_num`: the active
//!   links that are not whitelisted, as the replaced job counted them) plus the run id under
//!   which every link's result is kept (`celeriac links results RUN`).
//!
//! Only links whose state changed are written. One run at a time: a `links.check` that starts
//! while another runs is snoozed until the other finishes (it is not dropped, so a check asked
//! for after a change of links always happens); the run holds an [`Exclusive`] lock.

use crate::body::Backlink;
use crate::config::LinksConfig;
use crate::error::{Error, Result};
use crate::fetch::{Checked, Fetcher};
use crate::plan::{decide, group_by_url, shares_hosts};
use crate::store::{Link, LinkResult, LinkState, RunCounts, Store};
use crate::{CheckLinks, Context, LOCK, LOCK_TTL, WAIT_FOR_OTHER_RUN};
use celeriac_worker::exclusive::Exclusive;
use celeriac_worker::{Job, Outcome, Progress};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::HashSet;
use std::time::Instant;
use tracing::{info, warn};

/// Results written to the database per transaction.
const WRITE_BATCH: usize = 200;
/// Names listed in the job result per change (all of them are in the run's results).
const NAMES_IN_RESULT: usize = 50;

/// Run one `links.check` job.
pub(crate) async fn handle(context: &Context, payload: CheckLinks, job: Job) -> Outcome {
    match check(context, payload, &job).await {
        Ok(Some(summary)) => Outcome::Done(serde_json::to_value(summary).ok()),
        Ok(None) => {
            info!(
                "another links.check run holds the lock; waiting {}s",
                WAIT_FOR_OTHER_RUN.as_secs()
            );
            Outcome::Snooze(WAIT_FOR_OTHER_RUN)
        }
        Err(e) => e.into(),
    }
}

/// The run, or `None` when another run holds the lock.
async fn check(context: &Context, payload: CheckLinks, job: &Job) -> Result<Option<Summary>> {
    let config = &context.config;
    let regex = payload.site_link_regex.unwrap_or(config.site_link_regex);
    let site_link = payload
        .site_link
        .or(config.site_link.clone())
        .filter(|s| !s.is_empty());
    let backlink = match &site_link {
        None => None,
        Some(s) if regex => {
            Some(Backlink::Regex(regex::Regex::new(s).map_err(|e| {
                Error::Payload(format!("site_link is not a valid regex: {e}"))
            })?))
        }
        Some(s) => Some(Backlink::Literal(s.clone())),
    };
    let store = Store::new(context.db.get().await?.clone());
    let Some(held) = Exclusive::try_acquire(&context.broker, LOCK, job, LOCK_TTL).await? else {
        return Ok(None);
    };
    let mut whitelist: HashSet<String> = payload.whitelist.iter().cloned().collect();
    whitelist.extend(config.whitelist.iter().cloned());
    let run = Run {
        store: &store,
        config,
        backlink: backlink.as_ref(),
        site_link,
        whitelist,
        progress: &job.progress,
        job_id: &job.id,
    };
    let summary = held.run(run.run()).await??;
    // The last act: the final progress, so that what a worker sends with the outcome (and
    // `celeriac status` shows beside the result) is the end of the run, not a count from its
    // middle.
    job.progress.set(&RunProgress {
        run_id: summary.run_id,
        done: summary.counts.checked,
        total: summary.counts.active_num,
        failed: summary.counts.failed,
    });
    Ok(Some(summary))
}

/// What the job returns.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Counts, as the seed job returned them (`active_num`, `to_not_show`, `to_show`) and more.
    #[serde(flatten)]
    pub counts: RunCounts,
    /// The run; `celeriac links results RUN` lists every link's result.
    pub run_id: i64,
    /// Wall time of the run.
    pub elapsed_ms: u64,
    /// Names hidden by this run (the first 50).
    pub hidden: Vec<String>,
    /// Names shown again by this run (the first 50).
    pub shown: Vec<String>,
}

/// Progress reported while a run goes on, and at its end (then `done` = `total` =
/// `active_num`, and `failed` is the result's).
#[derive(Serialize)]
struct RunProgress {
    run_id: i64,
    done: i64,
    total: i64,
    failed: i64,
}

struct Run<'a> {
    store: &'a Store,
    config: &'a LinksConfig,
    backlink: Option<&'a Backlink>,
    site_link: Option<String>,
    whitelist: HashSet<String>,
    progress: &'a Progress,
    job_id: &'a str,
}

/// Results not yet written.
#[derive(Default)]
struct Pending {
    states: Vec<LinkState>,
    results: Vec<LinkResult>,
}

impl Run<'_> {
    async fn run(&self) -> Result<Summary> {
        let started = Instant::now();
        let links = self.store.active_links().await?;
        let run_id = self
            .store
            .start_run(Some(self.job_id), self.site_link.as_deref())
            .await?;
        let outcome = self.check(run_id, links, started).await;
        match &outcome {
            Ok(summary) => {
                self.store.finish_run(run_id, &summary.counts, None).await?;
                info!(
                    run_id,
                    active = summary.counts.active_num,
                    checked = summary.counts.checked,
                    failed = summary.counts.failed,
                    hidden = summary.counts.to_not_show,
                    shown = summary.counts.to_show,
                    elapsed_ms = summary.elapsed_ms,
                    "links checked"
                );
            }
            Err(e) => {
                let _ = self
                    .store
                    .finish_run(run_id, &RunCounts::default(), Some(&e.to_string()))
                    .await;
            }
        }
        if let Err(e) = self.store.prune_runs(self.config.keep_runs).await {
            warn!(error = %e, "could not delete old check runs");
        }
        outcome
    }

    async fn check(&self, run_id: i64, links: Vec<Link>, started: Instant) -> Result<Summary> {
        let mut counts = RunCounts::default();
        let mut hidden = Vec::new();
        let mut shown = Vec::new();
        let mut pending = Pending::default();

        let (whitelisted, to_check): (Vec<Link>, Vec<Link>) = links
            .into_iter()
            .partition(|l| self.whitelist.contains(&l.name));
        // As the final code of the job this one replaces counted: whitelisted links are not in
        // `active_num` (its own report went from 24 to 20 with that change), but a hidden one
        // shown again is in `to_show`.
        counts.active_num = to_check.len() as i64;
        counts.whitelisted = whitelisted.len() as i64;
        for link in whitelisted.iter().filter(|l| !l.is_show) {
            let mut state = link.state();
            state.is_show = true;
            state.not_show_reason.clear();
            pending.states.push(state);
            counts.to_show += 1;
            shown.push(link.name.clone());
        }

        let total = to_check.len() as i64;
        // Links that were slow last time go first, so they do not stretch the end of the run.
        let durations = self.store.last_durations().await.unwrap_or_default();
        let groups = group_by_url(to_check, &durations);
        counts.fetches = groups.len() as i64;
        let fetcher = Fetcher::with_reuse(self.config, shares_hosts(&groups))?;
        let fetcher = &fetcher;
        let backlink = self.backlink;

        // Checking and recording run side by side, so a slow database write never pauses the
        // checks in flight (their deadlines would keep running).
        let (results, mut received) = tokio::sync::mpsc::unbounded_channel();
        let concurrency = self.config.concurrency;
        let check_all = async move {
            // First pass: every URL once. A transient failure (5xx, 429, a timeout, a reset)
            // is put aside rather than retried on the spot, so that no link waits behind
            // another's retries and a run lasts about as long as its slowest link.
            let mut again = Vec::new();
            let mut firsts = futures_util::stream::iter(groups)
                .map(|(url, links)| async move { (links, fetcher.first(&url, backlink).await) })
                .buffer_unordered(concurrency);
            while let Some((links, checked)) = firsts.next().await {
                match checked {
                    Checked::Done(report) => {
                        if results.send((links, report)).is_err() {
                            return Ok(());
                        }
                    }
                    Checked::Retry(retry) => again.push((links, retry)),
                }
            }
            drop(firsts);
            // Second pass: their retries (none after a second timeout), so one blip does not
            // hide a link.
            let mut retried = futures_util::stream::iter(again)
                .map(|(links, retry)| async move { (links, fetcher.retry(retry, backlink).await) })
                .buffer_unordered(concurrency);
            while let Some(item) = retried.next().await {
                if results.send(item).is_err() {
                    break;
                }
            }
            Ok::<(), Error>(())
        };
        let record_all = async {
            let mut done = 0;
            self.progress.set(&RunProgress {
                run_id,
                done,
                total,
                failed: 0,
            });
            while let Some((links, report)) = received.recv().await {
                for link in links {
                    let (state, result) = decide(&link, &report, self.config.hide_after_failures);
                    counts.checked += 1;
                    if report.failure.is_some() {
                        counts.failed += 1;
                    } else {
                        counts.ok += 1;
                    }
                    match result.change.as_deref() {
                        Some("hidden") => {
                            counts.to_not_show += 1;
                            if hidden.len() < NAMES_IN_RESULT {
                                hidden.push(link.name.clone());
                            }
                        }
                        Some("shown") => {
                            counts.to_show += 1;
                            if shown.len() < NAMES_IN_RESULT {
                                shown.push(link.name.clone());
                            }
                        }
                        _ => {}
                    }
                    if let Some(state) = state {
                        pending.states.push(state);
                    }
                    pending.results.push(result);
                    done += 1;
                }
                if pending.results.len() >= WRITE_BATCH {
                    self.flush(run_id, &mut pending).await?;
                }
                self.progress.set(&RunProgress {
                    run_id,
                    done,
                    total,
                    failed: counts.failed,
                });
            }
            Ok::<(), Error>(())
        };
        tokio::try_join!(check_all, record_all)?;
        self.flush(run_id, &mut pending).await?;
        shown.truncate(NAMES_IN_RESULT);
        Ok(Summary {
            counts,
            run_id,
            elapsed_ms: started.elapsed().as_millis() as u64,
            hidden,
            shown,
        })
    }

    async fn flush(&self, run_id: i64, pending: &mut Pending) -> Result<()> {
        let p = std::mem::take(pending);
        self.store.write_link_states(&p.states).await?;
        self.store.record_results(run_id, &p.results).await
    }
}
