//! Whole `links.check` runs through the registered handler, on SQLite and PostgreSQL: hiding,
//! showing again, the whitelist, duplicate URLs, no links, concurrency caps, one run at a time.

use super::config;
use crate::support::Env;
use celeriac_core::config::Config;
use celeriac_links::store::NewLink;
use celeriac_links::{self as links, Context, LinksConfig, Store};
use celeriac_testkit::{TestDb, TestHttp, BACKLINK};
use celeriac_worker::{Job, Outcome, Registry};
use serde_json::{json, Value};
use std::time::Duration;

/// A links.check handler with its own Redis prefix and database.
pub(super) struct Harness {
    _env: Env,
    pub(super) registry: Registry,
    pub(super) store: Store,
    core: Config,
}

impl Harness {
    pub(super) async fn new(db: &TestDb, links: LinksConfig) -> Harness {
        let env = Env::new("");
        let core = Config {
            redis_url: celeriac_testkit::test_redis_url(),
            prefix: env.prefix.clone(),
            ..Config::default()
        };
        let broker = celeriac_core::Broker::from_config(&core).await.unwrap();
        let mut registry = Registry::new();
        let core_config = core.clone();
        links::register(
            &mut registry,
            std::sync::Arc::new(Context {
                db: std::sync::Arc::new(celeriac_db::LazyDb::new(
                    db.url.clone(),
                    vec![links::MIGRATIONS],
                )),
                broker,
                config: links.clone(),
            }),
        );
        let store = Store::open(&db.url).await.unwrap();
        Harness {
            _env: env,
            registry,
            store,
            core: core_config,
        }
    }

    pub(super) async fn add(&self, name: &str, url: &str) {
        self.store
            .add_link(&NewLink {
                name: name.into(),
                url: url.into(),
                is_active: true,
            })
            .await
            .unwrap();
    }

    fn job(&self, id: &str, payload: Value) -> Job {
        Job {
            id: id.into(),
            kind: links::KIND.into(),
            queue: "default".into(),
            attempt: 1,
            max_attempts: 3,
            payload,
            token: 1,
            worker: "test".into(),
            cancel: Default::default(),
            progress: Default::default(),
        }
    }

    pub(super) async fn run(&self, payload: Value) -> Value {
        let handler = self.registry.get(links::KIND).unwrap();
        match handler.handle(self.job("run", payload)).await {
            Outcome::Done(Some(v)) => v,
            other => panic!("expected a result, got {other:?}"),
        }
    }
}

async fn a_run_hides_shows_and_skips(kind: &str) {
    let db = TestDb::of(kind);
    let s = TestHttp::start().await;
    let h = Harness::new(&db, config()).await;
    h.add("good", &s.url("/ok")).await;
    h.add("no-backlink", &s.url("/plain")).await;
    h.add("gone", &s.url("/status/404")).await;
    h.add("flaky", &s.url("/flaky")).await;
    h.add("same-page", &s.url("/ok")).await;
    h.add("ours", &s.url("/status/500")).await;

    // A whitelisted link hidden by an earlier run (before it was whitelisted).
    let mut ours = h.store.link("ours").await.unwrap().unwrap().state();
    ours.is_show = false;
    ours.not_show_reason = "网页请求返回500".into();
    h.store.write_link_states(&[ours]).await.unwrap();

    let payload = json!({"site_link": BACKLINK, "whitelist": ["ours"]});
    let r = h.run(payload.clone()).await;
    // As the seed job's final code counts: whitelisted links are not in active_num, and the
    // hidden one shown again is in to_show.
    assert_eq!(r["active_num"], 5, "{r}");
    assert_eq!(r["whitelisted"], 1);
    assert_eq!(r["checked"], 5);
    assert_eq!(r["to_not_show"], 2, "{r}");
    assert_eq!(r["to_show"], 1, "{r}");
    assert_eq!(r["shown"], json!(["ours"]));
    assert_eq!(r["fetches"], 4, "the two links to /ok share one fetch");
    assert_eq!(s.hits("/ok"), 1);
    assert_eq!(
        s.hits("/status/500"),
        0,
        "whitelisted names are never fetched"
    );

    let by_name = |links: &[celeriac_links::store::Link], n: &str| {
        links.iter().find(|l| l.name == n).cloned().unwrap()
    };
    let links = h.store.list_links().await.unwrap();
    assert_eq!(
        by_name(&links, "no-backlink").not_show_reason,
        "网站未设置本站外链"
    );
    assert_eq!(by_name(&links, "gone").not_show_reason, "网页请求返回404");
    assert_eq!(by_name(&links, "gone").last_status, Some(404));
    assert!(
        by_name(&links, "flaky").is_show,
        "500 then 200: retried, still shown"
    );
    assert!(by_name(&links, "good").last_checked_at().is_some());
    assert!(by_name(&links, "ours").is_show);
    assert!(by_name(&links, "ours").not_show_reason.is_empty());

    // Per-link results are kept under the run id.
    let run_id = r["run_id"].as_i64().unwrap();
    let results = h.store.results(run_id, true).await.unwrap();
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["gone", "no-backlink"]);

    // The hidden link recovers: it is shown again. Without site_link, a page with no backlink
    // passes too.
    h.store
        .import_links(&[NewLink {
            name: "gone".into(),
            url: s.url("/ok"),
            is_active: true,
        }])
        .await
        .unwrap();
    let r = h.run(json!({"whitelist": ["ours"]})).await;
    assert_eq!(r["to_show"], 2, "{r}");
    assert_eq!(r["to_not_show"], 0);
    let links = h.store.list_links().await.unwrap();
    assert!(links.iter().all(|l| l.is_show), "{links:?}");
    assert!(by_name(&links, "gone").not_show_reason.is_empty());
}

