//! What a run does with its links: the decision each report leads to (hide, show again, keep),
//! and the order links are fetched in.

#[cfg(test)]
use crate::fetch;
use crate::fetch::Report;
use crate::store::{Link, LinkResult, LinkState};
use celeriac_http::reqwest;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
#[cfg(test)]
use std::time::Duration;

/// The new state of `link` after `report` (`None` when nothing changed), and its result row.
/// A shown link is hidden once it has failed `hide_after` checks in a row (1: at the first).
pub(crate) fn decide(
    link: &Link,
    report: &Report,
    hide_after: u32,
) -> (Option<LinkState>, LinkResult) {
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
pub(crate) fn shares_hosts(groups: &[(String, Vec<Link>)]) -> bool {
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
pub(crate) fn group_by_url(
    links: Vec<Link>,
    durations: &HashMap<i64, i64>,
) -> Vec<(String, Vec<Link>)> {
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
