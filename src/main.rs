//! The `cutover` binary: parse, load settings, dispatch, map the result to an exit code
//! (0 ok, 1 runtime failure, 2 configuration error).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use cutover::cli::{Cli, Command, FlagsCommand, TablesCommand};
use cutover::replay::ReplayOptions;
use cutover::telemetry::{self, Health};
use cutover::Config;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    // Two rustls crypto backends end up linked; pick one before any TLS client starts.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    telemetry::init_logging(cli.log_format);
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
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> ExitCode {
    // Only the commands that consume the change topics need them (`validate` stays strict).
    let kafka = matches!(
        cli.command,
        Command::Validate | Command::Run | Command::Replay(_) | Command::Status { .. }
    );
    let cfg = match Config::load_for(&cli.config, kafka) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    // verify reads the source database.
    if matches!(cli.command, Command::Verify(_)) {
        if let Err(issue) = cfg.mysql.require() {
            eprintln!(
                "error: {}: {}",
                cli.config.display(),
                cutover::config::ConfigErrors(vec![issue])
            );
            return ExitCode::from(2);
        }
    }
    let config_dir = match cli.config.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let result = match cli.command {
        Command::Validate => {
            for w in cutover::mapping::warnings(&cfg.tables) {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: ok ({} table mapping(s) onto {} target table(s))",
                cli.config.display(),
                cfg.tables.len(),
                cfg.tables
                    .iter()
                    .map(|t| &t.target)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            );
            Ok(())
        }
        Command::Run => run(cfg).await,
        Command::Capture => match capture(cfg).await {
            Err(e @ cutover::capture::CaptureError::Refused(_)) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            other => other.map_err(anyhow::Error::from),
        },
        Command::Replay(args) => replay(cfg, args).await,
        Command::Tables { command } => match command {
            TablesCommand::Create { tables } => tables_create(cfg, tables).await,
            TablesCommand::Render { format } => tables_render(cfg, format),
        },
        Command::Flags { command } => flags(cfg, &config_dir, command).await,
        Command::Verify(args) => return verify(&cfg, &cli.config, args).await,
        Command::Status { format } => return status(&cfg, &cli.config, format).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
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

async fn run(cfg: Config) -> anyhow::Result<()> {
    let health = Health::default();
    telemetry::metrics_handle();
    if let Some(addr) = cfg.telemetry.listen_addr() {
        let bound = telemetry::serve(addr, health.clone()).await?;
        tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    }
    cutover::run::run(cfg, health, shutdown_signal()).await
}

async fn capture(cfg: Config) -> Result<(), cutover::capture::CaptureError> {
    telemetry::metrics_handle();
    if let Some(addr) = cfg.telemetry.listen_addr() {
        match telemetry::serve(addr, Health::default()).await {
            Ok(bound) => tracing::info!(%bound, "serving /metrics, /healthz, /readyz"),
            Err(e) => tracing::warn!(error = %e, "metrics endpoint not started"),
        }
    }
    let settings = cutover::capture::Settings::new(
        &cfg.capture,
        &cfg.mysql,
        &cfg.kafka,
        cfg.tables.iter().map(|t| t.source.as_str()),
    )?;
    cutover::capture::capture(settings, shutdown_signal()).await
}

async fn replay(cfg: Config, args: cutover::cli::ReplayArgs) -> anyhow::Result<()> {
    telemetry::metrics_handle();
    let json = args.json;
    let opts = ReplayOptions {
        from: args.from,
        until: args.until,
        tables: args.tables,
        target_table: args.target_table,
        create_table: args.create_table,
        write_mode: args.write_mode.map(Into::into),
        idle_timeout: args.idle_timeout,
        progress: std::io::stderr().is_terminal(),
    };
    let started = std::time::Instant::now();
    let summary = cutover::replay::replay(cfg, opts, shutdown_signal()).await?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "replayed {} records from {} partition(s) in {:.1}s: {} changes, {} items applied, {} stale, {} skipped, {} dead-lettered",
            summary.records,
            summary.partitions,
            started.elapsed().as_secs_f64(),
            summary.changes,
            summary.applied,
            summary.stale,
            summary.skipped,
            summary.dead_lettered
        );
    }
    Ok(())
}

/// Exit 0 clean, 1 differences or failure. The report is saved for `cutover status`.
async fn verify(cfg: &Config, path: &std::path::Path, args: cutover::cli::VerifyArgs) -> ExitCode {
    let opts = cutover::verify::VerifyOptions {
        tables: args.tables,
        sample: args.sample,
        show: args.show,
        show_values: args.show_values,
        repair: args.repair,
        progress: std::io::stderr().is_terminal(),
    };
    for t in &opts.tables {
        if !cfg.tables.iter().any(|b| &b.source == t) {
            return failure(anyhow::anyhow!("--table {t}: not a mapped source table"));
        }
    }
    let mapping = match cfg.mapping() {
        Ok(m) => m,
        Err(e) => return failure(e.into()),
    };
    let settings = cutover::verify::Settings {
        tables: cfg.tables.clone(),
        mapping,
        sink: cfg.sink.clone(),
        verify: cfg.verify.clone(),
        mysql: cfg.mysql.clone(),
        dynamodb: cfg.dynamodb.clone(),
    };
    let report = match cutover::verify::verify(&settings, &opts).await {
        Ok(r) => r,
        Err(e) => return failure(e.into()),
    };
    let state = cfg.verify.state_path(path);
    if let Err(e) = cutover::verify::save(&report, &state) {
        eprintln!("warning: could not save the result for `cutover status`: {e:#}");
    }
    print_report(
        args.format,
        &report,
        cutover::verify::render_text,
        report.clean,
    )
}

