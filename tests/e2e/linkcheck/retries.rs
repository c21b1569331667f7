//! A run's retry plan: every link is tried once before any is tried again; transient failures
//! get their second chance in a second pass, none after a second timeout (a dead link costs
//! two deadlines, not three, the second 100 ms shorter), and one blip does not hide a link. And the handler's last progress.

use super::config;
use super::runs::Harness;
use celeriac_links as links;
use celeriac_testkit::{Response, TestDb, TestHttp, BACKLINK};
use celeriac_worker::testing::TestJob;
use celeriac_worker::Outcome;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn transient_failures_are_retried_after_every_link_had_its_first_try() {
    let s = TestHttp::start().await;
    // Its first request is answered after 3 s (past the 1 s deadline), the next at once.
    s.route("/blip", |req| {
        let ok = Response::ok().body(format!("<a href=\"{BACKLINK}/\">friend</a>"));
        if req.n == 1 {
            ok.delay(Duration::from_secs(3))
        } else {
            ok
        }
    });
    let db = TestDb::sqlite();
    let mut c = config();
    // One request at a time: the order requests arrive in is the plan.
    c.concurrency = 1;
    c.per_host = 1;
    assert_eq!(c.retries, 2, "the default");
    let h = Harness::new(&db, c).await;
    h.add("dead", &s.url("/slow")).await; // never answers
    h.add("blip", &s.url("/blip")).await;
    h.add("b", &s.url("/wait/100?b")).await;
    h.add("c", &s.url("/wait/100?c")).await;

    let r = h.run(json!({})).await;

    let order: Vec<String> = s.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        order,
        ["/slow", "/blip", "/wait/100", "/wait/100", "/slow", "/blip"],
        "first pass: every link once; second pass: the two that timed out, once each"
    );
    assert_eq!(
        (&r["failed"], &r["to_not_show"]),
        (&json!(1), &json!(1)),
        "{r}"
    );
    let run_id = r["run_id"].as_i64().unwrap();
    let results = h.store.results(run_id, false).await.unwrap();
    let result = |name: &str| results.iter().find(|r| r.name == name).unwrap().clone();
    let dead = result("dead");
    assert_eq!((dead.outcome.as_str(), dead.attempts), ("timeout", 2));
    // The second deadline leaves room for the run's database work: 1 s less 100 ms, so the
    // run ends within two timeouts.
    assert_eq!(
        dead.error.as_deref(),
        Some("no complete answer within 900ms"),
        "{dead:?}"
    );
    assert_eq!(dead.change.as_deref(), Some("hidden"));
    let blip = result("blip");
    assert_eq!((blip.outcome.as_str(), blip.attempts), ("ok", 2));
    assert_eq!(blip.change, None, "one blip does not hide a link");
    assert_eq!(result("b").attempts, 1);
    let links = h.store.list_links().await.unwrap();
    let dead = links.iter().find(|l| l.name == "dead").unwrap();
    assert_eq!(dead.not_show_reason, "网页请求超时");
    assert!(links.iter().find(|l| l.name == "blip").unwrap().is_show);
}

#[tokio::test]
async fn the_handler_ends_on_its_final_progress() {
    let db = TestDb::sqlite();
    let s = TestHttp::start().await;
    let h = Harness::new(&db, config()).await;
    h.add("good", &s.url("/ok")).await;
    h.add("gone", &s.url("/status/404")).await;
    h.add("same-page", &s.url("/ok")).await;
    h.add("flaky", &s.url("/flaky")).await;
    h.add("ours", &s.url("/status/500")).await;

    let ran = TestJob::new(links::KIND, json!({"whitelist": ["ours"]}))
        .run(&h.registry)
        .await;
    let Outcome::Done(Some(r)) = ran.outcome else {
        panic!("expected a result, got {:?}", ran.outcome);
    };
    assert_eq!(
        (&r["active_num"], &r["failed"]),
        (&json!(4), &json!(1)),
        "{r}"
    );
    assert_eq!(
        ran.progress,
        Some(json!({"run_id": r["run_id"], "done": 4, "total": 4, "failed": 1})),
        "the last progress is the end of the run, with the result's counts"
    );
}
