//! `verification.scan` and `verification.group`: the periodic sweep.
//!
//! The scan (every 15 minutes by default, `verification-scan`) finds the groups with a pending
//! member whose next step is due, or with actions still open, and enqueues one
//! `verification.group` job per group, with an id made of the group and the scan's id (a
//! retried scan enqueues nothing twice). Groups run in parallel on the workers; one group's
//! failure (OneBot refusing, the bot removed) retries that group alone.
//!
//! A group job holds the group's lock (`verification.group:GROUP`, one run per group at a
//! time, renewed while it runs) and, outside the quiet hours, in one transaction: reminds each
//! due member with reminders left (one group message for all of them), kicks the others (a
//! notice naming them, then one kick each, paced by `onebot.kick_interval`). Then it drains
//! the group's outbox and reports to `admins`.
//!
//! A group job works in slices of `group_slice` (5 minutes): when its drain reaches the end of
//! the slice with actions left, it snoozes for [`NEXT_SLICE`] (not an attempt) and the next
//! run goes on from the outbox. A group of 10,000 due members paced at 2 actions/s thus runs
//! as many short runs, each under the lock's renewal, and a worker that dies mid-way loses
//! only the action in flight (sent again: at least once).

use crate::error::Result;
use crate::event::{group_message, local_time};
use crate::outbox;
use crate::status::Purpose;
use crate::store::{Member, NewAction, Store, WarnOrKick};
use crate::template::TemplateKind;
use crate::{Context, ScanGroup, ScanVerification, VerificationConfig, GROUP_KIND};
use celeriac_onebot::{Action, Message};
use celeriac_producer::{NewJob, Producer};
use celeriac_worker::exclusive::Exclusive;
use celeriac_worker::{Job, Outcome};
use serde::Serialize;
use serde_json::json;
use std::time::Duration;
use tracing::info;

/// Members @-mentioned in one reminder or kick notice: more are split over several messages
/// (a message with hundreds of mentions is refused or flagged by QQ).
pub const MENTIONS_PER_MESSAGE: usize = 30;
/// Lease of a group's lock; renewed every third of it.
pub const GROUP_LOCK_TTL: Duration = Duration::from_secs(15);
/// The pause between two slices of one group's job.
pub const NEXT_SLICE: Duration = Duration::from_secs(1);
/// How long a group job that finds the group's lock taken waits before trying again.
pub const WAIT_FOR_GROUP: Duration = Duration::from_secs(5);

/// The lock of `group`'s runs.
pub fn group_lock(group: i64) -> String {
    format!("verification.group:{group}")
}

/// The id of the group job a scan enqueues.
pub fn group_job_id(group: i64, scan_id: &str) -> String {
    let id = format!("verification.group:{group}:{scan_id}");
    // Ids are at most 200 bytes; a scan id that long is cut (the group keeps ids distinct).
    id.chars().take(200).collect()
}

/// Run one `verification.scan` job.
pub(crate) async fn scan(context: &Context, payload: ScanVerification, job: Job) -> Outcome {
    match enqueue_groups(context, payload, &job).await {
        Ok(groups) => Outcome::Done(Some(json!({ "groups": groups }))),
        Err(e) => e.into(),
    }
}

async fn enqueue_groups(
    context: &Context,
    payload: ScanVerification,
    job: &Job,
) -> Result<Vec<i64>> {
    let groups = match payload.group {
        Some(group) => vec![group],
        None => {
            let store = context.store().await?;
            let now = context.clock.now_ms();
            let mut groups = store.due_groups(now).await?;
            groups.extend(store.groups_with_open_actions().await?);
            groups.sort_unstable();
            groups.dedup();
            let stopped = store.stopped_groups().await?;
            groups.retain(|g| context.config.covers(*g) && !stopped.contains(g));
            let retention = context.config.action_retention.as_millis() as i64;
            let pruned = store.prune_actions(now - retention).await?;
            if pruned > 0 {
                info!(
                    pruned,
                    "finished verification actions past action_retention deleted"
                );
            }
            groups
        }
    };
    let jobs: Vec<NewJob> = groups
        .iter()
        .map(|g| {
            NewJob::new(GROUP_KIND, json!({ "group": g }))
                .queue(job.queue.clone())
                .id(group_job_id(*g, &job.id))
        })
        .collect();
    if !jobs.is_empty() {
        enqueue_many(&context.producer, jobs).await?;
    }
    Ok(groups)
}

