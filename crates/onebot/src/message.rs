//! Messages: what Celeriac sends (always the array format, so user text is never read as CQ
//! codes) and the plain text of what it receives (string or array format).

use serde::Serialize;
use serde_json::Value;

/// An outgoing message: a list of segments, serialized in OneBot v11's array format.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Message(Vec<Segment>);

/// One segment of an outgoing message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum Segment {
    /// Plain text, sent as is (no CQ-code interpretation).
    Text {
        /// The text.
        text: String,
    },
    /// An @-mention of a user (`qq` is the number) or of everyone (`"all"`).
    At {
        /// The QQ number, or `all`.
        qq: String,
    },
    /// A reply to (quote of) a message.
    Reply {
        /// The quoted message's id.
        id: String,
    },
}

impl Message {
    /// An empty message.
    pub fn new() -> Self {
        Message(Vec::new())
    }

    /// A message of plain text.
    pub fn text(text: impl Into<String>) -> Self {
        Message::new().push_text(text)
    }

    /// Append plain text.
    pub fn push_text(mut self, text: impl Into<String>) -> Self {
        self.0.push(Segment::Text { text: text.into() });
        self
    }

    /// Append an @-mention of `user_id`.
    pub fn at(mut self, user_id: i64) -> Self {
        self.0.push(Segment::At {
            qq: user_id.to_string(),
        });
        self
    }

    /// Append an @-mention of everyone (the bot must be an admin).
    pub fn at_all(mut self) -> Self {
        self.0.push(Segment::At { qq: "all".into() });
        self
    }

    /// Append a reply to message `id`.
    pub fn reply_to(mut self, id: i64) -> Self {
        self.0.push(Segment::Reply { id: id.to_string() });
        self
    }

    /// The segments.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The text segments joined (what a reader sees, without mentions).
    pub fn plain_text(&self) -> String {
        self.0
            .iter()
            .filter_map(|s| match s {
                Segment::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::text(text)
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::text(text)
    }
}

/// The plain text of a received `message` field, in any of the three shapes OneBot v11 allows:
/// a string (CQ codes removed, `&amp;` `&#91;` `&#93;` `&#44;` unescaped), an array of segments
/// (the `text` segments joined), or a single segment object.
pub fn plain_text(message: &Value) -> String {
    match message {
        Value::String(s) => cq_plain_text(s),
        Value::Array(segments) => segments.iter().map(segment_text).collect(),
        Value::Object(_) => segment_text(message).to_string(),
        _ => String::new(),
    }
}

fn segment_text(segment: &Value) -> &str {
    if segment.get("type").and_then(Value::as_str) == Some("text") {
        segment
            .get("data")
            .and_then(|d| d.get("text"))
            .and_then(Value::as_str)
            .unwrap_or("")
    } else {
        ""
    }
}

/// Text of a string-format message: everything outside `[CQ:…]`, unescaped.
fn cq_plain_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("[CQ:") {
        out.push_str(&unescape(&rest[..start]));
        match rest[start..].find(']') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                // An unterminated code: not a code, keep it as text.
                out.push_str(&unescape(&rest[start..]));
                rest = "";
            }
        }
    }
    out.push_str(&unescape(rest));
    out
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&#91;", "[")
        .replace("&#93;", "]")
        .replace("&#44;", ",")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outgoing_messages_use_the_array_format() {
        let m = Message::new().at(10001).push_text(" your code is [42]");
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!([
                {"type": "at", "data": {"qq": "10001"}},
                {"type": "text", "data": {"text": " your code is [42]"}}
            ])
        );
        assert_eq!(m.plain_text(), " your code is [42]");
    }

    #[test]
    fn plain_text_of_every_format() {
        assert_eq!(
            plain_text(&json!(
                "[CQ:at,qq=10001] 验证码 &#91;1234&#93; &amp; ok[CQ:face,id=178]"
            )),
            " 验证码 [1234] & ok"
        );
        assert_eq!(
            plain_text(&json!([
                {"type": "at", "data": {"qq": "10001"}},
                {"type": "text", "data": {"text": " 1234"}},
                {"type": "face", "data": {"id": "178"}},
                {"type": "text", "data": {"text": "!"}}
            ])),
            " 1234!"
        );
        assert_eq!(
            plain_text(&json!({"type": "text", "data": {"text": "hi"}})),
            "hi"
        );
        assert_eq!(plain_text(&json!("a [CQ:broken")), "a [CQ:broken");
        assert_eq!(plain_text(&json!(null)), "");
    }
}
