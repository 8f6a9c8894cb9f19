//! `[kafka]`: where the change records come from, and where poison records go.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cdc::Format;
use crate::config::ConfigIssue;

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

    /// What only the commands that consume the change topics need (`run`, `replay`, and the
    /// strict `cutover validate`): at least one topic. Pure.
    pub fn require_topics(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.topics.is_empty() {
            issues.push(ConfigIssue::new(
                "kafka.topics",
                "name at least one topic to consume",
            ));
        }
        issues
    }

    /// Every problem with the section as written; pure.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.brokers.trim().is_empty() {
            issues.push(ConfigIssue::new("kafka.brokers", "must not be empty"));
        }
        if self.group_id.trim().is_empty() {
            issues.push(ConfigIssue::new("kafka.group_id", "must not be empty"));
        }
        if self.dlq_topic.trim().is_empty() {
            issues.push(ConfigIssue::new(
                "kafka.dlq_topic",
                "must not be empty: poison records need somewhere to go",
            ));
        }
        if self.topics.contains(&self.dlq_topic) {
            issues.push(ConfigIssue::new(
                "kafka.dlq_topic",
                "must not be one of kafka.topics",
            ));
        }
        for topic in self.formats.keys() {
            if !self.topics.contains(topic) {
                issues.push(ConfigIssue::new(
                    format!("kafka.formats.{topic}"),
                    "not one of kafka.topics",
                ));
            }
        }
        for key in self.properties.keys() {
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
        issues
    }
}
