//! Message templates: text with `{placeholders}`, checked when the configuration is loaded
//! (an unknown placeholder names its template) and rendered into OneBot messages. `{at}`
//! becomes @-mention segments, never text, so a name can never be read as a CQ code; `{{` and
//! `}}` are literal braces.

use celeriac_onebot::Message;

/// Which message a template is, and so which placeholders it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateKind {
    /// `welcome`.
    Welcome,
    /// `remind`.
    Remind,
    /// `kick_notice`.
    KickNotice,
    /// `verified`.
    Verified,
    /// `approved`.
    Approved,
    /// `wrong_code`.
    WrongCode,
    /// `report`.
    Report,
    /// `blocked`.
    Blocked,
}

impl TemplateKind {
    /// Every template.
    pub const ALL: [TemplateKind; 8] = [
        TemplateKind::Welcome,
        TemplateKind::Remind,
        TemplateKind::KickNotice,
        TemplateKind::Verified,
        TemplateKind::Approved,
        TemplateKind::WrongCode,
        TemplateKind::Report,
        TemplateKind::Blocked,
    ];

    /// The name in `[verification.templates]`.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateKind::Welcome => "welcome",
            TemplateKind::Remind => "remind",
            TemplateKind::KickNotice => "kick_notice",
            TemplateKind::Verified => "verified",
            TemplateKind::Approved => "approved",
            TemplateKind::WrongCode => "wrong_code",
            TemplateKind::Report => "report",
            TemplateKind::Blocked => "blocked",
        }
    }

    /// The placeholders it may use.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            TemplateKind::Welcome => &["at", "user", "group", "code", "deadline", "reminders"],
            TemplateKind::Remind => &[
                "at",
                "user",
                "group",
                "code",
                "left",
                "reminders",
                "deadline",
            ],
            TemplateKind::KickNotice => &["at", "users", "group"],
            TemplateKind::Verified | TemplateKind::Approved => &["at", "user", "group"],
            TemplateKind::WrongCode => &["user", "group", "left"],
            TemplateKind::Report => &[
                "group",
                "reminded",
                "kicked",
                "unmanageable",
                "pending",
                "failed",
            ],
            TemplateKind::Blocked => &["group", "detail"],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
    At,
}

/// Why a template does not parse; each message says how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Nothing to say.
    #[error("must not be empty")]
    Empty,
    /// `{name` without its `}`.
    #[error("{{{name} is not closed (write {{{{ for a literal brace)")]
    Unclosed {
        /// What followed the brace.
        name: String,
    },
    /// A placeholder this template does not accept.
    #[error("unknown placeholder {{{name}}}; {template} accepts {accepted} (write {{{{ and }}}} for literal braces)")]
    UnknownPlaceholder {
        /// The placeholder.
        name: String,
        /// The template.
        template: &'static str,
        /// The placeholders it accepts, as written.
        accepted: String,
    },
    /// A `}` that closes nothing.
    #[error("a lone }} (write }}}} for a literal brace)")]
    LoneBrace,
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parse `text` as a template of `kind`; the error says which placeholder is wrong and
    /// which ones the template accepts.
    pub fn parse(kind: TemplateKind, text: &str) -> Result<Template, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(TemplateError::Unclosed { name });
                    }
                    if !kind.placeholders().contains(&name.as_str()) {
                        return Err(TemplateError::UnknownPlaceholder {
                            name,
                            template: kind.as_str(),
                            accepted: kind
                                .placeholders()
                                .iter()
                                .map(|p| format!("{{{p}}}"))
                                .collect::<Vec<_>>()
                                .join(" "),
                        });
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(if name == "at" {
                        Piece::At
                    } else {
                        Piece::Var(name)
                    });
                }
                '}' => return Err(TemplateError::LoneBrace),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// A template of plain text (no placeholders).
    pub fn literal(text: &str) -> Template {
        Template {
            pieces: vec![Piece::Text(text.to_string())],
        }
    }

    /// Append this template to `message`: `{at}` mentions each of `at`, each placeholder is
    /// the value `vars` gives it (empty when it gives none).
    pub fn render_into(
        &self,
        mut message: Message,
        at: &[i64],
        vars: &[(&str, String)],
    ) -> Message {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => message = message.push_text(t.clone()),
                Piece::Var(name) => {
                    let value = vars
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    message = message.push_text(value);
                }
                Piece::At => {
                    for (i, user) in at.iter().enumerate() {
                        if i > 0 {
                            message = message.push_text(" ");
                        }
                        message = message.at(*user);
                    }
                }
            }
        }
        message
    }

    /// Render into a new message.
    pub fn render(&self, at: &[i64], vars: &[(&str, String)]) -> Message {
        self.render_into(Message::new(), at, vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use celeriac_onebot::Segment;

    #[test]
    fn placeholders_render_and_at_is_a_mention() {
        let t =
            Template::parse(TemplateKind::Verified, "{at}({user}) ok in {group} {{x}}").unwrap();
        let m = t.render(&[42], &[("user", "42".into()), ("group", "7".into())]);
        assert_eq!(m.segments()[0], Segment::At { qq: "42".into() });
        assert_eq!(m.plain_text(), "(42) ok in 7 {x}");
    }

    #[test]
    fn unknown_placeholders_are_refused_with_the_allowed_ones() {
        let e = Template::parse(TemplateKind::WrongCode, "{at} wrong")
            .unwrap_err()
            .to_string();
        assert!(e.contains("{at}") && e.contains("{left}"), "{e}");
        assert!(Template::parse(TemplateKind::Welcome, "{code").is_err());
        assert!(Template::parse(TemplateKind::Welcome, "code}").is_err());
        assert!(Template::parse(TemplateKind::Welcome, " ").is_err());
    }

    #[test]
    fn user_text_in_values_stays_text() {
        let t = Template::parse(TemplateKind::Verified, "{user}").unwrap();
        let m = t.render(&[], &[("user", "[CQ:at,qq=all]".into())]);
        assert_eq!(
            m.segments(),
            [Segment::Text {
                text: "[CQ:at,qq=all]".into()
            }]
        );
    }
}
