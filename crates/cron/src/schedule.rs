//! A schedule: a cron expression read in an IANA time zone, and the job it enqueues.
//!
//! ## Daylight saving time
//!
//! Ticks are computed on the wall clock of the schedule's zone, moving forward in real time:
//! - **Skipped hour** (spring forward): a fixed-time schedule whose time falls in the gap runs
//!   once, at the first valid instant after the gap (a daily `30 2 * * *` in New York runs at
//!   03:00 on that day); interval schedules (`*/15 * * * *`) skip the ticks inside the gap.
//! - **Repeated hour** (fall back): a fixed-time schedule runs once, at the first occurrence;
//!   interval schedules run in both passes (the wall clock really does show those times twice).
//!
//! Expressions have 5 fields (minute first) or 6 (seconds first), with `*`, lists, ranges, steps,
//! names (`MON`, `JAN`), `L`, `W` and `#`; day-of-month and day-of-week combine with OR.

use crate::config::{CatchUp, ScheduleConfig};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::str::FromStr;

/// Why a schedule cannot be used; the message names the schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("schedule {name:?}: invalid cron expression {expr:?}: {reason}")]
    Expression {
        /// Schedule name.
        name: String,
        /// The expression.
        expr: String,
        /// Parser's explanation.
        reason: String,
    },
    /// Not an IANA time zone.
    #[error("schedule {name:?}: unknown time zone {tz:?}; use an IANA name such as \"Europe/Berlin\" or \"UTC\"")]
    TimeZone {
        /// Schedule name.
        name: String,
        /// The zone given.
        tz: String,
    },
    /// No handler for the kind in this build.
    #[error("schedule {name:?}: unknown job kind {kind:?}; known kinds: {known}")]
    Kind {
        /// Schedule name.
        name: String,
        /// The kind given.
        kind: String,
        /// Kinds this build runs.
        known: String,
    },
}

/// A parsed, validated schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Its configuration.
    pub config: ScheduleConfig,
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// Parse and check `config`; `known_kinds` are the kinds workers of this build can run.
    pub fn new(config: ScheduleConfig, known_kinds: &[String]) -> Result<Schedule, ScheduleError> {
        let cron = Cron::from_str(&config.schedule).map_err(|e| ScheduleError::Expression {
            name: config.name.clone(),
            expr: config.schedule.clone(),
            reason: e.to_string(),
        })?;
        let tz = Tz::from_str(&config.timezone).map_err(|_| ScheduleError::TimeZone {
            name: config.name.clone(),
            tz: config.timezone.clone(),
        })?;
        if !known_kinds.iter().any(|k| k == &config.kind) {
            return Err(ScheduleError::Kind {
                name: config.name.clone(),
                kind: config.kind.clone(),
                known: known_kinds.join(", "),
            });
        }
        Ok(Schedule { config, cron, tz })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Its time zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// Missed-tick policy.
    pub fn catch_up(&self) -> CatchUp {
        self.config.catch_up
    }

    /// The first tick strictly after `after_ms` (Unix ms), if any before year 5000.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let t = self.tz.from_utc_datetime(&utc(after_ms)?.naive_utc());
        let next = self.cron.find_next_occurrence(&t, false).ok()?;
        Some(next.timestamp_millis() as u64)
    }

    /// The last tick at or before `at_ms`.
    pub fn previous_at_or_before(&self, at_ms: u64) -> Option<u64> {
        let t = self.tz.from_utc_datetime(&utc(at_ms)?.naive_utc());
        let prev = self.cron.find_previous_occurrence(&t, true).ok()?;
        Some(prev.timestamp_millis() as u64)
    }

    /// The next `n` ticks after `after_ms`.
    pub fn upcoming(&self, after_ms: u64, n: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(n);
        let mut cursor = after_ms;
        while out.len() < n {
            match self.next_after(cursor) {
                Some(t) => {
                    out.push(t);
                    cursor = t;
                }
                None => break,
            }
        }
        out
    }

    /// A tick as RFC 3339 in the schedule's zone (with its offset); a time past year 9999
    /// (which no schedule yields, but a stored tick could hold) as `celeriac_core::time` shows
    /// it: the raw value, flagged.
    pub fn local_rfc3339(&self, ms: u64) -> String {
        utc(ms)
            .filter(|_| ms <= celeriac_core::time::MAX_TIMESTAMP_MS)
            .map(|t| t.with_timezone(&self.tz).to_rfc3339())
            .unwrap_or_else(|| celeriac_core::time::rfc3339_ms(ms))
    }

    /// The deterministic job id of a tick: the same on every replica.
    pub fn job_id(&self, tick_ms: u64) -> String {
        format!("cron:{}:{tick_ms}", self.config.name)
    }
}

