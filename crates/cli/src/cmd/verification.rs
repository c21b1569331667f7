//! `celeriac verification`: members under verification, by group and status; one member with
//! every action about them; a scan on demand.

use crate::output::{
    free, or_dash, outln as println, print_json, table, Cell, CliError, CliResult,
};
use crate::settings::Settings;
use celeriac_core::time::rfc3339_ms_signed as rfc3339;
use celeriac_producer::{NewJob, Producer};
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
    /// Groups with members under verification: counts by status and the next due step.
    #[command(after_help = "Examples:
  celeriac verification groups
  celeriac verification groups --json")]
    Groups(JsonArgs),
    /// One member: status, code, reminders left, deadlines, and every action about them.
    #[command(after_help = "Exit codes: 0 found, 1 no such member, 2 bad usage.

Examples:
  celeriac verification member 100200300 123456789
  celeriac verification member 100200300 123456789 --json")]
    Member(MemberArgs),
    /// Enqueue a scan now (verification.scan): every group with work due, or one group.
    /// Prints the job's id; `celeriac status ID --wait` follows it.
    #[command(after_help = "Examples:
  celeriac verification scan
  celeriac verification scan --group 100200300")]
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
    last_warned_at: Option<String>,
    due_at: Option<String>,
    wrong_answers: i64,
    closed_at: Option<String>,
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
            last_warned_at: m.last_warned_at.map(rfc3339),
            due_at: (m.status == Status::Pending).then(|| rfc3339(m.due_at)),
            wrong_answers: m.wrong_answers,
            closed_at: m.closed_at.map(rfc3339),
            detail: m.detail.clone(),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

pub async fn run(settings: Settings, command: Command) -> CliResult {
    if let Command::Scan(a) = command {
        return scan(&settings, a).await;
    }
    let db = celeriac_db::Db::open(&settings.db.database_url, &crate::domains::migrations())
        .await
        .map_err(CliError::failed)?;
    let store = Store::new(db);
    let result = match command {
        Command::List(a) => list(&store, a).await,
        Command::Stats(a) => stats(&store, a.json).await,
        Command::Groups(a) => groups(&store, a.json).await,
        Command::Member(a) => member(&store, a).await,
        Command::Scan(_) => Ok(()),
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
        let next = (m.status == Status::Pending).then(|| rfc3339(m.due_at));
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
    let groups = store.group_stats().await.map_err(failed)?;
    if json {
        let view: Vec<serde_json::Value> = groups
            .iter()
            .map(|g| {
                serde_json::json!({
                    "group_id": g.group_id,
                    "members": g.members,
                    "next_due_at": g.next_due_at.map(rfc3339),
                })
            })
            .collect();
        return print_json(&view);
    }
    if groups.is_empty() {
        println!("no groups yet");
        return Ok(());
    }
    let mut header = vec!["group"];
    header.extend(Status::ALL.iter().map(|s| s.as_str()));
    header.push("next step");
    let mut t = table(&header);
    for g in &groups {
        let mut row: Vec<Cell> = vec![g.group_id.to_string().into()];
        row.extend(Status::ALL.iter().map(|s| {
            g.members
                .get(s.as_str())
                .copied()
                .unwrap_or(0)
                .to_string()
                .into()
        }));
        row.push(or_dash(g.next_due_at.map(rfc3339).as_deref()).into());
        t.add_row(row);
    }
    println!("{t}");
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
        println!("next step {}", rfc3339(m.due_at));
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
