//! OneBot v11 events (what an implementation posts to us), parsed into typed structs.
//!
//! Known events are checked: one with a missing or mistyped field is an
//! [`Error::InvalidEvent`]. Events this crate does not model (other notices, other message
//! kinds, extensions) come back as [`Event::Other`] with their raw JSON, never as an error.
//! Verify the body's `X-Signature` with [`crate::verify_signature`] before parsing it.

use crate::api::Role;
use crate::error::{Error, Result};
use crate::message::plain_text;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// One event.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `message` / `private`.
    PrivateMessage(PrivateMessage),
    /// `message` / `group`.
    GroupMessage(GroupMessage),
    /// `notice` / `group_increase`: someone joined a group.
    GroupIncrease(GroupChange<IncreaseKind>),
    /// `notice` / `group_decrease`: someone left, was kicked, or the bot was kicked.
    GroupDecrease(GroupChange<DecreaseKind>),
    /// `notice` / `group_ban`: a member was muted or unmuted.
    GroupBan(GroupBan),
    /// `request` / `friend`.
    FriendRequest(FriendRequest),
    /// `request` / `group`: someone asks to join, or invites the bot.
    GroupRequest(GroupRequest),
    /// `meta_event` / `heartbeat`.
    Heartbeat(Heartbeat),
    /// `meta_event` / `lifecycle`.
    Lifecycle(Lifecycle),
    /// Anything else, as received.
    Other(Value),
}

/// A private message.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PrivateMessage {
    /// Unix seconds.
    pub time: i64,
    /// The bot account that received it.
    #[serde(deserialize_with = "crate::ids::id")]
    pub self_id: i64,
    /// `friend`, `group` (temporary chat) or `other`.
    #[serde(default)]
    pub sub_type: String,
    /// The message.
    #[serde(deserialize_with = "crate::ids::id")]
    pub message_id: i64,
    /// The sender.
    #[serde(deserialize_with = "crate::ids::id")]
    pub user_id: i64,
    /// Plain text (CQ codes and non-text segments dropped).
    #[serde(rename = "message", deserialize_with = "text")]
    pub text: String,
    /// The message in CQ-code string form, as sent.
    #[serde(default)]
    pub raw_message: String,
    /// Sender's nickname and, in groups, card and role.
    #[serde(default)]
    pub sender: Sender,
}

/// A group message.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct GroupMessage {
    /// Unix seconds.
    pub time: i64,
    /// The bot account that received it.
    #[serde(deserialize_with = "crate::ids::id")]
    pub self_id: i64,
    /// `normal`, `anonymous` or `notice`.
    #[serde(default)]
    pub sub_type: String,
    /// The message.
    #[serde(deserialize_with = "crate::ids::id")]
    pub message_id: i64,
    /// The group.
    #[serde(deserialize_with = "crate::ids::id")]
    pub group_id: i64,
    /// The sender.
    #[serde(deserialize_with = "crate::ids::id")]
    pub user_id: i64,
    /// Plain text (CQ codes and non-text segments dropped).
    #[serde(rename = "message", deserialize_with = "text")]
    pub text: String,
    /// The message in CQ-code string form, as sent.
    #[serde(default)]
    pub raw_message: String,
    /// Sender's nickname, card and role.
    #[serde(default)]
    pub sender: Sender,
}

/// The `sender` object of a message (every field optional in the spec).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Sender {
    /// Nickname.
    #[serde(default)]
    pub nickname: String,
    /// Group card (groups only).
    #[serde(default)]
    pub card: String,
    /// Role in the group (groups only).
    #[serde(default)]
    pub role: Option<Role>,
}

/// A member joining or leaving a group; `K` says how.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct GroupChange<K> {
    /// Unix seconds.
    pub time: i64,
    /// The bot account.
    #[serde(deserialize_with = "crate::ids::id")]
    pub self_id: i64,
    /// How.
    pub sub_type: K,
    /// The group.
    #[serde(deserialize_with = "crate::ids::id")]
    pub group_id: i64,
    /// Who approved, invited or kicked (0 for one's own leaving).
    #[serde(default, deserialize_with = "crate::ids::opt_id")]
    pub operator_id: Option<i64>,
    /// Who joined or left.
    #[serde(deserialize_with = "crate::ids::id")]
    pub user_id: i64,
}

/// How someone joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncreaseKind {
    /// An admin approved the request.
    Approve,
    /// A member invited them.
    Invite,
    /// Another way.
    #[serde(other)]
    Unknown,
}

/// How someone left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecreaseKind {
    /// They left.
    Leave,
    /// They were kicked.
    Kick,
    /// The bot itself was kicked.
    KickMe,
    /// Another way.
    #[serde(other)]
    Unknown,
}

/// A mute or unmute.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct GroupBan {
    /// Unix seconds.
    pub time: i64,
    /// The bot account.
    #[serde(deserialize_with = "crate::ids::id")]
    pub self_id: i64,
    /// Muted or unmuted.
    pub sub_type: BanKind,
    /// The group.
    #[serde(deserialize_with = "crate::ids::id")]
    pub group_id: i64,
    /// The admin who did it.
    #[serde(default, deserialize_with = "crate::ids::opt_id")]
    pub operator_id: Option<i64>,
    /// The member (0: the whole group).
    #[serde(deserialize_with = "crate::ids::id")]
    pub user_id: i64,
    /// Seconds muted (0 when lifted).
    #[serde(default)]
    pub duration: i64,
}

