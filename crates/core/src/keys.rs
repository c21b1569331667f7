//! The Redis key schema: every key Celeriac uses is built here, and nowhere else.
//!
//! All keys of one queue share the hash tag `{queue}`, so every multi-key script touches a single
//! Redis Cluster slot. `P` is the configured prefix (default `celeriac`).
//!
//! | key                         | type   | holds                                              |
//! |-----------------------------|--------|----------------------------------------------------|
//! | `P:queues`                  | set    | names of known queues                              |
//! | `P:workers`                 | zset   | worker id → last heartbeat (ms)                    |
//! | `P:worker:ID`               | hash   | one worker's description, expires when it dies     |
//! | `P:epoch`                   | string | id of this Redis dataset, set by the first worker  |
//! | `P:data_loss`               | string | JSON: when a worker saw the dataset replaced       |
//! | `P:{Q}:job:ID`              | hash   | one job: `msg` (envelope) and its mutable record   |
//! | `P:{Q}:pending`             | list   | ids ready to run (LPUSH in, RPOP out: FIFO)         |
//! | `P:{Q}:wake`                | list   | a token that wakes idle fetchers                    |
//! | `P:{Q}:active`              | zset   | leased ids → lease deadline (ms, Redis clock)      |
//! | `P:{Q}:scheduled`           | zset   | delayed or snoozed ids → run-at (ms)               |
//! | `P:{Q}:retry`               | zset   | failed ids waiting for their backoff → retry-at    |
//! | `P:{Q}:succeeded`           | zset   | finished ids → finish time (retention index)       |
//! | `P:{Q}:dead`                | zset   | dead ids → death time (retention index)            |
//! | `P:{Q}:cancelled`           | zset   | cancelled ids → cancel time (retention index)      |
//! | `P:{Q}:idem:KEY`            | string | idempotency key → job id (expires)                 |
//! | `P:{Q}:stats`               | hash   | counters since the queue existed                   |
//! | `P:{Q}:strays`              | hash   | records outside their state's index → what was found |
//! | `P:{Q}:tokens`              | string | fencing-token sequence of the queue                |
//! | `P:{Q}:stats:SLOT`          | hash   | counters of one 10-second slot (expire)            |
//! | `P:{Q}:cron:NAME`           | hash   | a schedule's last enqueued tick and job id         |
//! | `P:{Q}:cronhist:NAME`       | list   | a schedule's last 100 ticks, `TICK_MS JOB_ID`      |
//! | `P:{Q}:batch:ID`            | hash   | a batch of the queue's jobs: total, counts, state  |

use crate::error::{Error, Result};

/// Longest queue name accepted.
pub const MAX_QUEUE_NAME_LEN: usize = 128;
/// Longest job id accepted.
pub const MAX_ID_LEN: usize = 200;
/// Longest job kind accepted.
pub const MAX_KIND_LEN: usize = 200;

/// Builds key names for one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (no trailing colon).
    pub fn new(prefix: impl Into<String>) -> Self {
        Keys {
            prefix: prefix.into(),
        }
    }

    /// The configured prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Set of known queue names.
    pub fn queues(&self) -> String {
        format!("{}:queues", self.prefix)
    }

    /// Sorted set of live workers by last heartbeat.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// Id of the current Redis dataset: it disappears when Redis loses its data.
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    /// The last detected loss of the Redis dataset (JSON).
    pub fn data_loss(&self) -> String {
        format!("{}:data_loss", self.prefix)
    }

    /// String: the owner of a named lock (expires unless renewed), e.g. `lock:links.check`.
    pub fn lock(&self, name: &str) -> String {
        format!("{}:lock:{name}", self.prefix)
    }

    /// One worker's description.
    pub fn worker(&self, id: &str) -> String {
        format!("{}:worker:{id}", self.prefix)
    }

    /// Common prefix of a queue's keys, `P:{Q}:`; scripts build job keys from it.
    pub fn queue_base(&self, queue: &str) -> String {
        self.queue_key(queue, "")
    }

    /// One job's record.
    pub fn job(&self, queue: &str, id: &str) -> String {
        format!("{}job:{id}", self.queue_base(queue))
    }

    /// One job's record, for an id given as bytes (an id read back from Redis need not be
    /// UTF-8).
    pub fn job_bytes(&self, queue: &str, id: &[u8]) -> Vec<u8> {
        let mut key = format!("{}job:", self.queue_base(queue)).into_bytes();
        key.extend_from_slice(id);
        key
    }

    /// A batch whose children are jobs of `queue` (ADR 0010).
    pub fn batch(&self, queue: &str, id: &str) -> String {
        format!("{}batch:{id}", self.queue_base(queue))
    }

    /// Ready ids.
    pub fn pending(&self, queue: &str) -> String {
        self.queue_key(queue, "pending")
    }

    /// Wake-up token list for idle fetchers.
    pub fn wake(&self, queue: &str) -> String {
        self.queue_key(queue, "wake")
    }

    /// Leased ids by deadline.
    pub fn active(&self, queue: &str) -> String {
        self.queue_key(queue, "active")
    }

    /// Delayed ids by run-at.
    pub fn scheduled(&self, queue: &str) -> String {
        self.queue_key(queue, "scheduled")
    }

    /// Failed ids by retry-at.
    pub fn retry(&self, queue: &str) -> String {
        self.queue_key(queue, "retry")
    }

    /// Succeeded ids by finish time.
    pub fn succeeded(&self, queue: &str) -> String {
        self.queue_key(queue, "succeeded")
    }

    /// Dead ids by death time.
    pub fn dead(&self, queue: &str) -> String {
        self.queue_key(queue, "dead")
    }

    /// Cancelled ids by cancel time.
    pub fn cancelled(&self, queue: &str) -> String {
        self.queue_key(queue, "cancelled")
    }

    /// Fencing-token sequence of a queue.
    pub fn tokens(&self, queue: &str) -> String {
        self.queue_key(queue, "tokens")
    }

    /// Strays of a queue: job id → what was found (JSON), until `jobs strays --repair`.
    pub fn strays(&self, queue: &str) -> String {
        self.queue_key(queue, "strays")
    }

    /// Lifetime counters of a queue.
    pub fn stats(&self, queue: &str) -> String {
        self.queue_key(queue, "stats")
    }

    /// Counters of one 10-second slot (`slot` = Unix seconds / 10).
    pub fn stats_slot(&self, queue: &str, slot: u64) -> String {
        format!("{}stats:{slot}", self.queue_base(queue))
    }

    /// A schedule's state (last tick), in the queue its jobs go to.
    pub fn cron(&self, queue: &str, schedule: &str) -> String {
        format!("{}cron:{schedule}", self.queue_base(queue))
    }

    /// A schedule's recent ticks.
    pub fn cron_history(&self, queue: &str, schedule: &str) -> String {
        format!("{}cronhist:{schedule}", self.queue_base(queue))
    }

    /// `PREFIX:{QUEUE}:NAME`, built in one allocation (a worker builds a dozen per script call).
    fn queue_key(&self, queue: &str, name: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + queue.len() + name.len() + 4);
        key.push_str(&self.prefix);
        key.push_str(":{");
        key.push_str(queue);
        key.push_str("}:");
        key.push_str(name);
        key
    }
}

