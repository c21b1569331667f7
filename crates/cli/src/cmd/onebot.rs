//! `celeriac onebot receive`: the HTTP endpoint a OneBot v11 implementation (NapCat, go-cqhttp,
//! Lagrange.OneBot) posts its events to. Each event the domains want becomes a job, whose id
//! is derived from the event: a duplicate delivery enqueues nothing new. The answer is always
//! quick (204, no quick operation): the work happens in the workers. What became of each
//! event (enqueued, duplicate, ignored, unknown type, bad signature, malformed) is counted in
//! Redis; `celeriac onebot stats` prints the counts.

use crate::domains::{self, Configs};
use crate::output::{CliError, CliResult};
use crate::settings::Settings;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use celeriac_core::connection::Conn;
use celeriac_onebot::{verify_signature, Event, EventCounts, Received, Secret, SIGNATURE_HEADER};
use celeriac_producer::{NewJob, Producer};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Largest event body accepted.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// OneBot v11 events in, jobs out.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the endpoint OneBot posts events to (HTTP POST reporting), enqueueing a job for
    /// each event a domain wants (joins, leaves, codes sent to the bot), until SIGTERM/SIGINT.
    ///
    /// With onebot.secret set (CELERIAC_ONEBOT__SECRET), an event without a valid X-Signature
    /// is refused (401). Point the implementation's HTTP POST URL at http://ADDR/ (any path).
    #[command(
        verbatim_doc_comment,
        after_help = "Exit codes: 0 after SIGTERM/SIGINT, 1 the address cannot be bound or Redis is \
unreachable at start, 2 invalid configuration.

Examples:
  celeriac onebot receive --listen 127.0.0.1:5701
  CELERIAC_ONEBOT__SECRET=… celeriac --config prod.toml onebot receive --listen 0.0.0.0:5701"
    )]
    Receive(ReceiveArgs),
    /// What became of the events every receiver got since the counters began (one Redis
    /// hash, `P:onebot:events`): enqueued, duplicate, ignored, unknown event types, bad
    /// signatures, malformed bodies, not enqueued.
    #[command(after_help = "Examples:
  celeriac onebot stats
  celeriac onebot stats --json")]
    Stats(StatsArgs),
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Print JSON: {\"enqueued\": N, …}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReceiveArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "CELERIAC_ONEBOT_LISTEN",
        default_value = "127.0.0.1:5701",
        value_name = "ADDR"
    )]
    listen: String,
}

pub async fn run(settings: Settings, command: Command) -> CliResult {
    let args = match command {
        Command::Receive(args) => args,
        Command::Stats(args) => return stats(&settings, args).await,
    };
    crate::cmd::worker::init_logging(&settings.log);
    let broker = crate::output::broker(settings.core()).await?;
    let counts = EventCounts::new(broker.connection(), broker.keys().prefix());
    let producer = Producer::with_broker(broker, settings.core());
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| {
            CliError::failed(anyhow::anyhow!(
                "cannot listen on {}: {e}; is another process using it?",
                args.listen
            ))
        })?;
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::cmd::worker::on_signal(shutdown.clone()));
    let address = listener
        .local_addr()
        .map_err(|e| CliError::failed(anyhow::anyhow!(e)))?;
    info!(%address, signed = settings.domains.onebot.secret.is_some(), "receiving OneBot events");
    let app = router(Receiver {
        producer,
        counts,
        secret: settings.domains.onebot.secret.clone(),
        configs: settings.domains.clone(),
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| CliError::failed(anyhow::anyhow!("the event receiver failed: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// What the endpoint needs.
pub struct Receiver {
    /// Enqueues the jobs.
    pub producer: Producer,
    /// Counts what became of each event.
    pub counts: EventCounts<Conn>,
    /// `onebot.secret`: events must be signed with it.
    pub secret: Option<Secret>,
    /// Every domain's settings (which events each wants).
    pub configs: Configs,
}

/// The endpoint: `POST` on any path.
pub fn router(receiver: Receiver) -> Router {
    Router::new()
        .fallback(axum::routing::post(receive))
        .layer(DefaultBodyLimit::max(MAX_EVENT_BYTES))
        .with_state(Arc::new(receiver))
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let (status, what) = classify(&r, &headers, &body).await;
    if let Err(e) = r.counts.add(what).await {
        warn!(error = %e, outcome = what.as_str(), "the event was not counted");
    }
    status
}

/// Answer one delivery, and say what became of it.
async fn classify(r: &Receiver, headers: &HeaderMap, body: &Bytes) -> (StatusCode, Received) {
    if let Some(secret) = &r.secret {
        let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        if let Err(e) = verify_signature(secret.expose().as_bytes(), body, header) {
            warn!(error = %e, "OneBot event refused");
            return (StatusCode::UNAUTHORIZED, Received::BadSignature);
        }
    }
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            warn!(error = %e, "OneBot event refused: not JSON");
            return (StatusCode::BAD_REQUEST, Received::Malformed);
        }
    };
    let event = match Event::from_value(value.clone()) {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "OneBot event refused");
            return (StatusCode::BAD_REQUEST, Received::Malformed);
        }
    };
    if let Event::Other(raw) = &event {
        info!(
            post_type = raw.get("post_type").and_then(|v| v.as_str()).unwrap_or("?"),
            "OneBot event of a type Celeriac does not know: acknowledged and counted"
        );
        return (StatusCode::NO_CONTENT, Received::Unknown);
    }
    let jobs = domains::event_jobs(&value, &event, &r.configs);
    if jobs.is_empty() {
        return (StatusCode::NO_CONTENT, Received::Ignored);
    }
    match enqueue(&r.producer, jobs).await {
        Ok(enqueued) => {
            debug!(jobs = ?enqueued, "OneBot event enqueued");
            let new = enqueued.iter().any(|(_, created)| *created);
            let what = if new {
                Received::Enqueued
            } else {
                Received::Duplicate
            };
            (StatusCode::NO_CONTENT, what)
        }
        Err(e) => {
            warn!(error = %e, "OneBot event not enqueued; the implementation may send it again");
            (StatusCode::SERVICE_UNAVAILABLE, Received::NotEnqueued)
        }
    }
}

async fn stats(settings: &Settings, args: StatsArgs) -> CliResult {
    let broker = crate::output::broker(settings.core()).await?;
    let counts = EventCounts::new(broker.connection(), broker.keys().prefix())
        .read()
        .await
        .map_err(CliError::failed)?;
    if args.json {
        crate::output::print_json(&counts)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = crate::output::table(&["events", "count"]);
    for (what, n) in &counts {
        t.add_row(vec![crate::output::Cell::from(*what), n.to_string().into()]);
    }
    crate::output::outln!("{t}");
    Ok(ExitCode::SUCCESS)
}

/// Enqueue on a blocking thread: the producer's future is not provably `Send` (see
/// `celeriac_verification::scan`), and axum's handlers must be.
async fn enqueue(producer: &Producer, jobs: Vec<NewJob>) -> anyhow::Result<Vec<(String, bool)>> {
    let producer = producer.clone();
    let runtime = tokio::runtime::Handle::current();
    let enqueued =
        tokio::task::spawn_blocking(move || runtime.block_on(producer.enqueue_many(jobs)))
            .await??;
    Ok(enqueued.into_iter().map(|e| (e.id, e.created)).collect())
}
