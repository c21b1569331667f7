//! The handlers that ship with Celeriac. [`register_all`] adds every one to a registry.
//!
//! Built-in kinds (for smoke tests, benchmarks and operators' drills):
//! - `noop`: succeeds at once.
//! - `sleep` `{"ms": N}`: waits N milliseconds, then succeeds.
//! - `fail` `{"times": N, "message": S}`: fails its first N attempts with message S, then
//!   succeeds; without `times` it always fails.
//!
//! Domain kinds, registered with their context:
//! - `links.check` ([`links`]): friend-link checks against the domain database.

mod builtin;
mod drill;
pub mod links;

use crate::handler::Registry;

/// Every kind a `celeriac worker` runs: the built-in kinds and the domain kinds registered with
/// their context (what `celeriac cron` accepts in a schedule).
pub fn shipped_kinds() -> Vec<String> {
    let mut registry = Registry::new();
    register_all(&mut registry);
    let mut kinds = registry.kinds();
    kinds.push(links::KIND.to_string());
    kinds.sort();
    kinds
}

/// A registry with every shipped handler.
pub fn register_all(registry: &mut Registry) -> &mut Registry {
    builtin::register(registry)
}

pub use drill::register as register_drills;
