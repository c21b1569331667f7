//! Outbound HTTP for domains that fetch URLs users gave them (friend links, webhooks), with
//! the protections every such fetch needs.
//!
//! - [`guard`]: the SSRF guard, a DNS resolver that refuses non-public addresses.
//! - [`network`]: IP networks as written in settings (`allowed_networks`).
//! - [`client`]: the hardened `reqwest` client (rustls, no auto-redirects, no proxies, the
//!   guard as resolver).
//! - [`retry`]: transient statuses, `Retry-After`, and transport failures by kind.
//! - [`pacing`]: per-host caps and spacing.

pub mod client;
pub mod guard;
pub mod network;
pub mod pacing;
pub mod retry;

pub use client::{build, BuildError, ClientOptions};
pub use guard::{AddressPolicy, Guard, GuardError};
pub use network::Network;
pub use pacing::HostPacer;
pub use reqwest;
pub use retry::{classify, retry_after, transient_status, Transport};
