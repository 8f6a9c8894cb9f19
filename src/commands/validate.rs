//! `cutover validate`: the configuration is loaded (every problem listed at once, by `main`);
//! here the warnings, and a one-line summary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Failure, Outcome};
use crate::app::Config;
use crate::config::ConfigIssue;

pub struct Settings {
    config_file: PathBuf,
    warnings: Vec<ConfigIssue>,
    tables: usize,
    targets: usize,
}

impl Settings {
    pub fn resolve(config_file: &Path, cfg: &Config) -> Settings {
        Settings {
            config_file: config_file.to_path_buf(),
            warnings: crate::mapping::warnings(&cfg.tables),
            tables: cfg.tables.len(),
            targets: cfg
                .tables
                .iter()
                .map(|t| &t.target)
                .collect::<BTreeSet<_>>()
                .len(),
        }
    }
}

pub fn run(s: Settings) -> Result<Outcome, Failure> {
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "{}: ok ({} table mapping(s) onto {} target table(s))",
        s.config_file.display(),
        s.tables,
        s.targets
    );
    Ok(Outcome::Done)
}
