//! How one attempt reaches a recipient: [`webhook`] (a signed HTTP POST) or [`onebot`] (a QQ
//! private or group message). Each returns a [`Sent`]: what the delivery handler records and
//! decides on.

pub mod onebot;
pub mod webhook;

use std::time::Duration;

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Accepted (a 2xx, or OneBot sent the message).
    Delivered {
        /// HTTP status.
        status: Option<u16>,
        /// The start of the response.
        response: Option<String>,
    },
    /// Failed; another attempt may succeed.
    Failed {
        /// HTTP status, if there was a response.
        status: Option<u16>,
        /// What failed.
        error: String,
        /// The start of the response.
        response: Option<String>,
        /// How long the receiver asked to wait (429, 502, 503, 504 with `Retry-After`), capped.
        retry_after: Option<Duration>,
        /// The receiver's host asked everyone to slow down (429, 502, 503, 504).
        throttled: bool,
    },
    /// Failed for good: the receiver is gone (410, or a QQ user or group that does not exist);
    /// its subscriber is disabled.
    Gone {
        /// HTTP status.
        status: Option<u16>,
        /// Why.
        error: String,
        /// The start of the response.
        response: Option<String>,
    },
    /// Failed, and retrying cannot help until someone changes something (the guard refused
    /// the address, the bot lacks a permission).
    Refused {
        /// Why.
        error: String,
    },
}
