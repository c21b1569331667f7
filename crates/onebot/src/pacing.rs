//! Pacing and circuit breaking per bot account, shared by every worker process through Redis.
//!
//! - **Pacing**: before each action, [`Pacer::reserve`] takes the account's next free slot with
//!   one script call (`scripts/reserve.lua`): slots are `1 / onebot.rate` apart, kicks also
//!   `onebot.kick_interval` apart. The script answers how long to wait, measured on the Redis
//!   clock, so workers with skewed clocks still agree. A reservation is atomic — never lost,
//!   never counted twice; a caller that crashes (or is cancelled) while waiting just wastes its
//!   slot. With `onebot.pacing = false` nothing is reserved (benchmarks only).
//! - **Breaker**: when an action shows a risk-control signal, [`Pacer::trip`] opens the
//!   account's breaker for `onebot.breaker_open_for` (a key with a PX TTL, `scripts/breaker.lua`).
//!   While it is open, reservations fail fast with [`Error::CircuitOpen`] and nothing reaches
//!   the server. It closes by itself when the key expires.
//!
//! Keys: see [`crate::keys`]. All keys of one call share the account's hash tag, so this works
//! on Redis Cluster unchanged.

use crate::config::OneBotConfig;
use crate::error::{Error, Result};
use crate::keys::AccountKeys;
use redis::aio::ConnectionLike;
use redis::Script;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `scripts/reserve.lua`; refused when Redis is over maxmemory (nothing half-written).
static RESERVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!("#!lua\n", include_str!("../scripts/reserve.lua"))));
/// `scripts/breaker.lua`; allowed when Redis is full, so a risk-control signal always trips.
static BREAKER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "#!lua flags=allow-oom\n",
        include_str!("../scripts/breaker.lua")
    ))
});

/// What kind of slot an action needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    /// Any action: `1 / rate` apart.
    Action,
    /// A kick: `1 / rate` apart from every action, and `kick_interval` apart from other kicks.
    Kick,
}

/// An open breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Open {
    /// When it closes (Redis clock).
    pub until: SystemTime,
    /// How long until then (measured by Redis).
    pub remaining: Duration,
}

impl Open {
    fn from_reply(until_ms: i64, remaining_ms: i64) -> Self {
        Open {
            until: UNIX_EPOCH + Duration::from_millis(until_ms.max(0) as u64),
            remaining: Duration::from_millis(remaining_ms.max(0) as u64),
        }
    }

    /// The error a call gets while the breaker of `account` is open.
    pub fn error(self, account: i64) -> Error {
        Error::CircuitOpen {
            account,
            until: self.until,
            remaining: self.remaining,
        }
    }
}

/// The answer to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// A slot is held: wait this long, then send.
    Wait(Duration),
    /// The breaker is open: do not send.
    Open(Open),
}

/// Paces and guards the actions of bot accounts, through Redis.
///
/// `C` is any async Redis connection that can be cloned and shared — e.g.
/// `celeriac_core::connection::Conn` (single node or cluster) or a `ConnectionManager`.
#[derive(Clone)]
pub struct Pacer<C> {
    conn: C,
    prefix: String,
    interval: Option<Duration>,
    kick_interval: Duration,
    open_for: Duration,
}

impl<C> std::fmt::Debug for Pacer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("prefix", &self.prefix)
            .field("interval", &self.interval)
            .field("kick_interval", &self.kick_interval)
            .field("open_for", &self.open_for)
            .finish()
    }
}

impl<C: ConnectionLike + Clone + Send + Sync> Pacer<C> {
    /// A pacer over `conn`, keys under `prefix` (the project's key prefix), with the rate, kick
    /// interval, breaker period and on/off switch of `config`.
    pub fn new(conn: C, prefix: impl Into<String>, config: &OneBotConfig) -> Self {
        Pacer {
            conn,
            prefix: prefix.into(),
            interval: config.pacing.then(|| config.interval()),
            kick_interval: config.kick_interval,
            open_for: config.breaker_open_for,
        }
    }

    /// Whether pacing is on (`onebot.pacing`).
    pub fn pacing(&self) -> bool {
        self.interval.is_some()
    }

    /// Reserve the next slot of `account` for an action of `kind`, or learn that its breaker is
    /// open. With pacing off only the breaker is checked.
    pub async fn reserve(&self, account: i64, kind: SlotKind) -> Result<Reservation> {
        let Some(interval) = self.interval else {
            return Ok(match self.breaker(account).await? {
                Some(open) => Reservation::Open(open),
                None => Reservation::Wait(Duration::ZERO),
            });
        };
        let keys = AccountKeys::new(&self.prefix, account);
        let reply: Vec<i64> = RESERVE
            .key(&keys.pace)
            .key(&keys.kick)
            .key(&keys.breaker)
            .arg(micros(interval).max(1))
            .arg(micros(self.kick_interval))
            .arg(u8::from(kind == SlotKind::Kick))
            .invoke_async(&mut self.conn.clone())
            .await?;
        match reply.as_slice() {
            [0, wait_us] => Ok(Reservation::Wait(Duration::from_micros(
                (*wait_us).max(0) as u64
            ))),
            [1, until, remaining] => Ok(Reservation::Open(Open::from_reply(*until, *remaining))),
            other => Err(unexpected("reserve", other)),
        }
    }

    /// The breaker of `account`: `Some` while open.
    pub async fn breaker(&self, account: i64) -> Result<Option<Open>> {
        self.breaker_op(account, "check").await
    }

    /// Open the breaker of `account` for `onebot.breaker_open_for` (from now, on the Redis
    /// clock; a breaker already open restarts its period).
    pub async fn trip(&self, account: i64) -> Result<Open> {
        self.breaker_op(account, "trip")
            .await?
            .ok_or_else(|| unexpected("breaker trip", &[]))
    }

    /// Close the breaker of `account` now (an operator who cleared the account's check).
    pub async fn close(&self, account: i64) -> Result<()> {
        self.breaker_op(account, "close").await.map(drop)
    }

    async fn breaker_op(&self, account: i64, op: &str) -> Result<Option<Open>> {
        let keys = AccountKeys::new(&self.prefix, account);
        let reply: Vec<i64> = BREAKER
            .key(&keys.breaker)
            .arg(op)
            .arg(self.open_for.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        match reply.as_slice() {
            [] => Ok(None),
            [until, remaining] => Ok(Some(Open::from_reply(*until, *remaining))),
            other => Err(unexpected("breaker", other)),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn unexpected(script: &str, reply: &[i64]) -> Error {
    Error::Redis(redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply from a OneBot pacing script",
        format!(
            "{script} returned {reply:?}; is another program writing into Celeriac's key prefix?"
        ),
    )))
}
