//! Logs, metrics and health (`[telemetry]`, `--log-format`).
//!
//! - tracing to stderr as text or JSON; `RUST_LOG` filters (default `info`). Nothing at info
//!   level or above carries row values or credentials: only tables, keys' positions, offsets.
//! - Prometheus metrics on `GET /metrics`; liveness on `GET /healthz` (the process serves);
//!   readiness on `GET /readyz` (200 once the consumer is connected and the tables exist).
//!   Served by `run` (a taken address stops it), `capture` and `replay` (a warning) on
//!   `telemetry.listen`, which `--listen ADDR` overrides per command.
//!
//! Metrics: `cutover_records_in_total{table,op}`, `cutover_items_written_total{table,op,outcome}`,
//! `cutover_dlq_total{topic,stage}`, `cutover_dynamodb_throttles_total{table}`,
//! `cutover_consumer_lag{topic,partition}`, `cutover_e2e_latency_seconds{table}` (commit
//! timestamp → write acknowledged), `cutover_records_skipped_total{reason}`.
//! Flags (see [`crate::flags`]): `cutover_flags_ops_total{path,stage,op}`,
//! `cutover_flags_errors_total{path,origin}`, `cutover_flags_latency_seconds{path,origin}`,
//! `cutover_flags_consistency_total{path,result}`, `cutover_flags_reloads_total`,
//! `cutover_flags_reload_errors_total`, `cutover_flags_file_valid`,
//! `cutover_flags_track_errors_total{path}`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

use crate::config::ConfigIssue;
use crate::error::{Classify, Disposition};

/// `[telemetry]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// Address of the HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`.
    /// Empty string disables it.
    pub listen: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

impl TelemetryConfig {
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        if self.listen.is_empty() {
            None
        } else {
            self.listen.parse().ok()
        }
    }

    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if !self.listen.is_empty() && self.listen_addr().is_none() {
            issues.push(ConfigIssue::new(
                "telemetry.listen",
                "must be host:port, e.g. 127.0.0.1:9464 (or empty to disable)",
            ));
        }
        issues
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Install the tracing subscriber once.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // aws_config's WARNs print each failed provider of the credential chain in Debug
        // form; the failure that matters reaches the command's error message anyway.
        EnvFilter::new("info,rdkafka=warn,aws_config=error,aws_smithy_runtime=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Readiness, flipped by the command that runs.
#[derive(Debug, Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Install the Prometheus recorder (once per process) and return its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                // Per-request database latency: sub-millisecond to seconds.
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "cutover_flags_latency_seconds".into(),
                    ),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .expect("static buckets")
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &[
                        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                    ],
                )
                .expect("static buckets")
                .build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The endpoint could not be served.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot serve metrics on {addr} (telemetry.listen): {io}\n\
     hint: another cutover on this host? give each command its own address with --listen ADDR \
     (or CUTOVER_TELEMETRY__LISTEN; empty disables)"
)]
pub struct ServeError {
    pub addr: SocketAddr,
    /// In the message (not a `source`), so the hint stays the last line.
    pub io: std::io::Error,
}

impl Classify for ServeError {
    fn disposition(&self) -> Disposition {
        Disposition::Fatal
    }
}

/// Serve `/metrics`, `/healthz` and `/readyz` until the process ends.
pub async fn serve(addr: SocketAddr, health: Health) -> Result<SocketAddr, ServeError> {
    let failed = |io| ServeError { addr, io };
    let handle = metrics_handle();
    let app = Router::new()
        .route(
            "/metrics",
            get(|State((h, _)): State<(PrometheusHandle, Health)>| async move { h.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(
                |State((_, health)): State<(PrometheusHandle, Health)>| async move {
                    if health.is_ready() {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                },
            ),
        )
        .with_state((handle, health));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(failed)?;
    let local = listener.local_addr().map_err(failed)?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "telemetry server stopped");
        }
    });
    Ok(local)
}
