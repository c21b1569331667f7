//! `celeriac enqueue`.

use crate::output::{parse_duration, print_json, CliError, CliResult};
use celeriac_core::config::Config;
use celeriac_core::time::{parse_rfc3339_ms, TimeError};
use celeriac_producer::{NewJob, Producer};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Jobs sent per call when --count is large (progress is shown between calls).
const BULK_CHUNK: usize = 10_000;

/// Enqueue a job of KIND and print its id. With --count N, enqueue N copies in bulk and print
/// every id, one per line.
///
/// Examples:
///   celeriac enqueue noop
///   celeriac enqueue sleep --payload '{"ms": 500}' --queue slow --delay 30s
///   celeriac enqueue fail --payload '{"times": 2}' --max-attempts 5
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Job kind, e.g. noop, sleep, fail, links.check.
    kind: String,

    /// Payload as JSON.
    #[arg(long, default_value = "{}", value_name = "JSON")]
    payload: String,

    /// Queue.
    #[arg(long, default_value = celeriac_core::config::DEFAULT_QUEUE, value_name = "Q")]
    queue: String,

    /// Run no earlier than this long from now (e.g. 30s, 5m); must end by year 9999.
    #[arg(long, value_parser = parse_duration, conflicts_with = "at", value_name = "DURATION")]
    delay: Option<Duration>,

    /// Run no earlier than this RFC 3339 time, with Z or an offset (2026-12-01T08:00:00Z,
    /// 2026-12-01T08:00:00+01:00); a past time runs now; at most 9999-12-31T23:59:59.999Z.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,

    /// Attempts before the job is dead [default: the kind's policy].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: Option<u32>,

    /// Per-attempt timeout (e.g. 30s) [default: the kind's policy].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    timeout: Option<Duration>,

    /// Idempotency key: while it lives, enqueueing with it again returns the first job's id.
    #[arg(long, value_name = "KEY", conflicts_with = "count")]
    idempotency_key: Option<String>,

    /// Job id to use instead of a generated one (unique within its queue).
    #[arg(long, value_name = "ID", conflicts_with = "count")]
    id: Option<String>,

    /// Enqueue N copies in bulk.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    count: u64,

    /// Print a JSON array of {"id", "created"} instead of bare ids.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Config, args: Args) -> CliResult {
    let payload: serde_json::Value = serde_json::from_str(&args.payload)
        .map_err(|e| CliError::usage(anyhow::anyhow!("--payload is not valid JSON: {e}")))?;
    // A time before 1970 is in the past: the job runs now, like any past time.
    let run_at_ms = match &args.at {
        Some(at) => Some(parse_at(at)?.max(0) as u64),
        None => None,
    };
    let mut template = NewJob::new(&args.kind, payload).queue(&args.queue);
    if let Some(d) = args.delay {
        template = template.delay(d);
    }
    if let Some(ms) = run_at_ms {
        template = template.run_at_ms(ms);
    }
    if let Some(n) = args.max_attempts {
        template = template.max_attempts(n);
    }
    if let Some(t) = args.timeout {
        template = template.timeout(t);
    }
    if let Some(k) = &args.idempotency_key {
        template = template.idempotency_key(k);
    }
    if let Some(id) = &args.id {
        template = template.id(id);
    }

    let broker = crate::output::broker(&config).await?;
    let producer = Producer::with_broker(broker.clone(), &config);
    let total = args.count as usize;
    let progress = total > BULK_CHUNK && std::io::stderr().is_terminal();
    let mut results = Vec::with_capacity(total.min(1_000_000));
    let mut stdout = std::io::stdout().lock();
    let mut done = 0;
    while done < total {
        let n = (total - done).min(BULK_CHUNK);
        let batch = match producer.enqueue_many(vec![template.clone(); n]).await {
            Ok(batch) => batch,
            Err(e @ celeriac_core::Error::RunAtOutOfRange { .. }) => {
                let flag = match (&args.at, args.delay) {
                    (Some(at), _) => format!("--at {at}"),
                    (None, d) => format!(
                        "--delay {}",
                        humantime::format_duration(d.unwrap_or_default())
                    ),
                };
                return Err(CliError::usage(anyhow::anyhow!("{flag}: {e}")));
            }
            Err(e) => return Err(e.into()),
        };
        done += n;
        if args.json {
            results.extend(batch);
        } else {
            for e in &batch {
                let _ = writeln!(stdout, "{}", e.id);
                if !e.created {
                    eprintln!("note: job {} already existed (same id or idempotency key); nothing new was enqueued", e.id);
                }
            }
        }
        if progress {
            eprint!("\renqueued {done}/{total}");
        }
    }
    if progress {
        eprintln!();
    }
    if args.json {
        drop(stdout);
        let out: Vec<_> = results
            .iter()
            .map(|e| serde_json::json!({"id": e.id, "created": e.created}))
            .collect();
        print_json(&out)?;
    }
    if let Some(id) = &args.id {
        other_queues_note(&broker, &config, id, &args.queue).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--at` as Unix ms, or a usage error that shows how to write it.
fn parse_at(at: &str) -> Result<i64, CliError> {
    parse_rfc3339_ms(at).map_err(|e| {
        CliError::usage(match e {
            TimeError::NoZone => anyhow::anyhow!(
                "--at {at:?} has no time zone, so which instant it means is unknown; add one: {at}Z for UTC, or an offset from UTC such as {at}+01:00 or {at}-05:00"
            ),
            TimeError::Invalid(why) => anyhow::anyhow!(
                "--at {at:?} is not an RFC 3339 time ({why}); write e.g. 2026-12-01T08:00:00Z (UTC) or 2026-12-01T08:00:00+01:00"
            ),
        })
    })
}

/// Tell the operator when the id they chose also names a job in another queue: commands that
/// take an id then need --queue.
async fn other_queues_note(broker: &celeriac_core::Broker, config: &Config, id: &str, queue: &str) {
    let inspector = celeriac_core::inspector::Inspector::new(broker.clone(), config.clone());
    let Ok(queues) = inspector.locate_all(id).await else {
        return;
    };
    let others: Vec<&str> = queues
        .iter()
        .map(String::as_str)
        .filter(|q| *q != queue)
        .collect();
    if !others.is_empty() {
        eprintln!(
            "note: id {} also names a job in queue {}; give --queue {queue} to `celeriac status` and `celeriac jobs retry|cancel`",
            id,
            others.join(", ")
        );
    }
}
