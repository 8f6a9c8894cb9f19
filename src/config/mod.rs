//! Configuration machinery: one TOML file, layered with `CUTOVER_*` environment overrides,
//! and the list of every problem in it. This module knows no section: each section's type and
//! its checks live in the module that owns it (`kafka::KafkaConfig`, `sink::SinkConfig`, ...),
//! and [`crate::app::Config`] assembles them into the whole file.
//!
//! Loading is two pure steps, so `cutover validate` can print every problem at once:
//! 1. parse ([`load`], [`parse`]): unknown keys are collected through `serde_ignored` (not
//!    fatal on their own, each reported with its key path), type errors stop the parse;
//! 2. validate: every section's checks run and report with the key path that is wrong.
//!
//! Environment overrides use `CUTOVER_` + the key path with `__` between levels, e.g.
//! `CUTOVER_KAFKA__BROKERS=b1:9092` or `CUTOVER_DYNAMODB__ENDPOINT_URL=http://127.0.0.1:18000`.

pub mod rfc3339;

use std::fmt;
use std::path::Path;

use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Classify, Disposition};

/// One problem in the configuration, with the key path that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub message: String,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for issue in &self.0 {
            writeln!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

impl Classify for ConfigErrors {
    /// Waiting never fixes a configuration.
    fn disposition(&self) -> Disposition {
        Disposition::Fatal
    }
}

impl ConfigErrors {
    /// `Ok(())` when there is no issue.
    pub fn check(issues: Vec<ConfigIssue>) -> Result<(), ConfigErrors> {
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(issues))
        }
    }
}

/// The directory of the config file, against which the file's relative paths resolve
/// (`flags.file`, `verify.state_file`): `.` for a bare file name.
pub fn dir_of(config_file: &Path) -> &Path {
    config_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

/// Read `path` and `CUTOVER_*` overrides over `T::default()`. Returns the value and the
/// unknown keys (each an issue); a missing file or a type error is an error. `T` is the whole
/// file (`app::Config`); nothing is validated here.
pub fn load<T>(path: &Path) -> Result<(T, Vec<ConfigIssue>), ConfigErrors>
where
    T: Serialize + DeserializeOwned + Default,
{
    let figment = Figment::from(Serialized::defaults(T::default()))
        .merge(Toml::file(path))
        // Only nested keys (`SECTION__KEY`): other CUTOVER_* variables, such as the
        // addresses localstack/up.sh exports, are not configuration.
        .merge(
            Env::prefixed("CUTOVER_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
    if !path.exists() {
        return Err(ConfigErrors(vec![ConfigIssue::new(
            "config",
            format!("file {} not found", path.display()),
        )]));
    }
    extract(figment)
}

/// Parse TOML text (no environment) over `T::default()`, as [`load`].
pub fn parse<T>(text: &str) -> Result<(T, Vec<ConfigIssue>), ConfigErrors>
where
    T: Serialize + DeserializeOwned + Default,
{
    extract(Figment::from(Serialized::defaults(T::default())).merge(Toml::string(text)))
}

/// Every unknown key is listed (serde_ignored), not only the first; a type error ends the
/// parse with the issues found so far.
fn extract<T: DeserializeOwned>(figment: Figment) -> Result<(T, Vec<ConfigIssue>), ConfigErrors> {
    let value: figment::value::Value = figment.extract().map_err(|e| {
        ConfigErrors(
            e.into_iter()
                .map(|e| ConfigIssue::new(e.path.join("."), e.kind.to_string()))
                .collect(),
        )
    })?;
    let mut issues = Vec::new();
    let parsed: Result<T, _> = serde_ignored::deserialize(&value, |path| {
        issues.push(ConfigIssue::new(
            path.to_string().replace("?.", ""),
            "unknown key",
        ))
    });
    match parsed {
        Ok(t) => Ok((t, issues)),
        Err(e) => {
            let path = e.path.join(".");
            issues.push(ConfigIssue::new(
                if path.is_empty() {
                    "config".into()
                } else {
                    path
                },
                e.kind.to_string(),
            ));
            Err(ConfigErrors(issues))
        }
    }
}
