//! What the scheduler measures, through the `metrics` facade (labels: the configured schedule
//! names only, so their number is bounded).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `celeriac_cron_ticks_total` | counter | `schedule`, `result` (`enqueued`: by this replica; `already_done`: by another; `skipped`: missed and dropped by the catch-up policy) |
//! | `celeriac_cron_lag_seconds` | gauge | `schedule`: how late the last tick this replica enqueued was (its clock) |

use metrics::{counter, describe_counter, describe_gauge, gauge};

/// Ticks by what became of them.
pub const CRON_TICKS: &str = "celeriac_cron_ticks_total";
/// Lateness of the last tick enqueued.
pub const CRON_LAG: &str = "celeriac_cron_lag_seconds";

/// Describe the scheduler's metrics to the installed recorder.
pub fn describe() {
    describe_counter!(
        CRON_TICKS,
        "Ticks of each schedule, by what became of them."
    );
    describe_gauge!(
        CRON_LAG,
        metrics::Unit::Seconds,
        "How late the last tick this replica enqueued was."
    );
}

pub(crate) fn tick(schedule: &str, result: &'static str, n: u64) {
    if n > 0 {
        counter!(CRON_TICKS, "schedule" => schedule.to_string(), "result" => result).increment(n);
    }
}

pub(crate) fn lag(schedule: &str, tick_ms: u64) {
    let late = celeriac_core::time::now_ms().saturating_sub(tick_ms) as f64 / 1000.0;
    gauge!(CRON_LAG, "schedule" => schedule.to_string()).set(late);
}
