//! OneBot v11 for Celeriac's domains (verification scans, message fan-out): a library with no
//! domain logic in it.
//!
//! - [`api`]: the [`OneBot`] trait (one required `call`, typed actions on top), [`Action`],
//!   [`GroupMember`], [`LoginInfo`].
//! - [`http`]: [`HttpClient`], the trait over OneBot's HTTP API (reqwest, rustls, pooled).
//! - `reply` (private): reading a reply into data or a typed [`Error`] — the table below.
//! - [`error`]: [`Error`] and [`ErrorClass`] (`Transient`, `RiskControl`, `Permanent`, `Gone`).
//! - [`message`]: outgoing [`Message`]s (array format) and the plain text of received ones.
//! - [`event`]: incoming [`Event`]s (messages, group notices, requests, meta events).
//! - [`signature`]: [`verify_signature`] of `X-Signature: sha1=…` event reports.
//! - [`counts`]: [`EventCounts`], what became of the events a receiver got (in Redis).
//! - [`config`]: the `[onebot]` section, [`OneBotConfig`], with its defaults and `validate()`.
//! - [`keys`]: the Redis keys, one hash tag per bot account.
//! - [`pacing`]: [`Pacer`], shared per-account pacing and circuit breaker (Lua in `scripts/`).
//! - [`paced`]: [`PacedClient`], any [`OneBot`] behind the pacer: itself a [`OneBot`].
//! - `fake` (feature `fake`): a fake OneBot v11 HTTP server for tests and demos.
//!
//! # How replies map to errors
//!
//! Checked in this order; the first match wins. "Code" is go-cqhttp's `msg`; "words" are
//! `msg`, `wording` and `message` together, case-insensitive.
//!
//! | reply                                                                  | error               | class       |
//! |------------------------------------------------------------------------|---------------------|-------------|
//! | connect refused, timeout, connection reset or dropped                  | `Transport`         | Transient   |
//! | HTTP 401 (no token) / 403 (wrong token)                                | `Unauthorized`      | Permanent   |
//! | HTTP 404                                                               | `UnsupportedAction` | Permanent   |
//! | HTTP 408, 429, 5xx                                                     | `HttpStatus`        | Transient   |
//! | HTTP 400, 406 (content type), any other non-2xx                        | `HttpStatus`        | Permanent   |
//! | 2xx body not JSON, no `status`, unknown `status`                       | `Decode`            | Transient   |
//! | `status` `ok`/`async` and `retcode` 0/1                                | success: `data`     |             |
//! | code `MEMBER_NOT_FOUND`, `GROUP_MEMBER_NOT_FOUND`                      | `MemberNotFound`    | Gone        |
//! | code `GROUP_NOT_FOUND`                                                 | `GroupNotFound`     | Gone        |
//! | code `NOT_MANAGEABLE`, `PERMISSION_DENIED`                             | `NotManageable`     | Permanent   |
//! | code `API_NOT_FOUND`; retcode 404, 1404; words "不支持的API"           | `UnsupportedAction` | Permanent   |
//! | code `SEND_MSG_API_ERROR` on a send                                    | `RiskControl`       | RiskControl |
//! | retcode 1401, 1403                                                     | `Unauthorized`      | Permanent   |
//! | words "风控", "risk control", "blocked by server"                      | `RiskControl`       | RiskControl |
//! | on a send: retcode 1200, or words "timeout", "超时"                    | `RiskControl`       | RiskControl |
//! | words "member not found", "user not in group", "群员/人员/群成员不存在", "成员…不存在" | `MemberNotFound` | Gone |
//! | on `send_private_msg`: words "无法获取用户信息", "user not found", "用户不存在" | `UserNotFound` | Gone |
//! | words "group not found", "群聊不存在", "群不存在"                      | `GroupNotFound`     | Gone        |
//! | words "权限不足", "permission denied", "no permission", "cannot ban owner/admin" | `NotManageable` | Permanent |
//! | any other `failed` (or `ok` with another retcode, as Lagrange sends)   | `Failed`            | Transient (Permanent for retcode 400, 1400) |
//! | the account's breaker is open (nothing sent)                           | `CircuitOpen`       | RiskControl |
//!
//! Where the codes come from: go-cqhttp answers `retcode` 100 with a `msg` code and a Chinese
//! `wording` (`GROUP_NOT_FOUND`/群聊不存在, `MEMBER_NOT_FOUND`/人员不存在, `NOT_MANAGEABLE`/
//! 机器人权限不足; a blocked send is `SEND_MSG_API_ERROR` with "blocked by server"), and
//! `retcode` 404 `API_NOT_FOUND` for an unknown action. NapCat answers `retcode` 200 (HTTP) or
//! 1200 (WebSocket) with an exception's message — "无法获取用户信息" when a private message's
//! QQ number cannot be resolved to a user (none such, or a stranger to the bot) — a send that QQ never confirms, the usual face
//! of risk control, is "Timeout: NTEvent … sendMsg" — 1400 for bad parameters and 1404 for an
//! unknown action. Lagrange.OneBot answers `retcode` 200 without words, or `status` `ok` with
//! the QQ server's nonzero result on a send. Quirk: go-cqhttp reports `set_group_ban` of a
//! member who left as `GROUP_NOT_FOUND` (still `Gone`).
//!
//! # Secrets
//!
//! The access token goes only into the `Authorization` header (marked sensitive). No error,
//! log line, `Debug` or `Display` output contains it: errors are built from our own words and
//! the server's text with the token scrubbed out; [`Secret`] and [`HttpClient`] redact it.

pub mod api;
pub mod config;
pub mod counts;
pub mod error;
pub mod event;
#[cfg(feature = "fake")]
pub mod fake;
pub mod http;
mod ids;
pub mod keys;
pub mod message;
pub mod paced;
pub mod pacing;
mod reply;
pub mod signature;

pub use api::{Action, GroupMember, LoginInfo, MessageId, OneBot, Role};
pub use config::{ConfigError, OneBotConfig, Secret};
pub use counts::{EventCounts, Received};
pub use error::{Error, ErrorClass, Result, TransportKind};
pub use event::Event;
pub use http::HttpClient;
pub use message::{plain_text, Message, Segment};
pub use paced::PacedClient;
pub use pacing::{Open, Pacer, Reservation, SlotKind};
pub use signature::{sign, verify_signature, SIGNATURE_HEADER};
