//! Time helpers: the clocks, and the one place that turns Unix times into text and back.
//!
//! Job records store microseconds since the Unix epoch as decimal strings taken from the Redis
//! clock (`TIME`), so every worker agrees on them; envelopes and index scores carry
//! milliseconds. Foreign producers can write any number there (a time in µs or ns by mistake,
//! a year past 9999), so the formatters never panic: a value that is not a time between
//! 0000-01-01 and [`MAX_TIMESTAMP_MS`] is shown as it is, with its unit, flagged
//! `(out of range)`.

use std::fmt::Display;
use std::time::{SystemTime, UNIX_EPOCH};

/// The latest time Celeriac accepts as a run-at time and shows as RFC 3339:
/// 9999-12-31T23:59:59.999Z, in Unix milliseconds (RFC 3339 has four-digit years).
pub const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

/// The earliest time shown as RFC 3339: 0000-01-01T00:00:00.000Z, in Unix milliseconds.
const MIN_TIMESTAMP_MS: i64 = -62_167_219_200_000;

const MS_PER_DAY: i64 = 86_400_000;

/// The suffix of a stored value that is not a showable time (see [`out_of_range`]).
pub const OUT_OF_RANGE: &str = "(out of range)";

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch on this machine's clock.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// RFC 3339 (UTC, millisecond precision) for Unix milliseconds; a value past
/// [`MAX_TIMESTAMP_MS`] comes back as [`out_of_range`] text, e.g. `1767261000000000 ms (out of
/// range)`.
pub fn rfc3339_ms(ms: u64) -> String {
    match i64::try_from(ms).ok().and_then(format_ms) {
        Some(text) => text,
        None => out_of_range(ms, "ms"),
    }
}

/// RFC 3339 (UTC, millisecond precision) for Unix microseconds; out-of-range values as in
/// [`rfc3339_ms`].
pub fn rfc3339_us(us: u64) -> String {
    match i64::try_from(us / 1000).ok().and_then(format_ms) {
        Some(text) => text,
        None => out_of_range(us, "µs"),
    }
}

/// RFC 3339 (UTC, millisecond precision) for signed Unix milliseconds (times before 1970
/// included); out-of-range values as in [`rfc3339_ms`].
pub fn rfc3339_ms_signed(ms: i64) -> String {
    format_ms(ms).unwrap_or_else(|| out_of_range(ms, "ms"))
}

/// [`rfc3339_ms`] for a stored decimal text: a record field, or a sorted-set score as Redis
/// sends it (`1767261600000`, `1.7672616e12`). Text that is not a whole non-negative number is
/// shown as it is, flagged.
pub fn rfc3339_ms_text(raw: &str) -> String {
    match whole_number(raw) {
        Some(ms) => rfc3339_ms(ms),
        None => out_of_range(raw, "ms"),
    }
}

/// [`rfc3339_us`] for a stored decimal text; anything else as in [`rfc3339_ms_text`].
pub fn rfc3339_us_text(raw: &str) -> String {
    match whole_number(raw) {
        Some(us) => rfc3339_us(us),
        None => out_of_range(raw, "µs"),
    }
}

fn whole_number(raw: &str) -> Option<u64> {
    raw.parse::<u64>().ok().or_else(|| {
        let f: f64 = raw.parse().ok()?;
        // 2^64 as f64: anything at or past it does not fit.
        (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0)
            .then_some(f as u64)
    })
}

/// A stored value that is not a showable time, as it is: `RAW UNIT (out of range)`.
pub fn out_of_range(raw: impl Display, unit: &str) -> String {
    format!("{raw} {unit} {OUT_OF_RANGE}")
}

fn format_ms(ms: i64) -> Option<String> {
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS as i64).contains(&ms) {
        return None;
    }
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1000;
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        in_day % 1000
    ))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day), proleptic Gregorian, to days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Why a text is not an RFC 3339 time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// A date and time of day without `Z` or an offset: which zone is meant cannot be known.
    #[error("it has no time zone (Z or an offset such as +01:00)")]
    NoZone,
    /// Anything else.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Parse an RFC 3339 time (`2026-12-01T08:00:00Z`, `2026-12-01T08:00:00.5+01:00`, `t` or a
