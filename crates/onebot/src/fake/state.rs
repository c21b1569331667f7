//! The fake's world: the bot account, its groups and their members, sent messages, faults and
//! the call log; and each action's normal answer, in go-cqhttp's words where it fails.

use super::{Call, Fault};
use crate::api::{Action, Role};
use crate::message::plain_text;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A member of a fake group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeMember {
    /// Role in the group.
    pub role: Role,
    /// Seconds of the last mute set (0: not muted).
    pub muted_for: u64,
    /// When they joined (Unix seconds).
    pub join_time: i64,
}

/// Where a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A private message to a user.
    Private(i64),
    /// A group message.
    Group(i64),
}

/// A message the fake accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The id it was given.
    pub message_id: i64,
    /// Where it went.
    pub target: Target,
    /// Its plain text.
    pub text: String,
}

#[derive(Debug)]
pub(crate) struct Group {
    bot_role: Role,
    members: BTreeMap<i64, FakeMember>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) token: Option<String>,
    pub(crate) self_id: i64,
    groups: BTreeMap<i64, Group>,
    next_message_id: i64,
    pub(crate) messages: BTreeMap<i64, SentMessage>,
    pub(crate) faults: Vec<(String, Fault)>,
    pub(crate) calls: Vec<Call>,
}

/// A `failed` reply as go-cqhttp shapes it.
pub(crate) fn failed_body(retcode: i64, msg: &str, wording: &str) -> Value {
    json!({
        "status": "failed", "retcode": retcode, "data": null,
        "msg": msg, "wording": wording, "message": wording,
    })
}

fn ok(data: Value) -> Value {
    json!({"status": "ok", "retcode": 0, "data": data, "message": "", "wording": ""})
}

fn fail(msg: &str, wording: &str) -> Value {
    failed_body(100, msg, wording)
}

fn id(params: &Value, name: &str) -> Option<i64> {
    match params.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn flag(params: &Value, name: &str) -> bool {
    match params.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

fn manageable(bot: Role, target: Role) -> bool {
    match bot {
        Role::Owner => target != Role::Owner,
        Role::Admin => target == Role::Member || target == Role::Unknown,
        _ => false,
    }
}

impl State {
    pub(crate) fn new() -> Self {
        State {
            token: None,
            self_id: 10000,
            groups: BTreeMap::new(),
            next_message_id: 1,
            messages: BTreeMap::new(),
            faults: Vec::new(),
            calls: Vec::new(),
        }
    }

    pub(crate) fn add_group(&mut self, group_id: i64, bot_role: Role, members: &[(i64, Role)]) {
        let group = self.groups.entry(group_id).or_insert(Group {
            bot_role,
            members: BTreeMap::new(),
        });
        group.bot_role = bot_role;
        for &(user, role) in members {
            group.members.insert(user, member(role));
        }
    }

    /// Add a member; a group not seen before is created with the bot as a plain member.
    pub(crate) fn add_member(&mut self, group_id: i64, user_id: i64, role: Role) {
        let group = self.groups.entry(group_id).or_insert(Group {
            bot_role: Role::Member,
            members: BTreeMap::new(),
        });
        group.members.insert(user_id, member(role));
    }

    pub(crate) fn remove_member(&mut self, group_id: i64, user_id: i64) {
        if let Some(group) = self.groups.get_mut(&group_id) {
            group.members.remove(&user_id);
        }
    }

    pub(crate) fn member(&self, group_id: i64, user_id: i64) -> Option<&FakeMember> {
        self.groups.get(&group_id)?.members.get(&user_id)
    }

    /// The first fault for `action` (or `*`), used up by one when counted.
    pub(crate) fn take_fault(&mut self, action: &str) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|(a, _)| a == action || a == "*")?;
        let fault = self.faults[i].1.clone();
        if let Some(n) = &mut self.faults[i].1.remaining {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.faults.remove(i);
            }
        }
        Some(fault)
    }

    /// The normal answer to `action`; `None` for an action the fake does not implement.
    pub(crate) fn answer(&mut self, action: &str, params: &Value) -> Option<Value> {
        let action = Action::from_name(action)?;
        let need = |name: &str| id(params, name);
        Some(match action {
            Action::GetLoginInfo => {
                ok(json!({"user_id": self.self_id, "nickname": "celeriac-fake"}))
            }
            Action::SendPrivateMsg => match need("user_id") {
                Some(user) => self.send(Target::Private(user), params),
                None => fail("INVALID_PARAMS", "缺少 user_id"),
            },
            Action::SendGroupMsg => match need("group_id") {
                Some(group) if self.groups.contains_key(&group) => {
                    self.send(Target::Group(group), params)
                }
                Some(_) => fail("GROUP_NOT_FOUND", "群聊不存在"),
                None => fail("INVALID_PARAMS", "缺少 group_id"),
            },
            Action::DeleteMsg => match need("message_id") {
                Some(mid) if self.messages.remove(&mid).is_some() => ok(Value::Null),
                _ => fail("MESSAGE_NOT_FOUND", "消息不存在"),
            },
            Action::SetGroupKick | Action::SetGroupBan => {
                let (Some(group_id), Some(user_id)) = (need("group_id"), need("user_id")) else {
                    return Some(fail("INVALID_PARAMS", "缺少 group_id 或 user_id"));
                };
                let Some(group) = self.groups.get_mut(&group_id) else {
                    return Some(fail("GROUP_NOT_FOUND", "群聊不存在"));
                };
                let bot = group.bot_role;
                let Some(target) = group.members.get_mut(&user_id) else {
                    return Some(fail("MEMBER_NOT_FOUND", "人员不存在"));
                };
                if !manageable(bot, target.role) {
                    return Some(fail("NOT_MANAGEABLE", "机器人权限不足"));
                }
                if action == Action::SetGroupBan {
                    target.muted_for = params
                        .get("duration")
                        .and_then(Value::as_u64)
                        .unwrap_or(1800);
                } else {
                    // reject_add_request is accepted and not modelled further.
                    let _ = flag(params, "reject_add_request");
                    group.members.remove(&user_id);
                }
                ok(Value::Null)
            }
            Action::GetGroupMemberInfo => {
                let (Some(group_id), Some(user_id)) = (need("group_id"), need("user_id")) else {
                    return Some(fail("INVALID_PARAMS", "缺少 group_id 或 user_id"));
                };
                if !self.groups.contains_key(&group_id) {
                    return Some(fail("GROUP_NOT_FOUND", "群聊不存在"));
                }
                match self.member(group_id, user_id) {
                    Some(m) => ok(json!({
                        "group_id": group_id, "user_id": user_id,
                        "nickname": format!("user{user_id}"), "card": "",
                        "role": m.role, "join_time": m.join_time, "last_sent_time": 0,
                    })),
                    None => fail("MEMBER_NOT_FOUND", "群员不存在"),
                }
            }
        })
    }

    fn send(&mut self, target: Target, params: &Value) -> Value {
        let message = params.get("message").cloned().unwrap_or(Value::Null);
        let empty = match &message {
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(_) => false,
            _ => true,
        };
        if empty {
            return fail("EMPTY_MSG_ERROR", "消息为空");
        }
        let message_id = self.next_message_id;
        self.next_message_id += 1;
        self.messages.insert(
            message_id,
            SentMessage {
                message_id,
                target,
                text: plain_text(&message),
            },
        );
        ok(json!({ "message_id": message_id }))
    }
}

fn member(role: Role) -> FakeMember {
    FakeMember {
        role,
        muted_for: 0,
        join_time: 1_700_000_000,
    }
}