fn utc(ms: u64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(i64::try_from(ms).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, LocalResult, NaiveDate, NaiveDateTime, Timelike};
    use proptest::prelude::*;

    fn schedule(expr: &str, tz: &str) -> Schedule {
        let config = ScheduleConfig {
            name: "t".into(),
            schedule: expr.into(),
            timezone: tz.into(),
            kind: "noop".into(),
            payload: serde_json::json!({}),
            queue: "default".into(),
            catch_up: CatchUp::Skip,
            catch_up_max: 10,
            max_attempts: None,
            enabled: true,
        };
        Schedule::new(config, &["noop".into()]).unwrap()
    }

    fn ms(tz: &str, s: &str) -> u64 {
        let tz: Tz = tz.parse().unwrap();
        let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        tz.from_local_datetime(&naive)
            .earliest()
            .unwrap()
            .timestamp_millis() as u64
    }

    fn local(s: &Schedule, ms: u64) -> NaiveDateTime {
        utc(ms).unwrap().with_timezone(&s.tz()).naive_local()
    }

    const NY: &str = "America/New_York";

    #[test]
    fn skipped_hour_runs_once_right_after_the_gap() {
        let s = schedule("30 2 * * *", NY);
        let ticks = s.upcoming(ms(NY, "2026-03-07 12:00:00"), 3);
        let locals: Vec<String> = ticks.iter().map(|&t| local(&s, t).to_string()).collect();
        assert_eq!(
            locals,
            [
                "2026-03-08 03:00:00",
                "2026-03-09 02:30:00",
                "2026-03-10 02:30:00"
            ]
        );
    }

    #[test]
    fn repeated_hour_runs_once() {
        let s = schedule("30 1 * * *", NY);
        let ticks = s.upcoming(ms(NY, "2026-10-31 12:00:00"), 2);
        assert_eq!(local(&s, ticks[0]).to_string(), "2026-11-01 01:30:00");
        assert_eq!(
            utc(ticks[0]).unwrap().hour(),
            5,
            "the first pass (EDT, UTC-4)"
        );
        assert_eq!(local(&s, ticks[1]).to_string(), "2026-11-02 01:30:00");
        // Interval schedules run in both passes of the repeated hour.
        let every30 = schedule("*/30 * * * *", NY);
        let n = every30
            .upcoming(ms(NY, "2026-11-01 00:59:00"), 10)
            .into_iter()
            .filter(|&t| local(&every30, t).hour() == 1)
            .count();
        assert_eq!(n, 4);
    }

    #[test]
    fn month_ends_and_leap_days() {
        let s = schedule("0 0 31 * *", "UTC");
        let months: Vec<u32> = s
            .upcoming(ms("UTC", "2026-01-01 00:00:00"), 7)
            .iter()
            .map(|&t| local(&s, t).month())
            .collect();
        assert_eq!(months, [1, 3, 5, 7, 8, 10, 12]);
        let leap = schedule("0 12 29 2 *", "Europe/Berlin");
        let years: Vec<i32> = leap
            .upcoming(ms("UTC", "2026-01-01 00:00:00"), 3)
            .iter()
            .map(|&t| local(&leap, t).year())
            .collect();
        assert_eq!(years, [2028, 2032, 2036]);
        let last = schedule("0 0 L * *", "UTC");
        let feb = last.next_after(ms("UTC", "2028-02-01 00:00:00")).unwrap();
        assert_eq!(local(&last, feb).day(), 29);
    }

    #[test]
    fn seconds_field_and_previous_tick() {
        let s = schedule("*/10 * * * * *", "UTC");
        let t = ms("UTC", "2026-05-05 10:00:03");
        assert_eq!(s.next_after(t), Some(ms("UTC", "2026-05-05 10:00:10")));
        assert_eq!(
            s.previous_at_or_before(t),
            Some(ms("UTC", "2026-05-05 10:00:00"))
        );
        assert_eq!(
            s.previous_at_or_before(ms("UTC", "2026-05-05 10:00:10")),
            Some(ms("UTC", "2026-05-05 10:00:10"))
        );
    }

    #[test]
    fn bad_schedules_are_named_with_their_reason() {
        let mut c = schedule("* * * * *", "UTC").config;
        c.schedule = "61 * * * *".into();
        let e = Schedule::new(c.clone(), &["noop".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"t\"") && e.contains("invalid cron expression"),
            "{e}"
        );
        c.schedule = "* * * * *".into();
        c.timezone = "Mars/Olympus".into();
        let e = Schedule::new(c.clone(), &["noop".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown time zone"), "{e}");
        c.timezone = "UTC".into();
        c.kind = "nope".into();
        let e = Schedule::new(c, &["noop".into()]).unwrap_err().to_string();
        assert!(
            e.contains("unknown job kind \"nope\"") && e.contains("noop"),
            "{e}"
        );
    }

    const ZONES: [&str; 8] = [
        "UTC",
        "America/New_York",
        "Europe/London",
        "Europe/Berlin",
        "Australia/Sydney",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "America/Santiago",
    ];

    /// Independent oracle for a daily `M H * * *` schedule: on each local date from the start's,
    /// the local time H:M, or (when it falls in a gap) the first existing minute after it; the
    /// first such instant after `start`.
    fn oracle_daily(tz: Tz, hour: u32, minute: u32, start_ms: u64) -> u64 {
        let start = utc(start_ms).unwrap().with_timezone(&tz);
        let mut date = start.date_naive().pred_opt().unwrap();
        loop {
            let mut naive = date.and_hms_opt(hour, minute, 0).unwrap();
            let instant = loop {
                match tz.from_local_datetime(&naive) {
                    LocalResult::Single(t) => break t,
                    LocalResult::Ambiguous(first, _) => break first,
                    LocalResult::None => naive += chrono::Duration::minutes(1),
                }
            };
            let ms = instant.timestamp_millis() as u64;
            if ms > start_ms {
                return ms;
            }
            date = date.succ_opt().unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn daily_ticks_match_the_oracle(
            zone in 0..ZONES.len(),
            hour in 0u32..24,
            minute in 0u32..60,
            start in 1_577_836_800_000u64..1_893_456_000_000, // 2020..2030
        ) {
            let s = schedule(&format!("{minute} {hour} * * *"), ZONES[zone]);
            let next = s.next_after(start).unwrap();
            prop_assert_eq!(next, oracle_daily(s.tz(), hour, minute, start));
        }

        #[test]
        fn a_daily_schedule_runs_exactly_once_per_local_day(
            zone in 0..ZONES.len(),
            hour in 0u32..24,
            minute in 0u32..60,
            start in 1_577_836_800_000u64..1_893_456_000_000,
        ) {
            let s = schedule(&format!("{minute} {hour} * * *"), ZONES[zone]);
            let ticks = s.upcoming(start, 400);
            let dates: Vec<NaiveDate> = ticks.iter().map(|&t| local(&s, t).date()).collect();
            for pair in dates.windows(2) {
                prop_assert_eq!(pair[0].succ_opt().unwrap(), pair[1], "{:?}", dates);
            }
            for pair in ticks.windows(2) {
                prop_assert!(pair[0] < pair[1]);
            }
        }

        #[test]
        fn last_day_of_month_is_the_last_day(
            zone in 0..ZONES.len(),
            start in 1_577_836_800_000u64..1_893_456_000_000,
        ) {
            let s = schedule("0 12 L * *", ZONES[zone]);
            let t = local(&s, s.next_after(start).unwrap());
            prop_assert_eq!(t.date().succ_opt().unwrap().day(), 1, "{}", t);
            prop_assert_eq!((t.hour(), t.minute()), (12, 0));
        }

        #[test]
        fn february_29th_only_in_leap_years(
            zone in 0..ZONES.len(),
            start in 1_577_836_800_000u64..1_893_456_000_000,
        ) {
            let s = schedule("0 6 29 2 *", ZONES[zone]);
            let t = local(&s, s.next_after(start).unwrap());
            let y = t.year();
            prop_assert!(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0), "{}", t);
            prop_assert_eq!((t.month(), t.day()), (2, 29));
        }

        #[test]
        fn next_and_previous_agree(
            zone in 0..ZONES.len(),
            expr in prop::sample::select(vec!["*/7 * * * *", "0 */3 * * *", "15 10 * * MON-FRI", "0 0 1,15 * *", "*/20 * * * * *"]),
            start in 1_577_836_800_000u64..1_893_456_000_000,
        ) {
            let s = schedule(expr, ZONES[zone]);
            let next = s.next_after(start).unwrap();
            prop_assert!(next > start);
            // No tick lies strictly between `start` and `next`.
            let prev = s.previous_at_or_before(next - 1);
            prop_assert!(prev.is_none_or(|p| p <= start), "prev {:?} start {} next {}", prev, start, next);
        }
    }
}
