//! The whole `cutover.toml`: every section, assembled, and the checks that span sections.
//!
//! Each top-level key is the module that owns it, with its type and its own checks there:
//! `[kafka]` ([`crate::kafka`]), `[dynamodb]` and `[sink]` ([`crate::sink`]), `[run]`
//! ([`crate::run`]), `[telemetry]`, `[flags]`, `[mysql]`, `[access]`, `[capture]`,
//! `[verify]`, `[status]`, and one `[[table]]` block per source table ([`crate::mapping`]).
//! This module sits above all of them (only `cli`, `commands` and `main.rs` are above it):
//! it imports the sections, and no feature imports it back. Features take their sections,
//! or the settings a command resolved, never the whole file.
//!
//! `validate` checks what every command needs; commands that consume Kafka (`run`, `replay`,
//! and `cutover validate`, which is strict) also check [`Config::require_kafka`]. Loading
//! lists every problem at once: unknown keys (through `serde_ignored`, see [`crate::config`]),
//! then every section's problems, each with its key path.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::access::AccessConfig;
use crate::capture::CaptureConfig;
use crate::config::{self, ConfigErrors, ConfigIssue};
use crate::flags::FlagsConfig;
use crate::kafka::KafkaConfig;
use crate::mapping::{Mapping, TableConfig};
use crate::mysql::MysqlConfig;
use crate::run::RunConfig;
use crate::sink::{DynamoConfig, SinkConfig};
use crate::status::StatusConfig;
use crate::telemetry::TelemetryConfig;
use crate::verify::VerifyConfig;

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
    pub flags: FlagsConfig,
    /// The source MySQL/MariaDB database (for `capture` and other commands that read it).
    pub mysql: MysqlConfig,
    /// The data-access layer: repair queue, complete-stage journal, mismatch reports.
    pub access: AccessConfig,
    /// `cutover capture`: MySQL → DMS-format records on Kafka.
    pub capture: CaptureConfig,
    /// `cutover verify`: page sizes, scan segments, where the last result is kept.
    pub verify: VerifyConfig,
    /// `cutover status`: how recent a verify must be, how long to probe the topics.
    pub status: StatusConfig,
    /// One block per source table: how its rows become DynamoDB items.
    #[serde(rename = "table")]
    pub tables: Vec<TableConfig>,
}

impl Config {
    /// Read `path` (if it exists) and `CUTOVER_*` overrides, then validate (without
    /// [`Config::require_kafka`]: see [`Config::load_for`]).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Self::load_for(path, false)
    }

    /// As [`Config::load`]; with `kafka`, the [`Config::require_kafka`] problems are listed
    /// together with every other one (`run`, `replay`, `validate`).
    pub fn load_for(path: &Path, kafka: bool) -> Result<Config, ConfigErrors> {
        let (config, unknown) = config::load(path)?;
        Self::checked(config, unknown, kafka)
    }

    /// Parse TOML text (no environment), then validate (without [`Config::require_kafka`]).
    /// Used by tests and `validate --stdin`.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        let (config, unknown) = config::parse(text)?;
        Self::checked(config, unknown, false)
    }

    fn checked(
        config: Config,
        mut issues: Vec<ConfigIssue>,
        kafka: bool,
    ) -> Result<Config, ConfigErrors> {
        if kafka {
            issues.extend(config.require_kafka());
        }
        issues.extend(config.validate());
        ConfigErrors::check(issues).map(|()| config)
    }

    /// What only the commands that consume the change topics need (`run`, `replay`, and the
    /// strict `cutover validate`): at least one topic. Pure.
    pub fn require_kafka(&self) -> Vec<ConfigIssue> {
        self.kafka.require_topics()
    }

    /// Every semantic problem every command cares about, pure (no network), in file order:
    /// each section's own checks, and the mapping checked against `[sink]`. Does not include
    /// [`Config::require_kafka`].
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        issues.extend(self.kafka.validate());
        issues.extend(self.dynamodb.validate());
        issues.extend(self.sink.validate());
        issues.extend(self.run.validate());
        issues.extend(self.telemetry.validate());
        if self.tables.is_empty() {
            issues.push(ConfigIssue::new(
                "table",
                "add at least one [[table]] block",
            ));
        }
        issues.extend(self.verify.validate());
        issues.extend(self.status.validate());
        issues.extend(crate::mapping::validate_tables(
            &self.tables,
            &(&self.sink).into(),
        ));
        issues.extend(self.flags.validate());
        issues.extend(self.mysql.validate());
        issues.extend(self.access.validate());
        issues.extend(self.capture.validate());
        issues
    }

    /// The compiled mapping of the `[[table]]` blocks (every problem at once).
    pub fn mapping(&self) -> Result<Mapping, ConfigErrors> {
        Mapping::new(&self.tables, &self.sink).map_err(ConfigErrors)
    }
}

