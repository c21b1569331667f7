//! Quiet hours: a daily span of local time in which scans neither remind nor kick.

use chrono::{NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

/// `HH:MM-HH:MM`, start included, end excluded; a span whose end is earlier than its start
/// runs past midnight (`22:00-08:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    /// Minute of the day it starts.
    pub start: u32,
    /// Minute of the day it ends.
    pub end: u32,
}

fn minute_of(text: &str) -> Option<u32> {
    let t = NaiveTime::parse_from_str(text.trim(), "%H:%M").ok()?;
    Some(t.hour() * 60 + t.minute())
}

impl QuietHours {
    /// Parse `HH:MM-HH:MM`; empty means no quiet hours. The error says what is expected.
    pub fn parse(text: &str) -> Result<Option<QuietHours>, String> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let expected = || {
            format!("{text:?} is not HH:MM-HH:MM; expected e.g. \"22:00-08:00\", or \"\" for none")
        };
        let (a, b) = text.split_once('-').ok_or_else(expected)?;
        let (start, end) = (
            minute_of(a).ok_or_else(expected)?,
            minute_of(b).ok_or_else(expected)?,
        );
        if start == end {
            return Err(format!(
                "{text:?} starts and ends at the same time; use \"\" for no quiet hours"
            ));
        }
        Ok(Some(QuietHours { start, end }))
    }

    /// Whether `minute` (of the local day) is inside.
    pub fn contains_minute(&self, minute: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// Whether the instant `now_ms` is inside, in `tz`.
    pub fn contains(&self, now_ms: i64, tz: Tz) -> bool {
        let local = tz.timestamp_millis_opt(now_ms).single();
        local.is_some_and(|t| self.contains_minute(t.hour() * 60 + t.minute()))
    }

    /// How long from `now_ms` until the quiet hours end (0 when outside them), in ms, counted
    /// in whole minutes of local time (a DST jump inside the span shifts it by its size).
    pub fn remaining_ms(&self, now_ms: i64, tz: Tz) -> i64 {
        let Some(local) = tz.timestamp_millis_opt(now_ms).single() else {
            return 0;
        };
        let minute = local.hour() * 60 + local.minute();
        if !self.contains_minute(minute) {
            return 0;
        }
        let left = (self.end + 24 * 60 - minute) % (24 * 60);
        let into_minute =
            i64::from(local.second()) * 1000 + i64::from(local.nanosecond() / 1_000_000);
        i64::from(left) * 60_000 - into_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_wrap_midnight() {
        let q = QuietHours::parse("22:00-08:00").unwrap().unwrap();
        assert!(q.contains_minute(22 * 60));
        assert!(q.contains_minute(3 * 60));
        assert!(!q.contains_minute(8 * 60));
        assert!(!q.contains_minute(12 * 60));
        let q = QuietHours::parse("12:30-13:00").unwrap().unwrap();
        assert!(q.contains_minute(12 * 60 + 45) && !q.contains_minute(13 * 60));
        assert_eq!(QuietHours::parse("").unwrap(), None);
        for bad in ["22-8", "25:00-08:00", "08:00-08:00", "22:00"] {
            assert!(QuietHours::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants_are_read_in_the_zone() {
        let q = QuietHours::parse("22:00-08:00").unwrap().unwrap();
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        // 2026-01-01T15:00:00Z is 23:00 in Shanghai: quiet, 9 h left.
        let t = 1_767_279_600_000;
        assert!(q.contains(t, tz));
        assert_eq!(q.remaining_ms(t, tz), 9 * 3_600_000);
        // The same instant is 15:00 in UTC: not quiet.
        assert!(!q.contains(t, chrono_tz::UTC));
        assert_eq!(q.remaining_ms(t, chrono_tz::UTC), 0);
    }
}
