//! The Lua scripts behind every multi-key state change. Each file in `scripts/` opens with a
//! header giving its KEYS, ARGV and reply; `lib.lua` (shared helpers) is prepended to each.
//!
//! Each script opens with a Redis 7 shebang whose flags say whether it may run when Redis is
//! over `maxmemory`: scripts that create jobs may not (the producer gets a clear error), scripts
//! that move, finish or delete jobs may (a full Redis can always be drained).
//!
//! Scripts are sent with EVALSHA and loaded on a NOSCRIPT reply, so a `SCRIPT FLUSH` or a
//! restarted Redis costs one extra round trip, never an error.

use redis::Script;
use std::sync::LazyLock;

/// Header of scripts that create jobs: refused when Redis is over `maxmemory` (with
/// `noeviction`), so a producer gets a clear error and nothing is half-written.
const CREATES: &str = "#!lua\n";
/// Header of scripts that move or finish existing jobs: allowed when Redis is full, so workers
/// and operators can always drain and repair a full Redis (they change records in place, and
/// completions feed retention, which frees memory).
const DRAINS: &str = "#!lua flags=allow-oom\n";

/// `scripts/lib.lua`: the constants and helpers prepended to every script (for tests that check
/// them against the Rust side, such as the states a record can hold).
pub const LIB: &str = include_str!("../scripts/lib.lua");

macro_rules! script {
    ($name:ident, $file:literal, $header:ident) => {
        #[doc = concat!("`scripts/", $file, "`.")]
        pub static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(&format!(
                "{}{}{}",
                $header,
                LIB,
                include_str!(concat!("../scripts/", $file))
            ))
        });
    };
}

script!(ENQUEUE, "enqueue.lua", CREATES);
script!(CRON_ENQUEUE, "cron_enqueue.lua", CREATES);
script!(BATCH_ADD, "batch_add.lua", CREATES);
script!(BATCH_SEAL, "batch_seal.lua", CREATES);
script!(BATCH_PARENT, "batch_parent.lua", CREATES);
script!(FETCH, "fetch.lua", DRAINS);
script!(ACK, "ack.lua", DRAINS);
script!(EXTEND, "extend.lua", DRAINS);
script!(RECOVER, "recover.lua", DRAINS);
script!(DISOWN, "disown.lua", DRAINS);
script!(PROMOTE, "promote.lua", DRAINS);
script!(JANITOR, "janitor.lua", DRAINS);
script!(CANCEL, "cancel.lua", DRAINS);
script!(RETRY, "retry.lua", DRAINS);
script!(PURGE, "purge.lua", DRAINS);
script!(STRAYS, "strays.lua", DRAINS);
script!(LOCK, "lock.lua", DRAINS);
