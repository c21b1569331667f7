//! `links.check`: check every active friend link, hide the broken ones and show again the ones
//! that recovered.
//!
//! Payload (every field optional): `{"site_link": "https://our.site", "whitelist": ["name"],
//! "site_link_regex": false}`. `site_link` falls back to `[links] site_link`; the whitelist is
//! joined with `[links] whitelist`.
//!
//! Semantics (kept from the job this one replaces, where users rely on them):
//! - every active link is checked, except whitelisted names, which are never fetched (a hidden
//!   whitelisted link is shown again);
//! - a link that does not answer 200 is hidden with the reason `网页请求返回{code}`; with a
//!   `site_link`, a page without it is hidden with `网站未设置本站外链`; transport failures get
//!   their own reasons (see [`fetch::Failure::reason`]), never a made-up status code;
//! - a hidden link that passes again is shown again;
//! - the result is `{"active_num", "to_not_show", "to_show", …}` plus the run id under which
//!   every link's result is kept (`celeriac links results RUN`).
//!
//! Only links whose state changed are written. One run at a time: a `links.check` that starts
//! while another runs is snoozed until the other finishes (it is not dropped, so a check asked
//! for after a change of links always happens). The lock is a Redis key with a lease renewed
//! while the run goes on, so a crashed worker frees it within [`LOCK_TTL`].
//!
//! Modules: [`guard`] (SSRF guard), [`fetch`] (one URL), [`body`] (backlink search).

pub mod body;
pub mod fetch;
pub mod guard;

use crate::handler::{Job, Outcome, Progress, Registry};
use body::Backlink;
use celeriac_core::config::LinksConfig;
use celeriac_core::Broker;
use celeriac_store::links::{Link, LinkState};
use celeriac_store::runs::{LinkResult, RunCounts};
use celeriac_store::Store;
use fetch::{Fetcher, Report};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
use tracing::{info, warn};

/// The job kind.
pub const KIND: &str = "links.check";
/// Name of the lock that keeps runs one at a time.
pub const LOCK: &str = "links.check";
/// Lease of the lock; renewed every third of it while a run goes on.
pub const LOCK_TTL: Duration = Duration::from_secs(60);
/// How long a run that finds another one running waits before trying again.
pub const WAIT_FOR_OTHER_RUN: Duration = Duration::from_secs(10);
/// Results written to the database per transaction.
const WRITE_BATCH: usize = 200;
/// Names listed in the job result per change (all of them are in the run's results).
const NAMES_IN_RESULT: usize = 50;

/// The payload of `links.check`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckLinks {
    /// Text (or, with `site_link_regex`, a regular expression) every page must contain.
    #[serde(default)]
    pub site_link: Option<String>,
    /// Names never checked.
    #[serde(default)]
    pub whitelist: Vec<String>,
    /// Read `site_link` as a regular expression (default: `[links] site_link_regex`).
    #[serde(default)]
    pub site_link_regex: Option<bool>,
}

impl celeriac_core::JobKind for CheckLinks {
    const KIND: &'static str = KIND;
}

/// What `links.check` needs: the database (opened on first use, so a worker whose database
/// is down still serves its other kinds), Redis for the lock, and the settings.
pub struct Context {
    database_url: String,
    store: OnceCell<Store>,
    broker: Broker,
    config: LinksConfig,
}

impl Context {
    /// A context; nothing is opened yet.
    pub fn new(database_url: String, broker: Broker, config: LinksConfig) -> Self {
        Context {
            database_url,
            store: OnceCell::new(),
            broker,
            config,
        }
    }

    /// Open the database and apply its migrations now (a worker does this at start); on
    /// failure the first job tries again.
    pub async fn open(&self) -> Result<(), String> {
        self.store().await.map(|_| ())
    }

    async fn store(&self) -> Result<&Store, String> {
        self.store
            .get_or_try_init(|| Store::open(&self.database_url))
            .await
            .map_err(|e| e.to_string())
    }
}

/// Register `links.check`.
pub fn register(registry: &mut Registry, context: Arc<Context>) -> &mut Registry {
    registry.register_typed::<CheckLinks, _, _>(move |payload, job| {
        let context = context.clone();
        async move { handle(&context, payload, job).await }
    })
}

