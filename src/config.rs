//! Configuration: one `cutover.toml`, layered with `CUTOVER_*` environment overrides.
//!
//! Each top-level key is the module that owns it (`kafka`, `dynamodb`, `sink`, `run`, `mysql`,
//! `telemetry`, `flags`, `access`, `capture`, `verify`, `status`, and one `[[table]]` block per
//! source table, read by `mapping`).
//!
//! `validate` checks what every command needs; commands that consume Kafka (`run`, `replay`,
//! and `cutover validate`, which is strict) also check [`Config::require_kafka`].
//!
//! Loading is two pure steps, so `cutover validate` can print every problem at once:
//! 1. parse: unknown keys are collected (not fatal on their own), type errors stop the parse;
//! 2. validate: every semantic check runs and reports with the key path that is wrong.
//!
//! Environment overrides use `CUTOVER_` + the key path with `__` between levels, e.g.
//! `CUTOVER_KAFKA__BROKERS=b1:9092` or `CUTOVER_DYNAMODB__ENDPOINT_URL=http://127.0.0.1:18000`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::cdc::Format;
use crate::mapping::TableConfig;

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where the change records come from, and where poison records go.
    pub kafka: KafkaConfig,
    /// How to reach DynamoDB.
    pub dynamodb: DynamoConfig,
    /// How items are written: ordering guard, deletes, batching, retries.
    pub sink: SinkConfig,
    /// Consumer tuning for `cutover run`.
    pub run: RunConfig,
    /// Logs, metrics and health endpoints.
    pub telemetry: TelemetryConfig,
    /// Migration stages of the service's read/write paths (`cutover flags`).
    pub flags: crate::flags::FlagsConfig,
    /// The source MySQL/MariaDB database (for `capture` and other commands that read it).
    pub mysql: crate::mysql::MysqlConfig,
    /// The data-access layer: repair queue, complete-stage journal, mismatch reports.
    pub access: crate::access::AccessConfig,
    /// `cutover capture`: MySQL → DMS-format records on Kafka.
    pub capture: crate::capture::CaptureConfig,
    /// `cutover verify`: page sizes, scan segments, where the last result is kept.
    pub verify: crate::verify::VerifyConfig,
    /// `cutover status`: how recent a verify must be, how long to probe the topics.
    pub status: crate::status::StatusConfig,
    /// One block per source table: how its rows become DynamoDB items.
    #[serde(rename = "table")]
    pub tables: Vec<TableConfig>,
}

/// `[kafka]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Topics that carry the change records.
    pub topics: Vec<String>,
    /// Consumer group of `cutover run`. `replay` never commits to it.
    pub group_id: String,
    /// Record format for every topic: `auto` (detect per record), `dms` or `debezium`.
    pub format: Format,
    /// Per-topic format overrides: `{ "topic" = "debezium" }`.
    pub formats: BTreeMap<String, Format>,
    /// Dead-letter topic for records that cannot be decoded, mapped or written.
    pub dlq_topic: String,
    /// Any librdkafka property, passed through verbatim to consumers and producers
    /// (`security.protocol`, `sasl.mechanism`, `ssl.ca.location`, `session.timeout.ms`, ...).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topics: Vec::new(),
            group_id: "cutover".into(),
            format: Format::Auto,
            formats: BTreeMap::new(),
            dlq_topic: "cutover.dlq".into(),
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    pub fn format_for(&self, topic: &str) -> Format {
        self.formats.get(topic).copied().unwrap_or(self.format)
    }
}

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
    /// Largest batch of records taken from one partition at once.
    pub max_batch_records: usize,
    /// Writes in flight per partition batch.
    pub concurrency: usize,
    /// Retries of throttled or transient failures before the process stops.
    pub max_retries: usize,
    /// First retry delay; doubles with full jitter up to `max_retry_delay`.
    #[serde(with = "humantime_serde")]
    pub retry_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_retry_delay: Duration,
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
            concurrency: 32,
            max_retries: 12,
            retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_secs(5),
        }
    }
}

