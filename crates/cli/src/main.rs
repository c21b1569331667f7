//! `celeriac`: one binary for every role. This file parses flags, loads the configuration and
//! calls the subcommand; the work is done in the libraries.

mod cmd;
mod domains;
mod http;
mod output;
mod settings;

use clap::{Parser, Subcommand};
use output::CliError;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes and examples shown by `celeriac --help`.
const TOP_AFTER_HELP: &str = "Exit codes:
  0  success
  1  not found or failed: no such job; status --wait ended dead or cancelled, or timed out;
     Redis unreachable or a Redis error; a bulk enqueue stopped part way
  2  bad usage: unknown flag, malformed argument, conflicting flags, invalid configuration;
     a job id that names jobs in several queues without --queue

Examples:
  celeriac worker --queues mail,default --concurrency 32
  celeriac enqueue noop --delay 30s
  celeriac status 0193b0a4-5c2e-7d41-8f0a-2b6f9e1c3d47 --wait
  celeriac jobs list --queue default --state dead
  celeriac --redis-url redis://redis:6379 queues --json

Each command has --help with its own examples; docs/cli.md documents every JSON field.";

/// Heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Celeriac, background jobs on Redis: worker, cron, enqueue, status, jobs, queues, workers,
/// links, verification, onebot, fanout, migrate, health.
#[derive(Debug, Parser)]
#[command(
    name = "celeriac",
    version,
    long_about = None,
    propagate_version = true,
    after_help = TOP_AFTER_HELP
)]
struct Cli {
    /// Redis URL (redis://[user:password@]host:port[/db], or rediss:// for TLS). Overrides the
    /// config file and CELERIAC_REDIS_URL.
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL)]
    redis_url: Option<String>,

    /// TOML configuration layered over the built-in defaults (see config/default.toml).
    #[arg(long, global = true, env = "CELERIAC_CONFIG", value_name = "PATH", help_heading = GLOBAL)]
    config: Option<PathBuf>,

    /// Key prefix of every Celeriac key in Redis.
    #[arg(long, global = true, value_name = "PREFIX", help_heading = GLOBAL)]
    prefix: Option<String>,

    /// Domain database: sqlite://PATH or postgres://USER@HOST:PORT/DB. Overrides the config
    /// file and CELERIAC_DATABASE_URL.
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL)]
    database_url: Option<String>,

    /// Log format of worker and cron: text or json.
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"], help_heading = GLOBAL)]
    log_format: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a worker: fetch jobs from the queues and run their handlers until SIGTERM/SIGINT.
    #[command(
        after_help = "Exit codes: 0 after a clean drain, 1 Redis unreachable at start, 2 \
invalid configuration.

Examples:
  celeriac worker
  celeriac worker --queues mail,default --concurrency 32
  CELERIAC_WORKER__LEASE=60s celeriac --config prod.toml --log-format json worker"
    )]
    Worker(cmd::worker::Args),
    /// Enqueue a job (or --count N copies) and print each new id on its own line.
    Enqueue(cmd::enqueue::Args),
    /// Show one job: state, attempts, times, last error, result and attempt history.
    Status(cmd::status::Args),
    /// List, retry, cancel and purge jobs.
    #[command(
        subcommand,
        after_help = "Examples:
  celeriac jobs list --queue default --state dead
  celeriac jobs retry --all-dead --queue default
  celeriac jobs cancel 0193b0a4-5c2e-7d41-8f0a-2b6f9e1c3d47
  celeriac jobs purge --queue default --state succeeded"
    )]
    Jobs(cmd::jobs::Command),
    /// Per-queue counts by state, oldest pending age, and last-minute throughput.
    Queues(cmd::queues::Args),
    /// Live workers: id, host, pid, queues, concurrency, jobs in flight, heartbeat.
    Workers(cmd::workers::Args),
    /// Run the periodic scheduler ([[cron.schedules]] in the config), or list schedules and
    /// their recent ticks. Any number of replicas may run: each tick is enqueued once.
    #[command(after_help = "Examples:
  celeriac --config prod.toml cron
  celeriac --config prod.toml cron list --next 5
  celeriac --config prod.toml cron history nightly --json")]
    Cron(cmd::cron::Args),
    /// Friend links checked by the links.check job: add, list, remove, import; check runs and
    /// their per-link results.
    #[command(
        subcommand,
        after_help = "Examples:
  celeriac links add --name Alice --url https://alice.example/friends
  celeriac links import friends.csv
  celeriac links list
  celeriac links results --problems"
    )]
    Links(cmd::links::Command),
    /// Create or upgrade the domain database (database_url).
    #[command(after_help = "Examples:
  celeriac migrate
  celeriac --database-url postgres://celeriac@db:5432/celeriac migrate")]
    Migrate(cmd::migrate::Args),
    /// Ask a running worker's or scheduler's health endpoint ([http] listen); exit 0 on 200.
    #[command(
        after_help = "Exit codes: 0 the endpoint answered 200, 1 any other answer, no answer \
within --timeout, or a malformed --url.

