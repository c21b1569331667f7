//! The hardened outbound HTTP client: TLS verified (rustls with ring), no automatic redirects
//! (callers follow them by hand, re-checking each hop), no automatic retries, no proxies from
//! the environment, and the [`Guard`] as its DNS resolver, so it dials only addresses the
//! guard validated.

use crate::{AddressPolicy, Guard};
use std::sync::Arc;
use std::time::Duration;

/// How to build a client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The `User-Agent` of every request.
    pub user_agent: String,
    /// Which addresses may be reached.
    pub policy: AddressPolicy,
    /// Deadline of a TCP connect.
    pub connect_timeout: Duration,
    /// Idle connections kept per host for reuse (0: none, every request opens its own).
    pub idle_per_host: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct BuildError(#[from] reqwest::Error);

/// A client with `options`, and the guard it resolves through.
pub fn build(options: &ClientOptions) -> Result<(reqwest::Client, Arc<Guard>), BuildError> {
    // rustls needs a process-wide crypto provider; Celeriac uses ring everywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let guard = Arc::new(Guard::new(options.policy.clone()));
    let client = reqwest::Client::builder()
        .user_agent(options.user_agent.clone())
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .no_proxy()
        .dns_resolver(guard.clone())
        .connect_timeout(options.connect_timeout)
        .pool_max_idle_per_host(options.idle_per_host)
        .pool_idle_timeout(options.idle_timeout)
        .https_only(false)
        .build()?;
    Ok((client, guard))
}