/// `Producer::enqueue_many` on a blocking thread of its own. The producer's future is not
/// provably `Send` (a closure in core's chunking has a higher-ranked lifetime the compiler
/// cannot see through), and a handler's future must be; driving it with `block_on` where no
/// `Send` bound applies keeps this handler `Send` until core's future is.
async fn enqueue_many(producer: &Producer, jobs: Vec<NewJob>) -> Result<()> {
    let producer = producer.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(producer.enqueue_many(jobs)))
        .await
        .map_err(|e| {
            crate::Error::Redis(celeriac_core::Error::Protocol(format!(
                "the enqueue task failed: {e}"
            )))
        })??;
    Ok(())
}

/// What a group job did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    /// The group.
    pub group: i64,
    /// Inside the quiet hours: nothing was decided.
    pub quiet: bool,
    /// The group does not run (disabled, or blocked): nothing was decided or sent but
    /// reports and alerts.
    pub stopped: bool,
    /// The group was blocked by this run (the bot is not manageable there).
    pub blocked: bool,
    /// Members reminded.
    pub reminded: Vec<i64>,
    /// Members whose kick was decided (see `kicked_ok`, `unmanageable` and `gone` for what it
    /// found).
    pub kicked: Vec<i64>,
    /// Members OneBot answered the kick of with `ok` (now `kicked`).
    pub kicked_ok: Vec<i64>,
    /// Members the bot may not mute or kick.
    pub unmanageable: Vec<i64>,
    /// Members who had already left.
    pub gone: Vec<i64>,
    /// Actions done.
    pub actions_done: usize,
    /// Actions given up.
    pub actions_failed: usize,
    /// The slice (`group_slice`) ended with actions left: the job continues.
    pub more: bool,
}

/// Run one `verification.group` job.
pub(crate) async fn group(context: &Context, payload: ScanGroup, job: Job) -> Outcome {
    let lock = group_lock(payload.group);
    let held = match Exclusive::try_acquire(&context.broker, &lock, &job, GROUP_LOCK_TTL).await {
        Ok(Some(held)) => held,
        Ok(None) => {
            info!(
                group = payload.group,
                "another run of this group holds its lock; waiting"
            );
            return Outcome::Snooze(WAIT_FOR_GROUP);
        }
        Err(e) => return crate::Error::from(e).into(),
    };
    match held.run(scan_group(context, payload.group)).await {
        // The slice ended with actions left: the same job goes on at once, as a new run (a
        // snooze is not an attempt), taking the lock again.
        Ok(Ok(summary)) if summary.more => {
            info!(
                group = payload.group,
                done = summary.actions_done,
                "slice over; the group's job continues"
            );
            Outcome::Snooze(NEXT_SLICE)
        }
        Ok(Ok(summary)) => Outcome::Done(serde_json::to_value(summary).ok()),
        Ok(Err(e)) => e.into(),
        Err(lost) => crate::Error::from(lost).into(),
    }
}

