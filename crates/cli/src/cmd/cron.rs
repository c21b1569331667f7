//! `celeriac cron`, `celeriac cron list`, `celeriac cron history NAME`.

use crate::domains;
use crate::output::{inspector, or_dash, outln as println, print_json, table, CliError, CliResult};
use crate::settings::Settings;
use celeriac_cron::scheduler;
use serde::Serialize;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Without a subcommand: run the scheduler until SIGTERM/SIGINT. Schedules come from
/// [[cron.schedules]] in the --config file (name, schedule, timezone, kind, payload, queue,
/// catch_up, catch_up_max, max_attempts, enabled); a bad expression, time zone or kind stops
/// it at start with the schedule's name.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Each schedule with its next runs (in its zone and UTC), last tick and last job's state.
    #[command(after_help = "Examples:
  celeriac --config prod.toml cron list
  celeriac --config prod.toml cron list --next 5 --json")]
    List {
        /// Next runs shown per schedule.
        #[arg(long, default_value_t = 3, value_name = "N")]
        next: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The last ticks of one schedule: tick time, job id and the job's state.
    #[command(
        after_help = "Exit codes: 0 listed, 1 no schedule of that name, or Redis unreachable.

Examples:
  celeriac --config prod.toml cron history nightly
  celeriac --config prod.toml cron history nightly --limit 5 --json"
    )]
    History {
        /// Schedule name.
        name: String,
        /// Most ticks shown (at most 100 are kept).
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct NextRun {
    local: String,
    utc: String,
}

#[derive(Serialize)]
struct ScheduleInfo {
    name: String,
    schedule: String,
    timezone: String,
    kind: String,
    queue: String,
    enabled: bool,
    catch_up: celeriac_cron::CatchUp,
    next_runs: Vec<NextRun>,
    last_tick: Option<String>,
    last_job_id: Option<String>,
    last_job_state: Option<String>,
}

#[derive(Serialize)]
struct Tick {
    tick: String,
    tick_utc: String,
    job_id: String,
    state: Option<String>,
}

pub async fn run(settings: Settings, args: Args) -> CliResult {
    let schedules =
        scheduler::schedules(&settings.cron, &domains::kinds()).map_err(CliError::usage)?;
    let config = settings.core().clone();
    match args.command {
        None => {
            crate::cmd::worker::init_logging(&settings.log);
            let shutdown = CancellationToken::new();
            tokio::spawn(crate::cmd::worker::on_signal(shutdown.clone()));
            let probe = celeriac_core::probe::Probe::new();
            let endpoint = CancellationToken::new();
            let _stop_endpoint = endpoint.clone().drop_guard();
            if !settings.http.listen.is_empty() {
                let queues = settings
                    .cron
                    .schedules
                    .iter()
                    .map(|s| s.queue.clone())
                    .collect();
                crate::http::serve(
                    &settings.http.listen,
                    probe.clone(),
                    crate::output::inspector(&config).await?,
                    queues,
                    endpoint.clone(),
                )
                .await
                .map_err(|e| {
                    CliError::failed(anyhow::anyhow!(
                        "cannot serve http.listen {}: {e}",
                        settings.http.listen
                    ))
                })?;
            }
            scheduler::run_with_probe(config, settings.cron, domains::kinds(), shutdown, probe)
                .await
                .map_err(|e| CliError::failed(anyhow::anyhow!(e)))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::List { next, json }) => {
            let inspector = inspector(&config).await?;
            let broker = crate::output::broker(&config).await?;
            let now = broker.redis_time_ms().await?;
            let mut out = Vec::new();
            for s in &schedules {
                let c = &s.config;
                let last = broker.cron_last(&c.queue, s.name()).await?;
                let state = match &last {
                    Some((_, id)) => inspector
                        .jobs_in(&c.queue, std::slice::from_ref(id))
                        .await?
                        .pop()
                        .flatten()
                        .map(|j| j.state),
                    None => None,
                };
                out.push(ScheduleInfo {
                    name: c.name.clone(),
                    schedule: c.schedule.clone(),
                    timezone: c.timezone.clone(),
                    kind: c.kind.clone(),
                    queue: c.queue.clone(),
                    enabled: c.enabled,
                    catch_up: c.catch_up,
                    next_runs: s
                        .upcoming(now, next)
                        .into_iter()
                        .map(|t| NextRun {
                            local: s.local_rfc3339(t),
                            utc: celeriac_core::time::rfc3339_ms(t),
                        })
                        .collect(),
                    last_tick: last.as_ref().map(|(t, _)| s.local_rfc3339(*t)),
                    last_job_id: last.map(|(_, id)| id),
                    last_job_state: state,
                });
            }
            if json {
                print_json(&out)?;
            } else if out.is_empty() {
                println!("no schedules: add [[cron.schedules]] to the config given with --config");
            } else {
                let mut t = table(&[
                    "name",
                    "schedule",
                    "zone",
                    "kind",
                    "queue",
                    "next run (zone / UTC)",
                    "last tick",
                    "last job",
                ]);
                for s in &out {
                    let next = s
                        .next_runs
                        .first()
                        .map(|n| format!("{} / {}", n.local, n.utc))
                        .unwrap_or_else(|| "-".into());
                    t.add_row(vec![
                        if s.enabled {
                            s.name.clone()
                        } else {
                            format!("{} (disabled)", s.name)
                        },
                        s.schedule.clone(),
                        s.timezone.clone(),
                        s.kind.clone(),
                        s.queue.clone(),
                        next,
                        or_dash(s.last_tick.as_deref()),
                        or_dash(s.last_job_state.as_deref()),
                    ]);
                }
                println!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::History { name, limit, json }) => {
            let Some(s) = schedules.iter().find(|s| s.name() == name) else {
                return Err(CliError::failed(anyhow::anyhow!(
                    "no schedule named {name:?} in the configuration (known: {})",
                    schedules
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let broker = crate::output::broker(&config).await?;
            let ticks = broker.cron_history(&s.config.queue, &name, limit).await?;
            let ids: Vec<String> = ticks.iter().map(|(_, id)| id.clone()).collect();
            let jobs = inspector(&config)
                .await?
                .jobs_in(&s.config.queue, &ids)
                .await?;
            let out: Vec<Tick> = ticks
                .iter()
                .zip(jobs)
                .map(|((t, id), job)| Tick {
                    tick: s.local_rfc3339(*t),
                    tick_utc: celeriac_core::time::rfc3339_ms(*t),
                    job_id: id.clone(),
                    state: job.map(|j| j.state),
                })
                .collect();
            if json {
                print_json(&out)?;
            } else if out.is_empty() {
                println!("schedule {name} has not enqueued any tick yet");
            } else {
                let mut t = table(&["tick", "job id", "state"]);
                for r in &out {
                    t.add_row(vec![
                        r.tick.clone(),
                        r.job_id.clone(),
                        r.state
                            .clone()
                            .unwrap_or_else(|| "(deleted by retention)".into()),
                    ]);
                }
                println!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
