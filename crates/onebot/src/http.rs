//! The OneBot v11 HTTP API client: `POST {api_url}/{action}` with a JSON body and, when a token
//! is set, `Authorization: Bearer TOKEN`.
//!
//! One `reqwest` client (rustls, connection pool) is kept for the life of the [`HttpClient`],
//! so successive actions reuse the connection. Nothing is retried here — not even by the HTTP
//! stack — because sends and kicks are not idempotent: a retry is the caller's decision, made
//! from [`crate::Error::class`].

use crate::api::{Action, OneBot};
use crate::config::{OneBotConfig, Secret};
use crate::error::{Error, Result, TransportKind};
use crate::reply;
use futures_util::future::BoxFuture;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use std::error::Error as _;
use std::fmt;
use std::time::Duration;

/// Largest reply body read; OneBot replies to our actions are a few hundred bytes.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// A OneBot v11 implementation reached over HTTP. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    base: String,
    token: Option<Secret>,
    auth: Option<HeaderValue>,
    timeout: Duration,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("api_url", &redact_url(&self.base))
            .field("access_token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HttpClient {
    /// A client for `config.api_url` with its token and timeout.
    pub fn from_config(config: &OneBotConfig) -> Result<Self> {
        Self::new(&config.api_url, config.access_token.clone(), config.timeout)
    }

    /// A client for `api_url` (the base; actions are appended), with an optional bearer token
    /// and a whole-request timeout.
    pub fn new(api_url: &str, access_token: Option<Secret>, timeout: Duration) -> Result<Self> {
        let parsed = url::Url::parse(api_url).map_err(|e| {
            Error::Client(format!(
                "onebot.api_url {:?} is not a URL ({e})",
                redact_url(api_url)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Client(format!(
                "onebot.api_url must be http:// or https://, got {}://",
                parsed.scheme()
            )));
        }
        let auth = match &access_token {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| {
                        Error::Client(
                            "onebot.access_token contains characters not allowed in an HTTP header"
                                .into(),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        // rustls needs a process-wide crypto provider; Celeriac uses ring everywhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("Celeriac-OneBot/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .retry(reqwest::retry::never())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Client(error_chain(&e.without_url())))?;
        Ok(HttpClient {
            client,
            base: api_url.trim_end_matches('/').to_string(),
            token: access_token,
            auth,
            timeout,
        })
    }

    async fn send(&self, action: Action, params: Value) -> Result<Value> {
        let url = format!("{}/{}", self.base, action.as_str());
        let body = serde_json::to_vec(&params).map_err(|e| Error::Decode {
            action: action.as_str(),
            detail: format!("cannot encode the parameters: {e}"),
        })?;
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let mut response = request.send().await.map_err(|e| transport(action, &e))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(action, &e))? {
            if bytes.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(Error::Decode {
                    action: action.as_str(),
                    detail: format!("reply larger than {MAX_REPLY_BYTES} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let result = reply::decode(
            action,
            status,
            &bytes,
            self.token.as_ref().map(Secret::expose),
        );
        match &result {
            Ok(_) => tracing::debug!(action = action.as_str(), "OneBot action done"),
            Err(e) => tracing::debug!(action = action.as_str(), error = %e, "OneBot action failed"),
        }
        result
    }
}

impl OneBot for HttpClient {
    fn call(&self, action: Action, params: Value) -> BoxFuture<'_, Result<Value>> {
        Box::pin(self.send(action, params))
    }
}

fn transport(action: Action, e: &reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        TransportKind::Timeout
    } else if e.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Reset
    };
    Error::Transport {
        action: action.as_str(),
        kind,
        detail: error_chain(e),
    }
}

/// An error and its causes, `a: b: c`, without the request URL.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), &redact_url(url.as_str()));
    }
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A URL fit for messages: password and secret-bearing query parameters redacted (one
/// implementation for all of Celeriac).
pub use celeriac_core::config::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        let r = redact_url("http://u:p@h:1/x?access_token=t#f");
        assert!(!r.contains(":p@") && !r.contains("=t"), "{r}");
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_the_token() {
        let e = HttpClient::new("ftp://h", None, Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("http://"), "{e}");
        let e = HttpClient::new(
            "http://h",
            Some(Secret::new("bad\ntoken")),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("bad\ntoken"), "{e}");
    }
}
