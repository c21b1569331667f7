//! [`TestHttp`]: a small HTTP/1.1 server on loopback that records every request and answers
//! with a test's own handlers, or else with the link-checker pages of [`pages`].
//!
//! ```no_run
//! # async fn demo() {
//! use celeriac_testkit::{Response, TestHttp};
//! use std::time::Duration;
//! let sink = TestHttp::start().await;
//! // 500 the first time, then 200.
//! sink.route("/hook", |req| Response::new(if req.n == 1 { 500 } else { 200 }));
//! // ... the code under test posts to sink.url("/hook") ...
//! let got = sink.wait_requests("/hook", 2, Duration::from_secs(10)).await;
//! assert_eq!(got[1].header("content-type"), Some("application/json"));
//! # }
//! ```

mod exchange;
pub mod pages;

pub use exchange::{Request, Response};
pub use pages::BACKLINK;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

type Reply = Pin<Box<dyn Future<Output = Response> + Send>>;
type Handler = Arc<dyn Fn(Request) -> Reply + Send + Sync>;

/// A route: an exact path, or a prefix when the pattern ends with `*`.
struct Route {
    pattern: String,
    handler: Handler,
}

impl Route {
    fn matches(&self, path: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.pattern,
        }
    }
}

/// What the listeners of one server share.
struct Shared {
    routes: Mutex<Vec<Route>>,
    hits: Mutex<HashMap<String, u32>>,
    requests: Mutex<Vec<Request>>,
    /// Bumped after each recorded request: what [`TestHttp::wait_requests`] awaits.
    recorded: watch::Sender<u64>,
    /// Requests being answered now, and the most at once.
    now: AtomicU32,
    most: AtomicU32,
}