/// One group's scan, under its lock.
pub async fn scan_group(context: &Context, group: i64) -> Result<GroupSummary> {
    let config = &context.config;
    let store = context.store().await?;
    let mut summary = GroupSummary {
        group,
        ..GroupSummary::default()
    };
    let now = context.clock.now_ms();
    if !store.group_runs(group).await? {
        let d = outbox::drain(context, &store, group, false).await?;
        summary.stopped = true;
        summary.actions_done = d.done;
        summary.actions_failed = d.failed;
        return Ok(summary);
    }
    if config.quiet().is_some_and(|q| q.contains(now, config.tz())) {
        // Answers and joins may still have actions to send.
        let d = outbox::drain(context, &store, group, true).await?;
        summary.quiet = true;
        summary.actions_done = d.done;
        summary.actions_failed = d.failed;
        return Ok(summary);
    }
    decide(context, &store, group, now, &mut summary).await?;
    let deadline = std::time::Instant::now() + config.group_slice;
    let d = outbox::drain_until(context, &store, group, false, Some(deadline)).await?;
    summary.more = d.more;
    summary.unmanageable = d.unmanageable;
    summary.gone = d.gone;
    summary.kicked_ok = d.kicked;
    summary.blocked = d.blocked;
    summary.actions_done = d.done;
    summary.actions_failed = d.failed;
    if report(context, &store, &summary).await? && !summary.more {
        let d = outbox::drain_until(context, &store, group, false, Some(deadline)).await?;
        summary.actions_done += d.done;
        summary.actions_failed += d.failed;
        summary.more = d.more;
    }
    if !summary.reminded.is_empty() || !summary.kicked.is_empty() {
        info!(
            group,
            reminded = summary.reminded.len(),
            kicked = summary.kicked.len(),
            unmanageable = summary.unmanageable.len(),
            "verification scan"
        );
    }
    Ok(summary)
}

/// Remind or kick every due member, in one transaction with the actions.
async fn decide(
    context: &Context,
    store: &Store,
    group: i64,
    now: i64,
    summary: &mut GroupSummary,
) -> Result<()> {
    let config = &context.config;
    let every = config.remind_every.as_millis() as i64;
    let mut tx = store.begin().await?;
    let mut warned: Vec<Member> = Vec::new();
    let mut kicked: Vec<Member> = Vec::new();
    for m in store.due_members(&mut tx, group, now).await? {
        match store.warn_or_kick(&mut tx, &m, every, now).await? {
            Some(WarnOrKick::Warned(m)) => warned.push(m),
            Some(WarnOrKick::Kicked(m)) => kicked.push(m),
            None => {}
        }
    }
    let actions = scan_actions(&context.config, group, &warned, &kicked);
    store.insert_actions(&mut tx, &actions, now).await?;
    tx.commit().await?;
    summary.reminded = warned.iter().map(|m| m.user_id).collect();
    summary.kicked = kicked.iter().map(|m| m.user_id).collect();
    Ok(())
}

/// The actions of one scan step: the reminders of `warned` (as they are after the reminder),
/// one message per [`MENTIONS_PER_MESSAGE`] members, then the kick notices naming `kicked`
/// (chunked the same way), their kicks and the recall of their prompts.
fn scan_actions(
    config: &VerificationConfig,
    group: i64,
    warned: &[Member],
    kicked: &[Member],
) -> Vec<NewAction> {
    let every = config.remind_every.as_millis() as i64;
    let mut actions = Vec::new();
    let template = config.template(TemplateKind::Remind);
    for chunk in warned.chunks(MENTIONS_PER_MESSAGE) {
        let mut message = Message::new();
        for (i, m) in chunk.iter().enumerate() {
            if i > 0 {
                message = message.push_text("\n");
            }
            // The kick comes one interval after the last reminder.
            let deadline = local_time(config, m.next_warning_at + every * m.warnings_left);
            message = template.render_into(
                message,
                &[m.user_id],
                &[
                    ("user", m.user_id.to_string()),
                    ("group", group.to_string()),
                    ("code", m.code.clone()),
                    ("left", m.warnings_left.to_string()),
                    ("reminders", config.reminders.to_string()),
                    ("deadline", deadline),
                ],
            );
        }
        actions.push(group_message(
            chunk[0].bot_id,
            group,
            None,
            Purpose::Remind,
            &message,
        ));
    }
    if !kicked.is_empty() {
        for chunk in kicked.chunks(MENTIONS_PER_MESSAGE) {
            let users: Vec<i64> = chunk.iter().map(|m| m.user_id).collect();
            let list = users
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let message = config
                .template(TemplateKind::KickNotice)
                .render(&users, &[("users", list), ("group", group.to_string())]);
            actions.push(group_message(
                chunk[0].bot_id,
                group,
                None,
                Purpose::KickNotice,
                &message,
            ));
        }
        for m in kicked {
            actions.push(NewAction {
                bot_id: m.bot_id,
                group_id: group,
                user_id: Some(m.user_id),
                round: Some(m.round),
                purpose: Purpose::Kick,
                action: Action::SetGroupKick,
                params: json!({
                    "group_id": group, "user_id": m.user_id,
                    "reject_add_request": config.reject_rejoin,
                }),
            });
            if let Some(id) = m.prompt_message_id {
                actions.push(NewAction {
                    bot_id: m.bot_id,
                    group_id: group,
                    user_id: Some(m.user_id),
                    round: Some(m.round),
                    purpose: Purpose::Recall,
                    action: Action::DeleteMsg,
                    params: json!({ "message_id": id }),
                });
            }
        }
    }
    actions
}

