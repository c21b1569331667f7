//! One HTTP/1.1 exchange: the [`Request`] as read and recorded, the [`Response`] a handler
//! returns, and writing it (one request per connection, `Connection: close`).

use super::Answer;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most a request's head or body may take; larger requests are dropped unanswered.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Without the query: `/hook`.
    pub path: String,
    /// After `?`, if any.
    pub query: Option<String>,
    /// In arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` or chunked), empty without one.
    pub body: Vec<u8>,
    /// When its head had arrived.
    pub at: Instant,
    /// Which request to this path it is, from 1 (any method): `if req.n == 1 { 500 } else { 200 }`.
    pub n: u32,
}

impl Request {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics, naming the body, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", self.text()))
    }
}

/// What a handler answers.
///
/// ```
/// use celeriac_testkit::Response;
/// use std::time::Duration;
/// let throttled = Response::new(429).header("Retry-After", "2");
/// let slow = Response::ok().delay(Duration::from_secs(5));
/// let gone = Response::new(410).body("unsubscribed");
/// # let _ = (throttled, slow, gone);
/// ```
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Response {
    /// `status` with an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// 200 with an empty body.
    pub fn ok() -> Response {
        Response::new(200)
    }

    /// Set a header (replacing one of the same name).
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The body (`Content-Type: text/plain` unless a header says otherwise).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// A JSON body with its content type.
    pub fn json(self, value: &serde_json::Value) -> Response {
        self.header("Content-Type", "application/json")
            .body(value.to_string())
    }

    /// Answer only after `delay` (a slow endpoint; the client's timeout may fire first).
    pub fn delay(mut self, delay: Duration) -> Response {
        self.delay = delay;
        self
    }

    pub(super) async fn write(
        self,
        stream: &mut Answer<'_>,
        head_only: bool,
    ) -> std::io::Result<()> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !has_content_type(&headers) {
            headers.push(("Content-Type", "text/plain; charset=utf-8"));
        }
        write(stream, self.status, &headers, &self.body, head_only).await
    }
}

pub(super) fn has_content_type(headers: &[(&str, &str)]) -> bool {
    headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
}

/// Write a whole response with `Content-Length` and `Connection: close`, then close.
pub(super) async fn write(
    stream: &mut Answer<'_>,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Test\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body).await?;
    }
    stream.finish().await
}

/// A request's head, parsed; the bytes read past it are the body's beginning.
pub(super) struct Head {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub at: Instant,
    rest: Vec<u8>,
}

/// Read up to the blank line; `None` if the client closed first or sent too much.
pub(super) async fn read_head<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> std::io::Result<Option<Head>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > MAX_HEAD {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let at = Instant::now();
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some(Head {
        method,
        path,
        query,
        headers,
        at,
        rest: buf[end + 4..].to_vec(),
    }))
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Read the body this head announces; the whole [`Request`], numbered `n`.
    pub(super) async fn read_body<R: AsyncRead + Unpin>(
        self,
        stream: &mut R,
        n: u32,
    ) -> std::io::Result<Request> {
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length: usize = self
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = self.rest.clone();
        if chunked {
            body = read_chunked(stream, body).await?;
        } else {
            if length > MAX_BODY {
                return Err(std::io::Error::other("request body too large"));
            }
            let mut chunk = [0u8; 8192];
            while body.len() < length {
                let got = stream.read(&mut chunk).await?;
                if got == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                body.extend_from_slice(&chunk[..got]);
            }
            body.truncate(length);
        }
        Ok(Request {
            method: self.method,
            path: self.path,
            query: self.query,
            headers: self.headers,
            body,
            at: self.at,
            n,
        })
    }
}

/// Decode a chunked body whose first bytes are `buf`.
async fn read_chunked<R: AsyncRead + Unpin>(
    stream: &mut R,
    mut buf: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut pos = 0;
    loop {
        // Make sure buf holds a whole size line, then the chunk and its CRLF.
        let line_end = loop {
            if let Some(i) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
                break pos + i;
            }
            let got = stream.read(&mut chunk).await?;
            if got == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..got]);
        };
        let line = String::from_utf8_lossy(&buf[pos..line_end]).into_owned();
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
        if body.len() + size > MAX_BODY {
            return Err(std::io::Error::other("request body too large"));
        }
        let data = line_end + 2;
        while buf.len() < data + size + 2 {
            let got = stream.read(&mut chunk).await?;
            if got == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..got]);
        }
        if size == 0 {
            // No trailers expected from test clients: the CRLF after the last chunk ends it.
            return Ok(body);
        }
        body.extend_from_slice(&buf[data..data + size]);
        pos = data + size + 2;
    }
}
