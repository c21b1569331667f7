//! `verification.event`: one OneBot event, as the receiver got it (`celeriac onebot receive`).
//!
//! | event | when | transition | actions |
//! |---|---|---|---|
//! | `group_increase` | a member joined a covered, enabled group | (new round) → `pending` | mute, welcome with the code |
//! | private or group message | offers a code of a pending member | `pending` → `verified` | unmute, verified, recall the welcome |
//! | the same, wrong code | | wrong answers + 1 | private hint (until `max_wrong_answers`) |
//! | `group_ban` lift by someone else | the member is pending | `pending` → `approved` | approved, recall the welcome |
//! | `group_decrease` leave | pending | `pending` → `left` | recall the welcome |
//! | `group_decrease` kick by someone else | pending | `pending` → `removed` | recall the welcome |
//! | `group_decrease` kick_me | the bot was removed | every pending member of the group → `unmanageable` | |
//!
//! Each row is one transaction (the guarded transition and its actions), then the group's
//! outbox is drained. A duplicate event changes nothing: a join whose time is already recorded
//! is the same join, an answer to a member no longer pending is ignored.

use crate::code::{self, Answer};
use crate::error::{Error, Result};
use crate::outbox;
use crate::status::{Purpose, Status};
use crate::store::{Join, Member, MemberFilter, NewAction, Store};
use crate::template::TemplateKind;
use crate::Context;
use celeriac_onebot::event::{BanKind, DecreaseKind, GroupBan, GroupChange, IncreaseKind};
use celeriac_onebot::{Action, Event, Message};
use celeriac_worker::{Job, Outcome};
use serde_json::{json, Value};

/// Run one `verification.event` job.
pub(crate) async fn handle(context: &Context, job: Job) -> Outcome {
    match run(context, job.payload).await {
        Ok(summary) => Outcome::Done(Some(summary)),
        Err(e) => e.into(),
    }
}

async fn run(context: &Context, payload: Value) -> Result<Value> {
    let event = Event::from_value(payload)
        .map_err(|e| Error::Payload(format!("not a OneBot event: {e}")))?;
    let config = &context.config;
    let (what, groups): (&str, Vec<i64>) = match &event {
        Event::GroupIncrease(e) if e.user_id != e.self_id && config.covers(e.group_id) => {
            let store = context.store().await?;
            if store.group(e.group_id).await?.is_some_and(|g| !g.enabled) {
                ("ignored: the group is disabled", Vec::new())
            } else {
                (join(context, &store, e).await?, vec![e.group_id])
            }
        }
        Event::GroupDecrease(e) if config.covers(e.group_id) => {
            let store = context.store().await?;
            (decrease(context, &store, e).await?, vec![e.group_id])
        }
        Event::GroupBan(e) if config.covers(e.group_id) => {
            let store = context.store().await?;
            (lift_ban(context, &store, e).await?, vec![e.group_id])
        }
        Event::PrivateMessage(m) => {
            let store = context.store().await?;
            let pending: Vec<Member> = store
                .pending_of_user(m.user_id)
                .await?
                .into_iter()
                .filter(|p| config.covers(p.group_id))
                .collect();
            answer(context, &store, pending, &m.text).await?
        }
        Event::GroupMessage(m) if config.covers(m.group_id) => {
            let store = context.store().await?;
            let pending: Vec<Member> = store
                .member(m.group_id, m.user_id)
                .await?
                .into_iter()
                .filter(|p| p.status == Status::Pending)
                .collect();
            answer(context, &store, pending, &m.text).await?
        }
        _ => ("ignored", Vec::new()),
    };
    let mut drained = outbox::Drained::default();
    if !groups.is_empty() {
        let store = context.store().await?;
        for group in &groups {
            let d = outbox::drain(context, &store, *group, false).await?;
            drained.done += d.done;
            drained.failed += d.failed;
            drained.skipped += d.skipped;
        }
    }
    Ok(
        json!({ "event": what, "groups": groups, "actions_done": drained.done, "actions_failed": drained.failed }),
    )
}

