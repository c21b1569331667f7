//! Celeriac's periodic scheduler.
//!
//! Every scheduler replica computes the same ticks for every schedule and offers each tick to
//! Redis; a script compares it with the schedule's last enqueued tick and enqueues it only if it
//! is newer, in the same atomic step. So each (schedule, tick) is enqueued exactly once however
//! many replicas run, with no leader, and a replica dying mid-tick leaves nothing half done.
//!
//! - [`config`]: the `[cron]` section, `[[cron.schedules]]`.
//! - [`metrics`]: ticks enqueued, done by another replica or skipped, and lag.
//! - [`schedule`]: parsing and validating schedules, next and previous ticks in the
//!   schedule's time zone (DST rules documented there).
//! - [`scheduler`]: the loop that offers ticks to Redis, with catch-up after downtime.

pub mod config;
pub mod metrics;
pub mod schedule;
pub mod scheduler;

pub use config::{CatchUp, CronConfig, ScheduleConfig};
pub use schedule::{Schedule, ScheduleError};
pub use scheduler::{run, run_with_probe};
