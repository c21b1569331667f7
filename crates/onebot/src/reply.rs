//! Reading a OneBot v11 HTTP reply: the HTTP status, then `status` and `retcode`, then the
//! server's words, into the `data` or a typed [`Error`]. The mapping table in the crate docs
//! is this file's logic; keep them in step.
//!
//! Implementations report most failures with text, not codes (go-cqhttp: `retcode` 100 and a
//! `msg` code such as `GROUP_NOT_FOUND`; NapCat: retcode 200 over HTTP, 1200 over WebSocket,
//! with an exception's message; Lagrange.OneBot: retcode 200 and no message, or status `ok`
//! with the QQ server's nonzero result on sends). So the matching of words happens here, once,
//! at the boundary; everything past it matches on [`Error`] variants.

use crate::api::Action;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

/// Longest server text kept in an error.
const MAX_TEXT: usize = 300;

#[derive(Deserialize)]
struct Reply {
    status: Option<String>,
    #[serde(default, deserialize_with = "crate::ids::opt_id")]
    retcode: Option<i64>,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    wording: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Decode one reply to `action`. `token`, when set, is scrubbed out of any server text kept.
pub(crate) fn decode(action: Action, http: u16, body: &[u8], token: Option<&str>) -> Result<Value> {
    let name = action.as_str();
    match http {
        200..=299 => {}
        401 | 403 => {
            return Err(Error::Unauthorized {
                action: name,
                status: http,
            })
        }
        404 => return Err(Error::UnsupportedAction { action: name }),
        _ => {
            return Err(Error::HttpStatus {
                action: name,
                status: http,
                body: clean(&String::from_utf8_lossy(body), token),
            })
        }
    }
    let reply: Reply = serde_json::from_slice(body).map_err(|e| Error::Decode {
        action: name,
        detail: format!(
            "not a JSON reply object ({})",
            without_strings(&e.to_string())
        ),
    })?;
    let retcode = reply.retcode.unwrap_or(0);
    match reply.status.as_deref() {
        Some("ok" | "async") if matches!(retcode, 0 | 1) => Ok(reply.data),
        // "ok" with another retcode: Lagrange.OneBot puts the QQ server's send result there.
        Some("ok" | "async" | "failed") => {
            let text = words(&reply, token);
            Err(classify(
                action,
                retcode,
                reply.msg.as_deref().unwrap_or(""),
                &text,
            ))
        }
        Some(other) => Err(Error::Decode {
            action: name,
            detail: format!("unknown status {:?}", clean(other, token)),
        }),
        None => Err(Error::Decode {
            action: name,
            detail: "no status field".into(),
        }),
    }
}

/// The server's `msg`, `wording` and `message`, distinct ones joined: `CODE: 中文说明`.
fn words(reply: &Reply, token: Option<&str>) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in [&reply.msg, &reply.wording, &reply.message]
        .into_iter()
        .flatten()
    {
        let part = part.trim();
        if !part.is_empty() && !parts.contains(&part) {
            parts.push(part);
        }
    }
    if parts.is_empty() {
        return "no message".into();
    }
    clean(&parts.join(": "), token)
}

