//! `[access]`: the repair queue, the complete-stage journal, mismatch reports, timeouts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;

/// `[access]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessConfig {
    /// Kafka topic that holds repair entries for failed second writes (and the complete-stage
    /// journal). Create it with as many partitions as you like; entries are keyed by row.
    pub repair_topic: String,
    /// Consumer group of the repair worker.
    pub repair_group: String,
    /// In `complete`, journal every write to `repair_topic` so MySQL can be caught up on
    /// rollback. Costs one Kafka round trip per write; disable once MySQL is gone.
    pub journal_complete: bool,
    /// Log differing values (at debug level) in mismatch reports. Off: field names only.
    pub show_values: bool,
    /// Deadline for one store call; a slower call counts as that store failing.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            repair_topic: "cutover.repair".into(),
            repair_group: "cutover-repair".into(),
            journal_complete: true,
            show_values: false,
            timeout: Duration::from_secs(5),
        }
    }
}

impl AccessConfig {
    /// Every problem, with its key.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.repair_topic.trim().is_empty() {
            issues.push(ConfigIssue::new(
                "access.repair_topic",
                "must not be empty: failed second writes are queued there",
            ));
        }
        if self.repair_group.trim().is_empty() {
            issues.push(ConfigIssue::new("access.repair_group", "must not be empty"));
        }
        if self.timeout.is_zero() {
            issues.push(ConfigIssue::new("access.timeout", "must be > 0"));
        }
        issues
    }
}
