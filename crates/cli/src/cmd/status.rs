//! `celeriac status`.

use crate::output::{
    escape, free, inspector, or_dash, outln, parse_duration, print_json, table, Cell, CliError,
    CliResult,
};
use celeriac_core::config::Config;
use celeriac_core::inspector::{BatchInfo, JobInfo};
use celeriac_core::JobState;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often --wait looks at the job.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Show one job: kind, queue, state, attempts, times, last error, result and the history of its
/// attempts; for a parent that created a batch of child jobs, the batch too: total, pending,
/// succeeded, dead, cancelled and when it completed, whatever id the parent gave the batch (a
/// batch whose parent has been deleted, or that is named by its own id, is shown alone). Exits 1 when there is no such job, 2 when the id names jobs in several queues and
/// --queue does not say which.
///
/// With --wait, returns once the job is succeeded (exit 0), dead or cancelled (exit 1), or
/// exits 1 when --timeout passes first; on a terminal the job's progress is shown meanwhile.
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = "Examples:
  celeriac status 0193b0a4-5c2e-7d41-8f0a-2b6f9e1c3d47
  celeriac status my-job-1 --queue mail
  celeriac status \"$id\" --wait --timeout 2m --json"
)]
pub struct Args {
    /// Job id.
    id: String,

    /// The job's queue (ids are unique per queue only) [default: the one queue holding the id].
    #[arg(long, value_name = "Q")]
    queue: Option<String>,

    /// Print JSON (fields documented in docs/cli.md).
    #[arg(long)]
    json: bool,

    /// Wait until the job finishes.
    #[arg(long)]
    wait: bool,

    /// With --wait: give up after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration, requires = "wait", value_name = "DURATION")]
    timeout: Duration,
}

pub async fn run(config: Config, args: Args) -> CliResult {
    let inspector = inspector(&config).await?;
    let deadline = Instant::now() + args.timeout;
    // While waiting on a terminal, the job's progress (if its handler reports one) is shown on
    // stderr as it changes.
    let live = args.wait && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut shown_progress: Option<serde_json::Value> = None;
    let job = loop {
        let job = inspector.job(&args.id, args.queue.as_deref()).await?;
        if live {
            let progress = job.as_ref().and_then(|j| j.progress.clone());
            if progress.is_some() && progress != shown_progress {
                eprint!(
                    "\rprogress: {}\x1b[K",
                    escape(&progress.as_ref().map(|p| p.to_string()).unwrap_or_default())
                );
                shown_progress = progress;
            }
        }
        let finished = job
            .as_ref()
            .and_then(|j| j.state.parse::<JobState>().ok())
            .is_some_and(JobState::is_final);
        if !args.wait || finished {
            if shown_progress.is_some() {
                eprintln!();
            }
            break job;
        }
        if Instant::now() >= deadline {
            if let Some(j) = &job {
                let batch = inspector.batch_of(j).await?;
                show(j, batch.as_ref(), args.json)?;
            }
            return Err(CliError::failed(anyhow::anyhow!(
                "job {} did not finish within {} (state: {})",
                args.id,
                humantime::format_duration(args.timeout),
                job.as_ref()
                    .map(|j| j.state.as_str())
                    .unwrap_or("not found")
            )));
        }
        tokio::time::sleep(WAIT_POLL).await;
    };
    let Some(job) = job else {
        if let Some(batch) = inspector.batch(&args.id, args.queue.as_deref()).await? {
            show_batch_alone(&args.id, &batch, args.json)?;
            return Ok(ExitCode::SUCCESS);
        }
        let place = match &args.queue {
            Some(q) => format!("in queue {q}"),
            None => "in any queue".into(),
        };
        return Err(CliError::failed(anyhow::anyhow!(
            "no job with id {:?} {place} (finished jobs are deleted after their retention period)",
            args.id
        )));
    };
    let batch = inspector.batch_of(&job).await?;
    show(&job, batch.as_ref(), args.json)?;
    if args.wait && job.state != JobState::Succeeded.as_str() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--json`: the job's fields, and `batch` when it created one.
#[derive(serde::Serialize)]
struct WithBatch<'a> {
    #[serde(flatten)]
    job: &'a JobInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<&'a BatchInfo>,
}

fn show(job: &JobInfo, batch: Option<&BatchInfo>, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(&WithBatch { job, batch });
    }
    let mut t = table(&["field", "value"]);
    let attempts = format!("{}/{}", job.attempts, job.max_attempts);
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    let whole = |v: Option<&str>| Cell::from(or_dash(v));
    let rows: [(&str, Cell); 14] = [
        ("id", whole(Some(&job.id))),
        ("kind", whole(Some(&job.kind))),
        ("queue", whole(Some(&job.queue))),
        ("state", whole(Some(&job.state))),
        ("attempts", whole(Some(&attempts))),
        ("created", whole(job.created_at.as_deref())),
        ("run at", whole(job.run_at.as_deref())),
        ("started", whole(job.started_at.as_deref())),
        ("finished", whole(job.finished_at.as_deref())),
        ("dead reason", whole(job.reason.as_deref())),
        ("last error", free(or_dash(job.last_error.as_deref()))),
        ("progress", free(or_dash(json(&job.progress).as_deref()))),
        ("result", free(or_dash(json(&job.result).as_deref()))),
        ("payload", free(job.payload.to_string())),
    ];
    for (name, value) in rows {
        t.add_row(vec![Cell::from(name), value]);
    }
    outln!("{t}");
    if !job.history.is_empty() {
        let mut h = table(&["#", "worker", "started", "finished", "outcome", "error"]);
        for a in &job.history {
            h.add_row(vec![
                Cell::from(
                    a.attempt
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                ),
                or_dash(a.worker.as_deref()).into(),
                or_dash(a.started_at.as_deref()).into(),
                or_dash(a.finished_at.as_deref()).into(),
                a.outcome.as_str().into(),
                free(or_dash(a.error.as_deref())),
            ]);
        }
        outln!("history:\n{h}");
    }
    if let Some(b) = batch {
        outln!("batch:\n{}", batch_table(b));
    }
    Ok(())
}

/// A batch of this id without a job of this id: its parent is gone (deleted after its
/// retention period), or gave the batch an id not its own (a broadcast's `broadcast_id`).
fn show_batch_alone(id: &str, batch: &BatchInfo, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(&serde_json::json!({ "id": id, "batch": batch }));
    }
    outln!(
        "no job {:?} (deleted after its retention period, or the batch's parent job has another id); the batch of that id:\n{}",
        id,
        batch_table(batch)
    );
    Ok(())
}

fn batch_table(b: &BatchInfo) -> crate::output::Table {
    let mut t = table(&["field", "value"]);
    let n = |v: u64| Cell::from(v.to_string());
    let rows: [(&str, Cell); 9] = [
        ("id", Cell::from(b.id.as_str())),
        ("queue", Cell::from(b.queue.as_str())),
        ("total", n(b.total)),
        ("pending", n(b.pending)),
        ("succeeded", n(b.succeeded)),
        ("dead", n(b.dead)),
        ("cancelled", n(b.cancelled)),
        ("created", Cell::from(or_dash(b.created_at.as_deref()))),
        (
            "completed at",
            Cell::from(or_dash(b.completed_at.as_deref())),
        ),
    ];
    for (name, value) in rows {
        t.add_row(vec![Cell::from(name), value]);
    }
    t
}
