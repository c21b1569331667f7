//! The HTTP endpoint of `celeriac worker` and `celeriac cron` (`[http] listen`, off by default,
//! on in the container image): `GET /healthz` (200 while the process's loops run, else 503),
//! `GET /readyz` (200 when started, Redis answers and the process is not shutting down, else
//! 503), both with the probe's state as JSON; and `GET /metrics` in Prometheus text format.
//!
//! Queue depths (`celeriac_queue_jobs`, `celeriac_queue_oldest_pending_seconds`) are read from
//! Redis for the process's own queues at most every [`DEPTH_EVERY`], whatever the number of
//! scrapes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use celeriac_core::config::{FieldError, Section};
use celeriac_core::inspector::Inspector;
use celeriac_core::probe::Probe;
use metrics::gauge;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Least time between two reads of the queue depths from Redis.
pub const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// `[http]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port` to serve `/healthz`, `/readyz` and `/metrics` on; empty: no endpoint.
    pub listen: String,
}

impl Section for HttpConfig {
    const NAME: &'static str = "http";
    const STRING_FIELDS: &'static [&'static str] = &["listen"];

    fn validate(&self) -> Result<(), FieldError> {
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(FieldError::new(
                "http.listen",
                format!(
                    "{:?} is not an address to listen on; write it like \"0.0.0.0:9464\" (or leave it empty for no endpoint)",
                    self.listen
                ),
            ));
        }
        Ok(())
    }
}

/// What the endpoint serves.
#[derive(Clone)]
struct Served {
    probe: Probe,
    metrics: PrometheusHandle,
    depths: Arc<Depths>,
}

/// The queue depths, refreshed at most every [`DEPTH_EVERY`].
struct Depths {
    inspector: Inspector,
    queues: Vec<String>,
    last: Mutex<Option<Instant>>,
}

impl Depths {
    async fn refresh(&self) {
        let mut last = self.last.lock().await;
        if last.is_some_and(|t| t.elapsed() < DEPTH_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        match self.inspector.queues().await {
            Ok(all) => {
                for q in all.iter().filter(|q| self.queues.contains(&q.queue)) {
                    for (state, n) in &q.states {
                        gauge!("celeriac_queue_jobs", "queue" => q.queue.clone(), "state" => state.clone())
                            .set(*n as f64);
                    }
                    let age = q.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0;
                    gauge!("celeriac_queue_oldest_pending_seconds", "queue" => q.queue.clone())
                        .set(age);
                }
            }
            Err(e) => warn!(error = %e, "could not read the queue depths for /metrics"),
        }
    }
}

/// The process-wide Prometheus recorder, installed once.
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(celeriac_worker::metrics::JOB_DURATION.into()),
                    celeriac_worker::metrics::DURATION_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(celeriac_worker::metrics::FETCH_BATCH_SIZE.into()),
                        celeriac_worker::metrics::BATCH_BUCKETS,
                    )
                })
                .expect("non-empty bucket lists")
                .install_recorder()
                .expect("the metrics recorder is installed once, here");
            celeriac_worker::metrics::describe();
            celeriac_worker::metrics::enable();
            celeriac_cron::metrics::describe();
            metrics::describe_gauge!("celeriac_queue_jobs", "Jobs of a queue in each state.");
            metrics::describe_gauge!(
                "celeriac_queue_oldest_pending_seconds",
                metrics::Unit::Seconds,
                "Age of the job waiting longest in a queue's pending list."
            );
            handle
        })
        .clone()
}

/// Serve the endpoint on `listen` until `stop`; queue depths are those of `queues`.
pub async fn serve(
    listen: &str,
    probe: Probe,
    inspector: Inspector,
    queues: Vec<String>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let metrics = recorder();
    let upkeep = metrics.clone();
    let upkeep_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = upkeep_stop.cancelled() => return,
                _ = tokio::time::sleep(DEPTH_EVERY) => upkeep.run_upkeep(),
            }
        }
    });
    let served = Served {
        probe,
        metrics,
        depths: Arc::new(Depths {
            inspector,
            queues,
            last: Mutex::new(None),
        }),
    };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(served);
    info!(address = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    }))
}

fn status(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn healthz(State(s): State<Served>) -> impl IntoResponse {
    let report = s.probe.report();
    (status(report.live), axum::Json(report))
}

async fn readyz(State(s): State<Served>) -> impl IntoResponse {
    let report = s.probe.report();
    (status(report.ready), axum::Json(report))
}

async fn metrics_text(State(s): State<Served>) -> impl IntoResponse {
    s.depths.refresh().await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}
