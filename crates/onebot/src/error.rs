//! The error type of `celeriac-onebot`, and the one question callers ask of it:
//! [`Error::class`] — retry, snooze, discard, or treat as done.
//!
//! No variant ever holds the access token or the signing secret: the client builds every
//! message itself, and scrubs the token out of whatever text the server sends back.

use std::time::{Duration, SystemTime};

/// What a caller should do about an [`Error`], decided in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth another attempt after a backoff: the network, a timeout, a 5xx, an unknown failure.
    Transient,
    /// QQ's risk control (or the open breaker that followed it): wait — snooze the job, do not
    /// spend an attempt — and do not retry soon.
    RiskControl,
    /// Retrying cannot help until someone changes something (token, permissions, the request).
    Permanent,
    /// The target no longer exists (member left, group gone): the work is moot, treat it as done.
    Gone,
}

/// How a request failed to reach OneBot or to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// The TCP connection (or TLS handshake) could not be made.
    Connect,
    /// No complete answer within the timeout.
    Timeout,
    /// The connection broke or closed mid-exchange.
    Reset,
}

impl TransportKind {
    /// Lower-case name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Connect => "connect",
            TransportKind::Timeout => "timeout",
            TransportKind::Reset => "reset",
        }
    }
}

/// Everything that can go wrong talking to OneBot. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The member is not (or no longer) in the group.
    #[error("OneBot {action}: member not found ({message}); the user already left the group, nothing to do")]
    MemberNotFound {
        /// The action called.
        action: &'static str,
        /// The server's code and wording.
        message: String,
    },

    /// The bot may not do this: it is not an admin, or the target is an admin or the owner.
    #[error("OneBot {action}: the bot lacks the permission ({message}); make the bot account an admin of the group, or leave admins and the owner alone")]
    NotManageable {
        /// The action called.
        action: &'static str,
        /// The server's code and wording.
        message: String,
    },

    /// A private message's user cannot be found: the QQ number does not exist, or the bot
    /// cannot reach it (a stranger: not a friend, no group in common).
    #[error("OneBot {action}: user not found ({message}); the QQ number does not exist or the bot cannot reach it (not a friend, no group in common)")]
    UserNotFound {
        /// The action called.
        action: &'static str,
        /// The server's code and wording.
        message: String,
    },

    /// The group does not exist or the bot is not in it.
    #[error("OneBot {action}: group not found ({message}); the bot is not in that group any more, remove it from the job's input")]
    GroupNotFound {
        /// The action called.
        action: &'static str,
        /// The server's code and wording.
        message: String,
    },

    /// QQ's risk control is suspected (sends blocked or timing out).
    #[error("OneBot {action}: QQ risk control suspected (retcode {retcode}: {message}); the account's actions pause for onebot.breaker_open_for — check the account in a QQ client")]
    RiskControl {
        /// The action called.
        action: &'static str,
        /// The reply's retcode.
        retcode: i64,
        /// The server's code and wording.
        message: String,
    },

    /// The access token is missing (HTTP 401) or wrong (HTTP 403).
    #[error("OneBot {action}: access token refused (HTTP {status}); set onebot.access_token (environment CELERIAC_ONEBOT__ACCESS_TOKEN) to the token configured in the OneBot implementation")]
    Unauthorized {
        /// The action called.
        action: &'static str,
        /// 401 (missing) or 403 (wrong); 1401/1403 when reported as a retcode.
        status: u16,
    },

    /// The implementation does not know this action (HTTP 404 or retcode 404/1404).
    #[error("OneBot {action}: action not supported by the OneBot implementation at onebot.api_url; upgrade it or use one that supports it (NapCat, Lagrange.OneBot, go-cqhttp)")]
    UnsupportedAction {
        /// The action called.
        action: &'static str,
    },

    /// Any other non-2xx HTTP answer (400 bad body, 406 content type, 5xx, a proxy's 502…).
    #[error("OneBot {action}: HTTP {status} ({body}); {hint}", hint = http_hint(*.status))]
    HttpStatus {
        /// The action called.
        action: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },

    /// The action failed for another reason the server named.
    #[error("OneBot {action} failed (retcode {retcode}: {message}); see the OneBot implementation's log")]
    Failed {
        /// The action called.
        action: &'static str,
        /// The reply's retcode.
        retcode: i64,
        /// The server's code and wording.
        message: String,
    },

    /// No answer: connection refused, timed out, or reset.
    #[error("OneBot {action}: {kind} error talking to onebot.api_url ({detail}); is the OneBot implementation running, and is onebot.api_url right?", kind = .kind.as_str())]
    Transport {
        /// The action called.
        action: &'static str,
        /// What went wrong.
        kind: TransportKind,
        /// The underlying error, without URL or headers.
        detail: String,
    },

    /// A 2xx answer that is not a OneBot v11 reply (or lacks the data the action returns).
    #[error(
        "OneBot {action}: unexpected reply ({detail}); is onebot.api_url a OneBot v11 HTTP API?"
    )]
    Decode {
        /// The action called.
        action: &'static str,
        /// What was wrong with it.
        detail: String,
    },

    /// The account's breaker is open after a risk-control signal: nothing was sent.
    #[error("OneBot account {account}: paused after a QQ risk-control signal, {left} left (until {until}); snooze the job instead of retrying", left = humantime::format_duration(*.remaining), until = humantime::format_rfc3339_seconds(*.until))]
    CircuitOpen {
        /// The bot account (self_id).
        account: i64,
        /// When the breaker closes, on the Redis clock.
        until: SystemTime,
        /// How long until then, measured by Redis.
        remaining: Duration,
    },

    /// Redis failed while pacing or checking the breaker.
    #[error(
        "Redis error while pacing OneBot actions: {0}; is Redis reachable at the configured URL?"
    )]
    Redis(#[from] redis::RedisError),

    /// The HTTP client could not be built (bad `onebot.api_url`, TLS setup).
    #[error("cannot build the OneBot HTTP client: {0}")]
    Client(String),

    /// An event body that is not a valid OneBot v11 event.
    #[error("invalid OneBot event: {0}; is the sender a OneBot v11 implementation?")]
    InvalidEvent(String),

    /// An `X-Signature` header that does not prove the body came from OneBot.
    #[error("OneBot event signature rejected: {0}; check that onebot.secret equals the OneBot implementation's secret")]
    BadSignature(&'static str),
}

fn http_hint(status: u16) -> &'static str {
    match status {
        400 => "the server could not parse the request body; report this as a Celeriac bug",
        406 => "the server refused the JSON content type; is onebot.api_url a OneBot v11 HTTP API?",
        429 => "something in front of OneBot is rate limiting; lower onebot.rate",
        500..=599 => "the OneBot implementation or a proxy in front of it failed; see its log",
        _ => "is onebot.api_url a OneBot v11 HTTP API?",
    }
}

