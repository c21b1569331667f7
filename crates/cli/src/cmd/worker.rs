//! `celeriac worker`.

use crate::domains;
use crate::output::{CliError, CliResult};
use crate::settings::{LogConfig, LogFormat, Settings};
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

impl Args {
    /// These flags as configuration layered over everything else.
    pub fn flags(&self, flags: &mut Vec<(&'static str, toml::Value)>) {
        if let Some(q) = &self.queues {
            let list = q.iter().map(|s| toml::Value::from(s.as_str())).collect();
            flags.push(("worker.queues", toml::Value::Array(list)));
        }
        if let Some(n) = self.concurrency {
            flags.push(("worker.concurrency", toml::Value::Integer(n as i64)));
        }
    }
}

pub async fn run(settings: Settings) -> CliResult {
    init_logging(&settings.log);
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    let mut registry = celeriac_worker::Registry::new();
    celeriac_worker::kinds::register_all(&mut registry);
    // Domains open the database and build HTTP clients only when a job needs them.
    let context = domains::Context::new(
        crate::output::broker(settings.core()).await?,
        settings.core(),
        &settings.db.database_url,
    );
    domains::register(&mut registry, &context, &settings.domains);
    if let Some(dir) = std::env::var_os("CELERIAC_DRILL_LEDGER") {
        tracing::warn!(ledger = ?dir, "drill kinds enabled (drill.record, drill.abort): for fault-injection runs only");
        celeriac_worker::kinds::register_drills(&mut registry, dir.into())
            .map_err(|e| CliError::failed(anyhow::anyhow!("cannot open the drill ledger: {e}")))?;
    }
    let probe = celeriac_worker::Probe::new();
    // The endpoint outlives the drain: /readyz says 503 while the worker drains.
    let endpoint = CancellationToken::new();
    let _stop_endpoint = endpoint.clone().drop_guard();
    if !settings.http.listen.is_empty() {
        crate::http::serve(
            &settings.http.listen,
            probe.clone(),
            crate::output::inspector(settings.core()).await?,
            settings.worker.worker.queues.clone(),
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
    celeriac_worker::run_with_probe(settings.worker, registry, shutdown, probe)
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

pub(crate) fn init_logging(log: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
