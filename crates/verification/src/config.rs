//! `[verification]`: which groups are verified, how long members have, when the bot stays
//! quiet, and the words it says (`[verification.templates]`).

use crate::quiet::QuietHours;
use crate::template::{Template, TemplateKind};
use celeriac_core::config::{duration, FieldError, Section};
use serde::Deserialize;
use std::time::Duration;

/// Reminders before the kick (the seed module warned twice, then kicked).
pub const DEFAULT_REMINDERS: u32 = 2;
/// Time between a member's join, each reminder and the kick (the seed's 4 h).
pub const DEFAULT_REMIND_EVERY: Duration = Duration::from_secs(4 * 3600);
/// How long a new member is muted (QQ's longest mute, the seed's 30 days).
pub const DEFAULT_MUTE_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Digits of a verification code.
pub const DEFAULT_CODE_LENGTH: usize = 6;
/// Wrong answers a member may give per join before further answers are ignored.
pub const DEFAULT_MAX_WRONG_ANSWERS: u32 = 5;
/// Time zone of the quiet hours and of the deadline shown to members.
pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";
/// Hours in which scans neither remind nor kick (the seed acted only from 08:00 to 22:00).
pub const DEFAULT_QUIET_HOURS: &str = "22:00-08:00";
/// Tries of one OneBot action that fails transiently before it is given up as `failed`.
pub const DEFAULT_ACTION_ATTEMPTS: u32 = 5;
/// How long a drain owns an action it is performing before another drain may take it back.
pub const DEFAULT_ACTION_LEASE: Duration = Duration::from_secs(120);
/// How long one run of a group's job drains before it hands over to the next run.
pub const DEFAULT_GROUP_SLICE: Duration = Duration::from_secs(5 * 60);
/// How long finished actions (the log of what was sent) are kept.
pub const DEFAULT_ACTION_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Scheduled scan: every 15 minutes.
pub const DEFAULT_SCAN_SCHEDULE: &str = "*/15 * * * *";

/// `[verification]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationConfig {
    /// Groups whose new members must verify; empty: every group the bot reports.
    pub groups: Vec<i64>,
    /// QQ users who receive each scan's report by private message (none: no report).
    pub admins: Vec<i64>,
    /// Mute new members until they answer (lifted when they do).
    pub mute_on_join: bool,
    /// How long the mute lasts (QQ caps it at 30 days).
    #[serde(deserialize_with = "duration")]
    pub mute_for: Duration,
    /// Reminders sent before the kick.
    pub reminders: u32,
    /// Time from the join to the first reminder, between reminders, and from the last one to
    /// the kick: a member is kicked `(reminders + 1) × remind_every` after joining.
    #[serde(deserialize_with = "duration")]
    pub remind_every: Duration,
    /// Digits of the code.
    pub code_length: usize,
    /// Wrong answers per join answered with a hint; later ones are ignored.
    pub max_wrong_answers: u32,
    /// Refuse the kicked member's later join requests (`set_group_kick`'s
    /// `reject_add_request`).
    pub reject_rejoin: bool,
    /// IANA time zone of the quiet hours and of the deadlines in messages.
    pub timezone: String,
    /// `HH:MM-HH:MM` in `timezone` when scans neither remind nor kick (empty: never quiet).
    /// Answers, joins and leaves are handled at any hour.
    pub quiet_hours: String,
    /// Tries of an action failing transiently before it is `failed`.
    pub action_attempts: u32,
    /// How long a drain owns an action before another may take it back.
    #[serde(deserialize_with = "duration")]
    pub action_lease: Duration,
    /// How long one run of a group's job drains its actions before it snoozes and a next run
    /// goes on (work in slices: no run outlasts this, whatever the pacing).
    #[serde(deserialize_with = "duration")]
    pub group_slice: Duration,
    /// How long finished actions are kept (each scan deletes older ones): bounds the log.
    #[serde(deserialize_with = "duration")]
    pub action_retention: Duration,
    /// What the bot says.
    pub templates: Templates,
}

