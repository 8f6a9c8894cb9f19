//! `[flags.rules]`: cross-path rules. `reads` maps a read path to the write path whose data it
//! reads; the read path may never be at a later stage than its write path (reading DynamoDB
//! before the service writes it serves stale or missing rows):
//!
//! ```toml
//! [flags.rules.reads]
//! "message.read" = "message.write"
//! ```
//!
//! Enforced everywhere a stage comes from: the flag file is rejected (at start and on
//! reload: the last good state keeps serving) and `cutover flags set` refuses an edit that
//! breaks a rule, each problem with its key; and [`crate::flags::Flags::decide`] holds a read
//! path at its write path's stage when a source (LaunchDarkly) serves an inconsistent pair,
//! counted in `cutover_flags_rule_violations_total{path}` and logged.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::file::FileState;
use super::{key_segment, Stage};
use crate::config::ConfigIssue;

/// `[flags.rules]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RulesConfig {
    /// Read path → the write path it may not be ahead of.
    pub reads: BTreeMap<String, String>,
}

impl RulesConfig {
    /// Every problem, with its key: both paths declared, not the same path.
    pub fn validate(&self, declared: &BTreeSet<&str>) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (read, write) in &self.reads {
            let key = format!("flags.rules.reads.{}", key_segment(read));
            if !declared.contains(read.as_str()) {
                issues.push(ConfigIssue::new(
                    &key,
                    format!("`{read}` is not declared under [flags.paths]"),
                ));
            }
            if !declared.contains(write.as_str()) {
                issues.push(ConfigIssue::new(
                    &key,
                    format!("`{write}` is not declared under [flags.paths]"),
                ));
            }
            if read == write {
                issues.push(ConfigIssue::new(&key, "a path can't follow itself"));
            }
        }
        issues
    }

    /// Where a flag file's stages break a rule: for the paths' own stages and for every tenant
    /// either path overrides (a path without a stage is at `default`).
    pub fn check(&self, state: &FileState, default: Stage) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (read, write) in &self.reads {
            let mut tenants: BTreeSet<Option<&str>> = BTreeSet::from([None]);
            tenants.extend(state.tenants_of(read).into_iter().map(Some));
            tenants.extend(state.tenants_of(write).into_iter().map(Some));
            for t in tenants {
                let r = state.stage_of(read, t).unwrap_or(default);
                let w = state.stage_of(write, t).unwrap_or(default);
                if r > w {
                    let key = match t {
                        None => format!("paths.{}.stage", key_segment(read)),
                        Some(t) => {
                            format!("paths.{}.tenants.{}", key_segment(read), key_segment(t))
                        }
                    };
                    issues.push(ConfigIssue::new(
                        key,
                        format!(
                            "{read} at {r} is ahead of its write path {write} at {w} (flags.rules.reads): move {write} first"
                        ),
                    ));
                }
            }
        }
        issues
    }
}