/// The data-access layer reads its sections of the file: `Access::connect(&cfg, dir)`.
impl<'a> From<&'a Config> for crate::access::Sections<'a> {
    fn from(c: &'a Config) -> Self {
        crate::access::Sections {
            tables: &c.tables,
            sink: &c.sink,
            flags: &c.flags,
            mysql: &c.mysql,
            dynamodb: &c.dynamodb,
            kafka: &c.kafka,
            access: &c.access,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{PathSpec, Stage};
    use crate::sink::WriteMode;

    /// One valid `[[table]]` block.
    const TABLE: &str = r#"
        [[table]]
        source = "chat.message"
        target = "chat"
        primary_key = ["id"]
        partition_key = { name = "pk", template = "MSG#{id}" }
    "#;

    /// `text` fails to load, listing (at least) the problems of these keys.
    fn assert_problems(text: &str, keys: &[&str]) {
        let err = Config::from_toml(text).unwrap_err();
        let found: Vec<&str> = err.0.iter().map(|i| i.key.as_str()).collect();
        for want in keys {
            assert!(found.contains(want), "missing {want} in {found:?}");
        }
    }

    fn minimal() -> String {
        format!("[kafka]\nbrokers = \"127.0.0.1:19092\"\ntopics = [\"dms\"]\n{TABLE}")
    }

    #[test]
    fn minimal_config_is_valid() {
        let c = Config::from_toml(&minimal()).unwrap();
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
        assert_problems(
            text,
            &[
                "kafka.bogus",
                "sink.nope",
                "kafka.brokers",
                "sink.concurrency",
                "table[0].source",
                "table[0].target",
                "table[0].primary_key",
                "table[0].partition_key.template",
            ],
        );
    }

    #[test]
    fn topics_are_required_only_by_the_kafka_commands() {
        let c = Config::from_toml(&minimal().replace("topics = [\"dms\"]", "")).unwrap();
        let issues = c.require_kafka();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "kafka.topics");
        assert!(Config::from_toml(&minimal())
            .unwrap()
            .require_kafka()
            .is_empty());
    }

    #[test]
    fn a_type_error_names_its_key() {
        let err = Config::from_toml("[sink]\nconcurrency = \"lots\"").unwrap_err();
        assert!(err.0.iter().any(|i| i.key == "sink.concurrency"), "{err}");
    }

    // Sections owned by other modules, checked through the whole file (unknown keys too).

    #[test]
    fn flags_config_problems_are_listed_with_their_keys() {
        let text = r#"
            [kafka]
            topics = ["dms"]
            [flags]
            reload = "0s"
            [flags.paths."message.read"]
            flag = "has space"
            [flags.paths."Message.Read"]
            [flags.paths.".bad"]
            [flags.launchdarkly]
            context_kind = "multi"
            relay_proxy = "ftp://relay"
            base_uri = "https://x"
        "#;
        assert_problems(
            &format!("{text}{TABLE}"),
            &[
                "flags.reload",
                "flags.paths.\"message.read\".flag",
                // Sorted, "Message.Read" comes first; its twin is the duplicate.
                "flags.paths.\"message.read\"",
                "flags.paths.\".bad\"",
                "flags.launchdarkly.context_kind",
                "flags.launchdarkly.relay_proxy",
            ],
        );
        let err = Config::from_toml("[flags]\ndefault_stage = \"shadw\"").unwrap_err();
        assert!(
            err.0
                .iter()
                .any(|i| i.key == "flags.default_stage" && i.message.contains("unknown stage")),
            "{err}"
        );
        let ok = Config::from_toml(&format!(
            r#"
            [flags]
            default_stage = "dualwrite"
            [flags.paths."message.read"]
            [flags.paths."conversation.list"]
            flag = "cutover-conversation-list"
            {TABLE}"#
        ))
        .unwrap();
        assert_eq!(ok.flags.default_stage, Stage::DualWrite);
        let specs = ok.flags.path_specs();
        assert_eq!(
            specs,
            vec![
                PathSpec::with_flag("conversation.list", "cutover-conversation-list"),
                PathSpec::new("message.read"),
            ]
        );
        assert_eq!(specs[1].flag, "message-read");
    }

    #[test]
    fn access_config_problems_name_their_keys() {
        let text = r#"
            [kafka]
            topics = ["t"]
            [access]
            repair_topic = ""
            timeout = "0s"
            bogus = 1
        "#;
        assert_problems(
            &format!("{text}{TABLE}"),
            &["access.repair_topic", "access.timeout", "access.bogus"],
        );
    }
}
