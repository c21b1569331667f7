//! A small HTTP/1.1 server on 127.0.0.1 with the pages a link checker meets in the wild, and
//! a count of the requests each path received.
//!
//! Paths: `/ok` (links back to [`BACKLINK`]), `/plain` (does not), `/status/N`, `/flaky`
//! (500 once, then `/ok`), `/throttled` (429 with `Retry-After: 1` once, then `/ok`), `/slow`
//! (no answer for a minute), `/drip` (a byte every 100 ms), `/redirect/N` (N redirects, then
//! `/ok`), `/loop`, `/to?LOCATION` (a redirect to LOCATION), `/big` (10 MB without the
//! backlink), `/gbk` (a GBK page), `/bad-utf8`, `/no-head` (HEAD refused with 405),
//! `/late` (the backlink after 1 MB of text), `/wait/MS` (`/ok` after MS milliseconds).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The site every friend page is expected to link to.
pub const BACKLINK: &str = "https://celeriac.example";

/// A running test server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    addrs: Vec<SocketAddr>,
    hits: Arc<Mutex<HashMap<String, u32>>>,
    load: Arc<Load>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Requests being answered now, the most at once, and when each began.
#[derive(Default)]
struct Load {
    now: std::sync::atomic::AtomicU32,
    most: std::sync::atomic::AtomicU32,
    starts: Mutex<Vec<std::time::Instant>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl TestServer {
    /// Start on 127.0.0.1 (a free port).
    pub async fn start() -> TestServer {
        Self::start_on("127.0.0.1:0").await
    }

    /// Start on `addr`.
    pub async fn start_on(addr: &str) -> TestServer {
        Self::start_on_all(&[addr]).await
    }

    /// One server (one set of counters) listening on every address of `addrs`: several hosts.
    pub async fn start_on_all(addrs: &[&str]) -> TestServer {
        let hits: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let load: Arc<Load> = Arc::default();
        let mut bound = Vec::new();
        let mut tasks = Vec::new();
        for addr in addrs {
            let listener = TcpListener::bind(addr).await.expect("bind test server");
            let addr = listener.local_addr().expect("local addr");
            bound.push(addr);
            let (h, l) = (hits.clone(), load.clone());
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (h, l) = (h.clone(), l.clone());
                    tokio::spawn(async move {
                        let _ = serve(stream, addr, h, l).await;
                    });
                }
            }));
        }
        TestServer {
            addr: bound[0],
            addrs: bound,
            hits,
            load,
            tasks,
        }
    }

    /// `http://ADDRESS{path}` on the `n`th address.
    pub fn url_on(&self, n: usize, path: &str) -> String {
        format!("http://{}{path}", self.addrs[n])
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The most requests this server was answering at once.
    pub fn most_at_once(&self) -> u32 {
        self.load.most.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// When each request arrived, in order.
    pub fn request_starts(&self) -> Vec<std::time::Instant> {
        self.load
            .starts
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Requests `path` received (any method).
    pub fn hits(&self, path: &str) -> u32 {
        self.hits
            .lock()
            .map(|h| h.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// One request being answered: counted in [`Load`] from its headers to its end.
struct InFlight(Arc<Load>);

impl InFlight {
    fn enter(load: Arc<Load>) -> InFlight {
        use std::sync::atomic::Ordering::SeqCst;
        let now = load.now.fetch_add(1, SeqCst) + 1;
        load.most.fetch_max(now, SeqCst);
        if let Ok(mut s) = load.starts.lock() {
            s.push(std::time::Instant::now());
        }
        InFlight(load)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn serve(
    mut stream: TcpStream,
    addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, u32>>>,
    load: Arc<Load>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let _in_flight = InFlight::enter(load);
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.clone(), None),
    };
    let n = {
        let mut h = hits.lock().expect("hits");
        let c = h.entry(path.clone()).or_insert(0);
        *c += 1;
        *c
    };
    let head_only = method == "HEAD";
    let page =
        |body: &str| format!("<html><body><a href=\"{BACKLINK}/\">friend</a>{body}</body></html>");
    match path.as_str() {
        "/ok" => respond(&mut stream, 200, &[], page("").as_bytes(), head_only).await,
        "/plain" => {
            respond(
                &mut stream,
                200,
                &[],
                b"<html>no links here</html>",
                head_only,
            )
            .await
        }
        "/flaky" if n == 1 => respond(&mut stream, 500, &[], b"oops", head_only).await,
        "/flaky" => respond(&mut stream, 200, &[], page("").as_bytes(), head_only).await,
        "/throttled" if n == 1 => {
            respond(
                &mut stream,
                429,
                &[("Retry-After", "1")],
                b"slow down",
                head_only,
            )
            .await
        }
        "/throttled" => respond(&mut stream, 200, &[], page("").as_bytes(), head_only).await,
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        "/drip" => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")
                .await?;
            loop {
                stream.write_all(b"x").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        "/loop" => {
            let to = format!("http://{addr}/loop");
            respond(&mut stream, 302, &[("Location", &to)], b"", head_only).await
        }
        "/to" => {
            let to = query.unwrap_or_default();
            respond(&mut stream, 302, &[("Location", &to)], b"", head_only).await
        }
        "/big" => {
            let len = 10 * 1024 * 1024;
            stream
                .write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n").as_bytes())
                .await?;
            let block = vec![b'a'; 64 * 1024];
            for _ in 0..len / block.len() {
                stream.write_all(&block).await?;
            }
            Ok(())
        }
        "/late" => {
            let body = format!("{}{}", "b".repeat(1024 * 1024), page(""));
            respond(&mut stream, 200, &[], body.as_bytes(), head_only).await
        }
        "/gbk" => {
            let text =
                format!("<html><body>友情链接：<a href=\"{BACKLINK}/\">芹菜</a></body></html>");
            let (body, _, _) = encoding_rs::GBK.encode(&text);
            respond(
                &mut stream,
                200,
                &[("Content-Type", "text/html; charset=GBK")],
                &body,
                head_only,
            )
            .await
        }
        "/bad-utf8" => {
            let mut body = b"<html>\xfa\xfb\xc3( broken ".to_vec();
            body.extend_from_slice(page("").as_bytes());
            respond(&mut stream, 200, &[], &body, head_only).await
        }
        "/no-head" if head_only => respond(&mut stream, 405, &[], b"", true).await,
        "/no-head" => respond(&mut stream, 200, &[], page("").as_bytes(), false).await,
        p if p.starts_with("/redirect/") => {
            let left: u32 = p["/redirect/".len()..].parse().unwrap_or(0);
            let to = if left <= 1 {
                "/ok".to_string()
            } else {
                format!("/redirect/{}", left - 1)
            };
            respond(&mut stream, 302, &[("Location", &to)], b"", head_only).await
        }
        p if p.starts_with("/wait/") => {
            let ms: u64 = p["/wait/".len()..].parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            respond(&mut stream, 200, &[], page("").as_bytes(), head_only).await
        }
        p if p.starts_with("/status/") => {
            let code: u16 = p["/status/".len()..].parse().unwrap_or(500);
            respond(&mut stream, code, &[], b"status page", head_only).await
        }
        _ => respond(&mut stream, 404, &[], b"not found", head_only).await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Test\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: text/html\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body).await?;
    }
    stream.flush().await?;
    stream.shutdown().await
}