/// What a scan of `group` at `now` would send, deciding and sending nothing (`celeriac
/// verification scan --dry-run`): the reminders and kicks due, in the order a scan would send
/// them. Empty when the group does not run or inside the quiet hours (see [`Plan`]).
pub async fn plan(
    config: &VerificationConfig,
    store: &Store,
    group: i64,
    now: i64,
) -> Result<Plan> {
    let mut plan = Plan {
        group,
        ..Plan::default()
    };
    if !store.group_runs(group).await? {
        plan.stopped = true;
        return Ok(plan);
    }
    if config.quiet().is_some_and(|q| q.contains(now, config.tz())) {
        plan.quiet = true;
        return Ok(plan);
    }
    let every = config.remind_every.as_millis() as i64;
    let mut tx = store.begin().await?;
    let due = store.due_members(&mut tx, group, now).await?;
    tx.rollback().await?;
    let (mut warned, mut kicked) = (Vec::new(), Vec::new());
    for mut m in due {
        if m.warnings_left > 0 {
            m.warnings_left -= 1;
            m.last_warning_at = Some(now);
            m.next_warning_at = now + every;
            warned.push(m);
        } else {
            kicked.push(m);
        }
    }
    plan.actions = scan_actions(config, group, &warned, &kicked);
    Ok(plan)
}

/// What [`plan`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The group.
    pub group: i64,
    /// The group does not run (disabled or blocked): nothing would be sent.
    pub stopped: bool,
    /// Inside the quiet hours: nothing would be sent.
    pub quiet: bool,
    /// The actions a scan would send now, in order.
    pub actions: Vec<NewAction>,
}

/// Queue the report of `summary` to every admin, when something happened; whether it did.
async fn report(context: &Context, store: &Store, summary: &GroupSummary) -> Result<bool> {
    let config = &context.config;
    let happened = !summary.reminded.is_empty()
        || !summary.kicked.is_empty()
        || !summary.unmanageable.is_empty()
        || summary.actions_failed > 0;
    if config.admins.is_empty() || !happened {
        return Ok(false);
    }
    let Some(bot) = store
        .list(&crate::store::MemberFilter {
            group: Some(summary.group),
            limit: 1,
            ..Default::default()
        })
        .await?
        .first()
        .map(|m| m.bot_id)
    else {
        return Ok(false);
    };
    let pending = store.pending_in(summary.group).await?;
    let message = config.template(TemplateKind::Report).render(
        &[],
        &[
            ("group", summary.group.to_string()),
            ("reminded", summary.reminded.len().to_string()),
            ("kicked", summary.kicked_ok.len().to_string()),
            ("unmanageable", summary.unmanageable.len().to_string()),
            ("pending", pending.to_string()),
            ("failed", summary.actions_failed.to_string()),
        ],
    );
    let now = context.clock.now_ms();
    let actions: Vec<NewAction> = config
        .admins
        .iter()
        .map(|admin| NewAction {
            bot_id: bot,
            group_id: summary.group,
            user_id: None,
            round: None,
            purpose: Purpose::Report,
            action: Action::SendPrivateMsg,
            params: json!({ "user_id": admin, "message": message }),
        })
        .collect();
    let mut tx = store.begin().await?;
    store.insert_actions(&mut tx, &actions, now).await?;
    tx.commit().await?;
    Ok(true)
}
