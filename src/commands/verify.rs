//! `cutover verify [--repair]`: exit 0 CLEAN, 1 DIFFERENCES (or a failure), 2 configuration
//! error, 3 INCOMPLETE (nothing found to differ, but some items could not be checked). The
//! report is saved for `cutover status`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::{print_report, Failure, Outcome};
use crate::app::Config;
use crate::cli::{ListFormat, VerifyArgs};
use crate::config::ConfigErrors;
use crate::verify::VerifyOptions;

pub struct Settings {
    verify: crate::verify::Settings,
    opts: VerifyOptions,
    format: ListFormat,
    /// Where the report is kept (`verify.state_file`, resolved).
    state: PathBuf,
}

impl Settings {
    pub fn resolve(
        args: VerifyArgs,
        config_file: &Path,
        cfg: &Config,
    ) -> Result<Settings, Failure> {
        // verify reads the source database.
        if let Err(issue) = cfg.mysql.require() {
            return Err(Failure::Refused(format!(
                "{}: {}",
                config_file.display(),
                ConfigErrors(vec![issue])
            )));
        }
        for t in &args.tables {
            if !cfg.tables.iter().any(|b| &b.source == t) {
                return Err(anyhow::anyhow!("--table {t}: not a mapped source table").into());
            }
        }
        Ok(Settings {
            verify: crate::verify::Settings {
                tables: cfg.tables.clone(),
                mapping: cfg.mapping()?,
                sink: cfg.sink.clone(),
                verify: cfg.verify.clone(),
                mysql: cfg.mysql.clone(),
                dynamodb: cfg.dynamodb.clone(),
            },
            opts: VerifyOptions {
                tables: args.tables,
                sample: args.sample,
                show: args.show,
                show_values: args.show_values,
                repair: args.repair,
                progress: false,
            },
            format: args.format,
            state: cfg.verify.state_path(config_file),
        })
    }
}

pub async fn run(mut s: Settings) -> Result<Outcome, Failure> {
    s.opts.progress = std::io::stderr().is_terminal();
    let report = crate::verify::verify(&s.verify, &s.opts).await?;
    if let Err(e) = crate::verify::save(&report, &s.state) {
        eprintln!(
            "warning: could not save the result for `cutover status`: {:#}",
            anyhow::Error::from(e)
        );
    }
    let outcome = print_report(s.format, &report, crate::verify::render_text, report.clean)?;
    Ok(match report.verdict {
        crate::verify::Verdict::Incomplete => Outcome::Incomplete,
        _ => outcome,
    })
}