/// Mute or unmute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanKind {
    /// Muted.
    Ban,
    /// Unmuted.
    LiftBan,
    /// Another kind.
    #[serde(other)]
    Unknown,
}

/// A friend request.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FriendRequest {
    /// Unix seconds.
    pub time: i64,
    /// The bot account.
    #[serde(deserialize_with = "crate::ids::id")]
    pub self_id: i64,
    /// Who asks.
    #[serde(deserialize_with = "crate::ids::id")]
    pub user_id: i64,
    /// Their message.
    #[serde(default)]
    pub comment: String,
    /// Token to answer the request with.
    #[serde(default)]
    pub flag: String,
}

/// A request to join a group, or an invitation of the bot.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct GroupRequest {
    /// Unix seconds.
    pub time: i64,
    /// The bot account.
    #[serde(deserialize_with = "crate::ids::id")]
    pub self_id: i64,
    /// `add` (someone asks to join) or `invite` (the bot is invited).
    #[serde(default)]
    pub sub_type: String,
    /// The group.
    #[serde(deserialize_with = "crate::ids::id")]
    pub group_id: i64,
    /// Who asks (or invites).
    #[serde(deserialize_with = "crate::ids::id")]
    pub user_id: i64,
    /// Their message (often the answer to the group's join question).
    #[serde(default)]
    pub comment: String,
    /// Token to answer the request with.
    #[serde(default)]
    pub flag: String,
}

/// The implementation's periodic heartbeat.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Heartbeat {
    /// Unix seconds.
    pub time: i64,
    /// The bot account.
    #[serde(deserialize_with = "crate::ids::id")]
    pub self_id: i64,
    /// Its status object, as sent.
    #[serde(default)]
    pub status: Value,
    /// Milliseconds to the next heartbeat.
    #[serde(default)]
    pub interval: i64,
}

/// The implementation starting, stopping or connecting.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Lifecycle {
    /// Unix seconds.
    pub time: i64,
    /// The bot account.
    #[serde(deserialize_with = "crate::ids::id")]
    pub self_id: i64,
    /// `enable`, `disable` or `connect`.
    #[serde(default)]
    pub sub_type: String,
}

impl Event {
    /// Parse an event body.
    pub fn parse(body: &[u8]) -> Result<Event> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Error::InvalidEvent(format!("not JSON ({e})")))?;
        Event::from_value(value)
    }

    /// Interpret an event already read as JSON.
    pub fn from_value(value: Value) -> Result<Event> {
        let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("");
        let post_type = match value.get("post_type").and_then(Value::as_str) {
            Some(t) => t,
            None => return Err(Error::InvalidEvent("no post_type".into())),
        };
        let (kind, detail) = match post_type {
            "message" | "message_sent" => ("message_type", field("message_type")),
            "notice" => ("notice_type", field("notice_type")),
            "request" => ("request_type", field("request_type")),
            "meta_event" => ("meta_event_type", field("meta_event_type")),
            _ => return Ok(Event::Other(value)),
        };
        let event = match (post_type, detail) {
            ("message", "private") => Event::PrivateMessage(typed(&value, kind, detail)?),
            ("message", "group") => Event::GroupMessage(typed(&value, kind, detail)?),
            ("notice", "group_increase") => Event::GroupIncrease(typed(&value, kind, detail)?),
            ("notice", "group_decrease") => Event::GroupDecrease(typed(&value, kind, detail)?),
            ("notice", "group_ban") => Event::GroupBan(typed(&value, kind, detail)?),
            ("request", "friend") => Event::FriendRequest(typed(&value, kind, detail)?),
            ("request", "group") => Event::GroupRequest(typed(&value, kind, detail)?),
            ("meta_event", "heartbeat") => Event::Heartbeat(typed(&value, kind, detail)?),
            ("meta_event", "lifecycle") => Event::Lifecycle(typed(&value, kind, detail)?),
            _ => Event::Other(value),
        };
        Ok(event)
    }

    /// The bot account the event is for, when it says.
    pub fn self_id(&self) -> Option<i64> {
        Some(match self {
            Event::PrivateMessage(e) => e.self_id,
            Event::GroupMessage(e) => e.self_id,
            Event::GroupIncrease(e) => e.self_id,
            Event::GroupDecrease(e) => e.self_id,
            Event::GroupBan(e) => e.self_id,
            Event::FriendRequest(e) => e.self_id,
            Event::GroupRequest(e) => e.self_id,
            Event::Heartbeat(e) => e.self_id,
            Event::Lifecycle(e) => e.self_id,
            Event::Other(v) => return v.get("self_id").and_then(Value::as_i64),
        })
    }
}

fn typed<T: DeserializeOwned>(value: &Value, kind: &str, detail: &str) -> Result<T> {
    T::deserialize(value).map_err(|e| Error::InvalidEvent(format!("{kind} {detail}: {e}")))
}

fn text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Value::deserialize(d).map(|v| plain_text(&v))
}
