//! The OneBot v11 actions Celeriac's domains use, behind one trait.
//!
//! [`OneBot`] has one required method, [`OneBot::call`] (an action and its JSON parameters, the
//! reply's `data` back); the typed methods are provided on top of it. So a transport or a
//! wrapper implements one method — the HTTP client, the [`crate::PacedClient`] around it, or
//! a test double in a domain's tests — and every typed method behaves the same over all of them.
//!
//! **Why boxed futures and not `async fn` in the trait:** domains hold the client as
//! `Arc<dyn OneBot>`, chosen once at the composition root (HTTP, paced HTTP, or a double), and
//! spawn its futures on the multi-threaded runtime. `async fn` in a trait is neither
//! object-safe nor guaranteed `Send`; [`BoxFuture`] is both. Its cost — one allocation per
//! call — is nothing next to an HTTP round trip paced at a few actions per second.

use crate::error::{Error, Result};
use crate::message::Message;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// A message id as OneBot returns it (`message_id`, an int32 in the spec; i64 here).
pub type MessageId = i64;

/// The closed set of actions this crate calls. Adding one means adding a variant, its
/// `as_str`, and a typed method on [`OneBot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `send_private_msg`: a private message to one user.
    SendPrivateMsg,
    /// `send_group_msg`: a message to a group.
    SendGroupMsg,
    /// `set_group_ban`: mute a member for some seconds (0 lifts the mute).
    SetGroupBan,
    /// `set_group_kick`: remove a member from a group.
    SetGroupKick,
    /// `delete_msg`: recall a message.
    DeleteMsg,
    /// `get_group_member_info`: one member's card, role and times.
    GetGroupMemberInfo,
    /// `get_login_info`: the bot account (`self_id`) and its nickname.
    GetLoginInfo,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 7] = [
        Action::SendPrivateMsg,
        Action::SendGroupMsg,
        Action::SetGroupBan,
        Action::SetGroupKick,
        Action::DeleteMsg,
        Action::GetGroupMemberInfo,
        Action::GetLoginInfo,
    ];

    /// The action's name, the last segment of its URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SendPrivateMsg => "send_private_msg",
            Action::SendGroupMsg => "send_group_msg",
            Action::SetGroupBan => "set_group_ban",
            Action::SetGroupKick => "set_group_kick",
            Action::DeleteMsg => "delete_msg",
            Action::GetGroupMemberInfo => "get_group_member_info",
            Action::GetLoginInfo => "get_login_info",
        }
    }

    /// The action named `name`, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Whether the action sends a message (where QQ's risk control shows first).
    pub fn is_send(self) -> bool {
        matches!(self, Action::SendPrivateMsg | Action::SendGroupMsg)
    }

    /// Whether the action is a kick (paced by `onebot.kick_interval` on top of `onebot.rate`).
    pub fn is_kick(self) -> bool {
        self == Action::SetGroupKick
    }
}

/// A member's role in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The group's owner.
    Owner,
    /// An administrator.
    Admin,
    /// Anyone else.
    Member,
    /// A role this crate does not know.
    #[serde(other)]
    Unknown,
}

/// `get_group_member_info`'s data (the fields domains use; others are ignored).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct GroupMember {
    /// The group.
    #[serde(deserialize_with = "crate::ids::id")]
    pub group_id: i64,
    /// The member.
    #[serde(deserialize_with = "crate::ids::id")]
    pub user_id: i64,
    /// QQ nickname.
    #[serde(default)]
    pub nickname: String,
    /// Group card (display name in the group); empty when unset.
    #[serde(default)]
    pub card: String,
    /// Role in the group.
    #[serde(default = "unknown_role")]
    pub role: Role,
    /// When the member joined (Unix seconds; 0 when unknown).
    #[serde(default)]
    pub join_time: i64,
    /// When the member last spoke (Unix seconds; 0 when unknown).
    #[serde(default)]
    pub last_sent_time: i64,
}

fn unknown_role() -> Role {
    Role::Unknown
}

/// `get_login_info`'s data: the bot account.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LoginInfo {
    /// The bot's QQ number (the `self_id` of its events; the account pacing is keyed by).
    #[serde(deserialize_with = "crate::ids::id")]
    pub user_id: i64,
    /// The bot's nickname.
    #[serde(default)]
    pub nickname: String,
}

/// A OneBot v11 implementation, reached somehow. See the module docs for the design.
pub trait OneBot: Send + Sync {
    /// Call `action` with `params` (a JSON object); the reply's `data` (often `null`) on
    /// success, a typed [`Error`] otherwise.
    fn call(&self, action: Action, params: Value) -> BoxFuture<'_, Result<Value>>;