async fn handle(context: &Context, payload: CheckLinks, job: Job) -> Outcome {
    let regex = payload
        .site_link_regex
        .unwrap_or(context.config.site_link_regex);
    let site_link = payload
        .site_link
        .or(context.config.site_link.clone())
        .filter(|s| !s.is_empty());
    let backlink = match &site_link {
        None => None,
        Some(s) if regex => match regex::Regex::new(s) {
            Ok(r) => Some(Backlink::Regex(r)),
            Err(e) => return Outcome::Discard(format!("site_link is not a valid regex: {e}")),
        },
        Some(s) => Some(Backlink::Literal(s.clone())),
    };
    let store = match context.store().await {
        Ok(s) => s,
        Err(e) => return Outcome::Retry(e),
    };
    let owner = format!("{}#{}", job.id, job.token);
    match context.broker.try_lock(LOCK, &owner, LOCK_TTL).await {
        Ok(true) => {}
        Ok(false) => {
            info!(
                "another links.check run holds the lock; waiting {}s",
                WAIT_FOR_OTHER_RUN.as_secs()
            );
            return Outcome::Snooze(WAIT_FOR_OTHER_RUN);
        }
        Err(e) => return Outcome::Retry(format!("cannot take the links.check lock: {e}")),
    }
    let held = HeldLock {
        broker: context.broker.clone(),
        owner: owner.clone(),
        released: false,
    };
    let mut whitelist: HashSet<String> = payload.whitelist.iter().cloned().collect();
    whitelist.extend(context.config.whitelist.iter().cloned());
    let run = Run {
        store,
        config: &context.config,
        backlink: backlink.as_ref(),
        site_link,
        whitelist,
        progress: &job.progress,
        job_id: &job.id,
    };
    let outcome = tokio::select! {
        r = run.run() => match r {
            Ok(summary) => Outcome::Done(serde_json::to_value(summary).ok()),
            Err(e) => Outcome::Retry(e),
        },
        lost = keep_lock(&context.broker, &owner) => Outcome::Retry(lost),
    };
    held.release().await;
    outcome
}

/// The run's hold on the lock. Released when the run ends; if the handler is dropped instead
/// (job timeout, lease lost, shutdown), released from a background task, so the next run does
/// not wait for the lease to expire.
struct HeldLock {
    broker: Broker,
    owner: String,
    released: bool,
}

impl HeldLock {
    async fn release(mut self) {
        if let Err(e) = self.broker.unlock(LOCK, &self.owner).await {
            warn!(error = %e, "could not release the links.check lock; it expires within {}s", LOCK_TTL.as_secs());
        }
        self.released = true;
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (broker, owner) = (self.broker.clone(), std::mem::take(&mut self.owner));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = broker.unlock(LOCK, &owner).await;
            });
        }
    }
}

