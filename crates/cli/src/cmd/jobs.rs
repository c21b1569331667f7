//! `celeriac jobs list | retry | cancel | purge`.

use crate::output::{
    escape, free, inspector, or_dash, outln, print_json, table, Cell, CliError, CliResult,
};
use celeriac_core::config::Config;
use celeriac_core::inspector::Repair;
use celeriac_core::JobState;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List jobs of a queue in one state (next to run first; newest first for finished states).
    #[command(after_help = "Examples:
  celeriac jobs list --queue default --state dead
  celeriac jobs list --queue mail --state retrying --limit 500 --json | jq -r '.[].id'")]
    List(ListArgs),
    /// Run jobs again now: dead, cancelled, retrying or scheduled jobs go to pending for one
    /// more attempt (a job past its max attempts that fails again returns to dead).
    #[command(
        after_help = "Exit codes: 0 done, 1 an id names no job, 2 an id names jobs in \
several queues and --queue does not say which (nothing is changed).

Examples:
  celeriac jobs retry 0193b0a4-5c2e-7d41-8f0a-2b6f9e1c3d47
  celeriac jobs retry my-job-1 --queue mail
  celeriac jobs retry --all-dead --queue default"
    )]
    Retry(RetryArgs),
    /// Cancel jobs that have not finished. A running job's handler is stopped at its worker's
    /// next heartbeat and its result dropped. Idempotent.
    #[command(
        after_help = "Exit codes: 0 done, 1 an id names no job, 2 an id names jobs in \
several queues and --queue does not say which (nothing is changed).

