//! Fetching one URL the way a careful link checker does: TLS verified (rustls), every hop
//! through the address guard, redirects followed by hand (counted, reported, each re-checked),
//! a deadline over the whole attempt (connect, headers and body: a server that drips bytes is
//! cut off), always GET (the body read only when a backlink is looked for), the body streamed
//! and capped, and transient failures (5xx, 408, 429, timeouts, resets) tried again with
//! backoff, honouring `Retry-After` up to a cap — never after a second timeout, so that a
//! page that never answers costs two deadlines, not three. [`Fetcher::first`] and [`Fetcher::retry`]
//! split the two so that a run tries every link once before it retries any.

use crate::body::{Backlink, Search};
use crate::config::LinksConfig;
use celeriac_core::config::redact_url;
use celeriac_http::reqwest::{self, StatusCode, Url};
use celeriac_http::{
    classify, retry_after, transient_status, Guard, GuardError, HostPacer, Transport,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What became of one URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A response other than 200.
    Status(u16),
    /// 200, but the backlink is not on the page.
    NoBacklink,
    /// The attempt's deadline passed (connect, headers or body).
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// The connection was refused or could not be made.
    Connect,
    /// The TLS handshake failed (an untrusted or invalid certificate, …).
    Tls,
    /// More redirects than `links.max_redirects`, or a loop.
    TooManyRedirects,
    /// The address guard refused the host (or a redirect's host).
    BlockedAddress,
    /// The page is larger than `links.max_body_bytes` and the backlink is not in what was read.
    BodyTooLarge,
    /// Not an http(s) URL, or a redirect to one.
    InvalidUrl,
    /// The connection was reset or closed mid-response, or the server broke the protocol.
    Protocol,
}

impl Failure {
    /// Stable name, stored as `last_error_kind` and in run results.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Status(_) => "http_status",
            Failure::NoBacklink => "no_backlink",
            Failure::Timeout => "timeout",
            Failure::Dns => "dns",
            Failure::Connect => "connect",
            Failure::Tls => "tls",
            Failure::TooManyRedirects => "too_many_redirects",
            Failure::BlockedAddress => "blocked_address",
            Failure::BodyTooLarge => "body_too_large",
            Failure::InvalidUrl => "invalid_url",
            Failure::Protocol => "protocol",
        }
    }

    /// The reason shown for a hidden link (the seed job's wording for the first two).
    pub fn reason(self) -> String {
        match self {
            Failure::Status(code) => format!("网页请求返回{code}"),
            Failure::NoBacklink => "网站未设置本站外链".into(),
            Failure::Timeout => "网页请求超时".into(),
            Failure::Dns => "域名解析失败".into(),
            Failure::Connect => "网站无法连接".into(),
            Failure::Tls => "网站证书无效".into(),
            Failure::TooManyRedirects => "网页重定向过多".into(),
            Failure::BlockedAddress => "网站地址不允许访问".into(),
            Failure::BodyTooLarge => "网页过大，未找到本站外链".into(),
            Failure::InvalidUrl => "链接地址无效".into(),
            Failure::Protocol => "网页响应异常".into(),
        }
    }

    /// Worth another try: a server error, throttling, a timeout or a broken connection.
    fn transient(self) -> bool {
        match self {
            Failure::Status(s) => transient_status(s),
            Failure::Timeout | Failure::Protocol => true,
            _ => false,
        }
    }
}

impl From<Transport> for Failure {
    fn from(t: Transport) -> Failure {
        match t {
            Transport::Timeout => Failure::Timeout,
            Transport::Dns => Failure::Dns,
            Transport::Connect => Failure::Connect,
            Transport::Tls => Failure::Tls,
            Transport::Blocked => Failure::BlockedAddress,
            Transport::Protocol => Failure::Protocol,
        }
    }
}

/// A client error as a failure and its message (which names the URL: its password is
/// redacted, as everywhere the project prints a URL).
fn failure_of(e: &reqwest::Error) -> (Failure, String) {
    let (kind, mut message) = classify(e);
    if let Some(url) = e.url() {
        message = message.replace(url.as_str(), &redact_url(url.as_str()));
    }
    (kind.into(), message)
}