/// Exit 0 when READY, 1 otherwise.
async fn status(
    cfg: &Config,
    path: &std::path::Path,
    format: cutover::cli::ListFormat,
) -> ExitCode {
    let report = match cutover::status::status(cfg, path).await {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    print_report(format, &report, cutover::status::render_text, report.ready)
}

/// Print a report as JSON or text; exit 0 when `ok`, else 1.
fn print_report<T: serde::Serialize>(
    format: cutover::cli::ListFormat,
    report: &T,
    text: fn(&T) -> String,
    ok: bool,
) -> ExitCode {
    match format {
        cutover::cli::ListFormat::Json => match serde_json::to_string_pretty(report) {
            Ok(j) => println!("{j}"),
            Err(e) => return failure(e.into()),
        },
        cutover::cli::ListFormat::Text => print!("{}", text(report)),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn failure(e: anyhow::Error) -> ExitCode {
    tracing::error!("{e:#}");
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

fn tables_render(cfg: Config, format: cutover::cli::RenderFormat) -> anyhow::Result<()> {
    let mapping = cutover::mapping::Mapping::new(&cfg.tables, &cfg.sink)
        .map_err(|e| anyhow::anyhow!(cutover::config::ConfigErrors(e)))?;
    let doc = match format {
        cutover::cli::RenderFormat::Json => cutover::tables::render_json(&mapping),
        cutover::cli::RenderFormat::Terraform => cutover::tables::render_terraform(&mapping),
    };
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

async fn tables_create(cfg: Config, only: Vec<String>) -> anyhow::Result<()> {
    let mapping = cutover::mapping::Mapping::new(&cfg.tables, &cfg.sink)
        .map_err(|e| anyhow::anyhow!(cutover::config::ConfigErrors(e)))?;
    for t in &only {
        if !mapping.targets().contains_key(t) {
            anyhow::bail!("--table {t}: not a target of the mapping");
        }
    }
    let client = cutover::sink::dynamo::client(&cfg.dynamodb).await;
    for (name, spec) in mapping.targets() {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        if cutover::tables::create(&client, spec, name).await? {
            println!("created {name}");
        } else {
            println!("{name} exists");
        }
    }
    Ok(())
}

async fn flags(
    cfg: Config,
    config_dir: &std::path::Path,
    command: FlagsCommand,
) -> anyhow::Result<()> {
    use cutover::flags::{FlagContext, FlagError, Flags, SourceKind};
    let fc = &cfg.flags;
    let file = fc.file_path(config_dir);
    match command {
        FlagsCommand::List {
            tenant,
            key,
            format,
        } => {
            let flags = match Flags::from_config(fc, config_dir).await {
                Err(FlagError::Io { path, source })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    anyhow::bail!(
                        "flag file {} not found: `cutover flags set <path> <stage>` creates it",
                        path.display()
                    )
                }
                other => other?,
            };
            let ctx = FlagContext {
                key: key.unwrap_or_default(),
                tenant,
            };
            let states = flags.list(&ctx);
            tokio::task::spawn_blocking(move || flags.close()).await?;
            match format {
                cutover::cli::ListFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&states)?)
                }
                cutover::cli::ListFormat::Text => {
                    let w = states
                        .iter()
                        .map(|s| s.path.len())
                        .max()
                        .unwrap_or(4)
                        .max(4);
                    println!("{:w$}  {:9}  FROM", "PATH", "STAGE");
                    for s in &states {
                        let mut from = s.origin.clone();
                        if !s.tenants.is_empty() {
                            let t: Vec<String> = s
                                .tenants
                                .iter()
                                .map(|(t, st)| format!("{t}={st}"))
                                .collect();
                            from.push_str(&format!("; tenants: {}", t.join(", ")));
                        }
                        println!("{:w$}  {:9}  {from}", s.path, s.stage.as_str());
                    }
                }
            }
            Ok(())
        }
        FlagsCommand::Set {
            path,
            stage,
            tenant,
        } => {
            let Some(spec) = fc.path_specs().into_iter().find(|s| *s.path == *path) else {
                return Err(FlagError::UnknownPath(path).into());
            };
            if fc.source == SourceKind::Launchdarkly {
                return Err(FlagError::NotFileSource(spec.flag).into());
            }
            let declared: std::collections::HashSet<String> = fc.paths.keys().cloned().collect();
            let before = cutover::flags::file::load(&file, Some(&declared))
                .ok()
                .and_then(|st| st.stage_of(&path, tenant.as_deref()));
            cutover::flags::set_stage(&file, &path, stage, tenant.as_deref())?;
            let who = tenant.map(|t| format!(" (tenant {t})")).unwrap_or_default();
            let before = before.map_or("unset".to_string(), |s| s.to_string());
            println!("{path}{who}: {before} -> {stage} in {}", file.display());
            // The edit itself is valid; say so if the rest of the file is not, since the
            // service would keep its last good flags.
            if let Err(e) = cutover::flags::file::load(&file, Some(&declared)) {
                anyhow::bail!("the flag file has other problems; the service will not apply it until they are fixed: {e}");
            }
            Ok(())
        }
    }
}
