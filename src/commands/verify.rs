//! `cutover verify [--repair]`: exit 0 CLEAN, 1 DIFFERENCES (or a failure), 2 configuration
//! error, 3 INCOMPLETE (nothing found to differ, but some items could not be checked). The
//! report is saved for `cutover status`.
//!
//! `--repair` rewrites DynamoDB from MySQL, so it first reads the stage of every `[flags]`
//! path of each table (`verify.paths`, default: paths named after the table), tenant overrides
//! included, and refuses (exit 1, nothing written) when DynamoDB is authoritative on any of
//! them (past `shadow`) or the paths disagree.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::{print_report, Failure, Outcome};
use crate::access::plan;
use crate::app::Config;
use crate::cli::{ListFormat, VerifyArgs};
use crate::config::{ConfigErrors, ConfigIssue};
use crate::flags::{FlagContext, Flags, FlagsConfig, Origin, Stage};
use crate::verify::VerifyOptions;

pub struct Settings {
    verify: crate::verify::Settings,
    opts: VerifyOptions,
    format: ListFormat,
    /// Where the report is kept (`verify.state_file`, resolved).
    state: PathBuf,
    /// With `--repair`: the `[flags]` paths of each selected source table, and where the
    /// flags are read from.
    repair_paths: Vec<(String, Vec<String>)>,
    flags: FlagsConfig,
    config_dir: PathBuf,
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
        let declared: Vec<String> = cfg.flags.paths.keys().cloned().collect();
        let mut issues = Vec::new();
        for (source, paths) in &cfg.verify.paths {
            if !cfg.tables.iter().any(|t| &t.source == source) {
                issues.push(ConfigIssue::new(
                    format!("verify.paths.{source}"),
                    "not a mapped source table",
                ));
            }
            for p in paths.iter().filter(|p| !declared.contains(p)) {
                issues.push(ConfigIssue::new(
                    format!("verify.paths.{source}"),
                    format!("{p} is not declared in [flags.paths]"),
                ));
            }
        }
        if !issues.is_empty() {
            return Err(Failure::Refused(format!(
                "{}: {}",
                config_file.display(),
                ConfigErrors(issues)
            )));
        }
        let repair_paths = if args.repair {
            cfg.tables
                .iter()
                .filter(|t| args.tables.is_empty() || args.tables.contains(&t.source))
                .map(|t| {
                    let paths = cfg.verify.paths_of(&t.source, &declared);
                    (
                        t.source.clone(),
                        paths.into_iter().map(String::from).collect(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Settings {
            repair_paths,
            flags: cfg.flags.clone(),
            config_dir: crate::config::dir_of(config_file).to_path_buf(),
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
    if s.opts.repair && s.repair_paths.iter().any(|(_, p)| !p.is_empty()) {
        let flags = Flags::from_config(&s.flags, &s.config_dir)
            .await
            .map_err(|e| anyhow::anyhow!("verify --repair reads the paths' stages: {e}"))?;
        let states = flags.list(&FlagContext::default());
        // Closing a LaunchDarkly client blocks.
        let _ = tokio::task::spawn_blocking(move || flags.close()).await;
        let mut refused = Vec::new();
        for (source, paths) in &s.repair_paths {
            let stages: Vec<(String, Stage)> = states
                .iter()
                .filter(|st| paths.contains(&st.path))
                .flat_map(|st| {
                    std::iter::once((st.path.clone(), st.stage)).chain(
                        st.tenants
                            .iter()
                            .map(|(t, stage)| (format!("{} (tenant {t})", st.path), *stage)),
                    )
                })
                .collect();
            if let Err(why) = repair_allowed(source, &stages) {
                refused.push(why);
            }
        }
        if !refused.is_empty() {
            return Err(anyhow::anyhow!(
                "verify --repair refused (nothing was written):\n  {}",
                refused.join("\n  ")
            )
            .into());
        }
    }
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

/// Whether `--repair` may rewrite DynamoDB from MySQL for `source`, given the stages of its
/// paths: only while MySQL is authoritative on every one (off, dualwrite, shadow; the access
/// layer's [`plan`]). Past `shadow` DynamoDB is authoritative and repairing it from MySQL would
/// overwrite newer data with older; with the paths split between the two, neither store is the
/// truth. Either way: the reason, naming the paths and stages.
fn repair_allowed(source: &str, stages: &[(String, Stage)]) -> Result<(), String> {
    let named = |origin: Origin| -> Vec<String> {
        stages
            .iter()
            .filter(|(_, st)| plan(*st).authoritative == origin)
            .map(|(p, st)| format!("{p} at {}", st.as_str()))
            .collect()
    };
    let (old, new) = (named(Origin::Old), named(Origin::New));
    match (old.is_empty(), new.is_empty()) {
        (_, true) => Ok(()),
        (true, false) => Err(format!(
            "{source}: DynamoDB is authoritative ({}): repairing it from MySQL would overwrite newer data; move the paths back to shadow to repair from MySQL, or let the access layer's repair queue bring MySQL up to date",
            new.join(", ")
        )),
        (false, false) => Err(format!(
            "{source}: the paths disagree on the authoritative store: MySQL for {}, DynamoDB for {}; move them to stages on the same side before repairing",
            old.join(", "),
            new.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_follows_the_authoritative_store() {
        let at = |p: &str, s: Stage| (p.to_string(), s);
        assert!(repair_allowed("chat.message", &[]).is_ok());
        assert!(repair_allowed(
            "chat.message",
            &[
                at("message.read", Stage::Shadow),
                at("message.write", Stage::DualWrite)
            ]
        )
        .is_ok());
        let e = repair_allowed("chat.message", &[at("message.write", Stage::Live)]).unwrap_err();
        assert!(
            e.contains("DynamoDB is authoritative (message.write at live)"),
            "{e}"
        );
        let e = repair_allowed(
            "chat.message",
            &[
                at("message.read", Stage::Complete),
                at("message.write", Stage::Shadow),
            ],
        )
        .unwrap_err();
        assert!(e.contains("disagree"), "{e}");
        assert!(e.contains("MySQL for message.write at shadow"), "{e}");
    }
}
