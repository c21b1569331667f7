//! `fanout.deliver`: one attempt to one recipient of a broadcast per run of the job.
//!
//! The delivery row decides: a delivery no longer pending (delivered, failed, skipped — a
//! redelivery of a job whose attempt was recorded) is not sent again; a subscriber
//! unsubscribed or disabled since the broadcast started ends `skipped`. Otherwise the
//! channel is tried once and the attempt recorded: delivered; failed with the next attempt on
//! the kind's schedule (`[kinds."fanout.deliver"]`, or later if the receiver said
//! `Retry-After`); or
//! failed for good (the last attempt, 410 Gone, an address the guard refuses).

use crate::channel::{self, Sent};
use crate::error::{Error, Result};
use crate::model::{Channel, DeliveryState, SubscriberStatus};
use crate::recorder::Attempt;
use crate::sign::Secret;
use crate::store::{AttemptRecord, Broadcast, Delivery, Store};
use crate::Context;
use celeriac_worker::{Job, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The payload of `fanout.deliver`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deliver {
    /// The broadcast.
    pub broadcast: String,
    /// The delivery's key within it.
    pub recipient: String,
}

impl celeriac_core::JobKind for Deliver {
    const KIND: &'static str = crate::DELIVER_KIND;
}

impl Deliver {
    /// The id of its job: `BROADCAST:KEY`, also the webhook's `webhook-id`, the same on every
    /// attempt.
    pub fn job_id(&self) -> String {
        format!("{}:{}", self.broadcast, self.recipient)
    }
}

/// The webhook body of a broadcast (the same on every attempt).
pub fn webhook_body(b: &Broadcast) -> Vec<u8> {
    json!({
        "type": "fanout.message",
        "timestamp": celeriac_core::time::rfc3339_ms(b.created_at.max(0) as u64),
        "data": {"broadcast": b.id, "topic": b.topic, "message": b.message},
    })
    .to_string()
    .into_bytes()
}

/// Run one attempt.
pub async fn deliver(c: &Context, payload: Deliver, job: Job) -> Outcome {
    match attempt(c, &payload, &job).await {
        Ok(outcome) => outcome,
        Err(e) => e.into(),
    }
}

async fn attempt(c: &Context, p: &Deliver, job: &Job) -> Result<Outcome> {
    let store = c.store().await?;
    // The delivery and its subscriber's status now, in one read: a subscriber unsubscribed
    // or disabled since the broadcast started is seen here, on every attempt.
    // Read with the other deliveries starting at once (one query for them all).
    let found = c
        .reader()
        .await?
        .read(&p.broadcast, &p.recipient)
        .await?
        .ok_or_else(|| Error::NoBroadcast(format!("{} (delivery {})", p.broadcast, p.recipient)))?;
    let d = found.delivery;
    if d.state != DeliveryState::Pending {
        return Ok(Outcome::Done(Some(
            json!({"state": d.state, "already": true}),
        )));
    }
    let mut failures = 0;
    if let Some(sid) = d.subscriber_id {
        failures = found.subscriber.map_or(0, |(_, f)| f);
        let status = found.subscriber.map(|(s, _)| s);
        if status != Some(SubscriberStatus::Active) {
            let why = match status {
                Some(s) => format!("subscriber {sid} is {s}"),
                None => format!("subscriber {sid} no longer exists"),
            };
            store
                .end_delivery(&p.broadcast, &p.recipient, DeliveryState::Skipped, &why)
                .await?;
            return Ok(Outcome::Done(Some(json!({"state": "skipped", "why": why}))));
        }
    }
    let broadcast = c.broadcast(&store, &p.broadcast).await?;
    let sent = match d.channel {
        Channel::Webhook => {
            // Parsed once for the throttle, the guard and the request.
            let url = match channel::webhook::parse(&d.target) {
                Ok(u) => u,
                Err(refused) => return record(c, &store, p, &d, failures, job, refused).await,
            };
            let host = url.host_str().unwrap_or_default().to_string();
            if let Some(wait) = c.throttled_for(&host) {
                // The host asked everyone to slow down: wait without spending an attempt.
                return Ok(Outcome::Snooze(wait));
            }
            let secret = Secret::parse(d.secret.as_deref().unwrap_or_default()).map_err(|e| {
                Error::Corrupt(format!("the secret of delivery {}: {e}", p.job_id()))
            })?;
            let (client, guard) = c.http()?;
            let id = p.job_id();
            let sent = channel::webhook::send_to(
                &client,
                &guard,
                &c.host_pacer,
                &c.config,
                url,
                channel::webhook::Signed {
                    id: &id,
                    secret: &secret,
                },
                &broadcast.body,
            )
            .await;
            if let Sent::Failed {
                throttled: true,
                retry_after,
                ..
            } = &sent
            {
                c.throttle(&host, retry_after.unwrap_or(Duration::from_secs(1)));
            }
            sent
        }
        Channel::OnebotUser | Channel::OnebotGroup => {
            let target: i64 = d
                .target
                .parse()
                .map_err(|_| Error::Corrupt(format!("{:?} is not a QQ number", d.target)))?;
            let bot = c.bot().await?;
            let pause = c.onebot.breaker_open_for;
            match channel::onebot::send(
                &bot,
                d.channel,
                target,
                &broadcast.broadcast.message,
                pause,
            )
            .await
            {
                Ok(sent) => sent,
                Err(wait) => return Err(Error::Paused(wait)),
            }
        }
    };
    record(c, &store, p, &d, failures, job, sent).await
}

/// Record one attempt of `p`'s delivery, in `state`, through the worker's grouped writer.
async fn write(
    c: &Context,
    p: &Deliver,
    state: DeliveryState,
    status: Option<i64>,
    error: Option<String>,
    response: Option<String>,
) -> Result<()> {
    let record = AttemptRecord {
        status,
        error,
        response,
    };
    c.recorder()
        .await?
        .record(Attempt {
            broadcast: p.broadcast.clone(),
            key: p.recipient.clone(),
            state,
            record,
        })
        .await?;
    Ok(())
}

/// Record the attempt and decide what the job does next.
/// `failures`: the subscriber's consecutive failures before this attempt.
async fn record(
    c: &Context,
    store: &Store,
    p: &Deliver,
    d: &Delivery,
    failures: i64,
    job: &Job,
    sent: Sent,
) -> Result<Outcome> {
    let last = job.attempt >= job.max_attempts;
    match sent {
        Sent::Delivered { status, response } => {
            write(
                c,
                p,
                DeliveryState::Delivered,
                status.map(i64::from),
                None,
                response,
            )
            .await?;
            match d.subscriber_id {
                Some(sid) if failures > 0 => store.subscriber_succeeded(sid).await?,
                _ => {}
            }
            Ok(Outcome::Done(Some(
                json!({"state": "delivered", "status": status}),
            )))
        }
        Sent::Failed {
            status,
            error,
            response,
            retry_after,
            ..
        } => {
            let state = if last {
                DeliveryState::Failed
            } else {
                DeliveryState::Pending
            };
            write(
                c,
                p,
                state,
                status.map(i64::from),
                Some(error.clone()),
                response,
            )
            .await?;
            if let Some(sid) = d.subscriber_id {
                store.subscriber_failed(sid, &error).await?;
            }
            // The worker retries on the kind's schedule, or after Retry-After if longer.
            Err(Error::Attempt {
                error,
                at_least: retry_after,
            })
        }
        Sent::Gone {
            status,
            error,
            response,
        } => {
            write(
                c,
                p,
                DeliveryState::Failed,
                status.map(i64::from),
                Some(error.clone()),
                response,
            )
            .await?;
            if let Some(sid) = d.subscriber_id {
                store.disable(sid, &error).await?;
            }
            Err(Error::Gone(error))
        }
        Sent::Refused { error } => {
            write(c, p, DeliveryState::Failed, None, Some(error.clone()), None).await?;
            if let Some(sid) = d.subscriber_id {
                store.subscriber_failed(sid, &error).await?;
            }
            Err(Error::Refused(error))
        }
    }
}

/// Broadcasts met by this worker (their message never changes), at most [`CACHED`].
#[derive(Debug, Default)]
pub struct Broadcasts(std::sync::Mutex<std::collections::HashMap<String, Arc<Known>>>);

/// A broadcast met by this worker, with its webhook body built once.
#[derive(Debug)]
struct Known {
    broadcast: Broadcast,
    /// [`webhook_body`]: the same for every recipient and every attempt.
    body: Vec<u8>,
}

/// Broadcasts kept in [`Broadcasts`].
const CACHED: usize = 1024;

/// Hosts that asked to slow down, until when (per worker process).
#[derive(Debug, Default)]
pub struct Throttled(std::sync::Mutex<std::collections::HashMap<String, Instant>>);

impl Context {
    /// Broadcast `id`, read once per worker.
    async fn broadcast(&self, store: &Store, id: &str) -> Result<Arc<Known>> {
        if let Some(b) = self
            .broadcasts
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return Ok(b.clone());
        }
        let broadcast = store
            .broadcast(id)
            .await?
            .ok_or_else(|| Error::NoBroadcast(id.to_string()))?;
        let b = Arc::new(Known {
            body: webhook_body(&broadcast),
            broadcast,
        });
        let mut m = self.broadcasts.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= CACHED {
            m.clear();
        }
        m.insert(id.to_string(), b.clone());
        Ok(b)
    }

    /// How long deliveries to `host` still wait, if it throttled us.
    pub fn throttled_for(&self, host: &str) -> Option<Duration> {
        let mut m = self.throttled.0.lock().unwrap_or_else(|e| e.into_inner());
        let until = *m.get(host)?;
        let now = Instant::now();
        if until <= now {
            m.remove(host);
            return None;
        }
        Some(until - now)
    }

    /// `host` asked to wait `wait` (capped by `[fanout] retry_after_cap`).
    pub fn throttle(&self, host: &str, wait: Duration) {
        let until = Instant::now() + wait.min(self.config.retry_after_cap);
        let mut m = self.throttled.0.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(host.to_string()).or_insert(until);
        *e = (*e).max(until);
    }
}
