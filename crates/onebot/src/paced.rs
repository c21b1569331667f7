//! [`PacedClient`]: any [`OneBot`] with the account's shared pacing and circuit breaker in
//! front. Each call goes: reserve a slot (or fail fast if the breaker is open) → wait for the
//! slot → check the breaker again if the wait was long enough for it to trip → call → on a
//! risk-control answer, open the breaker for everyone.

use crate::api::{Action, OneBot};
use crate::error::{Error, Result};
use crate::pacing::{Pacer, Reservation, SlotKind};
use futures_util::future::BoxFuture;
use redis::aio::ConnectionLike;
use serde_json::Value;

/// A [`OneBot`] paced and guarded per bot account through Redis; itself a [`OneBot`].
///
/// Every action — reads included — takes a slot: the account's rate is a budget for
/// everything the bot does. [`Error::CircuitOpen`] means nothing was sent; domains turn it
/// into a snooze (`Error::retry_after` says for how long), not a failed attempt.
#[derive(Clone, Debug)]
pub struct PacedClient<B, C> {
    inner: B,
    pacer: Pacer<C>,
    account: i64,
}

impl<B: OneBot, C: ConnectionLike + Clone + Send + Sync> PacedClient<B, C> {
    /// Pace `inner`'s actions as bot account `account` (its `self_id`).
    pub fn new(inner: B, pacer: Pacer<C>, account: i64) -> Self {
        PacedClient {
            inner,
            pacer,
            account,
        }
    }

    /// Ask `inner` which account it is (`get_login_info`, not paced: the implementation answers
    /// it locally) and pace as that account.
    pub async fn discover(inner: B, pacer: Pacer<C>) -> Result<Self> {
        let account = inner.get_login_info().await?.user_id;
        Ok(Self::new(inner, pacer, account))
    }

    /// The bot account whose budget this client spends.
    pub fn account(&self) -> i64 {
        self.account
    }

    /// The pacer (to read or close the breaker).
    pub fn pacer(&self) -> &Pacer<C> {
        &self.pacer
    }

    /// The unpaced client inside.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    async fn paced(&self, action: Action, params: Value) -> Result<Value> {
        let kind = if action.is_kick() {
            SlotKind::Kick
        } else {
            SlotKind::Action
        };
        match self.pacer.reserve(self.account, kind).await? {
            Reservation::Open(open) => return Err(open.error(self.account)),
            Reservation::Wait(wait) if !wait.is_zero() => {
                tokio::time::sleep(wait).await;
                // The breaker may have opened while we waited for our slot.
                if let Some(open) = self.pacer.breaker(self.account).await? {
                    return Err(open.error(self.account));
                }
            }
            Reservation::Wait(_) => {}
        }
        let result = self.inner.call(action, params).await;
        if let Err(e @ Error::RiskControl { .. }) = &result {
            match self.pacer.trip(self.account).await {
                Ok(open) => tracing::warn!(
                    account = self.account,
                    action = action.as_str(),
                    error = %e,
                    paused_for = %humantime::format_duration(open.remaining),
                    "OneBot risk control: every action of this account is paused"
                ),
                Err(trip) => tracing::error!(
                    account = self.account,
                    action = action.as_str(),
                    error = %e,
                    trip_error = %trip,
                    "OneBot risk control, and the breaker could not be opened"
                ),
            }
        }
        result
    }
}

impl<B: OneBot, C: ConnectionLike + Clone + Send + Sync> OneBot for PacedClient<B, C> {
    fn call(&self, action: Action, params: Value) -> BoxFuture<'_, Result<Value>> {
        Box::pin(self.paced(action, params))
    }
}