/// Local date and time of `ms` in the configured zone, as members read it.
pub(crate) fn local_time(config: &crate::VerificationConfig, ms: i64) -> String {
    use chrono::TimeZone;
    config
        .tz()
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

async fn join(
    context: &Context,
    store: &Store,
    e: &GroupChange<IncreaseKind>,
) -> Result<&'static str> {
    let config = &context.config;
    let now = context.clock.now_ms();
    let joined_at = e.time.saturating_mul(1000);
    let every = config.remind_every.as_millis() as i64;
    let join = Join {
        group_id: e.group_id,
        user_id: e.user_id,
        bot_id: e.self_id,
        joined_at,
        code: code::generate(config.code_length),
        warnings: i64::from(config.reminders),
        next_warning_at: joined_at + every,
    };
    let mut tx = store.begin().await?;
    let round = match store.member_in(&mut tx, e.group_id, e.user_id).await? {
        None if store.insert_join(&mut tx, &join, now).await? => Some(1),
        None => None,
        // The same join delivered again (or its job retried): already recorded.
        Some(m) if m.joined_at == joined_at => None,
        Some(m) if store.rejoin(&mut tx, m.round, &join, now).await? => Some(m.round + 1),
        Some(_) => None,
    };
    let Some(round) = round else {
        tx.commit().await?;
        return Ok("join already recorded");
    };
    let mut actions = Vec::new();
    if config.mute_on_join {
        actions.push(NewAction {
            bot_id: e.self_id,
            group_id: e.group_id,
            user_id: Some(e.user_id),
            round: Some(round),
            purpose: Purpose::Mute,
            action: Action::SetGroupBan,
            params: json!({
                "group_id": e.group_id, "user_id": e.user_id,
                "duration": config.mute_for.as_secs(),
            }),
        });
    }
    let deadline = local_time(
        &context.config,
        joined_at + config.time_to_kick().as_millis() as i64,
    );
    let message = config.template(TemplateKind::Welcome).render(
        &[e.user_id],
        &[
            ("user", e.user_id.to_string()),
            ("group", e.group_id.to_string()),
            ("code", join.code.clone()),
            ("deadline", deadline),
            ("reminders", config.reminders.to_string()),
        ],
    );
    actions.push(group_message(
        e.self_id,
        e.group_id,
        Some((e.user_id, round)),
        Purpose::Welcome,
        &message,
    ));
    store.insert_actions(&mut tx, &actions, now).await?;
    tx.commit().await?;
    Ok("joined")
}

/// A group message action.
pub(crate) fn group_message(
    bot: i64,
    group: i64,
    member: Option<(i64, i64)>,
    purpose: Purpose,
    message: &Message,
) -> NewAction {
    NewAction {
        bot_id: bot,
        group_id: group,
        user_id: member.map(|m| m.0),
        round: member.map(|m| m.1),
        purpose,
        action: Action::SendGroupMsg,
        params: json!({ "group_id": group, "message": message }),
    }
}

/// Recall `member`'s welcome message, if it was sent.
fn recall(member: &Member) -> Option<NewAction> {
    let id = member.prompt_message_id?;
    Some(NewAction {
        bot_id: member.bot_id,
        group_id: member.group_id,
        user_id: Some(member.user_id),
        round: Some(member.round),
        purpose: Purpose::Recall,
        action: Action::DeleteMsg,
        params: json!({ "message_id": id }),
    })
}

/// Close a pending member as `to` with the group message of `template` (if any) and the recall
/// of the welcome; false if the member was no longer pending.
async fn close(
    context: &Context,
    store: &Store,
    member: &Member,
    to: Status,
    detail: &str,
    template: Option<(Purpose, TemplateKind)>,
) -> Result<bool> {
    let config = &context.config;
    let now = context.clock.now_ms();
    let mut tx = store.begin().await?;
    if !store
        .transition(&mut tx, member, Status::Pending, to, detail, now)
        .await?
    {
        tx.commit().await?;
        return Ok(false);
    }
    let mut actions = Vec::new();
    let who = Some((member.user_id, member.round));
    if to == Status::Verified && config.mute_on_join {
        actions.push(NewAction {
            bot_id: member.bot_id,
            group_id: member.group_id,
            user_id: who.map(|w| w.0),
            round: who.map(|w| w.1),
            purpose: Purpose::Unmute,
            action: Action::SetGroupBan,
            params: json!({ "group_id": member.group_id, "user_id": member.user_id, "duration": 0 }),
        });
    }
    if let Some((purpose, kind)) = template {
        let message = config.template(kind).render(
            &[member.user_id],
            &[
                ("user", member.user_id.to_string()),
                ("group", member.group_id.to_string()),
            ],
        );
        actions.push(group_message(
            member.bot_id,
            member.group_id,
            who,
            purpose,
            &message,
        ));
    }
    actions.extend(recall(member));
    store.insert_actions(&mut tx, &actions, now).await?;
    tx.commit().await?;
    Ok(true)
}

