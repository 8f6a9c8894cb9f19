//! `[sink]` (how items are written) and `[dynamodb]` (how to reach DynamoDB).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;

/// `[dynamodb]`. Credentials come from the standard AWS chain (env, profile, SSO, IMDS).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DynamoConfig {
    /// AWS region; defaults to the AWS chain's region.
    pub region: Option<String>,
    /// Endpoint override, e.g. `http://127.0.0.1:18000` for DynamoDB Local.
    pub endpoint_url: Option<String>,
    /// Named AWS profile to use instead of the default chain.
    pub profile: Option<String>,
}

impl DynamoConfig {
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                issues.push(ConfigIssue::new(
                    "dynamodb.endpoint_url",
                    "must start with http:// or https://",
                ));
            }
        }
        issues
    }
}

/// How writes are issued. Explicit, because it decides what ordering is guaranteed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// One conditional `UpdateItem`/`PutItem` per item, guarded by the source version.
    /// Safe with any number of writers, replays and the data-access layer writing concurrently.
    Conditional,
    /// `BatchWriteItem` of whole items, no conditions. Only safe for a single writer per table
    /// whose keys each stay in one partition, e.g. a replay rebuilding a new table from a
    /// source without primary-key changes (a key move tombstones the old key from the new
    /// key's partition, and an unconditional put of the old key can land after it).
    /// Faster; cannot merge several sources into one item.
    Batch,
    /// `BatchWriteItem` after a strongly consistent read of the stored versions, with key
    /// moves deferred to a conditional phase at the end: exact under re-delivery, reordering
    /// and primary-key moves, at close to batch speed. Only for `cutover replay --write-mode
    /// rebuild` into a table nothing else writes; not for merge-mode tables.
    Rebuild,
}

/// What a source delete does to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// Replace the item by a tombstone `{key, version, deleted=true, ttl}` so that a late,
    /// older write cannot resurrect it. DynamoDB's TTL removes it after `tombstone_ttl`.
    Tombstone,
    /// Conditional `DeleteItem`. A replay of older records can resurrect the item.
    Hard,
}

/// `[sink]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SinkConfig {
    /// `conditional` (default) or `batch`.
    pub write_mode: WriteMode,
    /// `tombstone` (default) or `hard`.
    pub delete_mode: DeleteMode,
    /// How long tombstones live. Keep it at least as long as the topic's retention, since a
    /// replay older than this can resurrect a deleted row.
    #[serde(with = "humantime_serde")]
    pub tombstone_ttl: Duration,
    /// Attribute that holds the source version of the item (per part in merge mode:
    /// `<version_attribute>_<source table>`).
    pub version_attribute: String,
    /// Attribute set to `true` on tombstones.
    pub deleted_attribute: String,
    /// How long a partition's batch may wait to fill before it is written.
    #[serde(with = "humantime_serde")]
    pub batch_window: Duration,
    /// Largest batch of records taken from one partition at once while keeping up.
    pub max_batch_records: usize,
    /// Largest batch while catching up (a replay, or `run` behind a backlog: `max_batch_records`
    /// came in faster than `batch_window`): the batch keeps growing while records keep coming,
    /// so a key's updates far apart in the topic fold into one write. Bounded by memory:
    /// partitions × this many records may be held. `0` or ≤ `max_batch_records`: off.
    pub catchup_batch_records: usize,
    /// `rebuild` mode remembers the version it wrote to each key (about 100 bytes a key), so a
    /// key it wrote, or that nobody wrote yet, needs no read; past this many keys, a key seen
    /// for the first time is read with BatchGetItem instead.
    pub rebuild_memory_keys: usize,
    /// Writes in flight per partition batch.
    pub concurrency: usize,
    /// Retries of throttled or transient failures before the process stops.
    pub max_retries: usize,
    /// First retry delay; doubles with full jitter up to `max_retry_delay`.
    #[serde(with = "humantime_serde")]
    pub retry_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_retry_delay: Duration,
    /// This many writes in a row rejected by DynamoDB (ValidationException) on distinct items
    /// stop the process as fatal, without committing: that is a mapping that does not fit the
    /// table, not bad data, and dead-lettering would empty the topic into the dead-letter
    /// topic. 0: never stop.
    pub max_consecutive_rejections: usize,
    /// The high-order part of every stored version (`epoch · 10^30 + binlog position`), 0 to
    /// 9,999,999. Raise it by one, in every writer at once (run, replay, verify, the access
    /// layer), to continue on a new binlog lineage (after `RESET MASTER`, a failover to a
    /// server with its own binlog numbering, a blue/green switchover), whose positions start
    /// below the stored ones; see README's Known limits.
    pub version_epoch: u64,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            write_mode: WriteMode::Conditional,
            delete_mode: DeleteMode::Tombstone,
            tombstone_ttl: Duration::from_secs(7 * 24 * 3600),
            version_attribute: "_v".into(),
            deleted_attribute: "_deleted".into(),
            batch_window: Duration::from_millis(20),
            max_batch_records: 1000,
            catchup_batch_records: 20_000,
            rebuild_memory_keys: 2_000_000,
            concurrency: 32,
            max_retries: 12,
            retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_secs(5),
            max_consecutive_rejections: 100,
            version_epoch: 0,
        }
    }
}

impl SinkConfig {
    /// Every problem with the section as written; pure.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.max_batch_records == 0 {
            issues.push(ConfigIssue::new("sink.max_batch_records", "must be > 0"));
        }
        if self.concurrency == 0 {
            issues.push(ConfigIssue::new("sink.concurrency", "must be > 0"));
        }
        if self.version_attribute.is_empty() {
            issues.push(ConfigIssue::new(
                "sink.version_attribute",
                "must not be empty",
            ));
        }
        if self.deleted_attribute.is_empty() {
            issues.push(ConfigIssue::new(
                "sink.deleted_attribute",
                "must not be empty",
            ));
        }
        if self.version_epoch > super::lineage::MAX_VERSION_EPOCH {
            issues.push(ConfigIssue::new(
                "sink.version_epoch",
                format!(
                    "must be at most {} (a stored version has at most 38 digits)",
                    super::lineage::MAX_VERSION_EPOCH
                ),
            ));
        }
        if self.retry_delay > self.max_retry_delay {
            issues.push(ConfigIssue::new(
                "sink.retry_delay",
                "must not exceed sink.max_retry_delay",
            ));
        }
        if self.write_mode == WriteMode::Rebuild {
            issues.push(ConfigIssue::new(
                "sink.write_mode",
                "\"rebuild\" is only for a replay into a new table: use \
                 `cutover replay --target-table NEW --create-table --write-mode rebuild`",
            ));
        }
        issues
    }
}

impl From<&SinkConfig> for crate::mapping::ItemShape {
    fn from(s: &SinkConfig) -> Self {
        crate::mapping::ItemShape {
            version_attribute: s.version_attribute.clone(),
            deleted_attribute: s.deleted_attribute.clone(),
            batch_writes: s.write_mode == WriteMode::Batch,
        }
    }
}
