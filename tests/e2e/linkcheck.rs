//! The link checker against real HTTP servers on 127.0.0.1: one URL at a time here (status,
//! backlink, retries, deadlines, redirects, the address guard, bodies, charsets, TLS); whole
//! `links.check` runs on SQLite and PostgreSQL in [`runs`], and a run's retry plan in
//! [`retries`].

mod retries;
mod runs;

use celeriac_links::body::Backlink;
use celeriac_links::fetch::{Failure, Fetcher};
use celeriac_links::LinksConfig;
use celeriac_testkit::{free_port, Response, TestHttp, BACKLINK};
use std::time::Duration;

/// Settings for tests: loopback allowed, short deadline, quick retries.
fn config() -> LinksConfig {
    LinksConfig {
        timeout: Duration::from_secs(1),
        allow_private_networks: true,
        retry_base: Duration::from_millis(20),
        host_interval: Duration::ZERO,
        ..LinksConfig::default()
    }
}

fn literal() -> Backlink {
    Backlink::Literal(BACKLINK.into())
}

#[tokio::test]
async fn status_and_backlink() {
    let s = TestHttp::start().await;
    let f = Fetcher::new(&config()).unwrap();
    let r = f.check(&s.url("/ok"), Some(&literal())).await;
    assert_eq!((r.failure, r.status, r.attempts), (None, Some(200), 1));
    let r = f.check(&s.url("/plain"), Some(&literal())).await;
    assert_eq!(
        (r.failure, r.status),
        (Some(Failure::NoBacklink), Some(200))
    );
    // Without a backlink to look for, the status of a GET is enough.
    let r = f.check(&s.url("/plain"), None).await;
    assert_eq!(r.failure, None);
    assert_eq!(s.hits("/plain"), 2);
    let r = f.check(&s.url("/no-head"), None).await;
    assert_eq!((r.failure, r.status), (None, Some(200)));
    assert_eq!(s.hits("/no-head"), 1, "one GET, no HEAD");
    let r = f.check(&s.url("/status/404"), Some(&literal())).await;
    assert_eq!(
        (r.failure, r.status, r.attempts),
        (Some(Failure::Status(404)), Some(404), 1),
        "a 404 is not retried"
    );
    assert_eq!(Failure::Status(404).reason(), "网页请求返回404");
    let methods: Vec<String> = s.requests().into_iter().map(|r| r.method).collect();
    assert!(methods.iter().all(|m| m == "GET"), "{methods:?}");
}

#[tokio::test]
async fn a_page_is_judged_by_its_get_not_its_head() {
    // HEAD 200, GET 500: the page is broken for its readers; the seed job (GET) hides it.
    let s = TestHttp::start().await;
    s.route("/head-only", |req| {
        Response::new(if req.method == "HEAD" { 200 } else { 500 })
    });
    let mut c = config();
    c.retries = 0;
    let r = Fetcher::new(&c)
        .unwrap()
        .check(&s.url("/head-only"), None)
        .await;
    assert_eq!(
        (r.failure, r.status),
        (Some(Failure::Status(500)), Some(500))
    );
    let methods: Vec<String> = s.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["GET"]);
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let s = TestHttp::start().await;
    let f = Fetcher::new(&config()).unwrap();
    let r = f.check(&s.url("/flaky"), Some(&literal())).await;
    assert_eq!((r.failure, r.attempts), (None, 2), "500, then 200");
    let r = f.check(&s.url("/throttled"), Some(&literal())).await;
    assert_eq!((r.failure, r.attempts), (None, 2), "429, then 200");
    assert!(
        r.elapsed >= Duration::from_secs(1),
        "Retry-After: 1 was honoured ({:?})",
        r.elapsed
    );
    let r = f.check(&s.url("/status/503"), None).await;
    assert_eq!(
        (r.failure, r.attempts),
        (Some(Failure::Status(503)), 3),
        "two retries, then the failure"
    );
    // A page that never answers is given its deadline twice, not three times.
    let r = f.check(&s.url("/slow"), None).await;
    assert_eq!((r.failure, r.attempts), (Some(Failure::Timeout), 2));
    assert_eq!(s.hits("/slow"), 2);
}

#[tokio::test]
async fn deadlines_cut_off_silent_and_dripping_servers() {
    let s = TestHttp::start().await;
    let mut c = config();
    c.retries = 0;
    let f = Fetcher::new(&c).unwrap();
    let r = f.check(&s.url("/slow"), Some(&literal())).await;
    assert_eq!(r.failure, Some(Failure::Timeout));
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    let r = f.check(&s.url("/drip"), Some(&literal())).await;
    assert_eq!((r.failure, r.status), (Some(Failure::Timeout), Some(200)));
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    // Without a backlink to look for: the deadline covers the headers.
    let r = f.check(&s.url("/slow"), None).await;
    assert_eq!(r.failure, Some(Failure::Timeout));
    assert_eq!(s.hits("/slow"), 2, "one GET each, no retry");
}

#[tokio::test]
async fn redirects_are_followed_counted_and_bounded() {
    let s = TestHttp::start().await;
    let f = Fetcher::new(&config()).unwrap();
    let r = f.check(&s.url("/redirect/3"), Some(&literal())).await;
    assert_eq!((r.failure, r.redirects), (None, 3));
    assert_eq!(r.final_url.as_deref(), Some(s.url("/ok").as_str()));
    let r = f.check(&s.url("/redirect/11"), Some(&literal())).await;
    assert_eq!(r.failure, Some(Failure::TooManyRedirects));
    assert_eq!(s.hits("/ok"), 1, "the 11th redirect is not followed");
    let r = f.check(&s.url("/loop"), Some(&literal())).await;
    assert_eq!(r.failure, Some(Failure::TooManyRedirects));
    assert!(
        s.hits("/loop") <= 2,
        "a loop is seen, not followed ten times"
    );
    let r = f.check(&s.url("/to?ftp://example.org/"), None).await;
    assert_eq!(r.failure, Some(Failure::InvalidUrl));
}

