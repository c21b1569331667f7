use celeriac_testkit::{Response, TestHttp, BACKLINK};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// A response as the client saw it.
struct Got {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Send `raw` (a whole request) to `s` and read until the server closes.
async fn send(s: &TestHttp, raw: String) -> Got {
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Got {
        status,
        head,
        body: all[end + 4..].to_vec(),
    }
}

async fn get(s: &TestHttp, path: &str) -> Got {
    send(s, format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")).await
}

#[tokio::test]
async fn serves_the_link_checker_pages_and_counts_hits() {
    let s = TestHttp::start().await;
    let ok = get(&s, "/ok").await;
    assert_eq!(ok.status, 200);
    assert!(String::from_utf8_lossy(&ok.body).contains(BACKLINK));
    assert!(ok.head.contains("Content-Type: text/html"), "{}", ok.head);
    assert_eq!(get(&s, "/flaky").await.status, 500);
    assert_eq!(get(&s, "/flaky").await.status, 200);
    let throttled = get(&s, "/throttled").await;
    assert_eq!(throttled.status, 429);
    assert!(
        throttled.head.contains("Retry-After: 1"),
        "{}",
        throttled.head
    );
    assert_eq!(get(&s, "/status/418").await.status, 418);
    assert_eq!(get(&s, "/redirect/2").await.status, 302);
    assert_eq!(get(&s, "/nothing-here").await.status, 404);
    let head = send(&s, "HEAD /no-head HTTP/1.1\r\n\r\n".into()).await;
    assert_eq!(head.status, 405);
    assert_eq!(
        (s.hits("/flaky"), s.hits("/ok"), s.hits("/never")),
        (2, 1, 0)
    );
    assert_eq!(s.requests().len(), 8);
    // One after the other: a request stops counting before its answer goes out, so the next
    // one never overlaps it.
    assert_eq!(s.most_at_once(), 1);
    assert_eq!(s.request_starts().len(), 8);
    assert_eq!(s.url("/ok"), format!("http://{}/ok", s.addr));
}

#[tokio::test]
async fn a_route_answers_and_the_request_is_recorded() {
    let s = TestHttp::start().await;
    s.route("/hook", |req| {
        if req.n == 1 {
            Response::new(500)
        } else {
            Response::ok().json(&json!({ "seen": req.json()["id"] }))
        }
    });
    let body = r#"{"id":7}"#;
    let post = format!(
        "POST /hook?x=1 HTTP/1.1\r\nContent-Type: application/json\r\nX-Signature: sha1=ab\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let before = Instant::now();
    assert_eq!(send(&s, post.clone()).await.status, 500);
    let second = send(&s, post).await;
    assert_eq!(second.status, 200);
    assert!(second.head.contains("Content-Type: application/json"));
    assert_eq!(second.body, br#"{"seen":7}"#);

    let got = s.requests_to("/hook");
    assert_eq!(got.len(), 2);
    let r = &got[0];
    assert_eq!(
        (r.method.as_str(), r.query.as_deref(), r.n),
        ("POST", Some("x=1"), 1)
    );
    assert_eq!(r.header("x-signature"), Some("sha1=ab"));
    assert_eq!(r.text(), body);
    assert!(before <= r.at && r.at <= got[1].at);
    assert_eq!(got[1].n, 2);
}

#[tokio::test]
async fn chunked_bodies_are_decoded() {
    let s = TestHttp::start().await;
    s.route("/sink", |_| Response::new(204));
    let raw = "POST /sink HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
    assert_eq!(send(&s, raw.into()).await.status, 204);
    assert_eq!(s.requests_to("/sink")[0].text(), "hello world");
}

#[tokio::test]
async fn prefix_routes_and_the_latest_route_wins_over_the_pages() {
    let s = TestHttp::start().await;
    s.route("/sink/*", |_| Response::new(410).body("gone"));
    s.route("/ok", |_| Response::new(202));
    assert_eq!(get(&s, "/sink/a/b").await.status, 410);
    assert_eq!(
        get(&s, "/ok").await.status,
        202,
        "a route comes before the pages"
    );
    s.route("/sink/*", |_| Response::new(429).header("Retry-After", "3"));
    let throttled = get(&s, "/sink/c").await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.head.contains("Retry-After: 3"));
    assert_eq!(get(&s, "/sinks").await.status, 404);
}

/// An async route holds its answers until the test releases them; the requests are recorded
/// (and awaited) before that, and both are counted as being answered at once.
#[tokio::test]
async fn an_async_route_answers_when_released() {
    let s = Arc::new(TestHttp::start().await);
    // Permits, not a Notify: a handler that reaches its wait after the release still goes.
    let release = Arc::new(Semaphore::new(0));
    let r = release.clone();
    s.route_async("/held", move |_| {
        let r = r.clone();
        async move {
            let _permit = r.acquire().await.expect("the semaphore stays open");
            Response::ok().body("released")
        }
    });
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { get(&s, "/held").await })
        })
        .collect();
    let got = s.wait_requests("/held", 2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(s.most_at_once(), 2);
    release.add_permits(2);
    for c in clients {
        assert_eq!(c.await.unwrap().body, b"released");
    }
}

#[tokio::test]
async fn a_delayed_response_waits_at_least_its_delay() {
    let s = TestHttp::start().await;
    s.route("/slow", |_| {
        Response::ok().delay(Duration::from_millis(200))
    });
    let t = Instant::now();
    assert_eq!(get(&s, "/slow").await.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "waiting for 1 requests to /never; got 0")]
async fn wait_requests_times_out_naming_the_path() {
    let s = TestHttp::start().await;
    s.wait_requests("/never", 1, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn one_server_on_several_addresses() {
    let s = TestHttp::start_on_all(&["127.0.0.1:0", "127.0.0.2:0"]).await;
    assert!(s.url_on(1, "/ok").starts_with("http://127.0.0.2:"));
    let addr = s.url_on(1, "").trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /ok HTTP/1.1\r\n\r\n").await.unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.unwrap();
    assert!(all.starts_with(b"HTTP/1.1 200"));
    assert_eq!(s.hits("/ok"), 1, "one set of counters");
}