/// The report on one URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `None` when the link passed.
    pub failure: Option<Failure>,
    /// Final status, if a response came.
    pub status: Option<u16>,
    /// Where redirects led, when they were followed (a password in it redacted).
    pub final_url: Option<String>,
    /// Redirects followed in the last attempt.
    pub redirects: u32,
    /// Attempts made.
    pub attempts: u32,
    /// Time spent on it: its attempts and the waits between them (not the time a retry
    /// waited for the run's second pass).
    pub elapsed: Duration,
    /// Detail of the failure.
    pub error: Option<String>,
}

/// One attempt's result before retry decisions.
struct Attempt {
    failure: Option<Failure>,
    status: Option<u16>,
    final_url: Option<Url>,
    redirects: u32,
    error: Option<String>,
    retry_after: Option<Duration>,
}

impl Attempt {
    fn failed(failure: Failure, error: impl Into<String>, redirects: u32) -> Self {
        Attempt {
            failure: Some(failure),
            status: None,
            final_url: None,
            redirects,
            error: Some(error.into()),
            retry_after: None,
        }
    }
}

/// What the first attempt at a URL came to.
pub enum Checked {
    /// A final report: it passed, failed for good, or has no retries left.
    Done(Report),
    /// A transient failure, to try again with [`Fetcher::retry`].
    Retry(Retry),
}

/// A URL to try again, with its first attempt.
pub struct Retry {
    url: Url,
    last: Attempt,
    spent: Duration,
    not_before: Instant,
}

impl Retry {
    /// Why the first attempt failed.
    pub fn failure(&self) -> Option<Failure> {
        self.last.failure
    }
}

/// The fetcher of one run.
pub struct Fetcher {
    client: reqwest::Client,
    guard: Arc<Guard>,
    config: LinksConfig,
    hosts: HostPacer,
}

impl Fetcher {
    /// A client with the run's settings, keeping idle connections for reuse.
    pub fn new(config: &LinksConfig) -> Result<Fetcher, celeriac_http::BuildError> {
        Self::with_reuse(config, true)
    }

    /// A client with the run's settings. With `reuse_connections` an idle connection is kept
    /// a few seconds for the next URL on its host; without (every URL on its own host, the
    /// usual friend list) none is kept, so open sockets never exceed `links.concurrency`.
    pub fn with_reuse(
        config: &LinksConfig,
        reuse_connections: bool,
    ) -> Result<Fetcher, celeriac_http::BuildError> {
        let (client, guard) = celeriac_http::build(&celeriac_http::ClientOptions {
            user_agent: config.user_agent.clone(),
            policy: config.address_policy(),
            connect_timeout: config.timeout,
            idle_per_host: if reuse_connections {
                config.per_host
            } else {
                0
            },
            idle_timeout: Duration::from_secs(5),
        })?;
        Ok(Fetcher {
            client,
            guard,
            config: config.clone(),
            hosts: HostPacer::new(config.per_host, config.host_interval),
        })
    }

    /// Check `url`: 200 (and the backlink on the page, if one is given), with the retries of
    /// transient failures right after (a run makes them in a second pass instead: see
    /// [`Fetcher::first`]).
    pub async fn check(&self, url: &str, backlink: Option<&Backlink>) -> Report {
        match self.first(url, backlink).await {
            Checked::Done(report) => report,
            Checked::Retry(retry) => self.retry(retry, backlink).await,
        }
    }

    /// The first attempt at `url`: the report, or, when it failed in a way worth another try
    /// (5xx, 408, 429, a timeout, a reset) and `links.retries` allows one, what
    /// [`Fetcher::retry`] needs to try again later.
    pub async fn first(&self, url: &str, backlink: Option<&Backlink>) -> Checked {
        let started = Instant::now();
        let parsed = match Url::parse(url.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            Ok(u) => {
                let a = Attempt::failed(
                    Failure::InvalidUrl,
                    format!("{} is not an http(s) URL", u.scheme()),
                    0,
                );
                return Checked::Done(self.report(a, 1, started.elapsed()));
            }
            Err(e) => {
                let a = Attempt::failed(Failure::InvalidUrl, format!("not a URL: {e}"), 0);
                return Checked::Done(self.report(a, 1, started.elapsed()));
            }
        };
        let attempt = self.attempt(&parsed, backlink, self.config.timeout).await;
        let spent = started.elapsed();
        if self.config.retries == 0 || !attempt.failure.is_some_and(Failure::transient) {
            return Checked::Done(self.report(attempt, 1, spent));
        }
        let not_before = Instant::now() + self.wait_after(&attempt, 1);
        Checked::Retry(Retry {
            url: parsed,
            last: attempt,
            spent,
            not_before,
        })
    }