/// Lock, ignoring poisoning: a panicking handler must not hide the record from the test.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running test server; stops (with every connection it holds) when dropped.
pub struct TestHttp {
    /// The first address it listens on.
    pub addr: SocketAddr,
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for TestHttp {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl TestHttp {
    /// Start on 127.0.0.1 (a free port).
    pub async fn start() -> TestHttp {
        Self::start_on("127.0.0.1:0").await
    }

    /// Start on `addr`.
    pub async fn start_on(addr: &str) -> TestHttp {
        Self::start_on_all(&[addr]).await
    }

    /// One server (one set of routes and records) listening on every address of `addrs`:
    /// several hosts.
    pub async fn start_on_all(addrs: &[&str]) -> TestHttp {
        let shared = Arc::new(Shared {
            routes: Mutex::default(),
            hits: Mutex::default(),
            requests: Mutex::default(),
            recorded: watch::channel(0).0,
            now: AtomicU32::new(0),
            most: AtomicU32::new(0),
        });
        let mut bound = Vec::new();
        let mut tasks = Vec::new();
        for addr in addrs {
            let listener = TcpListener::bind(addr).await.expect("bind test server");
            let addr = listener.local_addr().expect("local addr");
            bound.push(addr);
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                // Connections live in this set: aborting the accept loop ends them too.
                let mut connections = JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    while connections.try_join_next().is_some() {}
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let _ = serve(stream, addr, shared).await;
                    });
                }
            }));
        }
        TestHttp {
            addr: bound[0],
            addrs: bound,
            shared,
            tasks,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADDRESS{path}` on the `n`th address.
    pub fn url_on(&self, n: usize, path: &str) -> String {
        format!("http://{}{path}", self.addrs[n])
    }

    /// Answer requests to `pattern` (an exact path, or a prefix ending with `*`) with
    /// `handler`; the latest route matching a path wins, and routes come before the pages.
    pub fn route<F>(&self, pattern: &str, handler: F) -> &Self
    where
        F: Fn(&Request) -> Response + Send + Sync + 'static,
    {
        self.add(
            pattern,
            Arc::new(move |req: Request| -> Reply {
                let response = handler(&req);
                Box::pin(async move { response })
            }),
        )
    }

    /// [`TestHttp::route`] with an async handler: one that awaits a test's signal (a
    /// `Notify`, a `Barrier`) before answering.
    pub fn route_async<F, Fut>(&self, pattern: &str, handler: F) -> &Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        self.add(
            pattern,
            Arc::new(move |req: Request| -> Reply { Box::pin(handler(req)) }),
        )
    }

    fn add(&self, pattern: &str, handler: Handler) -> &Self {
        lock(&self.shared.routes).push(Route {
            pattern: pattern.into(),
            handler,
        });
        self
    }

    /// Requests `path` received (any method).
    pub fn hits(&self, path: &str) -> u32 {
        lock(&self.shared.hits).get(path).copied().unwrap_or(0)
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// The requests to `path`, in arrival order.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Wait (without polling) until `path` received at least `n` requests; them. Panics
    /// naming the path and what did arrive after `timeout`.
    pub async fn wait_requests(&self, path: &str, n: usize, timeout: Duration) -> Vec<Request> {
        let mut recorded = self.shared.recorded.subscribe();
        let arrived = tokio::time::timeout(timeout, async {
            loop {
                let got = self.requests_to(path);
                if got.len() >= n {
                    return got;
                }
                // Subscribed before the check: a request recorded since is not missed.
                if recorded.changed().await.is_err() {
                    return got;
                }
            }
        })
        .await;
        match arrived {
            Ok(got) if got.len() >= n => got,
            _ => panic!(
                "timed out after {timeout:?} waiting for {n} requests to {path}; got {}: {:?}",
                self.requests_to(path).len(),
                self.requests()
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// The most requests this server was answering at once: each counts from its head's
    /// arrival until its answer starts going out, a span within the client's own, so a client
    /// that never had N requests open is never reported with N.
    pub fn most_at_once(&self) -> u32 {
        self.shared.most.load(Ordering::SeqCst)
    }

    /// When each request arrived (its head complete), in order.
    pub fn request_starts(&self) -> Vec<Instant> {
        let mut starts: Vec<Instant> = lock(&self.shared.requests).iter().map(|r| r.at).collect();
        starts.sort();
        starts
    }
}

/// One request being answered: counted from its head until its answer starts going out.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: Arc<Shared>) -> InFlight {
        let now = shared.now.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connection an answer goes out on. Its request stops counting as being answered just
/// before the first byte is written: from then on the client may be done with it, and counting
/// it longer would report concurrency the client never had (the interval counted always lies
/// within the client's own).
struct Answer<'a> {
    stream: &'a mut TcpStream,
    in_flight: Option<InFlight>,
}

impl Answer<'_> {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.in_flight = None;
        self.stream.write_all(bytes).await
    }

    /// Flush and close (one request per connection).
    async fn finish(&mut self) -> std::io::Result<()> {
        self.in_flight = None;
        self.stream.flush().await?;
        self.stream.shutdown().await
    }
}

/// Read one request, record it, answer it (a route, else the pages), close.
async fn serve(
    mut stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<()> {
    let Some(head) = exchange::read_head(&mut stream).await? else {
        return Ok(());
    };
    let in_flight = InFlight::enter(shared.clone());
    let n = {
        let mut hits = lock(&shared.hits);
        let count = hits.entry(head.path.clone()).or_insert(0);
        *count += 1;
        *count
    };
    let req = head.read_body(&mut stream, n).await?;
    lock(&shared.requests).push(req.clone());
    shared.recorded.send_modify(|c| *c += 1);
    let handler = lock(&shared.routes)
        .iter()
        .rev()
        .find(|r| r.matches(&req.path))
        .map(|r| r.handler.clone());
    let mut answer = Answer {
        stream: &mut stream,
        in_flight: Some(in_flight),
    };
    match handler {
        Some(handler) => {
            let head_only = req.method == "HEAD";
            handler(req).await.write(&mut answer, head_only).await
        }
        None => pages::serve(&mut answer, addr, &req).await,
    }
}
