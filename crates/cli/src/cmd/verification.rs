//! `celeriac verification`: members under verification, by group and status; one member with
//! every action about them; a scan on demand.

use crate::output::{
    free, or_dash, outln as println, print_json, table, Cell, CliError, CliResult,
};
use crate::settings::Settings;
use celeriac_core::time::rfc3339_ms_signed as rfc3339;
use celeriac_producer::{NewJob, Producer};
use celeriac_verification::scan::plan;
use celeriac_verification::store::{Member, MemberFilter};
use celeriac_verification::{ScanVerification, Status, Store};
use serde::Serialize;
use std::process::ExitCode;

/// Read the verification tables (database_url) and scan on demand.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Members under verification, latest change first.
    #[command(after_help = "Examples:
  celeriac verification list
  celeriac verification list --group 100200300 --status pending
  celeriac verification list --status kicked --limit 500 --json")]
    List(ListArgs),
    /// Members by status, and OneBot actions by state with the latest failures.
    #[command(after_help = "Examples:
  celeriac verification stats
  celeriac verification stats --json")]
    Stats(JsonArgs),
    /// Groups with members under verification: switch, state, counts by status and the next
    /// due step; `enable` / `disable` one group.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "A blocked group (the bot was found not manageable there: not an admin, or the
target an admin) sends nothing but reports until it is enabled again.

Examples:
  celeriac verification groups
  celeriac verification groups --json
  celeriac verification groups disable 100200300
  celeriac verification groups enable 100200300   # also lifts a block"
    )]
    Groups(GroupsArgs),
    /// One member: status, code, reminders left, deadlines, and every action about them.
    #[command(after_help = "Exit codes: 0 found, 1 no such member, 2 bad usage.