/// Map a failed reply to a variant. `code` is go-cqhttp's `msg` code (may be empty), `text` all
/// of the server's words.
pub(crate) fn classify(action: Action, retcode: i64, code: &str, text: &str) -> Error {
    let name = action.as_str();
    let message = text.to_string();
    let lower = text.to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));

    // go-cqhttp's exact codes first: they are unambiguous.
    match code {
        "MEMBER_NOT_FOUND" | "GROUP_MEMBER_NOT_FOUND" => {
            return Error::MemberNotFound {
                action: name,
                message,
            }
        }
        "GROUP_NOT_FOUND" => {
            return Error::GroupNotFound {
                action: name,
                message,
            }
        }
        "NOT_MANAGEABLE" | "PERMISSION_DENIED" => {
            return Error::NotManageable {
                action: name,
                message,
            }
        }
        "API_NOT_FOUND" => return Error::UnsupportedAction { action: name },
        "SEND_MSG_API_ERROR" if action.is_send() => {
            return Error::RiskControl {
                action: name,
                retcode,
                message,
            }
        }
        _ => {}
    }
    match retcode {
        404 | 1404 => return Error::UnsupportedAction { action: name },
        1401 | 1403 => {
            return Error::Unauthorized {
                action: name,
                status: (retcode - 1000) as u16,
            }
        }
        _ => {}
    }
    if has(&["不支持的api", "unsupported action", "api_not_found"]) {
        return Error::UnsupportedAction { action: name };
    }
    if has(&["风控", "risk control", "blocked by server"])
        || (action.is_send() && (retcode == 1200 || has(&["timeout", "超时"])))
    {
        return Error::RiskControl {
            action: name,
            retcode,
            message,
        };
    }
    // NapCat cannot turn the QQ number into a user: there is none, or the bot cannot reach it.
    if action == Action::SendPrivateMsg
        && has(&["无法获取用户信息", "user not found", "用户不存在"])
    {
        return Error::UserNotFound {
            action: name,
            message,
        };
    }
    if has(&[
        "member not found",
        "user not in group",
        "群员不存在",
        "人员不存在",
        "群成员不存在",
    ]) || (lower.contains("成员") && lower.contains("不存在"))
    {
        return Error::MemberNotFound {
            action: name,
            message,
        };
    }
    if has(&["group not found", "群聊不存在", "群不存在"]) {
        return Error::GroupNotFound {
            action: name,
            message,
        };
    }
    if has(&[
        "权限不足",
        "no permission",
        "permission denied",
        "not manageable",
        "cannot ban owner",
        "cannot ban admin",
    ]) {
        return Error::NotManageable {
            action: name,
            message,
        };
    }
    Error::Failed {
        action: name,
        retcode,
        message,
    }
}

/// A decoding error's message with the contents of quoted strings elided: serde quotes the
/// offending value, which is server text that may hold anything (even the token).
pub(crate) fn without_strings(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            let mut escaped = false;
            for c in chars.by_ref() {
                if c == '"' && !escaped {
                    break;
                }
                escaped = c == '\\' && !escaped;
            }
            out.push_str("…\"");
        }
    }
    out
}

