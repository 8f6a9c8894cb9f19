//! `[verify]`: page sizes, scan segments, and where the last result is kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;

/// `[verify]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyConfig {
    /// Rows read from MySQL per keyset page, and items checked per round. Bounds memory.
    pub page_size: usize,
    /// Parallel Scan segments per target table for the extras pass.
    pub scan_segments: u32,
    /// Where the last result is kept for `cutover status`. A relative path is relative to the
    /// config file's directory.
    pub state_file: PathBuf,
    /// Which `[flags]` paths govern each source table (`"schema.table" = ["message.read",
    /// "message.write"]`), for `--repair`: it repairs DynamoDB from MySQL only while every one
    /// of them has MySQL authoritative. Default for a table not listed: the declared paths
    /// whose first segment is the table's name (`message.read` for `chat.message`).
    pub paths: BTreeMap<String, Vec<String>>,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            page_size: 500,
            scan_segments: 4,
            state_file: PathBuf::from(".cutover/verify-last.json"),
            paths: BTreeMap::new(),
        }
    }
}

impl VerifyConfig {
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if !(1..=10_000).contains(&self.page_size) {
            issues.push(ConfigIssue::new("verify.page_size", "must be 1..=10000"));
        }
        if !(1..=1_000).contains(&self.scan_segments) {
            issues.push(ConfigIssue::new("verify.scan_segments", "must be 1..=1000"));
        }
        if self.state_file.as_os_str().is_empty() {
            issues.push(ConfigIssue::new("verify.state_file", "must not be empty"));
        }
        issues
    }

    /// The `[flags]` paths of `source` among `declared` (see [`VerifyConfig::paths`]).
    pub fn paths_of<'a>(&'a self, source: &str, declared: &'a [String]) -> Vec<&'a str> {
        if let Some(listed) = self.paths.get(source) {
            return listed.iter().map(String::as_str).collect();
        }
        let table = source.rsplit('.').next().unwrap_or(source);
        declared
            .iter()
            .filter(|p| p.split('.').next() == Some(table))
            .map(String::as_str)
            .collect()
    }

    /// `state_file`, resolved against the directory of the config file.
    pub fn state_path(&self, config_file: &Path) -> PathBuf {
        if self.state_file.is_absolute() {
            return self.state_file.clone();
        }
        crate::config::dir_of(config_file).join(&self.state_file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_path_is_next_to_the_config() {
        let c = VerifyConfig::default();
        assert_eq!(
            c.state_path(Path::new("/etc/cutover/cutover.toml")),
            PathBuf::from("/etc/cutover/.cutover/verify-last.json")
        );
        assert_eq!(
            c.state_path(Path::new("cutover.toml")),
            PathBuf::from("./.cutover/verify-last.json")
        );
    }
}