Examples:
  celeriac verification member 100200300 123456789
  celeriac verification member 100200300 123456789 --json")]
    Member(MemberArgs),
    /// Enqueue a scan now (verification.scan): every group with work due, or one group.
    /// Prints the job's id; `celeriac status ID --wait` follows it. `--dry-run` prints what
    /// a scan would send now and sends nothing (it needs only the database).
    #[command(after_help = "Examples:
  celeriac verification scan
  celeriac verification scan --group 100200300
  celeriac verification scan --dry-run
  celeriac verification scan --group 100200300 --dry-run --json")]
    Scan(ScanArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this group.
    #[arg(long, value_name = "GROUP")]
    group: Option<i64>,
    /// Only this status: pending, verified, approved, kicked, left, removed, unmanageable.
    #[arg(long, value_name = "STATUS")]
    status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Print JSON (one object per member; times as RFC 3339).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct GroupsArgs {
    #[command(subcommand)]
    action: Option<GroupsAction>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum GroupsAction {
    /// Verify this group again (lifts a block).
    Enable {
        /// The group.
        group: i64,
    },
    /// Stop verifying this group: its joins are ignored and nothing is sent there.
    Disable {
        /// The group.
        group: i64,
    },
}

#[derive(Debug, clap::Args)]
pub struct MemberArgs {
    /// The group.
    group: i64,
    /// The member's QQ number.
    user: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Only this group.
    #[arg(long, value_name = "GROUP")]
    group: Option<i64>,
    /// Queue of the scan and of the group jobs it enqueues.
    #[arg(long, default_value = "default")]
    queue: String,
    /// Print what a scan would send now; enqueue and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: print JSON.
    #[arg(long, requires = "dry_run")]
    json: bool,
}

/// A member as `list --json` and `member --json` print it.
#[derive(Serialize)]
struct MemberView {
    group_id: i64,
    user_id: i64,
    bot_id: i64,
    round: i64,
    status: Status,
    code: String,
    joined_at: String,
    warnings_left: i64,
    last_warning_at: Option<String>,
    next_warning_at: Option<String>,
    wrong_answers: i64,
    ended_at: Option<String>,
    detail: String,
    updated_at: String,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        MemberView {
            group_id: m.group_id,
            user_id: m.user_id,
            bot_id: m.bot_id,
            round: m.round,
            status: m.status,
            code: m.code.clone(),
            joined_at: rfc3339(m.joined_at),
            warnings_left: m.warnings_left,
            last_warning_at: m.last_warning_at.map(rfc3339),
            next_warning_at: (m.status == Status::Pending).then(|| rfc3339(m.next_warning_at)),
            wrong_answers: m.wrong_answers,
            ended_at: m.ended_at.map(rfc3339),
            detail: m.detail.clone(),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

pub async fn run(settings: Settings, command: Command) -> CliResult {
    let command = match command {
        Command::Scan(a) if !a.dry_run => return scan(&settings, a).await,
        c => c,
    };
    let db = celeriac_db::Db::open(&settings.db.database_url, &crate::domains::migrations())
        .await
        .map_err(CliError::failed)?;
    let store = Store::new(db);
    let result = match command {
        Command::List(a) => list(&store, a).await,
        Command::Stats(a) => stats(&store, a.json).await,
        Command::Groups(GroupsArgs {
            action: Some(action),
            ..
        }) => switch(&store, action).await,
        Command::Groups(a) => groups(&store, a.json).await,
        Command::Member(a) => member(&store, a).await,
        Command::Scan(a) => dry_run(&settings, &store, a).await,
    };
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

fn failed(e: celeriac_verification::Error) -> CliError {
    CliError::failed(e)
}

async fn list(store: &Store, a: ListArgs) -> Result<(), CliError> {
    if a.limit < 1 {
        return Err(CliError::usage(anyhow::anyhow!(
            "--limit must be at least 1"
        )));
    }
    let status = match a.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<Status>().map_err(CliError::usage)?),
    };
    let members = store
        .list(&MemberFilter {
            group: a.group,
            status,
            limit: a.limit,
            ..MemberFilter::default()
        })
        .await
        .map_err(failed)?;
    if a.json {
        let view: Vec<MemberView> = members.iter().map(MemberView::from).collect();
        return print_json(&view);
    }
    if members.is_empty() {
        println!("no members under verification (they appear when `celeriac onebot receive` gets a join)");
        return Ok(());
    }
    let mut t = table(&[
        "group",
        "user",
        "status",
        "reminders left",
        "next step",
        "detail",
    ]);
    for m in &members {
        let next = (m.status == Status::Pending).then(|| rfc3339(m.next_warning_at));
        t.add_row(vec![
            m.group_id.to_string().into(),
            m.user_id.to_string().into(),
            m.status.as_str().into(),
            m.warnings_left.to_string().into(),
            or_dash(next.as_deref()).into(),
            free(if m.detail.is_empty() { "-" } else { &m.detail }),
        ]);
    }
    println!("{t}");
    Ok(())
}

async fn stats(store: &Store, json: bool) -> Result<(), CliError> {
    let groups = store.group_stats().await.map_err(failed)?;
    let actions = store.action_counts().await.map_err(failed)?;
    let failures = store.failed_actions(10).await.map_err(failed)?;
    let mut members: std::collections::BTreeMap<&str, i64> =
        Status::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for g in &groups {
        for (s, n) in &g.members {
            *members.entry(s).or_default() += n;
        }
    }
    if json {
        return print_json(&serde_json::json!({
            "members": members,
            "actions": actions.by_state,
            "recent_failures": failures,
        }));
    }
    let mut t = table(&["members", "count"]);
    for (s, n) in &members {
        t.add_row(vec![Cell::from(*s), n.to_string().into()]);
    }
    println!("{t}");
    let mut t = table(&["actions", "count"]);
    for (s, n) in &actions.by_state {
        t.add_row(vec![Cell::from(*s), n.to_string().into()]);
    }
    println!("{t}");
    if !failures.is_empty() {
        let mut t = table(&["action", "group", "user", "purpose", "failed at", "error"]);
        for f in &failures {
            t.add_row(vec![
                f.id.to_string().into(),
                f.group_id.to_string().into(),
                or_dash(f.user_id.map(|u| u.to_string()).as_deref()).into(),
                f.purpose.as_str().into(),
                or_dash(f.finished_at.map(rfc3339).as_deref()).into(),
                free(f.error.as_deref().unwrap_or("-")),
            ]);
        }
        println!("{t}");
    }
    Ok(())
}

async fn groups(store: &Store, json: bool) -> Result<(), CliError> {
    let stats = store.group_stats().await.map_err(failed)?;
    let rows = store.groups().await.map_err(failed)?;
    let mut ids: Vec<i64> = stats.iter().map(|g| g.group_id).collect();
    ids.extend(rows.iter().map(|g| g.group_id));
    ids.sort_unstable();
    ids.dedup();
    // A group without a row is enabled and active.
    let switch = |id: i64| {
        rows.iter()
            .find(|g| g.group_id == id)
            .map(|g| (g.enabled, g.state.as_str(), g.detail.as_str()))
            .unwrap_or((true, "active", ""))
    };
    let stat = |id: i64| stats.iter().find(|g| g.group_id == id);
    if json {
        let view: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| {
                let (enabled, state, detail) = switch(*id);
                let members: std::collections::BTreeMap<&str, i64> = match stat(*id) {
                    Some(g) => g.members.clone(),
                    None => Status::ALL.iter().map(|s| (s.as_str(), 0)).collect(),
                };
                serde_json::json!({
                    "group_id": id,
                    "enabled": enabled,
                    "state": state,
                    "detail": detail,
                    "members": members,
                    "next_warning_at": stat(*id).and_then(|g| g.next_warning_at).map(rfc3339),
                })
            })
            .collect();
        return print_json(&view);
    }
    if ids.is_empty() {
        println!("no groups yet");
        return Ok(());
    }
    let mut header = vec!["group", "enabled", "state"];
    header.extend(Status::ALL.iter().map(|s| s.as_str()));
    header.push("next step");
    let mut t = table(&header);
    for id in &ids {
        let (enabled, state, _) = switch(*id);
        let mut row: Vec<Cell> = vec![
            id.to_string().into(),
            if enabled { "yes" } else { "no" }.into(),
            state.into(),
        ];
        row.extend(Status::ALL.iter().map(|s| {
            stat(*id)
                .and_then(|g| g.members.get(s.as_str()).copied())
                .unwrap_or(0)
                .to_string()
                .into()
        }));
        row.push(
            or_dash(
                stat(*id)
                    .and_then(|g| g.next_warning_at)
                    .map(rfc3339)
                    .as_deref(),
            )
            .into(),
        );
        t.add_row(row);
    }
    println!("{t}");
    for id in &ids {
        let (_, state, detail) = switch(*id);
        if state == "blocked" {
            println!("group {id} is blocked: {detail}");
            println!(
                "  once the bot may mute and kick there: celeriac verification groups enable {id}"
            );
        }
    }
    Ok(())
}

async fn switch(store: &Store, action: GroupsAction) -> Result<(), CliError> {
    let (group, enabled) = match action {
        GroupsAction::Enable { group } => (group, true),
        GroupsAction::Disable { group } => (group, false),
    };
    if group <= 0 {
        return Err(CliError::usage(anyhow::anyhow!(
            "group numbers are positive, got {group}"
        )));
    }
    let row = store
        .set_group_enabled(group, enabled, celeriac_db::now_ms())
        .await
        .map_err(failed)?;
    println!(
        "group {}: {} ({})",
        row.group_id,
        if row.enabled { "enabled" } else { "disabled" },
        row.state.as_str()
    );
    Ok(())
}

async fn dry_run(settings: &Settings, store: &Store, a: ScanArgs) -> Result<(), CliError> {
    let config = &settings.domains.verification;
    let now = celeriac_db::now_ms();
    let groups = match a.group {
        Some(g) => vec![g],
        None => store.due_groups(now).await.map_err(failed)?,
    };
    let mut plans = Vec::new();
    for group in groups {
        plans.push(plan(config, store, group, now).await.map_err(failed)?);
    }
    let view: Vec<serde_json::Value> = plans
        .iter()
        .map(|p| {
            serde_json::json!({
                "group": p.group,
                "stopped": p.stopped,
                "quiet": p.quiet,
                "actions": p.actions.iter().map(|x| serde_json::json!({
                    "action": x.action.as_str(),
                    "purpose": x.purpose.as_str(),
                    "user_id": x.user_id,
                    "params": x.params,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    if a.json {
        return print_json(&view);
    }
    println!("dry run: nothing is decided or sent");
    if plans.is_empty() {
        println!("no group has a reminder or kick due now");
    }
    for p in &plans {
        if p.stopped {
            println!(
                "group {}: disabled or blocked, nothing would be sent",
                p.group
            );
            continue;
        }
        if p.quiet {
            println!("group {}: quiet hours, nothing would be sent now", p.group);
            continue;
        }
        if p.actions.is_empty() {
            println!("group {}: nothing due", p.group);
            continue;
        }
        let mut t = table(&["group", "action", "purpose", "user", "what"]);
        for x in &p.actions {
            let what = match x.params.get("message") {
                Some(m) => celeriac_onebot::message::plain_text(m),
                None => x.params.to_string(),
            };
            t.add_row(vec![
                p.group.to_string().into(),
                x.action.as_str().into(),
                x.purpose.as_str().into(),
                or_dash(x.user_id.map(|u| u.to_string()).as_deref()).into(),
                free(&what),
            ]);
        }
        println!("{t}");
    }
    Ok(())
}

async fn member(store: &Store, a: MemberArgs) -> Result<(), CliError> {
    let Some(m) = store.member(a.group, a.user).await.map_err(failed)? else {
        return Err(CliError::failed(anyhow::anyhow!(
            "no member {} in group {} under verification (see `celeriac verification list --group {}`)",
            a.user,
            a.group,
            a.group
        )));
    };
    let actions = store
        .member_actions(a.group, a.user)
        .await
        .map_err(failed)?;
    if a.json {
        return print_json(&serde_json::json!({
            "member": MemberView::from(&m),
            "actions": actions,
        }));
    }
    println!(
        "group {} user {} (round {}): {}{}",
        m.group_id,
        m.user_id,
        m.round,
        m.status,
        if m.detail.is_empty() {
            String::new()
        } else {
            format!(" — {}", m.detail)
        }
    );
    println!(
        "code {}, joined {}, {} reminder(s) left, {} wrong answer(s)",
        m.code,
        rfc3339(m.joined_at),
        m.warnings_left,
        m.wrong_answers
    );
    if m.status == Status::Pending {
        println!("next step {}", rfc3339(m.next_warning_at));
    }
    if actions.is_empty() {
        return Ok(());
    }
    let mut t = table(&["action", "purpose", "state", "tries", "decided", "error"]);
    for x in &actions {
        t.add_row(vec![
            x.id.to_string().into(),
            x.purpose.as_str().into(),
            x.state.as_str().into(),
            x.attempts.to_string().into(),
            rfc3339(x.created_at).into(),
            free(x.error.as_deref().unwrap_or("-")),
        ]);
    }
    println!("{t}");
    Ok(())
}

async fn scan(settings: &Settings, a: ScanArgs) -> CliResult {
    let producer = Producer::connect(settings.core())
        .await
        .map_err(CliError::from)?;
    let payload = serde_json::to_value(ScanVerification { group: a.group })
        .map_err(|e| CliError::failed(anyhow::anyhow!(e)))?;
    let job = NewJob::new(celeriac_verification::SCAN_KIND, payload).queue(a.queue);
    let id = producer.enqueue(job).await.map_err(CliError::from)?.id;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
