//! `[capture]`: what to capture, where the records and the checkpoints go, and the batch
//! sizes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;

/// `[capture]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureConfig {
    /// Name of this capture: the key of its checkpoints. Two captures of different databases
    /// into one checkpoint topic need different names.
    pub name: String,
    /// Topic the DMS-format records are written to (create it with the partitions you want).
    pub topic: String,
    /// Topic holding the checkpoints (one partition; created, compacted, when missing).
    pub checkpoint_topic: String,
    /// Source tables as `schema.table`. Default: the sources of the `[[table]]` mappings.
    pub tables: Vec<String>,
    /// Replication server id this capture registers with; unique among the server's replicas
    /// and captures. 0 (default): derived from `name`, so captures with different names differ.
    pub server_id: u32,
    /// Rows per snapshot page (keyset pagination).
    pub snapshot_batch: usize,
    /// Most CDC records sent before waiting for their acknowledgements.
    pub max_batch_records: usize,
    /// How long a partially filled CDC batch may wait before it is sent.
    #[serde(with = "humantime_serde")]
    pub batch_window: Duration,
    /// Least time between two checkpoints.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            name: "cutover".into(),
            topic: "cutover.capture".into(),
            checkpoint_topic: "cutover.capture.checkpoints".into(),
            tables: Vec::new(),
            server_id: 0,
            snapshot_batch: 5000,
            max_batch_records: 5000,
            batch_window: Duration::from_millis(10),
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

impl CaptureConfig {
    /// Problems with the section; pure.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (key, v) in [
            ("capture.name", &self.name),
            ("capture.topic", &self.topic),
            ("capture.checkpoint_topic", &self.checkpoint_topic),
        ] {
            if v.trim().is_empty() {
                issues.push(ConfigIssue::new(key, "must not be empty"));
            }
        }
        if self.topic == self.checkpoint_topic {
            issues.push(ConfigIssue::new(
                "capture.checkpoint_topic",
                "must differ from capture.topic",
            ));
        }
        for (i, t) in self.tables.iter().enumerate() {
            if split_table(t).is_none() {
                issues.push(ConfigIssue::new(
                    format!("capture.tables[{i}]"),
                    "must be schema.table",
                ));
            }
        }
        for (key, v) in [
            ("capture.snapshot_batch", self.snapshot_batch),
            ("capture.max_batch_records", self.max_batch_records),
        ] {
            if v == 0 {
                issues.push(ConfigIssue::new(key, "must be > 0"));
            }
        }
        issues
    }

    /// The replication server id: `server_id`, or one derived from `name` (FNV-1a, in
    /// 2^20..2^31 to stay clear of the small ids servers are usually given).
    pub fn effective_server_id(&self) -> u32 {
        if self.server_id != 0 {
            return self.server_id;
        }
        let mut h: u32 = 0x811c_9dc5;
        for b in self.name.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        (1 << 20) + h % ((1 << 31) - (1 << 20))
    }

    /// The tables to capture: `tables`, or the mappings' sources, without repeats.
    /// `sources` are the `[[table]]` blocks' sources.
    pub fn table_list<'a>(
        &'a self,
        sources: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, String)> {
        let names: Vec<&str> = if self.tables.is_empty() {
            sources.into_iter().collect()
        } else {
            self.tables.iter().map(String::as_str).collect()
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for n in names {
            if let Some(pair) = split_table(n) {
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
        }
        out
    }
}

fn split_table(s: &str) -> Option<(String, String)> {
    let (schema, table) = s.split_once('.')?;
    (!schema.is_empty() && !table.is_empty() && !table.contains('.'))
        .then(|| (schema.to_owned(), table.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks() {
        let c = CaptureConfig {
            topic: "x".into(),
            checkpoint_topic: "x".into(),
            tables: vec!["nodot".into()],
            ..Default::default()
        };
        let keys: Vec<String> = c.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, vec!["capture.checkpoint_topic", "capture.tables[0]"]);
        let id = |name: &str| {
            CaptureConfig {
                name: name.into(),
                ..Default::default()
            }
            .effective_server_id()
        };
        assert_ne!(id("a"), id("b"));
        assert!(id("a") >= 1 << 20);
        assert!(CaptureConfig::default().validate().is_empty());
    }
}