    /// Try a URL again after a transient failure: up to `links.retries` more attempts, but
    /// none after its second timeout (a page that did not answer twice within
    /// `links.timeout` is not waited for a third time). Waits what is left of the backoff (or
    /// of the server's `Retry-After`, capped) since the failure; after a timeout it does not
    /// wait.
    pub async fn retry(&self, retry: Retry, backlink: Option<&Backlink>) -> Report {
        let Retry {
            url,
            mut last,
            spent,
            not_before,
        } = retry;
        let started = Instant::now();
        tokio::time::sleep_until(not_before.into()).await;
        let mut attempts = 1;
        let mut timeouts = u32::from(last.failure == Some(Failure::Timeout));
        loop {
            attempts += 1;
            // After a timeout the next attempt's deadline is a little shorter, so that a run
            // whose slowest page never answers ends within two `links.timeout`, its own
            // database work included.
            let timeout = if last.failure == Some(Failure::Timeout) {
                self.config.timeout - retry_margin(self.config.timeout)
            } else {
                self.config.timeout
            };
            last = self.attempt(&url, backlink, timeout).await;
            if last.failure == Some(Failure::Timeout) {
                timeouts += 1;
            }
            let again = last.failure.is_some_and(Failure::transient)
                && attempts <= self.config.retries
                && timeouts < 2;
            if !again {
                return self.report(last, attempts, spent + started.elapsed());
            }
            tokio::time::sleep(self.wait_after(&last, attempts)).await;
        }
    }

    /// The pause before trying again after `attempt`, the `n`th: none after a timeout (the
    /// deadline was the wait), else the server's `Retry-After` (capped), else a backoff with
    /// full jitter.
    fn wait_after(&self, attempt: &Attempt, n: u32) -> Duration {
        if attempt.failure == Some(Failure::Timeout) {
            return Duration::ZERO;
        }
        let backoff = celeriac_core::backoff::Backoff {
            base: self.config.retry_base,
            cap: self.config.retry_after_cap,
        }
        .delay(n);
        attempt
            .retry_after
            .map(|d| d.min(self.config.retry_after_cap))
            .unwrap_or(backoff)
    }

    fn report(&self, a: Attempt, attempts: u32, elapsed: Duration) -> Report {
        Report {
            failure: a.failure,
            status: a.status,
            final_url: a.final_url.map(|u| redact_url(u.as_str())),
            redirects: a.redirects,
            attempts,
            elapsed,
            error: a.error,
        }
    }

    /// One attempt: a GET, redirects followed, then the body read if a backlink is looked for.
    /// Always GET, as the job this one replaces did: a page that answers HEAD with 200 and GET
    /// with an error is broken for its readers. Without a backlink to look for the body is not
    /// read (the connection is dropped after the headers).
    async fn attempt(
        &self,
        start: &Url,
        backlink: Option<&Backlink>,
        timeout: Duration,
    ) -> Attempt {
        // One deadline for the whole attempt: it starts with the first request and covers
        // DNS, connect, TLS, headers, redirects and the body. Time spent waiting for a host
        // slot is not counted.
        let mut deadline = None;
        self.follow(start, backlink, timeout, &mut deadline).await
    }