/// `[verification.templates]`: the messages, with `{placeholders}` (docs/verification.md lists
/// which ones each accepts). `{at}` is an @-mention segment, never text.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Templates {
    /// Group message to a member who joined.
    pub welcome: String,
    /// One line per reminded member, sent together as one group message.
    pub remind: String,
    /// Group message before the kicks, `{at}` naming everyone kicked.
    pub kick_notice: String,
    /// Group message when a member answered right.
    pub verified: String,
    /// Group message when an admin lifted a pending member's mute by hand.
    pub approved: String,
    /// Private answer to a wrong code.
    pub wrong_code: String,
    /// Private report of a scan to each of `admins`.
    pub report: String,
    /// Private alert to each of `admins`, once, when a group is blocked (the bot may not
    /// mute or kick there).
    pub blocked: String,
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            welcome: "{at}({user}) 欢迎加入本群！请私聊我发送验证码完成人机验证，{deadline} 前未验证将被移出群聊。你的验证码是：{code}".into(),
            remind: "{at}({user}) 请尽快私聊我验证码【{code}】（剩余提醒 {left}/{reminders}，{deadline} 前未验证将被移出群聊）".into(),
            kick_notice: "{at} 以上用户已超过提醒次数，即将被移出群聊".into(),
            verified: "{at}({user}) 你在群 {group} 的验证已通过，你可以正常发言了！".into(),
            approved: "{at}({user}) 已被管理员解除禁言，视为验证通过。".into(),
            wrong_code: "验证码不正确（群 {group}），还可以再试 {left} 次。".into(),
            report: "[扫描验证结果] 群 {group}：提醒 {reminded} 人，移出 {kicked} 人，无法处理 {unmanageable} 人，失败操作 {failed} 个".into(),
            blocked: "[人机验证已暂停] 群 {group}：机器人没有管理权限（{detail}）。请将机器人设为管理员后运行 celeriac verification groups enable {group}".into(),
        }
    }
}

impl Default for VerificationConfig {
    fn default() -> Self {
        VerificationConfig {
            groups: Vec::new(),
            admins: Vec::new(),
            mute_on_join: true,
            mute_for: DEFAULT_MUTE_FOR,
            reminders: DEFAULT_REMINDERS,
            remind_every: DEFAULT_REMIND_EVERY,
            code_length: DEFAULT_CODE_LENGTH,
            max_wrong_answers: DEFAULT_MAX_WRONG_ANSWERS,
            reject_rejoin: false,
            timezone: DEFAULT_TIMEZONE.into(),
            quiet_hours: DEFAULT_QUIET_HOURS.into(),
            action_attempts: DEFAULT_ACTION_ATTEMPTS,
            action_lease: DEFAULT_ACTION_LEASE,
            group_slice: DEFAULT_GROUP_SLICE,
            action_retention: DEFAULT_ACTION_RETENTION,
            templates: Templates::default(),
        }
    }
}

impl VerificationConfig {
    /// Whether `group` is under verification.
    pub fn covers(&self, group: i64) -> bool {
        self.groups.is_empty() || self.groups.contains(&group)
    }

    /// The time zone (validated; UTC if it were not).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// The quiet hours (validated; none if they were not).
    pub fn quiet(&self) -> Option<QuietHours> {
        QuietHours::parse(&self.quiet_hours).ok().flatten()
    }

    /// From the join to the kick.
    pub fn time_to_kick(&self) -> Duration {
        self.remind_every * (self.reminders + 1)
    }

    /// The template of `kind`, parsed (validated at load, so this cannot fail then).
    pub fn template(&self, kind: TemplateKind) -> Template {
        let text = match kind {
            TemplateKind::Welcome => &self.templates.welcome,
            TemplateKind::Remind => &self.templates.remind,
            TemplateKind::KickNotice => &self.templates.kick_notice,
            TemplateKind::Verified => &self.templates.verified,
            TemplateKind::Approved => &self.templates.approved,
            TemplateKind::WrongCode => &self.templates.wrong_code,
            TemplateKind::Report => &self.templates.report,
            TemplateKind::Blocked => &self.templates.blocked,
        };
        Template::parse(kind, text).unwrap_or_else(|_| Template::literal(text))
    }

