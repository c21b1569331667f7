//! The kinds every worker runs, whatever domains it serves. [`register_all`] adds them to a
//! registry.
//!
//! Built-in kinds (for smoke tests, benchmarks and operators' drills):
//! - `noop`: succeeds at once.
//! - `sleep` `{"ms": N}`: waits N milliseconds, then succeeds; with `"steps": K` it waits in K
//!   equal steps and reports `{"done": i, "total": K}` as its progress after each.
//! - `fail` `{"times": N, "message": S}`: fails its first N attempts with message S, then
//!   succeeds; without `times` it always fails.
//!
//! Domains register their kinds from the program that assembles them (`celeriac`'s
//! `domains.rs`). Drill kinds (`drill.record`, `drill.abort`) exist for fault-injection runs
//! only ([`register_drills`]).

mod builtin;
mod drill;

use crate::registry::Registry;

/// The built-in kinds' names.
pub const KINDS: &[&str] = &["fail", "noop", "sleep"];

/// A registry with every built-in kind.
pub fn register_all(registry: &mut Registry) -> &mut Registry {
    builtin::register(registry)
}

pub use drill::register as register_drills;