    async fn follow(
        &self,
        start: &Url,
        backlink: Option<&Backlink>,
        timeout: Duration,
        deadline: &mut Option<tokio::time::Instant>,
    ) -> Attempt {
        let mut url = start.clone();
        let mut redirects = 0u32;
        let mut seen = vec![url.clone()];
        let timed_out = |redirects| {
            Attempt::failed(
                Failure::Timeout,
                format!(
                    "no complete answer within {}",
                    humantime::format_duration(timeout)
                ),
                redirects,
            )
        };
        loop {
            let host = url.host_str().unwrap_or_default().to_string();
            let waiting = tokio::time::Instant::now();
            let _slot = self.hosts.acquire(&host).await;
            let deadline = match deadline {
                Some(d) => {
                    *d += waiting.elapsed();
                    *d
                }
                None => *deadline.insert(tokio::time::Instant::now() + timeout),
            };
            match tokio::time::timeout_at(deadline, self.guard.check_host(&host)).await {
                Err(_) => return timed_out(redirects),
                Ok(Err(e)) => {
                    let failure = match e {
                        GuardError::Dns(_) => Failure::Dns,
                        GuardError::Blocked(_) => Failure::BlockedAddress,
                    };
                    return Attempt::failed(failure, e.to_string(), redirects);
                }
                Ok(Ok(_)) => {}
            }
            let sent = tokio::time::timeout_at(deadline, self.client.get(url.clone()).send()).await;
            let response = match sent {
                Err(_) => return timed_out(redirects),
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    let (failure, message) = failure_of(&e);
                    return Attempt::failed(failure, message, redirects);
                }
            };
            let status = response.status();
            if status.is_redirection() {
                if let Some(next) = location(&url, &response) {
                    redirects += 1;
                    if redirects as usize > self.config.max_redirects {
                        return Attempt::failed(
                            Failure::TooManyRedirects,
                            format!("more than {} redirects", self.config.max_redirects),
                            redirects - 1,
                        );
                    }
                    let next = match next {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
                        Ok(u) => {
                            return Attempt::failed(
                                Failure::InvalidUrl,
                                format!(
                                    "redirect to a {} URL: {}",
                                    u.scheme(),
                                    redact_url(u.as_str())
                                ),
                                redirects,
                            )
                        }
                        Err(e) => {
                            return Attempt::failed(
                                Failure::InvalidUrl,
                                format!("redirect to an invalid location: {e}"),
                                redirects,
                            )
                        }
                    };
                    if seen.contains(&next) {
                        return Attempt::failed(
                            Failure::TooManyRedirects,
                            format!("redirect loop back to {}", redact_url(next.as_str())),
                            redirects,
                        );
                    }
                    seen.push(next.clone());
                    url = next;
                    continue;
                }
            }
            let final_url = (redirects > 0).then(|| url.clone());
            let mut done = Attempt {
                failure: None,
                status: Some(status.as_u16()),
                final_url,
                redirects,
                error: None,
                retry_after: retry_after(&response),
            };
            if status != StatusCode::OK {
                done.failure = Some(Failure::Status(status.as_u16()));
                return done;
            }
            if let Some(backlink) = backlink {
                match tokio::time::timeout_at(deadline, self.read_body(response, backlink)).await {
                    Err(_) => {
                        done.failure = Some(Failure::Timeout);
                        done.error = timed_out(redirects).error;
                    }
                    Ok(Err((failure, error))) => {
                        done.failure = Some(failure);
                        done.error = Some(error);
                    }
                    Ok(Ok(())) => {}
                }
            }
            return done;
        }
    }

    /// Stream the body until the backlink shows up, the body ends, or the cap is reached.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        backlink: &Backlink,
    ) -> Result<(), (Failure, String)> {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut search = Search::new(backlink, content_type.as_deref());
        let cap = self.config.max_body_bytes;
        let mut read = 0usize;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return Err(failure_of(&e)),
            };
            let room = cap - read;
            let take = chunk.len().min(room);
            read += take;
            if search.feed(&chunk[..take]) {
                return Ok(());
            }
            if take < chunk.len() {
                return if search.finish() {
                    Ok(())
                } else {
                    Err((
                        Failure::BodyTooLarge,
                        format!("no backlink in the first {cap} bytes"),
                    ))
                };
            }
        }
        if search.finish() {
            Ok(())
        } else {
            Err((
                Failure::NoBacklink,
                format!("the page ({read} bytes) does not contain the backlink"),
            ))
        }
    }
}

/// Why a redirect's `Location` cannot be followed.
#[derive(Debug, thiserror::Error)]
enum BadLocation {
    #[error("Location is not text")]
    NotText,
    #[error("{0}")]
    Unparsable(#[from] url::ParseError),
}

fn location(base: &Url, response: &reqwest::Response) -> Option<Result<Url, BadLocation>> {
    let value = response.headers().get(reqwest::header::LOCATION)?;
    Some(match value.to_str() {
        Ok(v) => base.join(v).map_err(BadLocation::from),
        Err(_) => Err(BadLocation::NotText),
    })
}

/// How much shorter the deadline of an attempt after a timeout is than `links.timeout`: a
/// tenth of it, at most 100 ms — room for the run's own database work, so that a run whose
/// slowest page never answers lasts at most two timeouts.
fn retry_margin(timeout: Duration) -> Duration {
    (timeout / 10).min(Duration::from_millis(100))
}
