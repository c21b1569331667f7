//! Performing the outbox: a group's open actions, in the order they were decided, each claimed
//! before it is sent and ended with what OneBot answered. Whatever stops a drain — a crash, a
//! transient failure, risk control — leaves the actions not yet done open, and the next drain
//! of the group (the job's retry, the next event or scan of the group) takes them up: that is
//! how the domain resumes. An action whose drain died while sending may be sent twice (the
//! claim's lease ends, another drain takes it): at least once, like every job.
//!
//! What an answer means for the member and the group is decided here, in one `match` per
//! class:
//!
//! | answer | action | member | group |
//! |---|---|---|---|
//! | ok | welcome | its message id is kept as `prompt_message_id`, to recall it later | |
//! | ok | kick | `kicking` → `kicked` (the only way to `kicked`) | |
//! | gone (member or group not found) | mute, kick | `pending`/`kicking` → `left` | |
//! | not manageable | mute, kick | `pending`/`kicking` → `unmanageable` | `blocked`, admins alerted once |
//! | other permanent failure | kick | action `failed`, `kicking` → `pending`, kick due a period later | |
//! | other permanent failure | any other | action `failed`, member unchanged | |
//! | transient failure | any | action back to `pending` (`failed` after `action_attempts`), drain stops | |
//! | risk control (breaker open) | any | action back to `pending` untried (no try spent), drain stops, job snoozed until the pause ends | |
//!
//! A group that does not run (an operator disabled it, or it is `blocked`) has only its
//! reports and alerts sent; everything else waits, open, until the group is enabled again.

use crate::error::{Error, Result};
use crate::status::{ActionState, Purpose, Status};
use crate::store::{ActionRow, NewAction, Store};
use crate::template::TemplateKind;
use crate::Context;
use celeriac_onebot::{Action, ErrorClass, OneBot};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

/// Actions read per query.
const PAGE: i64 = 100;

/// What a drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Drained {
    /// Actions done.
    pub done: usize,
    /// Actions not needed any more.
    pub skipped: usize,
    /// Actions given up.
    pub failed: usize,
    /// Members found not manageable.
    pub unmanageable: Vec<i64>,
    /// Members found gone.
    pub gone: Vec<i64>,
    /// Members kicked (OneBot answered the kick ok).
    pub kicked: Vec<i64>,
    /// The group was blocked by this drain (the bot is not manageable there).
    pub blocked: bool,
    /// The deadline came with actions left.
    pub more: bool,
}

/// Whether an action of `purpose` waits out the quiet hours (a scan's reminders and kicks);
/// answers to members are sent at any hour.
pub fn waits_for_quiet_end(purpose: Purpose) -> bool {
    matches!(
        purpose,
        Purpose::Remind | Purpose::KickNotice | Purpose::Kick | Purpose::Report
    )
}

/// Perform the open actions of `group`, in order, until none is left. `quiet`: leave the
/// scan's actions for later. Stops early (returns `Ok`) when another drain holds the group's
/// next action: that drain reads again after it, so it performs what this one leaves.
pub async fn drain(context: &Context, store: &Store, group: i64, quiet: bool) -> Result<Drained> {
    drain_until(context, store, group, quiet, None).await
}

/// [`drain`], stopping at `deadline` with [`Drained::more`] set when actions are left: a
/// group job works in slices, so it never runs for longer than its slice however long the
/// pacing makes the outbox.
pub async fn drain_until(
    context: &Context,
    store: &Store,
    group: i64,
    quiet: bool,
    deadline: Option<std::time::Instant>,
) -> Result<Drained> {
    let mut drained = Drained::default();
    let mut after = 0;
    let mut stopped = !store.group_runs(group).await?;
    loop {
        let open = store.open_actions(group, PAGE + after).await?;
        let page: Vec<ActionRow> = open.into_iter().skip(after as usize).collect();
        if page.is_empty() {
            return Ok(drained);
        }
        let mut performed = false;
        for action in page {
            // A stopped group sends its reports and alerts, nothing else.
            let held = (stopped && action.purpose != Purpose::Report)
                || (quiet && waits_for_quiet_end(action.purpose));
            if held {
                after += 1;
                continue;
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                drained.more = true;
                return Ok(drained);
            }
            if !perform(context, store, &action, &mut drained).await? {
                return Ok(drained);
            }
            performed = true;
            if drained.blocked && !stopped {
                // Read again from the start: only reports and alerts from now on.
                stopped = true;
                after = 0;
                break;
            }
        }
        // Read again: actions decided meanwhile by another job of the group (whose drain
        // stopped at the action this one held) are this drain's to perform.
        if !performed {
            return Ok(drained);
        }
    }
}

