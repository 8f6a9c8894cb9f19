//! The subcommands, one file each. Every file has the same two steps:
//! 1. `Settings::resolve(args, &Config)`: every check that needs no I/O (arguments against the
//!    mapping and each other, required sections), so a refused command has read, written and
//!    created nothing;
//! 2. `run(settings)`: the I/O, through the feature module that owns it.
//!
//! `anyhow` lives here and in `main.rs` only: a command's failure is reported to a person, not
//! classified further. [`dispatch`] returns what `main` turns into the exit code.

pub mod capture;
pub mod flags;
pub mod replay;
pub mod run;
pub mod status;
pub mod tables;
pub mod validate;
pub mod verify;

use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::app::Config;
use crate::cli::{Command, ListFormat};
use crate::telemetry::{self, Health, TelemetryConfig};

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Done,
    /// Exit 1, after a report that says why: verify found differences, status is not READY.
    NotOk,
    /// Exit 3, after a report that says why: verify found no difference but could not check
    /// everything (INCOMPLETE).
    Incomplete,
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// Exit 2: the configuration (or the source server's settings) refuse the command. The
    /// text is printed as it is.
    Refused(String),
    /// Exit 1.
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Failed(e.into())
    }
}

/// Resolve, then run, the command. `config_file` is where `cfg` was loaded from.
pub async fn dispatch(
    config_file: &Path,
    command: Command,
    cfg: Config,
) -> Result<Outcome, Failure> {
    match command {
        Command::Validate => validate::run(validate::Settings::resolve(config_file, &cfg)),
        Command::Run => run::run(run::Settings::resolve(&cfg)?).await,
        Command::Capture => capture::run(capture::Settings::resolve(&cfg)?).await,
        Command::Replay(args) => replay::run(replay::Settings::resolve(args, &cfg)?).await,
        Command::Tables { command } => tables::run(tables::Settings::resolve(command, &cfg)?).await,
        Command::Verify(args) => {
            verify::run(verify::Settings::resolve(args, config_file, &cfg)?).await
        }
        Command::Status { format } => {
            status::run(status::Settings::resolve(format, config_file, &cfg)).await
        }
        Command::Flags { command } => {
            flags::run(flags::Settings::resolve(command, config_file, &cfg)?).await
        }
    }
}

/// Cancelled on SIGINT or SIGTERM.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("signal received: shutting down");
        t.cancel();
    });
    token
}

/// Install the metrics recorder and serve `/metrics`, `/healthz`, `/readyz` on
/// `telemetry.listen` (when set).
async fn serve_telemetry(
    cfg: &TelemetryConfig,
    health: Health,
) -> Result<(), telemetry::ServeError> {
    telemetry::metrics_handle();
    if let Some(addr) = cfg.listen_addr() {
        let bound = telemetry::serve(addr, health).await?;
        tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    }
    Ok(())
}

/// Print a report as JSON or text; [`Outcome::Done`] when `ok`.
fn print_report<T: serde::Serialize>(
    format: ListFormat,
    report: &T,
    text: fn(&T) -> String,
    ok: bool,
) -> Result<Outcome, Failure> {
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        ListFormat::Text => print!("{}", text(report)),
    }
    Ok(if ok { Outcome::Done } else { Outcome::NotOk })
}