/// Check a queue name: it becomes a hash tag, so braces, separators and control characters
/// are refused.
pub fn validate_queue(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_QUEUE_NAME_LEN {
        Some("it is too long")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        Some("it contains a character outside A-Z a-z 0-9 _ - .")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidQueue {
            name: truncate(name),
            reason,
        }),
        None => Ok(()),
    }
}

/// Check a job kind.
pub fn validate_kind(kind: &str) -> Result<()> {
    let reason = if kind.is_empty() {
        Some("it is empty")
    } else if kind.len() > MAX_KIND_LEN {
        Some("it is longer than 200 bytes")
    } else if kind.chars().any(char::is_control) {
        Some("it contains control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidKind {
            kind: truncate(kind),
            reason,
        }),
        None => Ok(()),
    }
}

/// Check a caller-supplied job id (it becomes part of a key and a list element).
pub fn validate_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_ID_LEN {
        Some("it is longer than 200 bytes")
    } else if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("it contains whitespace or control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidId {
            id: truncate(id),
            reason,
        }),
        None => Ok(()),
    }
}

/// How bytes read from Redis (a job id, a queue name) are shown: their UTF-8 text as it is,
/// each byte that is not part of valid UTF-8 as `\xNN` (lower-case hex), e.g. `bad\xff`. The
/// same form is accepted back on the command line (see [`unescape_bytes`]) and, in double
/// quotes, by `redis-cli`.
pub fn display_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The bytes `text` stands for when it holds `\xNN` escapes (the form of [`display_bytes`]);
/// `None` when it holds none, or an escape that is not two hex digits.
pub fn unescape_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.contains("\\x") {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hex = std::str::from_utf8(bytes.get(i + 2..i + 4)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn truncate(s: &str) -> String {
    if s.len() <= 64 {
        return s.to_string();
    }
    let mut end = 64;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_share_one_hash_tag() {
        let k = Keys::new("celeriac");
        for key in [
            k.pending("mail"),
            k.active("mail"),
            k.job("mail", "abc"),
            k.dead("mail"),
            k.stats_slot("mail", 7),
        ] {
            assert!(key.starts_with("celeriac:{mail}:"), "{key}");
        }
        assert_eq!(k.queue_base("mail"), "celeriac:{mail}:");
        assert_eq!(k.pending("mail"), "celeriac:{mail}:pending");
        assert_eq!(k.job("mail", "abc"), "celeriac:{mail}:job:abc");
    }

    #[test]
    fn queue_names_that_break_hash_tags_are_refused() {
        for bad in [
            "",
            "a{b",
            "a}b",
            "a:b",
            "a*b",
            "a\nb",
            "a b",
            &"x".repeat(10_000),
        ] {
            assert!(validate_queue(bad).is_err(), "{bad:?}");
        }
        for good in ["default", "mail-high", "reports.daily", "Q_1"] {
            validate_queue(good).unwrap();
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_escaped_and_read_back() {
        let raw = b"job-\xff\xfe-\xc3\xa9";
        let shown = display_bytes(raw);
        assert_eq!(shown, "job-\\xff\\xfe-\u{e9}");
        assert_eq!(unescape_bytes(&shown).as_deref(), Some(&raw[..]));
        assert_eq!(display_bytes(b"plain"), "plain");
        assert_eq!(unescape_bytes("plain"), None);
        assert_eq!(unescape_bytes("bad\\xZZ"), None);
        assert_eq!(
            Keys::new("p").job_bytes("q", b"\xff"),
            b"p:{q}:job:\xff".to_vec()
        );
    }

    #[test]
    fn ids_and_kinds() {
        validate_id("order-42").unwrap();
        assert!(validate_id("a b").is_err());
        assert!(validate_id("").is_err());
        validate_kind("reports.daily").unwrap();
        assert!(validate_kind("").is_err());
        assert!(validate_kind("a\u{0}").is_err());
    }
}