/// Claim and perform one action; false when another drain has it.
async fn perform(
    context: &Context,
    store: &Store,
    action: &ActionRow,
    drained: &mut Drained,
) -> Result<bool> {
    let bot = context.bot(action.bot_id)?;
    let now = context.clock.now_ms();
    let until = now + context.config.action_lease.as_millis() as i64;
    if !store.claim_action(action.id, now, until).await? {
        return Ok(false);
    }
    let Some(name) = Action::from_name(&action.action) else {
        store
            .finish_action(
                action.id,
                until,
                ActionState::Failed,
                None,
                Some(format!("unknown OneBot action {:?}", action.action)),
                None,
                now,
            )
            .await?;
        drained.failed += 1;
        return Ok(true);
    };
    let answer = bot.call(name, action.params.clone()).await;
    let now = context.clock.now_ms();
    let error = match answer {
        Ok(data) => {
            let message_id = data.get("message_id").and_then(Value::as_i64);
            store
                .finish_action(
                    action.id,
                    until,
                    ActionState::Done,
                    message_id.map(|m| m.to_string()),
                    None,
                    Some(0),
                    now,
                )
                .await?;
            drained.done += 1;
            if let (Purpose::Welcome, Some(id), Some(user), Some(round)) =
                (action.purpose, message_id, action.user_id, action.round)
            {
                store
                    .set_prompt_message(action.group_id, user, round, id)
                    .await?;
            }
            if action.purpose == Purpose::Kick {
                let detail = "kicked: no answer after every reminder";
                if let Some(user) = close_member(store, action, Status::Kicked, detail, now).await?
                {
                    drained.kicked.push(user);
                }
            }
            return Ok(true);
        }
        Err(e) => e,
    };
    let text = error.to_string();
    let retcode = error.retcode();
    match error.class() {
        ErrorClass::Gone => {
            store
                .finish_action(
                    action.id,
                    until,
                    ActionState::Skipped,
                    None,
                    Some(text),
                    retcode,
                    now,
                )
                .await?;
            drained.skipped += 1;
            if matches!(action.purpose, Purpose::Mute | Purpose::Kick) {
                if let Some(user) = close_member(
                    store,
                    action,
                    Status::Left,
                    "had already left the group",
                    now,
                )
                .await?
                {
                    drained.gone.push(user);
                }
            }
            Ok(true)
        }
        ErrorClass::Permanent => {
            warn!(group = action.group_id, action = %action.action, purpose = action.purpose.as_str(), error = %text, "OneBot action failed for good");
            store
                .finish_action(
                    action.id,
                    until,
                    ActionState::Failed,
                    None,
                    Some(text.clone()),
                    retcode,
                    now,
                )
                .await?;
            drained.failed += 1;
            let not_manageable = matches!(error, celeriac_onebot::Error::NotManageable { .. });
            if not_manageable && matches!(action.purpose, Purpose::Mute | Purpose::Kick) {
                let detail = format!("the bot may not {}: {text}", action.purpose.as_str());
                if let Some(user) =
                    close_member(store, action, Status::Unmanageable, &detail, now).await?
                {
                    drained.unmanageable.push(user);
                }
            }
            if not_manageable {
                block(context, store, action, &text, now).await?;
                drained.blocked = true;
            } else if action.purpose == Purpose::Kick {
                kick_again_later(context, store, action, &text, now).await?;
            }
            Ok(true)
        }
        ErrorClass::RiskControl => {
            store.unclaim_action(action.id, until, &text).await?;
            let wait = error
                .retry_after()
                .unwrap_or(context.onebot.breaker_open_for);
            info!(
                group = action.group_id,
                "OneBot paused by risk control; the group's actions wait"
            );
            Err(Error::Paused(wait))
        }
        ErrorClass::Transient => {
            let max = context.config.action_attempts as i64;
            match store
                .release_action(action.id, until, &text, retcode, max, now)
                .await?
            {
                ActionState::Failed => {
                    warn!(group = action.group_id, action = %action.action, error = %text, "OneBot action given up after {max} tries");
                    drained.failed += 1;
                    if action.purpose == Purpose::Kick {
                        kick_again_later(context, store, action, &text, now).await?;
                    }
                    Ok(true)
                }
                _ => Err(Error::OneBot(error)),
            }
        }
    }
}

/// Block the action's group (the bot is not manageable there) and, the first time, alert the
/// admins (a `report` action each, sent even while the group is blocked).
async fn block(
    context: &Context,
    store: &Store,
    action: &ActionRow,
    text: &str,
    now: i64,
) -> Result<()> {
    let group = action.group_id;
    let mut tx = store.begin().await?;
    if store.block_group(&mut tx, group, text, now).await? {
        warn!(
            group,
            "the bot is not manageable in this group: blocked until `celeriac verification groups enable {group}`"
        );
        let message = context.config.template(TemplateKind::Blocked).render(
            &[],
            &[("group", group.to_string()), ("detail", text.to_string())],
        );
        let alerts: Vec<NewAction> = context
            .config
            .admins
            .iter()
            .map(|admin| NewAction {
                bot_id: action.bot_id,
                group_id: group,
                user_id: None,
                round: None,
                purpose: Purpose::Report,
                action: Action::SendPrivateMsg,
                params: serde_json::json!({ "user_id": admin, "message": message }),
            })
            .collect();
        store.insert_actions(&mut tx, &alerts, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A kick given up (neither gone nor refused for permissions): the member goes back to
/// `pending`, the kick due again `remind_every` later.
async fn kick_again_later(
    context: &Context,
    store: &Store,
    action: &ActionRow,
    text: &str,
    now: i64,
) -> Result<()> {
    let (Some(user), Some(round)) = (action.user_id, action.round) else {
        return Ok(());
    };
    let next = now + context.config.remind_every.as_millis() as i64;
    let mut tx = store.begin().await?;
    store
        .kick_failed(
            &mut tx,
            (action.group_id, user, round),
            next,
            &format!("the kick failed, tried again later: {text}"),
            now,
        )
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Close the member an action was about, when it is still in the round and status the action
/// expected (`pending` for a mute, `kicking` for a kick); the member's number if it moved.
async fn close_member(
    store: &Store,
    action: &ActionRow,
    to: Status,
    detail: &str,
    now: i64,
) -> Result<Option<i64>> {
    let (Some(user), Some(round)) = (action.user_id, action.round) else {
        return Ok(None);
    };
    let from = if action.purpose == Purpose::Kick {
        Status::Kicking
    } else {
        Status::Pending
    };
    let mut tx = store.begin().await?;
    let moved = match store.member_in(&mut tx, action.group_id, user).await? {
        Some(m) if m.round == round && m.status == from => {
            store.transition(&mut tx, &m, from, to, detail, now).await?
        }
        _ => false,
    };
    tx.commit().await?;
    Ok(moved.then_some(user))
}
