//! The `cutover` binary: parse the command line, load the configuration, dispatch to the
//! command (`cutover::commands`), and turn the result into the exit code: 0 ok, 1 a failure
//! (or verify's differences, status's NOT READY), 2 a configuration error, 3 verify could not
//! check everything (INCOMPLETE).

use std::process::ExitCode;

use clap::Parser;
use cutover::cli::Cli;
use cutover::commands::{self, Failure, Outcome};
use cutover::Config;

fn main() -> ExitCode {
    // Two rustls crypto backends end up linked; pick one before any TLS client starts.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    cutover::telemetry::init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(4, |n| n.get().max(4)))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = match Config::load_for(&cli.config, cli.command.consumes_topics()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::dispatch(&cli.config, cli.command, cfg)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotOk) => ExitCode::FAILURE,
        Ok(Outcome::Incomplete) => ExitCode::from(3),
        Err(Failure::Refused(why)) => {
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
