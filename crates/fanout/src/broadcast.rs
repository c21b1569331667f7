//! `fanout.broadcast`: store the message once, create one delivery per distinct recipient and
//! enqueue one `fanout.deliver` job each as a batch (ADR 0010) whose completion job is
//! `fanout.complete`. Everything is keyed by the broadcast id, so a broadcast that runs again
//! (a retry, a crash, the same `broadcast_id` enqueued twice) enqueues nothing new.

use crate::deliver::Deliver;
use crate::error::{Error, Result};
use crate::model::Recipient;
use crate::store::{validate_topic, NewDelivery};
use crate::Context;
use celeriac_producer::NewJob;
use celeriac_worker::{Job, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;

/// Longest message (bytes).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The payload of `fanout.broadcast`: a topic's active subscribers, or a list of recipients.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastJob {
    /// Every active subscriber of this topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Or these recipients (duplicates are delivered once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<Recipient>>,
    /// The message.
    pub message: String,
    /// The broadcast's id [default: the job's id]. The same id again enqueues nothing new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast_id: Option<String>,
}

impl celeriac_core::JobKind for BroadcastJob {
    const KIND: &'static str = crate::BROADCAST_KIND;
}

/// The payload of `fanout.complete`, the batch's completion job.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Complete {
    /// The broadcast.
    pub broadcast: String,
}

impl celeriac_core::JobKind for Complete {
    const KIND: &'static str = crate::COMPLETE_KIND;
}

/// Run a broadcast.
pub async fn broadcast(c: &Context, payload: BroadcastJob, job: Job) -> Outcome {
    match run(c, payload, &job).await {
        Ok(v) => Outcome::Done(Some(v)),
        Err(e) => e.into(),
    }
}

/// The deliveries of a broadcast to a list of recipients: one per distinct recipient.
fn deliveries(p: &BroadcastJob) -> Result<Vec<NewDelivery>> {
    match (&p.topic, &p.recipients) {
        (None, Some(list)) => {
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for r in list {
                r.validate().map_err(Error::Invalid)?;
                if r.channel == crate::model::Channel::Webhook && r.secret.is_none() {
                    return Err(Error::Invalid(format!(
                        "recipient {} has no secret: a webhook recipient needs one (whsec_…)",
                        r.label()
                    )));
                }
                if seen.insert((r.channel, r.target.clone())) {
                    out.push(NewDelivery {
                        key: format!("r{}", out.len()),
                        subscriber_id: None,
                        recipient: r.clone(),
                    });
                }
            }
            Ok(out)
        }
        _ => Err(Error::Invalid(
            "a broadcast names either a topic or recipients, not both nor neither".into(),
        )),
    }
}

async fn run(c: &Context, p: BroadcastJob, job: &Job) -> Result<serde_json::Value> {
    if p.message.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Invalid(format!(
            "the message is {} bytes; at most {MAX_MESSAGE_BYTES}",
            p.message.len()
        )));
    }
    let id = p.broadcast_id.clone().unwrap_or_else(|| job.id.clone());
    celeriac_core::keys::validate_id(&id)
        .map_err(|e| Error::Invalid(format!("broadcast_id: {e}")))?;
    let store = c.store().await?;
    // The first run stores the broadcast with its deliveries; a later one (a retry, the same
    // broadcast_id again) finds them and adds nothing.
    let created = match (&p.topic, &p.recipients) {
        (Some(topic), None) => {
            // One INSERT … SELECT of the topic's active subscribers: they are not read out.
            validate_topic(topic)?;
            if !store.topic_exists(topic).await? {
                return Err(Error::NoTopic(topic.clone()));
            }
            store
                .create_topic_broadcast(&id, topic, &job.queue, &p.message)
                .await?
                .is_some()
        }
        _ => {
            let wanted = deliveries(&p)?;
            store
                .create_broadcast(&id, None, &job.queue, &p.message, &wanted)
                .await?
        }
    };
    let stored = store
        .broadcast(&id)
        .await?
        .ok_or_else(|| Error::NoBroadcast(id.clone()))?;
    let keys = store.delivery_keys(&id).await?;
    let batch = c
        .producer
        .batch(id.clone(), stored.queue.clone())
        // A broadcast_id of its own: `celeriac status JOB` still finds the batch.
        .parent(job.queue.clone(), job.id.clone())
        .on_complete(
            NewJob::new(
                crate::COMPLETE_KIND,
                json!(Complete {
                    broadcast: id.clone()
                }),
            )
            .id(format!("{id}:complete")),
        );
    // No max_attempts of their own: the kind's policy (its schedule) decides, as configured
    // when each attempt runs.
    let children: Vec<NewJob> = keys
        .into_iter()
        .map(|key| {
            let d = Deliver {
                broadcast: id.clone(),
                recipient: key,
            };
            NewJob::new(crate::DELIVER_KIND, json!(d)).id(d.job_id())
        })
        .collect();
    let total = children.len();
    let mut added = 0;
    // A batch is sealed only once every child was added: a run that finds it sealed (a
    // repeat after success) has nothing to add.
    let sealed = batch.counts().await?.is_some_and(|c| c.sealed);
    let to_add = if sealed { &[][..] } else { &children[..] };
    // Chunks of 1,000 are atomic each (ADR 0010); progress after each.
    for (i, chunk) in to_add
        .chunks(celeriac_core::broker::ENQUEUE_CHUNK)
        .enumerate()
    {
        added += batch.add(chunk.to_vec()).await?.added;
        job.progress.set(&json!({"enqueued": (i * celeriac_core::broker::ENQUEUE_CHUNK + chunk.len()), "total": total}));
    }
    let counts = batch.seal().await?;
    Ok(json!({
        "broadcast": id,
        "created": created,
        "total": total,
        "enqueued": added,
        "completed": counts.completed_at_ms.is_some(),
    }))
}

/// Run the completion of a broadcast: deliveries still pending (their job ended without
/// recording its last attempt) are failed, and the broadcast is marked completed, once.
pub async fn complete(c: &Context, p: Complete) -> Outcome {
    let r = async {
        let store = c.store().await?;
        let failed = store
            .fail_pending(
                &p.broadcast,
                "its job ended without recording a result (see celeriac status BROADCAST:KEY)",
            )
            .await?;
        let now = store.complete(&p.broadcast).await?;
        let results = store.results(&p.broadcast).await?;
        Ok::<_, Error>(json!({
            "broadcast": p.broadcast,
            "completed_now": now,
            "failed_at_completion": failed,
            "delivered": results.delivered,
            "failed": results.failed,
            "skipped": results.skipped,
        }))
    }
    .await;
    match r {
        Ok(v) => Outcome::Done(Some(v)),
        Err(e) => e.into(),
    }
}
