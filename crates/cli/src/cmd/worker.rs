//! `celeriac worker`.

use crate::domains;
use crate::output::{CliError, CliResult};
use crate::settings::{LogConfig, LogFormat, Settings};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Run a worker until SIGTERM or SIGINT, then drain within `worker.shutdown_grace` (default
/// 25 s): in-flight jobs finish, the rest are handed back at once, and the process exits 0. A
/// second SIGTERM or SIGINT ends the grace period at once.
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
    let shutdown = celeriac_worker::Shutdown::new();
    tokio::spawn(on_signals(
        shutdown.drain.clone(),
        Some(shutdown.now.clone()),
    ));
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

/// Drain on the first SIGTERM or SIGINT (`celeriac cron` too); a second one cuts the drain
/// short: see [`on_signals`].
pub(crate) async fn on_signal(shutdown: CancellationToken) {
    on_signals(shutdown, None).await
}

/// The first SIGTERM or SIGINT cancels `drain`. The second cancels `now` — a worker then stops
/// the handlers still running and hands their jobs back at once instead of waiting out its
/// grace period — or, without `now`, ends the process at once. A third ends the process at
/// once whatever is still being recorded (those jobs' leases expire and they run again).
pub(crate) async fn on_signals(drain: CancellationToken, now: Option<CancellationToken>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM and SIGINT; stop this process with SIGKILL");
        return;
    };
    let first = next_signal(&mut term, &mut int).await;
    tracing::info!("{first} received: draining; send SIGTERM or SIGINT again to stop at once");
    drain.cancel();
    let second = next_signal(&mut term, &mut int).await;
    let Some(now) = now else {
        tracing::warn!("{second} received, the second signal: exiting at once");
        std::process::exit(0);
    };
    tracing::warn!(
        "{second} received, the second signal: stopping the running handlers and handing their jobs back now, then exiting; a third signal exits without waiting for Redis to record them"
    );
    now.cancel();
    let third = next_signal(&mut term, &mut int).await;
    tracing::error!("{third} received, the third signal: exiting now; jobs whose hand-back was not recorded run again when their leases expire");
    std::process::exit(1);
}

/// The name of the next SIGTERM or SIGINT received.
async fn next_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
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
