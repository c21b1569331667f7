//! The Redis keys of this crate, built here and nowhere else. `P` is the project's configured
//! prefix (default `celeriac`). All keys of one bot account share the hash tag
//! `{onebot:ACCOUNT}`, so each script touches one Redis Cluster slot.
//!
//! | key                        | type   | holds                                                  |
//! |----------------------------|--------|--------------------------------------------------------|
//! | `P:{onebot:A}:pace`        | zset   | reserved action slots of account A (µs, Redis clock)   |
//! | `P:{onebot:A}:kick`        | string | earliest time of A's next kick (µs, Redis clock)       |
//! | `P:{onebot:A}:breaker`     | string | open-until (ms, Redis clock); exists only while open   |
//! | `P:onebot:events`          | hash   | events received, by what became of them (`counts`)     |
//!
//! Every account key expires on its own (PX): past slots are trimmed and the sets expire once
//! the last reserved slot has passed; the breaker key's TTL *is* the open period. The events
//! hash holds at most one field per outcome (seven), so it needs no expiry.

/// The keys of one bot account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountKeys {
    /// Reserved action slots.
    pub pace: String,
    /// Next kick time.
    pub kick: String,
    /// The breaker.
    pub breaker: String,
}

impl AccountKeys {
    /// The keys of `account` under `prefix` (no trailing colon).
    pub fn new(prefix: &str, account: i64) -> Self {
        let base = format!("{prefix}:{{onebot:{account}}}:");
        AccountKeys {
            pace: format!("{base}pace"),
            kick: format!("{base}kick"),
            breaker: format!("{base}breaker"),
        }
    }
}

/// The hash of event counters under `prefix`.
pub fn events_key(prefix: &str) -> String {
    format!("{prefix}:onebot:events")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hash_tag_per_account() {
        let k = AccountKeys::new("celeriac", 10001);
        assert_eq!(k.pace, "celeriac:{onebot:10001}:pace");
        for key in [&k.pace, &k.kick, &k.breaker] {
            assert!(key.starts_with("celeriac:{onebot:10001}:"), "{key}");
        }
    }
}