/// Renew the lock until it is lost; returns why.
async fn keep_lock(broker: &Broker, owner: &str) -> String {
    let mut failures = 0;
    loop {
        tokio::time::sleep(LOCK_TTL / 3).await;
        match broker.renew_lock(LOCK, owner, LOCK_TTL).await {
            Ok(true) => failures = 0,
            Ok(false) => return "lost the links.check lock (it expired); the run stopped".into(),
            Err(e) => {
                failures += 1;
                if failures >= 2 {
                    return format!("cannot renew the links.check lock: {e}");
                }
            }
        }
    }
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

/// Progress reported while a run goes on.
#[derive(Serialize)]
struct RunProgress {
    run_id: i64,
    done: usize,
    total: usize,
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
    async fn run(&self) -> Result<Summary, String> {
        let started = Instant::now();
        let db = |e: celeriac_store::Error| e.to_string();
        let links = self.store.active_links().await.map_err(db)?;
        let run_id = self
            .store
            .start_run(Some(self.job_id), self.site_link.as_deref())
            .await
            .map_err(db)?;
        let outcome = self.check(run_id, links, started).await;
        match &outcome {
            Ok(summary) => {
                self.store
                    .finish_run(run_id, &summary.counts, None)
                    .await
                    .map_err(db)?;
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
                    .finish_run(run_id, &RunCounts::default(), Some(e))
                    .await;
            }
        }
        if let Err(e) = self.store.prune_runs(self.config.keep_runs).await {
            warn!(error = %e, "could not delete old check runs");
        }
        outcome
    }

    async fn check(
        &self,
        run_id: i64,
        links: Vec<Link>,
        started: Instant,
    ) -> Result<Summary, String> {
        let mut counts = RunCounts {
            active_num: links.len() as i64,
            ..RunCounts::default()
        };
        let mut hidden = Vec::new();
        let mut shown = Vec::new();
        let mut pending = Pending::default();

        let (whitelisted, to_check): (Vec<Link>, Vec<Link>) = links
            .into_iter()
            .partition(|l| self.whitelist.contains(&l.name));
        counts.whitelisted = whitelisted.len() as i64;
        for link in whitelisted.iter().filter(|l| !l.is_show) {
            let mut state = link.state();
            state.is_show = true;
            state.not_show_reason.clear();
            pending.states.push(state);
            counts.to_show += 1;
            shown.push(link.name.clone());
        }

        let total = to_check.len();
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
        let check_all = async move {
            let mut reports = futures_util::stream::iter(groups)
                .map(|(url, links)| async move {
                    let report = fetcher.check(&url, backlink).await;
                    (links, report)
                })
                .buffer_unordered(self.config.concurrency);
            while let Some(item) = reports.next().await {
                if results.send(item).is_err() {
                    break;
                }
            }
            Ok::<(), String>(())
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
            Ok::<(), String>(())
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

    async fn flush(&self, run_id: i64, pending: &mut Pending) -> Result<(), String> {
        let p = std::mem::take(pending);
        self.store
            .write_link_states(&p.states)
            .await
            .map_err(|e| e.to_string())?;
        self.store
            .record_results(run_id, &p.results)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The new state of `link` after `report` (`None` when nothing changed), and its result row.
/// A shown link is hidden once it has failed `hide_after` checks in a row (1: at the first).
fn decide(link: &Link, report: &Report, hide_after: u32) -> (Option<LinkState>, LinkResult) {
    let before = link.state();
    let mut after = before.clone();
    after.last_status = report.status;
    let mut change = None;
    match report.failure {
        None => {
            after.last_error_kind = "ok".into();
            after.consecutive_failures = 0;
            if !after.is_show {
                after.is_show = true;
                change = Some("shown");
            }
            after.not_show_reason.clear();
        }
        Some(f) => {
            after.last_error_kind = f.as_str().into();
            after.consecutive_failures += 1;
            if after.is_show && after.consecutive_failures >= i64::from(hide_after) {
                after.is_show = false;
                change = Some("hidden");
            }
            if !after.is_show {
                after.not_show_reason = f.reason();
            }
        }
    }
    let result = LinkResult {
        link_id: link.id,
        name: link.name.clone(),
        url: link.url.clone(),
        outcome: report.failure.map(|f| f.as_str()).unwrap_or("ok").into(),
        status: report.status,
        final_url: report.final_url.clone(),
        redirects: i64::from(report.redirects),
        attempts: i64::from(report.attempts),
        elapsed_ms: report.elapsed.as_millis() as i64,
        error: report.error.clone(),
        change: change.map(str::to_string),
    };
    ((after != before).then_some(after), result)
}

/// Whether some host has more than one URL (then idle connections are worth keeping).
fn shares_hosts(groups: &[(String, Vec<Link>)]) -> bool {
    let mut hosts = HashSet::new();
    groups.iter().any(|(url, _)| {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        !hosts.insert(host)
    })
}

/// Links grouped by URL (a URL is fetched once per run however many links share it), ordered
/// round-robin across hosts so that one host's many links do not hold every request slot, and
/// on each host slowest first by the previous run's durations (links without one first): a
/// slow link started last would stretch the whole run.
fn group_by_url(links: Vec<Link>, durations: &HashMap<i64, i64>) -> Vec<(String, Vec<Link>)> {
    let mut by_url: HashMap<String, Vec<Link>> = HashMap::new();
    let mut order = Vec::new();
    for link in links {
        // The parsed form: `https://A.example` and `https://a.example/` are one URL.
        let url = reqwest::Url::parse(link.url.trim())
            .map(String::from)
            .unwrap_or_else(|_| link.url.trim().to_string());
        by_url
            .entry(url.clone())
            .or_insert_with(|| {
                order.push(url.clone());
                Vec::new()
            })
            .push(link);
    }
    let cost = |url: &String| {
        by_url[url]
            .iter()
            .map(|l| durations.get(&l.id).copied().unwrap_or(i64::MAX))
            .max()
            .unwrap_or(i64::MAX)
    };
    let mut order: Vec<(i64, String)> = order.into_iter().map(|u| (cost(&u), u)).collect();
    order.sort_by_key(|(cost, _)| std::cmp::Reverse(*cost)); // stable: file order within a cost
    let mut by_host: BTreeMap<String, VecDeque<String>> = BTreeMap::new();
    for (_, url) in order {
        let host = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        by_host.entry(host).or_default().push_back(url);
    }
    let mut out = Vec::with_capacity(by_url.len());
    while !by_host.is_empty() {
        by_host.retain(|_, urls| match urls.pop_front() {
            Some(url) => {
                if let Some(links) = by_url.remove(&url) {
                    out.push((url, links));
                }
                !urls.is_empty()
            }
            None => false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: i64, name: &str, url: &str, is_show: bool) -> Link {
        Link {
            id,
            name: name.into(),
            url: url.into(),
            is_active: true,
            is_show,
            not_show_reason: if is_show { String::new() } else { "old".into() },
            last_status: None,
            last_error_kind: None,
            last_checked_ms: None,
            consecutive_failures: 0,
        }
    }

    fn report(failure: Option<fetch::Failure>, status: Option<u16>) -> Report {
        Report {
            failure,
            status,
            final_url: None,
            redirects: 0,
            attempts: 1,
            elapsed: Duration::ZERO,
            error: None,
        }
    }

    #[test]
    fn decisions_follow_the_seed_semantics() {
        let shown = link(1, "a", "https://a.example/", true);
        let (state, result) = decide(
            &shown,
            &report(Some(fetch::Failure::Status(404)), Some(404)),
            1,
        );
        let state = state.unwrap();
        assert!(!state.is_show);
        assert_eq!(state.not_show_reason, "网页请求返回404");
        assert_eq!(result.change.as_deref(), Some("hidden"));

        let (state, result) = decide(
            &shown,
            &report(Some(fetch::Failure::NoBacklink), Some(200)),
            1,
        );
        assert_eq!(state.unwrap().not_show_reason, "网站未设置本站外链");
        assert_eq!(result.outcome, "no_backlink");

        let hidden = link(2, "b", "https://b.example/", false);
        let (state, result) = decide(&hidden, &report(None, Some(200)), 1);
        let state = state.unwrap();
        assert!(state.is_show && state.not_show_reason.is_empty());
        assert_eq!(result.change.as_deref(), Some("shown"));

        // A healthy link that was already recorded healthy is not written again.
        let mut steady = link(3, "c", "https://c.example/", true);
        steady.last_status = Some(200);
        steady.last_error_kind = Some("ok".into());
        let (state, result) = decide(&steady, &report(None, Some(200)), 1);
        assert!(state.is_none());
        assert_eq!(result.change, None);
    }

    #[test]
    fn hide_after_failures_gives_links_a_grace() {
        let mut l = link(1, "a", "https://a.example/", true);
        let timeout = report(Some(fetch::Failure::Timeout), None);
        let (state, result) = decide(&l, &timeout, 2);
        let state = state.unwrap();
        assert!(state.is_show, "one failure of two allowed: still shown");
        assert_eq!(state.consecutive_failures, 1);
        assert!(state.not_show_reason.is_empty());
        assert_eq!(result.outcome, "timeout");
        assert_eq!(result.change, None);
        l.consecutive_failures = 1;
        let (state, result) = decide(&l, &timeout, 2);
        let state = state.unwrap();
        assert!(!state.is_show);
        assert_eq!(state.not_show_reason, "网页请求超时");
        assert_eq!(result.change.as_deref(), Some("hidden"));
    }

    #[test]
    fn urls_are_grouped_and_hosts_interleaved() {
        let links = vec![
            link(1, "a1", "https://a.example/1", true),
            link(2, "a2", "https://a.example/2", true),
            link(3, "a1-again", "https://a.example/1", true),
            link(4, "b1", "https://b.example/1", true),
        ];
        let groups = group_by_url(links.clone(), &HashMap::new());
        let urls: Vec<&str> = groups.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://a.example/1",
                "https://b.example/1",
                "https://a.example/2"
            ]
        );
        assert_eq!(groups[0].1.len(), 2);
        // One URL however it is spelt.
        let spelt = vec![
            link(5, "x", "https://X.example", true),
            link(6, "y", "https://x.example/", true),
        ];
        let groups = group_by_url(spelt, &HashMap::new());
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].0, "https://x.example/");
        assert!(shares_hosts(&group_by_url(links.clone(), &HashMap::new())));
        // Slow last time: first now.
        let durations = HashMap::from([(1, 10), (2, 4000), (3, 10), (4, 50)]);
        let groups = group_by_url(links, &durations);
        let urls: Vec<&str> = groups.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://a.example/2",
                "https://b.example/1",
                "https://a.example/1"
            ]
        );
    }
}
