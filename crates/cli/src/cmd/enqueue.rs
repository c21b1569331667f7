//! `celeriac enqueue`.

use crate::output::{escape, parse_duration, CliError, CliResult};
use celeriac_core::broker::{Enqueued, PartialEnqueue};
use celeriac_core::config::Config;
use celeriac_core::time::{parse_rfc3339_ms, TimeError};
use celeriac_producer::{NewJob, Producer};
use std::io::{BufWriter, IsTerminal, Stdout, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Jobs sent per call when --count is large (ids are printed and progress shown between calls,
/// so memory stays bounded whatever the count).
const BULK_CHUNK: usize = 10_000;

/// Enqueue a job of KIND and print its id. With --count N, enqueue N copies in bulk and print
/// every id, one per line, as they are committed.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 enqueued; 1 Redis failed (with --count, the ids printed \
are exactly the jobs enqueued, and the message says how many and how to enqueue the rest); 2 bad \
usage (payload, time, queue, kind).

Examples:
  celeriac enqueue noop
  celeriac enqueue sleep --payload '{\"ms\": 500}' --queue slow --delay 30s
  celeriac enqueue noop --at 2026-12-01T08:00:00+01:00
  celeriac enqueue fail --payload '{\"times\": 2}' --max-attempts 5
  celeriac enqueue mail.welcome --payload '{\"user_id\": 42}' --idempotency-key welcome-42
  celeriac enqueue noop --count 100000 --queue bench > ids.txt"
)]
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
    let mut template = NewJob::new(&args.kind, payload).queue(&args.queue);
    if let Some(d) = args.delay {
        template = template.delay(d);
    }
    if let Some(at) = &args.at {
        // A time before 1970 is in the past: the job runs now, like any past time.
        template = template.run_at_ms(parse_at(at)?.max(0) as u64);
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
    let mut out = Ids::new(args.json);
    let mut failure = None;
    while out.committed < total {
        let n = (total - out.committed).min(BULK_CHUNK);
        let batch = match producer.enqueue_many(vec![template.clone(); n]).await {
            Ok(batch) => batch,
            Err(celeriac_core::Error::PartialEnqueue(partial)) => {
                let PartialEnqueue {
                    results,
                    unknown,
                    error,
                } = *partial;
                out.print(results.into_iter().flatten().collect());
                failure = Some((error, unknown.len()));
                break;
            }
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
            Err(e) if out.committed == 0 => return Err(e.into()),
            Err(e) => {
                failure = Some((e, 0));
                break;
            }
        };
        out.print(batch);
        if progress {
            eprint!("\renqueued {}/{total}", out.committed);
        }
    }
    if progress {
        eprintln!();
    }
    out.finish();
    let Some((error, unknown)) = failure else {
        if let Some(id) = &args.id {
            other_queues_note(&broker, &config, id, &args.queue).await;
        }
        return Ok(ExitCode::SUCCESS);
    };
    Err(CliError::failed(stopped(
        out.committed,
        unknown,
        total,
        error,
    )))
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

/// The message of a bulk enqueue that stopped part way: what is in Redis, and how to go on.
fn stopped(
    committed: usize,
    unknown: usize,
    total: usize,
    error: celeriac_core::Error,
) -> anyhow::Error {
    let rest = total - committed;
    let mut text = format!(
        "enqueue stopped after {committed} of {total} jobs: the {committed} ids printed are the jobs enqueued"
    );
    if unknown > 0 {
        text.push_str(&format!(
            "; {unknown} more were sent but Redis did not answer, so they may or may not be enqueued (their ids were not printed)"
        ));
    }
    text.push_str(&format!("; the other {} were not enqueued", rest - unknown));
    text.push_str(&format!(". Cause: {error}. To enqueue the rest once Redis is healthy, run the same command with --count {}", rest - unknown));
    if unknown > 0 {
        text.push_str(&format!(
            ", or --count {rest} if `celeriac queues` shows that the {unknown} unanswered jobs are not there"
        ));
    }
    anyhow::anyhow!(text)
}

/// Tell the operator when the id they chose also names a job in another queue: commands that
/// take an id then need --queue.
async fn other_queues_note(broker: &celeriac_core::Broker, config: &Config, id: &str, queue: &str) {
    let _ = config;
    let inspector = crate::output::inspector_on(broker.clone());
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
            escape(id),
            others.join(", ")
        );
    }
}

/// Ids printed as they are committed: one per line, or one JSON array streamed element by
/// element (the text `serde_json::to_string_pretty` gave for the whole array, keys sorted), so
/// memory stays bounded whatever --count is.
struct Ids {
    json: bool,
    out: BufWriter<Stdout>,
    /// Ids printed.
    committed: usize,
    /// Jobs committed in Redis (printed or being printed).
    in_redis: usize,
}

impl Ids {
    fn new(json: bool) -> Ids {
        Ids {
            json,
            out: BufWriter::with_capacity(1 << 16, std::io::stdout()),
            committed: 0,
            in_redis: 0,
        }
    }

    fn print(&mut self, batch: Vec<Enqueued>) {
        self.in_redis += batch.len();
        for e in batch {
            let written = if self.json {
                let sep = if self.committed == 0 { "[\n" } else { ",\n" };
                let id = serde_json::Value::String(e.id.clone());
                write!(
                    self.out,
                    "{sep}  {{\n    \"created\": {},\n    \"id\": {id}\n  }}",
                    e.created
                )
            } else {
                writeln!(self.out, "{}", e.id)
            };
            if let Err(err) = written {
                self.failed(&err);
            }
            if !e.created {
                eprintln!(
                    "note: job {} already existed (same id or idempotency key); nothing new was enqueued",
                    escape(&e.id)
                );
            }
            self.committed += 1;
        }
        if let Err(err) = self.out.flush() {
            self.failed(&err);
        }
    }

    /// Close the JSON array (when one was opened).
    fn finish(&mut self) {
        let end = if self.json && self.committed > 0 {
            writeln!(self.out, "\n]")
        } else {
            Ok(())
        };
        if let Err(err) = end.and_then(|()| self.out.flush()) {
            self.failed(&err);
        }
    }

    /// Standard output failed (a closed pipe, a full disk) while jobs were being enqueued: say
    /// how many are in Redis, since the reader did not see all their ids, and exit 1.
    fn failed(&self, err: &std::io::Error) -> ! {
        eprintln!(
            "error: cannot write to standard output ({err}) after {} jobs were enqueued; not all their ids were printed, and no more jobs were sent",
            self.in_redis
        );
        std::process::exit(1)
    }
}