async fn answer(
    context: &Context,
    store: &Store,
    pending: Vec<Member>,
    text: &str,
) -> Result<(&'static str, Vec<i64>)> {
    let config = &context.config;
    if pending.is_empty() {
        return Ok(("ignored", Vec::new()));
    }
    let codes = match code::answer(text, config.code_length) {
        Answer::None => return Ok(("ignored", Vec::new())),
        Answer::Codes(codes) => codes,
        Answer::TooMany => Vec::new(),
    };
    let (right, wrong): (Vec<Member>, Vec<Member>) =
        pending.into_iter().partition(|m| codes.contains(&m.code));
    let mut groups = Vec::new();
    if !right.is_empty() {
        for m in &right {
            let kind = Some((Purpose::Verified, TemplateKind::Verified));
            if close(
                context,
                store,
                m,
                Status::Verified,
                "answered the code",
                kind,
            )
            .await?
            {
                groups.push(m.group_id);
            }
        }
        return Ok(("verified", groups));
    }
    let now = context.clock.now_ms();
    let max = i64::from(config.max_wrong_answers);
    let mut tx = store.begin().await?;
    for m in &wrong {
        let Some(left) = store.count_wrong_answer(&mut tx, m, max, now).await? else {
            continue;
        };
        let message = config.template(TemplateKind::WrongCode).render(
            &[],
            &[
                ("user", m.user_id.to_string()),
                ("group", m.group_id.to_string()),
                ("left", left.to_string()),
            ],
        );
        let action = NewAction {
            bot_id: m.bot_id,
            group_id: m.group_id,
            user_id: Some(m.user_id),
            round: Some(m.round),
            purpose: Purpose::WrongCode,
            action: Action::SendPrivateMsg,
            // group_id: a temporary session through the group when the member is no friend.
            params: json!({ "user_id": m.user_id, "group_id": m.group_id, "message": message }),
        };
        store.insert_actions(&mut tx, &[action], now).await?;
        groups.push(m.group_id);
    }
    tx.commit().await?;
    Ok(("wrong code", groups))
}

async fn lift_ban(context: &Context, store: &Store, e: &GroupBan) -> Result<&'static str> {
    let by_someone_else = e.operator_id.is_some_and(|op| op != e.self_id);
    if e.sub_type != BanKind::LiftBan || !by_someone_else {
        return Ok("ignored");
    }
    let Some(m) = store.member(e.group_id, e.user_id).await? else {
        return Ok("ignored");
    };
    if m.status != Status::Pending {
        return Ok("ignored");
    }
    let detail = format!("mute lifted by {}", e.operator_id.unwrap_or_default());
    let kind = Some((Purpose::Approved, TemplateKind::Approved));
    Ok(
        if close(context, store, &m, Status::Approved, &detail, kind).await? {
            "approved"
        } else {
            "ignored"
        },
    )
}

async fn decrease(
    context: &Context,
    store: &Store,
    e: &GroupChange<DecreaseKind>,
) -> Result<&'static str> {
    if e.sub_type == DecreaseKind::KickMe {
        let pending = store
            .list(&MemberFilter {
                group: Some(e.group_id),
                status: Some(Status::Pending),
                limit: i64::MAX,
                ..MemberFilter::default()
            })
            .await?;
        let now = context.clock.now_ms();
        let mut tx = store.begin().await?;
        for m in &pending {
            let detail = "the bot was removed from the group";
            store
                .transition(
                    &mut tx,
                    m,
                    Status::Pending,
                    Status::Unmanageable,
                    detail,
                    now,
                )
                .await?;
        }
        tx.commit().await?;
        return Ok("bot removed");
    }
    let Some(m) = store.member(e.group_id, e.user_id).await? else {
        return Ok("ignored");
    };
    if m.status != Status::Pending {
        return Ok("ignored");
    }
    let (to, detail) = match (e.sub_type, e.operator_id) {
        (DecreaseKind::Kick, Some(op)) if op == e.self_id => return Ok("ignored"),
        (DecreaseKind::Kick, op) => (
            Status::Removed,
            format!("kicked by {}", op.unwrap_or_default()),
        ),
        _ => (Status::Left, "left the group".to_string()),
    };
    Ok(if close(context, store, &m, to, &detail, None).await? {
        to.as_str()
    } else {
        "ignored"
    })
}
