//! `celeriac queues`.

use crate::output::{escape, human_ms, inspector, outln, print_json, table, CliResult};
use celeriac_core::config::Config;
use celeriac_core::JobState;
use std::process::ExitCode;

/// Per queue: jobs in each state, age of the oldest pending job, and jobs succeeded and
/// attempts failed in the last minute.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  celeriac queues
  celeriac queues --json | jq '.[] | {queue, pending: .states.pending}'")]
pub struct Args {
    /// Print JSON (fields documented in docs/cli.md).
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Config, args: Args) -> CliResult {
    let broker = crate::output::broker(&config).await?;
    if let Some(loss) = broker.data_loss().await? {
        eprintln!(
            "warning: Redis lost its data: worker {} found the dataset replaced at {}; jobs stored before then are gone (delete the key {} once handled)",
            escape(loss["worker"].as_str().unwrap_or("?")),
            escape(loss["detected_at"].as_str().unwrap_or("?")),
            broker.keys().data_loss()
        );
    }
    let queues = inspector(&config).await?.queues().await?;
    if args.json {
        print_json(&queues)?;
        return Ok(ExitCode::SUCCESS);
    }
    // A member of P:queues that is not a queue name was reported on stderr; no row for it.
    let queues: Vec<_> = queues.into_iter().filter(|q| q.skipped.is_none()).collect();
    if queues.is_empty() {
        outln!("no queues yet (a queue appears with its first job or worker)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec!["queue"];
    header.extend(JobState::ALL.iter().map(|s| s.as_str()));
    header.extend(["oldest pending", "ok/1m", "failed/1m"]);
    let mut t = table(&header);
    for q in &queues {
        let mut row = vec![q.queue.clone()];
        row.extend(
            JobState::ALL
                .iter()
                .map(|s| q.states.get(s.as_str()).copied().unwrap_or(0).to_string()),
        );
        row.push(
            q.oldest_pending_age_ms
                .map(human_ms)
                .unwrap_or_else(|| "-".into()),
        );
        row.push(q.processed_last_minute.to_string());
        row.push(q.failed_last_minute.to_string());
        t.add_row(row);
    }
    outln!("{t}");
    for q in queues.iter().filter(|q| q.strays > 0) {
        outln!(
            "queue {}: {} strays; list and settle them with celeriac jobs strays --queue {}",
            q.queue,
            q.strays,
            q.queue
        );
    }
    Ok(ExitCode::SUCCESS)
}
