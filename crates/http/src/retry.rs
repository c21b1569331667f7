//! What a failed request means: which statuses are worth another try, how long the server asks
//! to wait (`Retry-After`), and what kind of transport failure a client error is.

use crate::GuardError;
use std::time::Duration;

/// A status worth another try: a server error, 408 (request timeout) or 429 (throttled).
pub fn transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// `Retry-After` of a response: seconds, or an HTTP date (the time left until then; none if it
/// has passed).
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    parse_retry_after(value, chrono::Utc::now())
}

/// `Retry-After` text at `now`.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

/// What kind of transport failure a client error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The deadline passed (connect, headers or body).
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// The connection was refused or could not be made.
    Connect,
    /// The TLS handshake failed (an untrusted or invalid certificate, …).
    Tls,
    /// The address guard refused the host.
    Blocked,
    /// The connection was reset or closed mid-response, or the server broke the protocol.
    Protocol,
}

impl Transport {
    /// Worth another try: a timeout or a broken connection.
    pub fn transient(self) -> bool {
        matches!(self, Transport::Timeout | Transport::Protocol)
    }
}

/// Name a client error, with its whole cause chain as the message. reqwest reports TLS
/// failures, refused connections and resets all as connect/request errors, so the chain is
/// inspected for the typed errors underneath (`rustls::Error`, [`GuardError`],
/// `std::io::ErrorKind`) — never for message text.
pub fn classify(e: &reqwest::Error) -> (Transport, String) {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    let mut kind = None;
    while let Some(s) = source {
        message = format!("{message}: {s}");
        if kind.is_none() {
            if s.is::<rustls::Error>() {
                kind = Some(Transport::Tls);
            } else if let Some(g) = s.downcast_ref::<GuardError>() {
                kind = Some(match g {
                    GuardError::Dns(_) => Transport::Dns,
                    GuardError::Blocked(_) => Transport::Blocked,
                });
            } else if let Some(mut io) = s.downcast_ref::<std::io::Error>() {
                // I/O errors nest (the TLS stream wraps rustls' error in one, the connector
                // wraps that in another) and `source()` skips their payload: unwrap by hand.
                while let Some(inner) = io
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<std::io::Error>())
                {
                    io = inner;
                }
                if io
                    .get_ref()
                    .is_some_and(|inner| inner.is::<rustls::Error>())
                {
                    kind = Some(Transport::Tls);
                } else {
                    use std::io::ErrorKind::*;
                    kind = match io.kind() {
                        ConnectionRefused | HostUnreachable | NetworkUnreachable
                        | AddrNotAvailable => Some(Transport::Connect),
                        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                            Some(Transport::Protocol)
                        }
                        TimedOut => Some(Transport::Timeout),
                        _ => None,
                    };
                }
            }
        }
        source = s.source();
    }
    let kind = kind.unwrap_or(if e.is_timeout() {
        Transport::Timeout
    } else if e.is_connect() {
        Transport::Connect
    } else {
        Transport::Protocol
    });
    (kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T08:49:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 08:00:00 GMT", now),
            None
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn transient_statuses() {
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(transient_status(s), "{s}");
        }
        for s in [200, 301, 400, 401, 403, 404, 410] {
            assert!(!transient_status(s), "{s}");
        }
    }
}