/// space for `T`, `z` for `Z`; `-00:00` is UTC) into Unix milliseconds, negative before 1970.
/// Digits past the millisecond are dropped.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, TimeError> {
    use TimeError::Invalid;
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>, what: &'static str| -> Result<i64, TimeError> {
        let part = b.get(range).ok_or(Invalid(what))?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(Invalid(what));
        }
        Ok(part.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0')))
    };
    let sep = |i: usize, c: u8, what: &'static str| match b.get(i) {
        Some(&x) if x == c => Ok(()),
        _ => Err(Invalid(what)),
    };
    let date = "expected a date YYYY-MM-DD";
    let (y, m, d) = (num(0..4, date)?, num(5..7, date)?, num(8..10, date)?);
    sep(4, b'-', date)?;
    sep(7, b'-', date)?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(Invalid("no such date"));
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return Err(Invalid(
            "expected T and a time of day HH:MM:SS after the date",
        ));
    }
    let clock = "expected a time of day HH:MM:SS after the date";
    let (hh, mm, ss) = (
        num(11..13, clock)?,
        num(14..16, clock)?,
        num(17..19, clock)?,
    );
    sep(13, b':', clock)?;
    sep(16, b':', clock)?;
    if hh > 23 || mm > 59 || ss > 60 {
        return Err(Invalid("no such time of day"));
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(Invalid("expected digits after the decimal point"));
        }
        let digits = &b[start..i.min(start + 3)];
        millis = digits.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0'))
            * 10_i64.pow(3 - digits.len() as u32);
    }
    let offset_min = match b.get(i) {
        None => return Err(TimeError::NoZone),
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&c @ (b'+' | b'-')) if i + 6 == b.len() => {
            let zone = "expected the offset as +HH:MM or -HH:MM";
            sep(i + 3, b':', zone)?;
            let (oh, om) = (num(i + 1..i + 3, zone)?, num(i + 4..i + 6, zone)?);
            if oh > 23 || om > 59 {
                return Err(Invalid("no such offset"));
            }
            let minutes = oh * 60 + om;
            if c == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        Some(_) => return Err(Invalid("expected Z or an offset (+HH:MM) after the time")),
    };
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss - offset_min * 60;
    Ok(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3339_round_trip() {
        let ms = 1_700_000_000_123;
        let s = rfc3339_ms(ms);
        assert_eq!(s, "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_rfc3339_ms(&s), Ok(ms as i64));
        assert!(matches!(
            parse_rfc3339_ms("tomorrow"),
            Err(TimeError::Invalid(_))
        ));
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(MAX_TIMESTAMP_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_us(1_000_001), "1970-01-01T00:00:01.000Z");
        assert_eq!(rfc3339_ms_signed(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339_ms_signed(MIN_TIMESTAMP_MS),
            "0000-01-01T00:00:00.000Z"
        );
    }

    // issue 10.1: values past year 9999 (or written in µs or ns by mistake) never panic.
    #[test]
    fn out_of_range_values_are_shown_as_they_are() {
        assert_eq!(
            rfc3339_ms(MAX_TIMESTAMP_MS + 1),
            "253402300800000 ms (out of range)"
        );
        assert_eq!(
            rfc3339_ms(u64::MAX),
            format!("{} ms (out of range)", u64::MAX)
        );
        assert_eq!(
            rfc3339_us(u64::MAX),
            format!("{} µs (out of range)", u64::MAX)
        );
        assert_eq!(
            rfc3339_ms_signed(i64::MIN),
            format!("{} ms (out of range)", i64::MIN)
        );
        // 2026 written in nanoseconds where milliseconds belong.
        assert!(rfc3339_ms(1_767_261_000_000_000_000).ends_with(OUT_OF_RANGE));
    }

    #[test]
    fn stored_text_is_shown_or_flagged_as_it_is() {
        assert_eq!(rfc3339_ms_text("1000"), "1970-01-01T00:00:01.000Z");
        assert_eq!(rfc3339_ms_text("1e3"), "1970-01-01T00:00:01.000Z");
        assert_eq!(
            rfc3339_ms_text("8.6399999999913598e+22"),
            "8.6399999999913598e+22 ms (out of range)"
        );
        assert_eq!(rfc3339_ms_text("-5"), "-5 ms (out of range)");
        assert_eq!(rfc3339_ms_text("1.5"), "1.5 ms (out of range)");
        assert_eq!(rfc3339_ms_text("inf"), "inf ms (out of range)");
        assert_eq!(rfc3339_us_text("soon"), "soon µs (out of range)");
    }

    // issue 10.2: every offset, no zone refused, times before 1970.
    #[test]
    fn parses_offsets_and_refuses_a_missing_zone() {
        let utc = parse_rfc3339_ms("2026-12-01T07:00:00Z").unwrap();
        for s in [
            "2026-12-01T08:00:00+01:00",
            "2026-12-01t07:00:00z",
            "2026-12-01 07:00:00-00:00",
            "2026-11-30T21:30:00-09:30",
            "2026-12-01T07:00:00.000000000Z",
        ] {
            assert_eq!(parse_rfc3339_ms(s), Ok(utc), "{s}");
        }
        assert_eq!(
            parse_rfc3339_ms("2026-12-01T07:00:00.25+00:00"),
            Ok(utc + 250)
        );
        assert_eq!(
            parse_rfc3339_ms("1969-12-31T23:59:59Z"),
            Ok(-1000),
            "before 1970"
        );
        assert_eq!(
            parse_rfc3339_ms("2026-12-01T08:00:00"),
            Err(TimeError::NoZone)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-12-01T08:00:00.5"),
            Err(TimeError::NoZone)
        );
        for bad in [
            "2026-02-29T00:00:00Z",
            "2026-12-01",
            "2026-12-01T24:00:00Z",
            "2026-12-01T08:00:00+1:00",
            "2026-12-01T08:00:00+01:00 ",
            "2026-12-01T08:00:00.Z",
            "+2026-12-01T08:00:00Z",
        ] {
            assert!(
                matches!(parse_rfc3339_ms(bad), Err(TimeError::Invalid(_))),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(ms in MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS as i64) {
            prop_assert_eq!(parse_rfc3339_ms(&rfc3339_ms_signed(ms)), Ok(ms));
        }

        #[test]
        fn formatting_never_panics(v in any::<u64>()) {
            let _ = (rfc3339_ms(v), rfc3339_us(v), rfc3339_ms_signed(v as i64));
        }
    }
}
