//! The pages a link checker meets in the wild, served on every path no route claims.
//!
//! `/ok` (links back to [`BACKLINK`]), `/plain` (does not), `/status/N`, `/flaky` (500 once,
//! then `/ok`), `/throttled` (429 with `Retry-After: 1` once, then `/ok`), `/slow` (no answer
//! for a minute), `/drip` (a byte every 100 ms), `/redirect/N` (N redirects, then `/ok`),
//! `/loop`, `/to?LOCATION` (a redirect to LOCATION), `/big` (10 MB without the backlink),
//! `/gbk` (a GBK page), `/bad-utf8`, `/no-head` (HEAD refused with 405), `/late` (the backlink
//! after 1 MB of text), `/wait/MS` (`/ok` after MS milliseconds); anything else is 404.

use super::exchange::{has_content_type, write, Request};
use super::Answer;
use std::net::SocketAddr;
use std::time::Duration;

/// The site every friend page is expected to link to.
pub const BACKLINK: &str = "https://celeriac.example";

/// Answer `req` (the `n`th request to its path) on `stream`, which `addr` accepted.
pub(super) async fn serve(
    stream: &mut Answer<'_>,
    addr: SocketAddr,
    req: &Request,
) -> std::io::Result<()> {
    let head_only = req.method == "HEAD";
    let page =
        |body: &str| format!("<html><body><a href=\"{BACKLINK}/\">friend</a>{body}</body></html>");
    let n = req.n;
    match req.path.as_str() {
        "/ok" => respond(stream, 200, &[], page("").as_bytes(), head_only).await,
        "/plain" => respond(stream, 200, &[], b"<html>no links here</html>", head_only).await,
        "/flaky" if n == 1 => respond(stream, 500, &[], b"oops", head_only).await,
        "/flaky" => respond(stream, 200, &[], page("").as_bytes(), head_only).await,
        "/throttled" if n == 1 => {
            let retry = [("Retry-After", "1")];
            respond(stream, 429, &retry, b"slow down", head_only).await
        }
        "/throttled" => respond(stream, 200, &[], page("").as_bytes(), head_only).await,
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
            respond(stream, 302, &[("Location", &to)], b"", head_only).await
        }
        "/to" => {
            let to = req.query.clone().unwrap_or_default();
            respond(stream, 302, &[("Location", &to)], b"", head_only).await
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
            respond(stream, 200, &[], body.as_bytes(), head_only).await
        }
        "/gbk" => {
            let text =
                format!("<html><body>友情链接：<a href=\"{BACKLINK}/\">芹菜</a></body></html>");
            let (body, _, _) = encoding_rs::GBK.encode(&text);
            let gbk = [("Content-Type", "text/html; charset=GBK")];
            respond(stream, 200, &gbk, &body, head_only).await
        }
        "/bad-utf8" => {
            let mut body = b"<html>\xfa\xfb\xc3( broken ".to_vec();
            body.extend_from_slice(page("").as_bytes());
            respond(stream, 200, &[], &body, head_only).await
        }
        "/no-head" if head_only => respond(stream, 405, &[], b"", true).await,
        "/no-head" => respond(stream, 200, &[], page("").as_bytes(), false).await,
        p if p.starts_with("/redirect/") => {
            let left: u32 = p["/redirect/".len()..].parse().unwrap_or(0);
            let to = if left <= 1 {
                "/ok".to_string()
            } else {
                format!("/redirect/{}", left - 1)
            };
            respond(stream, 302, &[("Location", &to)], b"", head_only).await
        }
        p if p.starts_with("/wait/") => {
            let ms: u64 = p["/wait/".len()..].parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            respond(stream, 200, &[], page("").as_bytes(), head_only).await
        }
        p if p.starts_with("/status/") => {
            let code: u16 = p["/status/".len()..].parse().unwrap_or(500);
            respond(stream, code, &[], b"status page", head_only).await
        }
        _ => respond(stream, 404, &[], b"not found", head_only).await,
    }
}

/// [`write`] with `Content-Type: text/html` unless `headers` name one.
async fn respond(
    stream: &mut Answer<'_>,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let mut all = headers.to_vec();
    if !has_content_type(headers) {
        all.insert(0, ("Content-Type", "text/html"));
    }
    write(stream, status, &all, body, head_only).await
}
