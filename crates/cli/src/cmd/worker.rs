//! `celeriac worker`.

use crate::output::{CliError, CliResult};
use celeriac_core::config::{Config, LogFormat};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Run a worker until SIGTERM or SIGINT, then drain within `worker.shutdown_grace` (default
/// 25 s): in-flight jobs finish, the rest are handed back at once, and the process exits 0.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Queues to serve, comma-separated, fetched round-robin [default: from config, "default"].
    #[arg(long, value_delimiter = ',', value_name = "Q,…")]
    queues: Option<Vec<String>>,

    /// Handlers running at once [default: from config, 10].
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
}

pub async fn run(mut config: Config, args: Args) -> CliResult {
    if let Some(q) = args.queues {
        config.worker.queues = q;
    }
    if let Some(n) = args.concurrency {
        config.worker.concurrency = n;
    }
    config.validate().map_err(CliError::usage)?;
    init_logging(&config);

    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    let mut registry = celeriac_worker::Registry::new();
    celeriac_worker::handlers::register_all(&mut registry);
    let links = std::sync::Arc::new(celeriac_worker::handlers::links::Context::new(
        config.database_url.clone(),
        crate::output::broker(&config).await?,
        config.links.clone(),
    ));
    // Migrations run at start; a database that is down only delays links.check jobs (they
    // retry), never the worker's other kinds.
    if let Err(e) = links.open().await {
        tracing::warn!(
            database = %celeriac_core::config::redact_url(&config.database_url),
            error = %e,
            "the domain database is not available; links.check jobs will retry until it is"
        );
    }
    celeriac_worker::handlers::links::register(&mut registry, links);
    if let Some(dir) = std::env::var_os("CELERIAC_DRILL_LEDGER") {
        tracing::warn!(ledger = ?dir, "drill kinds enabled (drill.record, drill.abort): for fault-injection runs only");
        celeriac_worker::handlers::register_drills(&mut registry, dir.into())
            .map_err(|e| CliError::failed(anyhow::anyhow!("cannot open the drill ledger: {e}")))?;
    }
    celeriac_worker::run(config, registry, shutdown)
        .await
        .map_err(|e| CliError::failed(anyhow::anyhow!(e)))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn on_signal(shutdown: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}

pub(crate) fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