/// `[run]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// Records buffered per partition between the poll loop and its writer. Bounds memory:
    /// at most `partitions × (queue_per_partition + max_batch_records)` records are held.
    pub queue_per_partition: usize,
    /// How long a revocation or shutdown waits for in-flight batches before giving up on them
    /// (their offsets are then not committed, and they are re-read: at-least-once).
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// What to do with records of tables that have no `[[table]]` block: `skip` or `dlq`.
    pub unmapped: Unmapped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmapped {
    Skip,
    Dlq,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            queue_per_partition: 2000,
            drain_timeout: Duration::from_secs(30),
            unmapped: Unmapped::Skip,
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// Address of the HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`.
    /// Empty string disables it.
    pub listen: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

impl TelemetryConfig {
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        if self.listen.is_empty() {
            None
        } else {
            self.listen.parse().ok()
        }
    }
}

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
#[derive(Debug, thiserror::Error)]
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

impl Config {
    /// Read `path` (if it exists) and `CUTOVER_*` overrides, then validate.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let figment = Figment::from(Serialized::defaults(Config::default()))
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
        Self::from_figment(figment)
    }

    /// Parse TOML text (no environment), then validate. Used by tests and `validate --stdin`.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        let figment =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text));
        Self::from_figment(figment)
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigErrors> {
        let value: figment::value::Value = figment.extract().map_err(|e| {
            ConfigErrors(
                e.into_iter()
                    .map(|e| ConfigIssue::new(e.path.join("."), e.kind.to_string()))
                    .collect(),
            )
        })?;
        let mut issues = Vec::new();
        let parsed: Result<Config, _> = serde_ignored::deserialize(&value, |path| {
            issues.push(ConfigIssue::new(
                path.to_string().replace("?.", ""),
                "unknown key",
            ))
        });
        let config = match parsed {
            Ok(c) => c,
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
                return Err(ConfigErrors(issues));
            }
        };
        issues.extend(config.validate());
        if issues.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(issues))
        }
    }

    /// What only the commands that consume the change topics need (`run`, `replay`, and the
    /// strict `cutover validate`): at least one topic. Pure.
    pub fn require_kafka(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.kafka.topics.is_empty() {
            issues.push(ConfigIssue::new(
                "kafka.topics",
                "name at least one topic to consume",
            ));
        }
        issues
    }

    /// Every semantic problem every command cares about, pure (no network). Does not include
    /// [`Config::require_kafka`].
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.kafka.brokers.trim().is_empty() {
            issues.push(ConfigIssue::new("kafka.brokers", "must not be empty"));
        }
        if self.kafka.group_id.trim().is_empty() {
            issues.push(ConfigIssue::new("kafka.group_id", "must not be empty"));
        }
        if self.kafka.dlq_topic.trim().is_empty() {
            issues.push(ConfigIssue::new(
                "kafka.dlq_topic",
                "must not be empty: poison records need somewhere to go",
            ));
        }
        if self.kafka.topics.contains(&self.kafka.dlq_topic) {
            issues.push(ConfigIssue::new(
                "kafka.dlq_topic",
                "must not be one of kafka.topics",
            ));
        }
        for topic in self.kafka.formats.keys() {
            if !self.kafka.topics.contains(topic) {
                issues.push(ConfigIssue::new(
                    format!("kafka.formats.{topic}"),
                    "not one of kafka.topics",
                ));
            }
        }
        for key in self.kafka.properties.keys() {
            if matches!(
                key.as_str(),
                "group.id"
                    | "bootstrap.servers"
                    | "enable.auto.offset.store"
                    | "enable.auto.commit"
            ) {
                issues.push(ConfigIssue::new(
                    format!("kafka.properties.\"{key}\""),
                    "is managed by cutover itself (brokers and group: kafka.brokers / kafka.group_id; offsets are stored only after durable writes)",
                ));
            }
        }
        if let Some(url) = &self.dynamodb.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                issues.push(ConfigIssue::new(
                    "dynamodb.endpoint_url",
                    "must start with http:// or https://",
                ));
            }
        }
        let s = &self.sink;
        if s.max_batch_records == 0 {
            issues.push(ConfigIssue::new("sink.max_batch_records", "must be > 0"));
        }
        if s.concurrency == 0 {
            issues.push(ConfigIssue::new("sink.concurrency", "must be > 0"));
        }
        if s.version_attribute.is_empty() {
            issues.push(ConfigIssue::new(
                "sink.version_attribute",
                "must not be empty",
            ));
        }
        if s.deleted_attribute.is_empty() {
            issues.push(ConfigIssue::new(
                "sink.deleted_attribute",
                "must not be empty",
            ));
        }
        if s.retry_delay > s.max_retry_delay {
            issues.push(ConfigIssue::new(
                "sink.retry_delay",
                "must not exceed sink.max_retry_delay",
            ));
        }
        if self.run.queue_per_partition == 0 {
            issues.push(ConfigIssue::new("run.queue_per_partition", "must be > 0"));
        }
        if !self.telemetry.listen.is_empty() && self.telemetry.listen_addr().is_none() {
            issues.push(ConfigIssue::new(
                "telemetry.listen",
                "must be host:port, e.g. 127.0.0.1:9464 (or empty to disable)",
            ));
        }
        if self.tables.is_empty() {
            issues.push(ConfigIssue::new(
                "table",
                "add at least one [[table]] block",
            ));
        }
        issues.extend(self.verify.validate());
        issues.extend(self.status.validate());
        issues.extend(crate::mapping::validate_tables(&self.tables, &self.sink));
        issues.extend(self.flags.validate());
        issues.extend(self.mysql.validate());
        issues.extend(self.capture.validate());
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [kafka]
        brokers = "127.0.0.1:19092"
        topics = ["dms"]
        [[table]]
        source = "chat.message"
        target = "chat"
        primary_key = ["id"]
        partition_key = { name = "pk", template = "MSG#{id}" }
    "#;

    #[test]
    fn minimal_config_is_valid() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.tables.len(), 1);
        assert_eq!(c.sink.write_mode, WriteMode::Conditional);
    }

    #[test]
    fn all_problems_are_listed_at_once_with_their_keys() {
        let text = r#"
            [kafka]
            brokers = ""
            topics = []
            bogus = 1
            [sink]
            concurrency = 0
            nope = "x"
            [[table]]
            source = "message"
            target = ""
            primary_key = []
            partition_key = { name = "pk", template = "MSG#{id" }
        "#;
        let err = Config::from_toml(text).unwrap_err();
        let keys: Vec<_> = err.0.iter().map(|i| i.key.as_str()).collect();
        for want in [
            "kafka.bogus",
            "sink.nope",
            "kafka.brokers",
            "sink.concurrency",
            "table[0].source",
            "table[0].target",
            "table[0].primary_key",
            "table[0].partition_key.template",
        ] {
            assert!(keys.contains(&want), "missing {want} in {keys:?}");
        }
    }

    #[test]
    fn topics_are_required_only_by_the_kafka_commands() {
        let c = Config::from_toml(&MINIMAL.replace("topics = [\"dms\"]", "")).unwrap();
        let issues = c.require_kafka();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "kafka.topics");
        assert!(Config::from_toml(MINIMAL)
            .unwrap()
            .require_kafka()
            .is_empty());
    }

    #[test]
    fn a_type_error_names_its_key() {
        let err = Config::from_toml("[sink]\nconcurrency = \"lots\"").unwrap_err();
        assert!(err.0.iter().any(|i| i.key == "sink.concurrency"), "{err}");
    }
}