    /// Send a private message; its message id.
    fn send_private_msg(&self, user_id: i64, message: Message) -> BoxFuture<'_, Result<MessageId>> {
        let action = Action::SendPrivateMsg;
        let reply = self.call(action, json!({ "user_id": user_id, "message": message }));
        Box::pin(async move { message_id(action, reply.await?) })
    }

    /// Send a group message; its message id.
    fn send_group_msg(&self, group_id: i64, message: Message) -> BoxFuture<'_, Result<MessageId>> {
        let action = Action::SendGroupMsg;
        let reply = self.call(action, json!({ "group_id": group_id, "message": message }));
        Box::pin(async move { message_id(action, reply.await?) })
    }

    /// Mute a member for `duration`, sent as whole seconds rounded up; `Duration::ZERO` lifts
    /// the mute. (QQ caps a mute at 30 days.)
    fn set_group_ban(
        &self,
        group_id: i64,
        user_id: i64,
        duration: Duration,
    ) -> BoxFuture<'_, Result<()>> {
        let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        let params = json!({ "group_id": group_id, "user_id": user_id, "duration": secs });
        let reply = self.call(Action::SetGroupBan, params);
        Box::pin(async move { reply.await.map(drop) })
    }

    /// Remove a member from a group; with `reject_add_request` their later join requests are
    /// refused.
    fn set_group_kick(
        &self,
        group_id: i64,
        user_id: i64,
        reject_add_request: bool,
    ) -> BoxFuture<'_, Result<()>> {
        let params = json!({
            "group_id": group_id,
            "user_id": user_id,
            "reject_add_request": reject_add_request,
        });
        let reply = self.call(Action::SetGroupKick, params);
        Box::pin(async move { reply.await.map(drop) })
    }

    /// Recall a message.
    fn delete_msg(&self, message_id: MessageId) -> BoxFuture<'_, Result<()>> {
        let reply = self.call(Action::DeleteMsg, json!({ "message_id": message_id }));
        Box::pin(async move { reply.await.map(drop) })
    }

    /// One member's information; `no_cache` asks the implementation to refresh it from QQ.
    fn get_group_member_info(
        &self,
        group_id: i64,
        user_id: i64,
        no_cache: bool,
    ) -> BoxFuture<'_, Result<GroupMember>> {
        let action = Action::GetGroupMemberInfo;
        let params = json!({ "group_id": group_id, "user_id": user_id, "no_cache": no_cache });
        let reply = self.call(action, params);
        Box::pin(async move { data(action, reply.await?) })
    }

    /// The bot account.
    fn get_login_info(&self) -> BoxFuture<'_, Result<LoginInfo>> {
        let reply = self.call(Action::GetLoginInfo, json!({}));
        Box::pin(async move { data(Action::GetLoginInfo, reply.await?) })
    }
}

impl<T: OneBot + ?Sized> OneBot for std::sync::Arc<T> {
    fn call(&self, action: Action, params: Value) -> BoxFuture<'_, Result<Value>> {
        (**self).call(action, params)
    }
}

impl<T: OneBot + ?Sized> OneBot for Box<T> {
    fn call(&self, action: Action, params: Value) -> BoxFuture<'_, Result<Value>> {
        (**self).call(action, params)
    }
}

/// Decode an action's `data` into `T`.
fn data<T: DeserializeOwned>(action: Action, data: Value) -> Result<T> {
    if data.is_null() {
        return Err(Error::Decode {
            action: action.as_str(),
            detail: "the reply has no data (status async?)".into(),
        });
    }
    serde_json::from_value(data).map_err(|e| Error::Decode {
        action: action.as_str(),
        detail: format!("data: {}", crate::reply::without_strings(&e.to_string())),
    })
}

fn message_id(action: Action, reply: Value) -> Result<MessageId> {
    #[derive(Deserialize)]
    struct Sent {
        #[serde(deserialize_with = "crate::ids::id")]
        message_id: i64,
    }
    data::<Sent>(action, reply).map(|s| s.message_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.as_str()), Some(a));
        }
        assert_eq!(Action::from_name("send_msg"), None);
    }

    #[test]
    fn member_info_is_read_leniently() {
        let m: GroupMember = serde_json::from_value(json!({
            "group_id": "123", "user_id": 456, "nickname": "n", "role": "owner", "sex": "male"
        }))
        .unwrap();
        assert_eq!((m.group_id, m.user_id, m.role), (123, 456, Role::Owner));
        let m: GroupMember =
            serde_json::from_value(json!({"group_id": 1, "user_id": 2, "role": "king"})).unwrap();
        assert_eq!(m.role, Role::Unknown);
    }
}
