//! `cutover run`: stream the change topics into DynamoDB until SIGINT/SIGTERM.

use std::sync::Arc;

use super::{serve_telemetry, shutdown_signal, Failure, Outcome};
use crate::app::Config;
use crate::config::ConfigIssue;
use crate::telemetry::{Health, TelemetryConfig};

pub struct Settings {
    stream: crate::run::Settings,
    warnings: Vec<ConfigIssue>,
    telemetry: TelemetryConfig,
}

impl Settings {
    pub fn resolve(cfg: &Config) -> Result<Settings, Failure> {
        Ok(Settings {
            stream: stream(cfg)?,
            warnings: crate::mapping::warnings(&cfg.tables),
            telemetry: cfg.telemetry.clone(),
        })
    }
}

/// The sections a stream (`run`, `replay`) reads, with the compiled mapping.
pub(super) fn stream(cfg: &Config) -> Result<crate::run::Settings, Failure> {
    Ok(crate::run::Settings {
        kafka: cfg.kafka.clone(),
        sink: cfg.sink.clone(),
        run: cfg.run.clone(),
        dynamodb: cfg.dynamodb.clone(),
        mapping: Arc::new(cfg.mapping()?),
    })
}

pub async fn run(s: Settings) -> Result<Outcome, Failure> {
    let health = Health::default();
    serve_telemetry(&s.telemetry, health.clone()).await?;
    for w in &s.warnings {
        tracing::warn!(key = %w.key, "{}", w.message);
    }
    crate::run::run(s.stream, health, shutdown_signal()).await?;
    Ok(Outcome::Done)
}