/// Server text fit for an error: the token scrubbed out, control characters flattened, at most
/// [`MAX_TEXT`] characters.
pub(crate) fn clean(text: &str, token: Option<&str>) -> String {
    let mut text = text.to_string();
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        text = text.replace(token, "<redacted>");
    }
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT)
        .collect();
    if text.chars().count() > MAX_TEXT {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use serde_json::json;

    fn failed(action: Action, reply: Value) -> Error {
        decode(action, 200, reply.to_string().as_bytes(), None).unwrap_err()
    }

    #[test]
    fn success_returns_data() {
        let body = json!({"status": "ok", "retcode": 0, "data": {"message_id": 5}}).to_string();
        let data = decode(Action::SendGroupMsg, 200, body.as_bytes(), None).unwrap();
        assert_eq!(data["message_id"], 5);
        let body = json!({"status": "async", "retcode": 1}).to_string();
        assert!(decode(Action::DeleteMsg, 200, body.as_bytes(), None)
            .unwrap()
            .is_null());
    }

    #[test]
    fn go_cqhttp_codes() {
        let e = failed(
            Action::SetGroupKick,
            json!({"status": "failed", "retcode": 100, "msg": "MEMBER_NOT_FOUND", "wording": "人员不存在"}),
        );
        assert!(matches!(e, Error::MemberNotFound { .. }), "{e}");
        assert!(
            e.to_string().contains("MEMBER_NOT_FOUND: 人员不存在"),
            "{e}"
        );
        let e = failed(
            Action::SendGroupMsg,
            json!({"status": "failed", "retcode": 100, "msg": "SEND_MSG_API_ERROR", "wording": "send group message failed: blocked by server"}),
        );
        assert_eq!(e.class(), ErrorClass::RiskControl);
        let e = failed(
            Action::GetLoginInfo,
            json!({"status": "failed", "retcode": 404, "msg": "API_NOT_FOUND", "wording": "API不存在"}),
        );
        assert!(matches!(e, Error::UnsupportedAction { .. }));
    }

    #[test]
    fn napcat_and_lagrange_wordings() {
        let e = failed(
            Action::GetGroupMemberInfo,
            json!({"status": "failed", "retcode": 200, "message": "群(123)成员456不存在", "wording": "群(123)成员456不存在"}),
        );
        assert!(matches!(e, Error::MemberNotFound { .. }), "{e}");
        let e = failed(
            Action::SendPrivateMsg,
            json!({"status": "failed", "retcode": 1200, "message": "Timeout: NTEvent serviceAndMethod:NodeIKernelMsgService/sendMsg"}),
        );
        assert!(matches!(e, Error::RiskControl { retcode: 1200, .. }), "{e}");
        // A private message to a QQ number NapCat cannot resolve: no such user.
        let e = failed(
            Action::SendPrivateMsg,
            json!({"status": "failed", "retcode": 200, "message": "无法获取用户信息", "wording": "无法获取用户信息"}),
        );
        assert!(matches!(e, Error::UserNotFound { .. }), "{e}");
        assert_eq!(e.class(), ErrorClass::Gone);
        let e = failed(
            Action::SetGroupBan,
            json!({"status": "failed", "retcode": 200, "message": "cannot ban admin"}),
        );
        assert!(matches!(e, Error::NotManageable { .. }), "{e}");
        // Lagrange: status ok with the QQ server's nonzero send result.
        let e = failed(
            Action::SendGroupMsg,
            json!({"status": "ok", "retcode": 120, "data": {"message_id": 0}}),
        );
        assert!(matches!(e, Error::Failed { retcode: 120, .. }), "{e}");
        let e = failed(
            Action::SetGroupKick,
            json!({"status": "failed", "retcode": 200, "data": null}),
        );
        assert_eq!(e.class(), ErrorClass::Transient);
        // A timeout outside a send is not risk control.
        let e = failed(
            Action::GetGroupMemberInfo,
            json!({"status": "failed", "retcode": 1200, "message": "Timeout: NTEvent"}),
        );
        assert!(matches!(e, Error::Failed { .. }), "{e}");
    }

    #[test]
    fn http_statuses_and_garbage() {
        let e = decode(Action::SendGroupMsg, 401, b"", None).unwrap_err();
        assert!(matches!(e, Error::Unauthorized { status: 401, .. }));
        let e = decode(Action::SendGroupMsg, 404, b"", None).unwrap_err();
        assert!(matches!(e, Error::UnsupportedAction { .. }));
        let e = decode(Action::SendGroupMsg, 406, b"json only", None).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = decode(Action::SendGroupMsg, 502, b"bad gateway", None).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Transient);
        let e = decode(Action::SendGroupMsg, 200, b"<html>", None).unwrap_err();
        assert!(matches!(e, Error::Decode { .. }));
        let e = decode(Action::SendGroupMsg, 200, b"{\"retcode\":0}", None).unwrap_err();
        assert!(matches!(e, Error::Decode { .. }));
    }

    #[test]
    fn the_token_is_scrubbed_from_server_text() {
        let body = json!({"status": "failed", "retcode": 100, "wording": "bad token s3cr3t!"});
        let e = decode(
            Action::DeleteMsg,
            200,
            body.to_string().as_bytes(),
            Some("s3cr3t!"),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("s3cr3t!"), "{e}");
        assert!(clean(&"x".repeat(400), None).ends_with('…'));
        assert_eq!(
            without_strings(r#"invalid type: string "a\"b", expected i64"#),
            r#"invalid type: string "…", expected i64"#
        );
    }
}