Examples:
  celeriac health
  celeriac health --url http://127.0.0.1:9464/readyz --timeout 2s"
    )]
    Health(cmd::health::Args),
    /// QQ group verification: members who must answer a code, reminded and kicked by scans.
    #[command(
        subcommand,
        after_help = "Examples:
  celeriac verification list --status pending
  celeriac verification groups
  celeriac verification member 100200300 123456789
  celeriac verification stats --json
  celeriac verification scan --group 100200300"
    )]
    Verification(cmd::verification::Command),
    /// OneBot v11 events: receive them by HTTP POST and enqueue the jobs the domains want.
    #[command(
        subcommand,
        after_help = "Examples:
  celeriac onebot receive --listen 127.0.0.1:5701"
    )]
    Onebot(cmd::onebot::Command),
    /// Message fan-out: topics and subscribers (webhooks, QQ users and groups), broadcasts with
    /// one independently retried delivery per recipient, and their results.
    #[command(
        subcommand,
        after_help = "Examples:
  celeriac fanout subscribe news --webhook https://hooks.example.com/celeriac
  celeriac fanout send news --message \"release 1.2 is out\" --wait
  celeriac fanout status \"$id\" --json
  celeriac fanout retry-failed \"$id\""
    )]
    Fanout(cmd::fanout::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match load_settings(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    output::set_policy(&settings.worker);
    let config = settings.core().clone();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Worker(_) => cmd::worker::run(settings).await,
            Command::Enqueue(args) => cmd::enqueue::run(config, args).await,
            Command::Status(args) => cmd::status::run(config, args).await,
            Command::Jobs(command) => cmd::jobs::run(config, command).await,
            Command::Queues(args) => cmd::queues::run(config, args).await,
            Command::Workers(args) => cmd::workers::run(config, args).await,
            Command::Cron(args) => cmd::cron::run(settings, args).await,
            Command::Links(command) => cmd::links::run(settings, command).await,
            Command::Migrate(args) => cmd::migrate::run(settings, args).await,
            Command::Health(args) => cmd::health::run(args).await,
            Command::Verification(command) => cmd::verification::run(settings, command).await,
            Command::Onebot(command) => cmd::onebot::run(settings, command).await,
            Command::Fanout(command) => cmd::fanout::run(settings, command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(CliError { code, error }) => {
            eprintln!("error: {error}");
            ExitCode::from(code)
        }
    }
}

/// Every layer, with the global flags and the worker's own flags on top.
fn load_settings(cli: &Cli) -> Result<settings::Settings, celeriac_core::Error> {
    let mut flags: Vec<(&str, toml::Value)> = Vec::new();
    if let Some(url) = &cli.redis_url {
        flags.push(("redis_url", url.as_str().into()));
    }
    if let Some(url) = &cli.database_url {
        flags.push(("database_url", url.as_str().into()));
    }
    if let Some(prefix) = &cli.prefix {
        flags.push(("prefix", prefix.as_str().into()));
    }
    if let Some(format) = &cli.log_format {
        flags.push(("log.format", format.as_str().into()));
    }
    if let Command::Worker(args) = &cli.command {
        args.flags(&mut flags);
    }
    settings::Settings::load(cli.config.as_deref(), std::env::vars(), &flags)
}