impl Error {
    /// What the caller should do: see [`ErrorClass`]. One `match` in a domain turns this into
    /// retry, snooze or discard.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::MemberNotFound { .. }
            | Error::UserNotFound { .. }
            | Error::GroupNotFound { .. } => ErrorClass::Gone,
            Error::RiskControl { .. } | Error::CircuitOpen { .. } => ErrorClass::RiskControl,
            Error::NotManageable { .. }
            | Error::Unauthorized { .. }
            | Error::UnsupportedAction { .. }
            | Error::Client(_)
            | Error::InvalidEvent(_)
            | Error::BadSignature(_) => ErrorClass::Permanent,
            Error::HttpStatus { status, .. } => match status {
                408 | 429 | 500..=599 => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            },
            // NapCat reports schema errors (bad parameters) as 400 over HTTP, 1400 over
            // WebSocket: the same request would fail again.
            Error::Failed { retcode, .. } => match retcode {
                400 | 1400 => ErrorClass::Permanent,
                _ => ErrorClass::Transient,
            },
            Error::Transport { .. } | Error::Redis(_) => ErrorClass::Transient,
            // A reply we cannot read is most likely a server in a bad state (or a proxy page).
            Error::Decode { .. } => ErrorClass::Transient,
        }
    }

    /// The reply's retcode, when OneBot answered with one this error keeps as a number
    /// (failures and risk control); the other classes name theirs in the message.
    pub fn retcode(&self) -> Option<i64> {
        match self {
            Error::RiskControl { retcode, .. } | Error::Failed { retcode, .. } => Some(*retcode),
            _ => None,
        }
    }

    /// How long to wait before trying again, when the error says (an open breaker).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::CircuitOpen { remaining, .. } => Some(*remaining),
            _ => None,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