    fn check(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, message: String| Err((format!("verification.{field}"), message));
        if self.groups.iter().any(|g| *g <= 0) {
            return bad("groups", "group numbers must be positive".into());
        }
        if self.admins.iter().any(|u| *u <= 0) {
            return bad("admins", "QQ numbers must be positive".into());
        }
        if self.mute_for < Duration::from_secs(60) || self.mute_for > DEFAULT_MUTE_FOR {
            return bad(
                "mute_for",
                format!(
                    "must be 1m to 30d (QQ's longest mute), got {}",
                    humantime::format_duration(self.mute_for)
                ),
            );
        }
        if self.reminders > 100 {
            return bad(
                "reminders",
                format!("must be at most 100, got {}", self.reminders),
            );
        }
        if self.remind_every < Duration::from_secs(60)
            || self.remind_every > Duration::from_secs(30 * 24 * 3600)
        {
            return bad(
                "remind_every",
                format!(
                    "must be 1m to 30d, got {}",
                    humantime::format_duration(self.remind_every)
                ),
            );
        }
        if !(4..=12).contains(&self.code_length) {
            return bad(
                "code_length",
                format!("must be 4 to 12 digits, got {}", self.code_length),
            );
        }
        if self.max_wrong_answers > 100 {
            return bad("max_wrong_answers", "must be at most 100".into());
        }
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return bad(
                "timezone",
                format!(
                    "{:?} is not an IANA time zone; expected e.g. Asia/Shanghai or UTC",
                    self.timezone
                ),
            );
        }
        if let Err(message) = QuietHours::parse(&self.quiet_hours) {
            return bad("quiet_hours", message);
        }
        if !(1..=100).contains(&self.action_attempts) {
            return bad("action_attempts", "must be 1 to 100".into());
        }
        if self.action_lease < Duration::from_secs(1)
            || self.action_lease > Duration::from_secs(3600)
        {
            return bad("action_lease", "must be 1s to 1h".into());
        }
        if self.group_slice < Duration::from_secs(1) || self.group_slice > Duration::from_secs(1800)
        {
            return bad(
                "group_slice",
                "must be 1s to 30m (below the job timeout)".into(),
            );
        }
        if self.action_retention < Duration::from_secs(3600) {
            return bad("action_retention", "must be at least 1h".into());
        }
        for kind in TemplateKind::ALL {
            let field = format!("templates.{}", kind.as_str());
            let text = match kind {
                TemplateKind::Welcome => &self.templates.welcome,
                TemplateKind::Remind => &self.templates.remind,
                TemplateKind::KickNotice => &self.templates.kick_notice,
                TemplateKind::Verified => &self.templates.verified,
                TemplateKind::Approved => &self.templates.approved,
                TemplateKind::WrongCode => &self.templates.wrong_code,
                TemplateKind::Report => &self.templates.report,
                TemplateKind::Blocked => &self.templates.blocked,
            };
            if let Err(e) = Template::parse(kind, text) {
                return bad(&field, e.to_string());
            }
        }
        Ok(())
    }
}

impl Section for VerificationConfig {
    const NAME: &'static str = "verification";
    const LIST_FIELDS: &'static [&'static str] = &["groups", "admins"];
    const STRING_FIELDS: &'static [&'static str] = &[
        "timezone",
        "quiet_hours",
        "templates.welcome",
        "templates.remind",
        "templates.kick_notice",
        "templates.verified",
        "templates.approved",
        "templates.wrong_code",
        "templates.report",
        "templates.blocked",
    ];

    fn validate(&self) -> Result<(), FieldError> {
        self.check()
            .map_err(|(field, message)| FieldError::new(field, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(c: VerificationConfig) -> String {
        c.check().unwrap_err().0
    }

    #[test]
    fn defaults_are_valid() {
        let c = VerificationConfig::default();
        c.check().unwrap();
        assert_eq!(c.time_to_kick(), Duration::from_secs(12 * 3600));
        assert!(c.covers(123));
        assert!(c.quiet().is_some());
    }

    #[test]
    fn bad_values_name_their_field() {
        let d = VerificationConfig::default;
        for (c, field) in [
            (
                VerificationConfig {
                    timezone: "Mars/Olympus".into(),
                    ..d()
                },
                "verification.timezone",
            ),
            (
                VerificationConfig {
                    quiet_hours: "22-8".into(),
                    ..d()
                },
                "verification.quiet_hours",
            ),
            (
                VerificationConfig {
                    code_length: 2,
                    ..d()
                },
                "verification.code_length",
            ),
            (
                VerificationConfig {
                    remind_every: Duration::from_secs(1),
                    ..d()
                },
                "verification.remind_every",
            ),
            (
                VerificationConfig {
                    groups: vec![0],
                    ..d()
                },
                "verification.groups",
            ),
            (
                VerificationConfig {
                    templates: Templates {
                        remind: "{at} {cod}".into(),
                        ..Templates::default()
                    },
                    ..d()
                },
                "verification.templates.remind",
            ),
        ] {
            assert_eq!(field_of(c), field);
        }
    }
}
