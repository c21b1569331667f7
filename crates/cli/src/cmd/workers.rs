//! `celeriac workers`.

use crate::output::{inspector, or_dash, outln, print_json, table, CliResult};
use celeriac_core::config::Config;
use std::process::ExitCode;

/// Live workers (a worker's record expires three heartbeats after it stops).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  celeriac workers
  celeriac workers --json | jq -r '.[] | \"\\(.id) \\(.in_flight)\"'")]
pub struct Args {
    /// Print JSON (fields documented in docs/cli.md).
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Config, args: Args) -> CliResult {
    let workers = inspector(&config).await?.workers().await?;
    if args.json {
        print_json(&workers)?;
        return Ok(ExitCode::SUCCESS);
    }
    if workers.is_empty() {
        outln!("no live workers (start one with `celeriac worker`)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "id",
        "host",
        "pid",
        "queues",
        "concurrency",
        "in flight",
        "started",
        "last heartbeat",
    ]);
    for w in &workers {
        t.add_row(vec![
            w.id.clone(),
            w.host.clone(),
            w.pid.to_string(),
            w.queues.join(","),
            w.concurrency.to_string(),
            w.in_flight.to_string(),
            or_dash(w.started_at.as_deref()),
            or_dash(w.last_heartbeat.as_deref()),
        ]);
    }
    outln!("{t}");
    Ok(ExitCode::SUCCESS)
}