#[tokio::test]
async fn waiting_for_a_host_slot_on_a_redirect_is_not_counted() {
    // Requests to one host start 1.5 s apart; a link on host 1 redirects to host 0 just after
    // host 0 was asked, so its second hop waits 1.5 s for its turn, longer than its 1 s
    // deadline: the wait must not time it out.
    let s = TestHttp::start_on_all(&["127.0.0.1:0", "127.0.0.2:0"]).await;
    let mut c = config();
    c.host_interval = Duration::from_millis(1500);
    c.retries = 0;
    let f = Fetcher::new(&c).unwrap();
    let first = f.check(&s.url_on(0, "/ok"), None).await;
    assert_eq!(first.failure, None);
    let to = s.url_on(0, "/ok");
    let r = f.check(&s.url_on(1, &format!("/to?{to}")), None).await;
    assert_eq!((r.failure, r.redirects), (None, 1), "{r:?}");
    assert!(
        r.elapsed > Duration::from_millis(1200),
        "it waited longer than its 1 s deadline: {:?}",
        r.elapsed
    );
}

#[tokio::test]
async fn the_guard_blocks_internal_addresses() {
    let s = TestHttp::start().await;
    let mut c = config();
    c.allow_private_networks = false;
    let f = Fetcher::new(&c).unwrap();
    for url in [
        s.url("/ok"),
        format!("http://localhost:{}/ok", s.addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/ok", s.addr.port()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let r = f.check(&url, Some(&literal())).await;
        assert_eq!(r.failure, Some(Failure::BlockedAddress), "{url}: {r:?}");
    }
    assert_eq!(s.hits("/ok"), 0, "nothing reached the server");

    // One network opened: the server is reachable, a redirect out of it is not.
    c.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()];
    let f = Fetcher::new(&c).unwrap();
    let r = f.check(&s.url("/ok"), Some(&literal())).await;
    assert_eq!(r.failure, None);
    let other = TestHttp::start_on("127.0.0.2:0").await;
    for to in [other.url("/ok"), "http://169.254.169.254/".to_string()] {
        let r = f
            .check(&s.url(&format!("/to?{to}")), Some(&literal()))
            .await;
        assert_eq!(r.failure, Some(Failure::BlockedAddress), "redirect to {to}");
        assert_eq!(r.redirects, 1);
    }
    assert_eq!(other.hits("/ok"), 0);
}

#[tokio::test]
async fn bodies_are_capped_and_decoded_lossily() {
    let s = TestHttp::start().await;
    let f = Fetcher::new(&config()).unwrap();
    let r = f.check(&s.url("/big"), Some(&literal())).await;
    assert_eq!(r.failure, Some(Failure::BodyTooLarge));
    let r = f.check(&s.url("/late"), Some(&literal())).await;
    assert_eq!(
        r.failure, None,
        "a backlink after 1 MB is within the 2 MiB cap"
    );
    let mut small = config();
    small.max_body_bytes = 512 * 1024;
    let r = Fetcher::new(&small)
        .unwrap()
        .check(&s.url("/late"), Some(&literal()))
        .await;
    assert_eq!(r.failure, Some(Failure::BodyTooLarge));

    // A page exactly as long as the cap is read whole: no backlink, not "too large".
    let mut exact = config();
    exact.max_body_bytes = "<html>no links here</html>".len();
    let r = Fetcher::new(&exact)
        .unwrap()
        .check(&s.url("/plain"), Some(&literal()))
        .await;
    assert_eq!(r.failure, Some(Failure::NoBacklink));

    let r = f.check(&s.url("/gbk"), Some(&literal())).await;
    assert_eq!(r.failure, None);
    let chinese = Backlink::Regex(regex::Regex::new("芹菜").unwrap());
    let r = f.check(&s.url("/gbk"), Some(&chinese)).await;
    assert_eq!(r.failure, None, "the GBK page is decoded as GBK");
    let r = f.check(&s.url("/bad-utf8"), Some(&literal())).await;
    assert_eq!(r.failure, None);
}

#[tokio::test]
async fn transport_failures_have_their_own_kinds() {
    let f = Fetcher::new(&config()).unwrap();
    let closed = free_port();
    let r = f.check(&format!("http://127.0.0.1:{closed}/"), None).await;
    assert_eq!((r.failure, r.status), (Some(Failure::Connect), None));
    let r = f.check("http://no-such-host.invalid/", None).await;
    assert_eq!(r.failure, Some(Failure::Dns));
    let r = f.check("ftp://example.org/", None).await;
    assert_eq!(r.failure, Some(Failure::InvalidUrl));
    let r = f.check("not a url", None).await;
    assert_eq!(r.failure, Some(Failure::InvalidUrl));
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused() {
    let dir = std::env::temp_dir().join(format!("celeriac-tls-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    celeriac_testkit::tls::openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
    );
    let port = free_port();
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server", "-quiet", "-www", "-cert", "cert.pem", "-key", "key.pem", "-accept",
        ])
        .arg(port.to_string())
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    celeriac_testkit::wait_until(Duration::from_secs(10), "the TLS server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let f = Fetcher::new(&config()).unwrap();
    let r = f.check(&format!("https://127.0.0.1:{port}/"), None).await;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(r.failure, Some(Failure::Tls), "{r:?}");
    assert!(
        r.error.as_deref().unwrap_or("").contains("certificate"),
        "{r:?}"
    );
}