Examples:
  celeriac jobs cancel 0193b0a4-5c2e-7d41-8f0a-2b6f9e1c3d47
  celeriac jobs cancel my-job-1 my-job-2 --queue mail --json"
    )]
    Cancel(CancelArgs),
    /// Delete every job of a queue in one state (not active: cancel those first).
    #[command(after_help = "Examples:
  celeriac jobs purge --queue default --state succeeded
  celeriac jobs purge --queue mail --state dead --json")]
    Purge(PurgeArgs),
    /// Strays of a queue: job records the workers found outside the index of their state
    /// (stranded: no worker would find them again) and job keys that are not hashes, with what
    /// was found and what the key holds now. --repair settles each: a waiting or running record
    /// becomes dead (schema_error, run it again with `jobs retry`), a finished one goes back to
    /// its retention index, a string key becomes a dead record holding it as its envelope;
    /// other key types are left for you to delete.
    #[command(after_help = "Examples:
  celeriac jobs strays --queue default
  celeriac jobs strays --queue default --repair --json")]
    Strays(StraysArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Queue.
    #[arg(long, value_name = "Q")]
    queue: String,
    /// State: scheduled, pending, active, retrying, succeeded, dead or cancelled.
    #[arg(long, value_name = "STATE")]
    state: JobState,
    /// Most jobs shown.
    #[arg(long, default_value_t = 50, value_name = "N")]
    limit: usize,
    /// Print JSON (an array of the objects `celeriac status --json` prints).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// Job ids.
    #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
    ids: Vec<String>,
    /// Retry every dead job of --queue.
    #[arg(long, requires = "queue")]
    all_dead: bool,
    /// The jobs' queue (ids are unique per queue only) [default: for each id, the one queue
    /// holding it]; the queue of --all-dead.
    #[arg(long, value_name = "Q")]
    queue: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// Job ids.
    #[arg(required = true)]
    ids: Vec<String>,
    /// The jobs' queue (ids are unique per queue only) [default: for each id, the one queue
    /// holding it].
    #[arg(long, value_name = "Q")]
    queue: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// Queue.
    #[arg(long, value_name = "Q")]
    queue: String,
    /// State: scheduled, pending, retrying, succeeded, dead or cancelled.
    #[arg(long, value_name = "STATE")]
    state: JobState,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StraysArgs {
    /// Queue.
    #[arg(long, value_name = "Q")]
    queue: String,
    /// Settle them (see above) instead of listing them.
    #[arg(long)]
    repair: bool,
    /// Most strays listed, the most recently found first.
    #[arg(
        long,
        default_value_t = 100,
        value_name = "N",
        conflicts_with = "repair"
    )]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Config, command: Command) -> CliResult {
    let inspector = inspector(&config).await?;
    match command {
        Command::List(a) => {
            let jobs = inspector.list(&a.queue, a.state, a.limit).await?;
            if a.json {
                print_json(&jobs)?;
            } else if jobs.is_empty() {
                outln!("no {} jobs in queue {}", a.state, a.queue);
            } else {
                let mut t = table(&["id", "kind", "state", "attempts", "created", "last error"]);
                for j in &jobs {
                    t.add_row(vec![
                        Cell::from(j.id.as_str()),
                        j.kind.as_str().into(),
                        j.state.as_str().into(),
                        format!("{}/{}", j.attempts, j.max_attempts).into(),
                        or_dash(j.created_at.as_deref()).into(),
                        free(or_dash(j.last_error.as_deref())),
                    ]);
                }
                outln!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry(a) => {
            if a.all_dead {
                let queue = a.queue.unwrap_or_default();
                let n = inspector.retry_all_dead(&queue).await?;
                if a.json {
                    print_json(&serde_json::json!({"queue": queue, "requeued": n}))?;
                } else {
                    outln!("requeued {n} dead jobs of queue {queue}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let out = inspector.retry(&a.ids, a.queue.as_deref()).await?;
            report(&out, a.json, "requeued", "not retryable in state")
        }
        Command::Cancel(a) => {
            let out = inspector.cancel(&a.ids, a.queue.as_deref()).await?;
            report(&out, a.json, "cancelled", "already finished:")
        }
        Command::Purge(a) => {
            if a.state == JobState::Active {
                return Err(CliError::usage(anyhow::anyhow!(
                    "active jobs cannot be purged while workers hold them; cancel them with `celeriac jobs cancel ID…`"
                )));
            }
            let n = inspector.purge(&a.queue, a.state).await?;
            if a.json {
                print_json(
                    &serde_json::json!({"queue": a.queue, "state": a.state.as_str(), "purged": n}),
                )?;
            } else {
                outln!("purged {n} {} jobs of queue {}", a.state, a.queue);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Strays(a) if a.repair => {
            let done = inspector.repair_strays(&a.queue).await?;
            if a.json {
                print_json(&done)?;
            } else if done.is_empty() {
                outln!("no strays in queue {}", a.queue);
            } else {
                for r in &done {
                    let what = match r.action.as_str() {
                        "gone" => "gone meanwhile: forgotten".to_string(),
                        "resolved" => {
                            format!("back in the index of its state ({}): forgotten", r.detail)
                        }
                        "dead_lettered" => format!(
                            "was {}: now dead (schema_error); run it with `celeriac jobs retry`",
                            r.detail
                        ),
                        "reindexed" => format!(
                            "{}: back in its index (retention deletes it in time)",
                            r.detail
                        ),
                        "converted" => {
                            "a string: now a dead record holding it as its envelope (schema_error)"
                                .to_string()
                        }
                        "left" => {
                            format!("a Redis {}: left alone; delete the key by hand", r.detail)
                        }
                        other => other.to_string(),
                    };
                    outln!("{}: {}", escape(&r.id), escape(&what));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Strays(a) => {
            let strays = inspector.strays(&a.queue, a.limit).await?;
            if a.json {
                print_json(&strays)?;
            } else if strays.is_empty() {
                outln!("no strays in queue {}", a.queue);
            } else {
                let mut t = table(&["id", "what", "found in", "found", "noticed", "now"]);
                for s in &strays {
                    t.add_row(vec![
                        Cell::from(s.id.as_str()),
                        s.what.as_str().into(),
                        s.index.as_str().into(),
                        s.found.as_str().into(),
                        or_dash(s.noticed_at.as_deref()).into(),
                        free(s.now.as_str()),
                    ]);
                }
                outln!("{t}");
                outln!(
                    "settle them with: celeriac jobs strays --queue {} --repair",
                    a.queue
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Print per-id results; exit 1 when any id names no job.
fn report(out: &[Repair], json: bool, done: &str, unchanged: &str) -> CliResult {
    if json {
        print_json(&out)?;
    } else {
        for r in out {
            let id = escape(&r.id);
            match (&r.previous, r.changed) {
                (None, _) => outln!("{id}: no such job"),
                (Some(p), true) => outln!("{id}: {done} (was {})", escape(p)),
                (Some(p), false) => outln!("{id}: unchanged ({unchanged} {})", escape(p)),
            }
        }
    }
    if out.iter().any(|r| r.previous.is_none()) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
