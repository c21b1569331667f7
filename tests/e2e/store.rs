//! The domain store against both backends: every scenario runs on SQLite and on PostgreSQL,
//! each in a database of its own.

use celeriac_links::import::{self, Format};
use celeriac_links::store::{LinkResult, NewLink, RunCounts};
use celeriac_links::{Error, Store};
use celeriac_testkit::TestDb;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn new(name: &str, url: &str) -> NewLink {
    NewLink {
        name: name.into(),
        url: url.into(),
        is_active: true,
    }
}

async fn links_crud(kind: &str) {
    let db = TestDb::of(kind);
    let store = Store::open(&db.url).await.unwrap();
    // Migrating again is a no-op.
    let again = celeriac_db::Db::connect(&db.url).await.unwrap();
    assert!(again
        .migrate(&[celeriac_links::MIGRATIONS])
        .await
        .unwrap()
        .is_empty());

    let a = store
        .add_link(&new("A", "https://a.example/"))
        .await
        .unwrap();
    assert!(a.is_active && a.is_show && a.not_show_reason.is_empty());
    let mut inactive = new("B", "http://b.example/x");
    inactive.is_active = false;
    store.add_link(&inactive).await.unwrap();
    match store.add_link(&new("A", "https://other.example/")).await {
        Err(Error::DuplicateName(n)) => assert_eq!(n, "A"),
        other => panic!("expected a duplicate-name error, got {other:?}"),
    }
    assert!(matches!(
        store.add_link(&new("C", "ftp://c.example/")).await,
        Err(Error::Invalid(_))
    ));
    let all = store.list_links().await.unwrap();
    assert_eq!(
        all.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["A", "B"]
    );
    let active = store.active_links().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].name, "A");

    // Import: one new, one updated, one unchanged; all or nothing.
    let text = "name,url,is_active\nA,https://a.example/,true\nB,http://b.example/y,true\nD,https://d.example/,false\n";
    let parsed = import::parse(text, Format::Csv).unwrap();
    let s = store.import_links(&parsed).await.unwrap();
    assert_eq!((s.added, s.updated, s.unchanged), (1, 1, 1));
    let b = store.link("B").await.unwrap().unwrap();
    assert_eq!(b.url, "http://b.example/y");
    assert!(b.is_active);
    let bad = vec![new("E", "https://e.example/"), new("F", "nope")];
    assert!(store.import_links(&bad).await.is_err());
    assert!(
        store.link("E").await.unwrap().is_none(),
        "a failed import wrote nothing"
    );

    // State written by a check, and the time of the check.
    let mut state = a.state();
    state.is_show = false;
    state.not_show_reason = "网页请求返回404".into();
    state.last_status = Some(404);
    state.last_error_kind = "http_status".into();
    state.consecutive_failures = 1;
    let before = celeriac_core::time::rfc3339_ms(now_ms() as u64);
    store.write_link_states(&[state]).await.unwrap();
    let a = store.link("A").await.unwrap().unwrap();
    assert!(!a.is_show);
    assert_eq!(a.not_show_reason, "网页请求返回404");
    assert_eq!(a.last_status, Some(404));
    assert_eq!(a.consecutive_failures, 1);
    let checked = a
        .last_checked_at()
        .expect("a changed link records its check time");
    assert!(checked >= before, "{checked} < {before}");
    // A run's results give the time of the newest finished run that checked the link.
    let run = store.start_run(None, None).await.unwrap();
    store
        .record_results(
            run,
            &[LinkResult {
                link_id: a.id,
                name: a.name.clone(),
                url: a.url.clone(),
                outcome: "ok".into(),
                status: Some(200),
                final_url: None,
                redirects: 0,
                attempts: 1,
                elapsed_ms: 1,
                error: None,
                change: None,
            }],
        )
        .await
        .unwrap();
    store
        .finish_run(run, &RunCounts::default(), None)
        .await
        .unwrap();
    let finished = store.run(Some(run)).await.unwrap().unwrap().finished_at;
    let a = store.link("A").await.unwrap().unwrap();
    assert_eq!(a.last_checked_at(), finished);

    assert!(store.remove_link("A").await.unwrap());
    assert!(!store.remove_link("A").await.unwrap());
    store.close().await;
}

async fn runs_and_results(kind: &str) {
    let db = TestDb::of(kind);
    let store = Store::open(&db.url).await.unwrap();
    let link = store
        .add_link(&new("A", "https://a.example/"))
        .await
        .unwrap();
    let stale = store.start_run(Some("job-0"), None).await.unwrap();
    let run = store
        .start_run(Some("job-1"), Some("https://us.example"))
        .await
        .unwrap();
    assert_eq!(
        store.run(Some(stale)).await.unwrap().unwrap().state,
        "abandoned",
        "a run left running is marked abandoned when the next starts"
    );
    let results: Vec<LinkResult> = (0..450)
        .map(|i| LinkResult {
            link_id: if i == 0 { link.id } else { 1000 + i },
            name: format!("link-{i:03}"),
            url: format!("https://{i}.example/"),
            outcome: if i % 3 == 0 { "timeout" } else { "ok" }.into(),
            status: (i % 3 != 0).then_some(200),
            final_url: None,
            redirects: 0,
            attempts: 1,
            elapsed_ms: i,
            error: None,
            change: (i == 1).then(|| "shown".into()),
        })
        .collect();
    store.record_results(run, &results).await.unwrap();
    let counts = RunCounts {
        active_num: 450,
        checked: 450,
        ok: 300,
        failed: 150,
        to_not_show: 0,
        to_show: 1,
        whitelisted: 0,
        fetches: 450,
    };
    store.finish_run(run, &counts, None).await.unwrap();
    let got = store.run(None).await.unwrap().unwrap();
    assert_eq!(got.id, run);
    assert_eq!(got.state, "finished");
    assert_eq!(got.counts, counts);
    assert_eq!(got.site_link.as_deref(), Some("https://us.example"));
    assert_eq!(store.results(run, false).await.unwrap().len(), 450);
    // Problems: the 150 timeouts plus the one change.
    assert_eq!(store.results(run, true).await.unwrap().len(), 151);

    // Retention keeps the newest runs only.
    for _ in 0..3 {
        let r = store.start_run(None, None).await.unwrap();
        store
            .finish_run(r, &RunCounts::default(), None)
            .await
            .unwrap();
    }
    assert_eq!(store.prune_runs(2).await.unwrap(), 3);
    let left = store.runs(10).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(store.results(run, false).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn links_crud_on_sqlite() {
    links_crud("sqlite").await
}

#[tokio::test]
async fn links_crud_on_postgres() {
    links_crud("postgres").await
}

#[tokio::test]
async fn runs_and_results_on_sqlite() {
    runs_and_results("sqlite").await
}

#[tokio::test]
async fn runs_and_results_on_postgres() {
    runs_and_results("postgres").await
}

#[tokio::test]
async fn unreachable_database_says_what_to_check() {
    let e = Store::open("postgres://postgres@127.0.0.1:1/nothing")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot open the database"), "{e}");
    let e = Store::open("mysql://root@127.0.0.1/x")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("sqlite://") && e.contains("postgres://"), "{e}");
}