#[tokio::test]
async fn a_run_hides_shows_and_skips_on_sqlite() {
    a_run_hides_shows_and_skips("sqlite").await
}

#[tokio::test]
async fn a_run_hides_shows_and_skips_on_postgres() {
    a_run_hides_shows_and_skips("postgres").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_capped_globally_and_per_host_with_spacing() {
    // (global cap, per-host cap) → the most requests in flight at once over four hosts.
    for (concurrency, per_host, expected) in [(1, 1, 1), (3, 3, 3), (3, 1, 3), (8, 1, 4)] {
        let hosts = ["127.0.0.1:0", "127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0"];
        let server = TestHttp::start_on_all(&hosts).await;
        let db = TestDb::sqlite();
        let mut c = config();
        c.concurrency = concurrency;
        c.per_host = per_host;
        let h = Harness::new(&db, c).await;
        for i in 0..16 {
            let url = server.url_on(i % 4, &format!("/wait/100?{i}"));
            h.add(&format!("l{i}"), &url).await;
        }
        let r = h.run(json!({})).await;
        assert_eq!(r["ok"], 16, "{r}");
        assert_eq!(
            server.most_at_once(),
            expected,
            "concurrency {concurrency}, per host {per_host}"
        );
    }
    let one_host = TestHttp::start().await;
    let db = TestDb::sqlite();
    let mut c = config();
    c.concurrency = 8;
    c.per_host = 2;
    let h = Harness::new(&db, c).await;
    for i in 0..10 {
        h.add(&format!("l{i}"), &one_host.url(&format!("/wait/100?{i}")))
            .await;
    }
    h.run(json!({})).await;
    assert_eq!(one_host.most_at_once(), 2, "the per-host cap");

    // Spacing: starts on one host at least host_interval apart.
    let mut c = config();
    c.host_interval = Duration::from_millis(100);
    let spaced = TestHttp::start().await;
    let db = TestDb::sqlite();
    let h = Harness::new(&db, c).await;
    for i in 0..5 {
        h.add(&format!("s{i}"), &spaced.url(&format!("/ok?{i}")))
            .await;
    }
    h.run(json!({})).await;
    let starts = spaced.request_starts();
    assert_eq!(starts.len(), 5, "one GET per link");
    // Arrival times at the server shift with the machine's load: each gap at least a quarter
    // of the interval (no burst), and the run as long as its intervals but one.
    let gaps: Vec<Duration> = starts.windows(2).map(|p| p[1] - p[0]).collect();
    for gap in &gaps {
        assert!(*gap >= Duration::from_millis(25), "requests {gaps:?} apart");
    }
    let span: Duration = gaps.iter().sum();
    assert!(
        span >= Duration::from_millis(100) * (gaps.len() as u32 - 1),
        "5 requests in {span:?}: {gaps:?}"
    );
}

#[tokio::test]
async fn a_run_with_no_links_returns_zeros() {
    let db = TestDb::sqlite();
    let h = Harness::new(&db, config()).await;
    let r = h.run(json!({})).await;
    assert_eq!(
        (
            &r["active_num"],
            &r["checked"],
            &r["to_not_show"],
            &r["to_show"]
        ),
        (&json!(0), &json!(0), &json!(0), &json!(0))
    );
}

#[tokio::test]
async fn one_run_at_a_time() {
    let db = TestDb::sqlite();
    let h = Harness::new(&db, config()).await;
    let broker = celeriac_core::Broker::from_config(&h.core).await.unwrap();
    assert!(broker
        .try_lock(links::LOCK, "someone-else", Duration::from_secs(30))
        .await
        .unwrap());
    let handler = h.registry.get(links::KIND).unwrap();
    let outcome = handler.handle(h.job("second", json!({}))).await;
    assert_eq!(outcome, Outcome::Snooze(links::WAIT_FOR_OTHER_RUN));
    broker.unlock(links::LOCK, "someone-else").await.unwrap();
    assert!(matches!(
        handler.handle(h.job("second", json!({}))).await,
        Outcome::Done(_)
    ));
    assert_eq!(
        broker.lock_owner(links::LOCK).await.unwrap(),
        None,
        "released"
    );
}

#[tokio::test]
async fn a_run_cut_off_releases_the_lock_at_once() {
    let db = TestDb::sqlite();
    let s = TestHttp::start().await;
    let h = Harness::new(&db, config()).await;
    h.add("slow", &s.url("/wait/10000")).await;
    let broker = celeriac_core::Broker::from_config(&h.core).await.unwrap();
    let handler = h.registry.get(links::KIND).unwrap();
    let mut run = handler.handle(h.job("cut", json!({})));
    // Drive the run until it holds the lock, then drop it, as a job timeout or a lost lease
    // does.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::select! {
            outcome = &mut run => panic!("the run ended early: {outcome:?}"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        if broker.lock_owner(links::LOCK).await.unwrap().is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never took the lock"
        );
    }
    drop(run);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while broker.lock_owner(links::LOCK).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lock was not released (it would wait for its 60 s lease)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bad_payloads_are_discarded_with_the_reason() {
    let db = TestDb::sqlite();
    let h = Harness::new(&db, config()).await;
    let handler = h.registry.get(links::KIND).unwrap();
    match handler
        .handle(h.job("x", json!({"site_link": "(", "site_link_regex": true})))
        .await
    {
        Outcome::Discard(m) => assert!(m.contains("regex"), "{m}"),
        other => panic!("{other:?}"),
    }
    match handler
        .handle(h.job("y", json!({"whitelist": "ours"})))
        .await
    {
        Outcome::Discard(m) => assert!(m.contains("links.check"), "{m}"),
        other => panic!("{other:?}"),
    }
}
