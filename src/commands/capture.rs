//! `cutover capture`: MySQL → DMS-format records on Kafka until SIGINT/SIGTERM. Refusals (the
//! configuration, or the server's settings) exit with 2.

use super::{shutdown_signal, Failure, Outcome};
use crate::app::Config;
use crate::capture::CaptureError;
use crate::telemetry::{Health, TelemetryConfig};

pub struct Settings {
    capture: crate::capture::Settings,
    telemetry: TelemetryConfig,
}

impl Settings {
    pub fn resolve(cfg: &Config) -> Result<Settings, Failure> {
        let capture = crate::capture::Settings::new(
            &cfg.capture,
            &cfg.mysql,
            &cfg.kafka,
            cfg.tables.iter().map(|t| t.source.as_str()),
        )
        .map_err(failure)?;
        Ok(Settings {
            capture,
            telemetry: cfg.telemetry.clone(),
        })
    }
}

fn failure(e: CaptureError) -> Failure {
    match e {
        e @ CaptureError::Refused(_) => Failure::Refused(e.to_string()),
        other => other.into(),
    }
}

pub async fn run(s: Settings) -> Result<Outcome, Failure> {
    // The metrics endpoint is a convenience here: capture runs without it.
    if let Err(e) = super::serve_telemetry(&s.telemetry, Health::default()).await {
        tracing::warn!(error = %e, "metrics endpoint not started");
    }
    crate::capture::capture(s.capture, shutdown_signal())
        .await
        .map_err(failure)?;
    Ok(Outcome::Done)
}
