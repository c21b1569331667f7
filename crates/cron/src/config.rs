//! `[cron]`: the periodic jobs, `[[cron.schedules]]`. The built-in list is empty here; the
//! program that assembles Celeriac's domains sets their default schedules (as a layer under the
//! file: a list given in a file replaces it whole).

use celeriac_core::config::{FieldError, Section, DEFAULT_QUEUE};
use serde::{Deserialize, Serialize};

/// Most missed ticks `catch_up = "all"` enqueues by default.
pub const DEFAULT_CATCH_UP_MAX: u32 = 100;

/// `[cron]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CronConfig {
    /// `[[cron.schedules]]` entries.
    pub schedules: Vec<ScheduleConfig>,
}

/// One `[[cron.schedules]]` entry. The expression, time zone and kind are checked when the
/// scheduler starts ([`crate::Schedule::new`]); [`CronConfig::validate`] checks the rest.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique name (A-Z a-z 0-9 _ - ., at most 64): part of every job id it creates.
    pub name: String,
    /// Cron expression: 5 fields, or 6 with seconds first (`*/10 * * * * *`).
    pub schedule: String,
    /// IANA time zone the expression is read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Kind of the jobs enqueued.
    pub kind: String,
    /// Payload of the jobs enqueued (any TOML value; a table becomes a JSON object).
    #[serde(default = "empty_object")]
    pub payload: serde_json::Value,
    /// Queue.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Ticks missed while no scheduler ran: `skip`, `latest` or `all` (at most `catch_up_max`).
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Most missed ticks enqueued by `catch_up = "all"` (the newest ones).
    #[serde(default = "default_catch_up_max")]
    pub catch_up_max: u32,
    /// Attempts of each job (the kind's policy when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// A disabled schedule is listed but enqueues nothing.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl ScheduleConfig {
    /// A schedule of `kind` named `name`, with every optional field at its default.
    pub fn new(name: &str, schedule: &str, kind: &str) -> ScheduleConfig {
        ScheduleConfig {
            name: name.into(),
            schedule: schedule.into(),
            timezone: default_timezone(),
            kind: kind.into(),
            payload: empty_object(),
            queue: default_queue(),
            catch_up: CatchUp::default(),
            catch_up_max: DEFAULT_CATCH_UP_MAX,
            max_attempts: None,
            enabled: true,
        }
    }
}

/// What to do with ticks missed while no scheduler replica ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Enqueue none of them; resume with the next tick.
    #[default]
    Skip,
    /// Enqueue the most recent missed tick only.
    Latest,
    /// Enqueue every missed tick, oldest first, at most `catch_up_max` (the newest).
    All,
}

fn default_timezone() -> String {
    "UTC".into()
}
fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}
fn default_queue() -> String {
    DEFAULT_QUEUE.into()
}
fn default_catch_up_max() -> u32 {
    DEFAULT_CATCH_UP_MAX
}
fn default_true() -> bool {
    true
}

impl Section for CronConfig {
    const NAME: &'static str = "cron";

    fn validate(&self) -> Result<(), FieldError> {
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.schedules.iter().enumerate() {
            let field = format!("cron.schedules[{i}] ({:?})", s.name);
            let bad = |what: &str, message: String| {
                Err(FieldError::new(format!("{field}.{what}"), message))
            };
            if s.name.is_empty()
                || s.name.len() > 64
                || !s
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return bad("name", "use 1-64 characters from A-Z a-z 0-9 _ - .".into());
            }
            if !names.insert(s.name.as_str()) {
                return bad("name", "another schedule has the same name".into());
            }
            if let Err(e) = celeriac_core::keys::validate_queue(&s.queue) {
                return bad("queue", e.to_string());
            }
            if let Err(e) = celeriac_core::keys::validate_kind(&s.kind) {
                return bad("kind", e.to_string());
            }
            if s.max_attempts == Some(0) {
                return bad("max_attempts", "must be at least 1".into());
            }
            if s.catch_up_max == 0 {
                return bad("catch_up_max", "must be at least 1".into());
            }
        }
        Ok(())
    }
}
