//! The Lua scripts behind every multi-key state change. Each file in `scripts/` opens with a
//! header giving its KEYS, ARGV and reply; `lib.lua` (shared helpers) is prepended to each.
//!
//! Scripts are sent with EVALSHA and loaded on a NOSCRIPT reply, so a `SCRIPT FLUSH` or a
//! restarted Redis costs one extra round trip, never an error.

use redis::Script;
use std::sync::LazyLock;

macro_rules! script {
    ($name:ident, $file:literal) => {
        #[doc = concat!("`scripts/", $file, "`.")]
        pub static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("../scripts/lib.lua"),
                include_str!(concat!("../scripts/", $file))
            ))
        });
    };
}

script!(ENQUEUE, "enqueue.lua");
script!(FETCH, "fetch.lua");
script!(ACK, "ack.lua");
script!(EXTEND, "extend.lua");
script!(RECOVER, "recover.lua");
script!(PROMOTE, "promote.lua");
script!(JANITOR, "janitor.lua");
script!(CANCEL, "cancel.lua");
script!(RETRY, "retry.lua");
script!(PURGE, "purge.lua");
script!(CRON_ENQUEUE, "cron_enqueue.lua");
