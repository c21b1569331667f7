//! The webhook channel: one signed POST per attempt (Standard Webhooks headers, see
//! [`crate::sign`]), through the SSRF guard every time, no redirects followed, a deadline of
//! `[fanout] timeout`, the first `keep_response_bytes` of the answer kept.
//!
//! | answer                  | means                                                   |
//! |-------------------------|---------------------------------------------------------|
//! | 2xx                     | delivered                                               |
//! | 410                     | gone: the subscriber is disabled, no more attempts      |
//! | 429, 502, 503, 504      | throttled: retried no sooner than `Retry-After` (capped) |
//! | any other, 3xx included | failed: retried on the schedule                         |
//! | transport error         | failed: retried on the schedule                         |
//! | address refused         | refused: no more attempts                               |

use super::Sent;
use crate::config::FanoutConfig;
use crate::sign::Secret;
use celeriac_http::{reqwest, Guard, HostPacer, Transport};
use std::time::Duration;

/// What a webhook request carries besides its body.
#[derive(Clone, Debug)]
pub struct Signed<'a> {
    /// `webhook-id`: the same on every attempt of one delivery.
    pub id: &'a str,
    /// The endpoint's secret.
    pub secret: &'a Secret,
}

/// The statuses that throttle a host.
pub fn throttling(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// POST `body` to `url`, signed.
pub async fn send(
    client: &reqwest::Client,
    guard: &Guard,
    pacer: &HostPacer,
    config: &FanoutConfig,
    url: &str,
    signed: Signed<'_>,
    body: &[u8],
) -> Sent {
    match parse(url) {
        Ok(parsed) => send_to(client, guard, pacer, config, parsed, signed, body).await,
        Err(refused) => refused,
    }
}

/// `url` parsed, or why it is refused.
pub fn parse(url: &str) -> Result<url::Url, Sent> {
    url::Url::parse(url).map_err(|e| Sent::Refused {
        error: format!("{url:?} is not a URL: {e}"),
    })
}

/// [`send`] to a URL already parsed.
pub async fn send_to(
    client: &reqwest::Client,
    guard: &Guard,
    pacer: &HostPacer,
    config: &FanoutConfig,
    parsed: url::Url,
    signed: Signed<'_>,
    body: &[u8],
) -> Sent {
    let host = parsed.host_str().unwrap_or_default();
    // The guard decides on every attempt: a name that now resolves to an internal address is
    // refused even if it was public when the subscriber was added.
    if let Err(e) = guard.check_host(host).await {
        return match e {
            celeriac_http::GuardError::Blocked(m) => Sent::Refused {
                error: format!("address refused: {m}"),
            },
            celeriac_http::GuardError::Dns(m) => failed(None, m, None, None),
        };
    }
    let _slot = pacer.acquire(host).await;
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let request = client
        .post(parsed)
        .timeout(config.timeout)
        .header("content-type", "application/json")
        .header("webhook-id", signed.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signed.secret.sign(signed.id, timestamp, body),
        )
        .body(body.to_vec());
    let deadline = tokio::time::Instant::now() + config.timeout;
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let (kind, message) = celeriac_http::classify(&e);
            if kind == Transport::Blocked {
                return Sent::Refused {
                    error: format!("address refused: {message}"),
                };
            }
            return failed(None, message, None, None);
        }
    };
    let status = response.status().as_u16();
    let retry_after = celeriac_http::retry_after(&response).map(|d| d.min(config.retry_after_cap));
    let kept = keep(&mut response, config.keep_response_bytes, deadline).await;
    match status {
        200..=299 => Sent::Delivered { status: Some(status), response: kept },
        410 => Sent::Gone {
            status: Some(status),
            error: "the endpoint answered 410 Gone: subscriber disabled".into(),
            response: kept,
        },
        s if throttling(s) => Sent::Failed {
            status: Some(s),
            error: format!("the endpoint answered {s} (throttled)"),
            response: kept,
            retry_after,
            throttled: true,
        },
        300..=399 => failed(
            Some(status),
            format!("the endpoint answered {status} (redirects are not followed: subscribe its final URL)"),
            kept,
            None,
        ),
        s => failed(Some(s), format!("the endpoint answered {s}"), kept, None),
    }
}

fn failed(
    status: Option<u16>,
    error: String,
    response: Option<String>,
    retry_after: Option<Duration>,
) -> Sent {
    Sent::Failed {
        status,
        error,
        response,
        retry_after,
        throttled: false,
    }
}

/// The first `limit` bytes of the body (as text, lossily), read until `deadline`.
async fn keep(
    response: &mut reqwest::Response,
    limit: usize,
    deadline: tokio::time::Instant,
) -> Option<String> {
    let mut kept = Vec::new();
    while kept.len() < limit {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                kept.extend_from_slice(&chunk[..chunk.len().min(limit - kept.len())])
            }
            _ => break,
        }
    }
    (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned())
}
