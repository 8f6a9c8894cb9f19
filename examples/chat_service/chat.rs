//! The chat schema of the examples, the benches and the tests, written once: its rows as the
//! service sees them ([`Message`], [`Conversation`]), its MySQL tables ([`DDL`]), and its
//! mapping, which is the chat service's own `cutover.toml` ([`CONFIG`]); every other chat
//! config is that file renamed and adjusted ([`ChatConfig`]).
//!
//! Included with `#[path]` (examples: `chat_service/chat.rs`; tests and benches: from the
//! crate root), so it uses only what every such target has: serde and toml.
// Each includer uses only some of it.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};

/// `examples/chat_service/cutover.toml`: the service's config, with every name
/// (database, topics, groups, DynamoDB table) `chat_example`.
pub const CONFIG: &str = include_str!("cutover.toml");

/// The name every resource of [`CONFIG`] carries.
pub const NAME: &str = "chat_example";

/// The chat schema's tables (restartable: `IF NOT EXISTS`).
pub const DDL: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS conversation (
        id BIGINT PRIMARY KEY, title VARCHAR(200) NOT NULL, tenant_id INT NOT NULL DEFAULT 0,
        created_at DATETIME(6) NOT NULL)",
    "CREATE TABLE IF NOT EXISTS conversation_member (
        conversation_id BIGINT NOT NULL, user_id BIGINT NOT NULL, role VARCHAR(20) NOT NULL,
        joined_at DATETIME(6) NOT NULL, PRIMARY KEY (conversation_id, user_id))",
    "CREATE TABLE IF NOT EXISTS message (
        id BIGINT PRIMARY KEY, conversation_id BIGINT NOT NULL, sender_id BIGINT NOT NULL,
        body TEXT NULL, created_at DATETIME(6) NOT NULL, edited BIT(1) NOT NULL DEFAULT b'0',
        meta JSON NULL, KEY by_conversation (conversation_id))",
    "CREATE TABLE IF NOT EXISTS conversation_read (
        conversation_id BIGINT NOT NULL, user_id BIGINT NOT NULL,
        last_read_message_id BIGINT NOT NULL, updated_at DATETIME(6) NOT NULL,
        PRIMARY KEY (conversation_id, user_id))",
];

/// One chat message, as the service reads and writes it through the data-access layer
/// (`Store<Message>`): the row's columns, in the shapes DMS uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: i64,
    pub conversation_id: i64,
    pub sender_id: i64,
    pub body: Option<String>,
    /// ISO-8601 with microseconds, `2026-01-02T03:04:05.000006Z`.
    pub created_at: String,
    #[serde(default)]
    pub edited: bool,
    /// JSON text.
    #[serde(default)]
    pub meta: Option<String>,
}

impl Message {
    /// The columns that address the row in both stores (primary key and key-template
    /// columns), for `get` and `delete`.
    pub fn key(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "conversation_id": self.conversation_id,
            "created_at": self.created_at,
        })
    }
}

/// One conversation (its row; the service writes `id`, `title` and `created_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: i64,
    pub title: String,
    pub created_at: String,
}

/// [`CONFIG`], adjusted for another database, stack or test.
pub struct ChatConfig(toml::Table);

impl ChatConfig {
    /// The service's config with every `chat_example` (database, topics, groups, table)
    /// renamed to `name`.
    pub fn named(name: &str) -> ChatConfig {
        ChatConfig(
            CONFIG
                .replace(NAME, name)
                .parse()
                .expect("examples/chat_service/cutover.toml is TOML"),
        )
    }

    /// Keep only the `[[table]]` blocks of these source tables (`"message"`, ...).
    pub fn only(mut self, tables: &[&str]) -> ChatConfig {
        if let Some(toml::Value::Array(blocks)) = self.0.get_mut("table") {
            blocks.retain(|b| tables.iter().any(|t| source_table(b) == Some(*t)));
        }
        self
    }

    /// Every block writes into `target` instead.
    pub fn target(self, target: &str) -> ChatConfig {
        self.each_table(|_, block| {
            block.insert("target".into(), toml::Value::String(target.into()));
        })
    }

    /// Set `key = value` (`value` in TOML) on the block of source table `table`.
    pub fn table_key(self, table: &str, key: &str, value: &str) -> ChatConfig {
        let value = toml_value(value);
        self.each_table(|t, block| {
            if t == table {
                block.insert(key.into(), value.clone());
            }
        })
    }

    /// On a stack: the brokers and the DynamoDB endpoint.
    pub fn stack(self, brokers: &str, dynamodb: &str) -> ChatConfig {
        self.merge(&format!(
            "[kafka]\nbrokers = {brokers:?}\n[dynamodb]\nendpoint_url = {dynamodb:?}\n"
        ))
    }

    /// Consume `topic` (records in `format`) as `group`, poison to `dlq`, with session
    /// timeouts short enough for tests and demos to rebalance quickly.
    pub fn stream(self, topic: &str, group: &str, dlq: &str, format: &str) -> ChatConfig {
        self.merge(&format!(
            r#"
[kafka]
topics = [{topic:?}]
group_id = {group:?}
dlq_topic = {dlq:?}
format = {format:?}
[kafka.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
"#
        ))
    }

    /// Set the (dotted, unquoted) `key` to `value` (TOML), replacing what is there: e.g.
    /// `("flags.paths", "{ \"message.read\" = {} }")` declares exactly that path.
    pub fn set(mut self, key: &str, value: &str) -> ChatConfig {
        let value = toml_value(value);
        let (parents, last) = key
            .rsplit_once('.')
            .map_or((None, key), |(p, l)| (Some(p), l));
        let mut table = &mut self.0;
        for part in parents.into_iter().flat_map(|p| p.split('.')) {
            table = table
                .entry(part)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("a table on the way");
        }
        table.insert(last.into(), value);
        self
    }

    /// `overrides` (TOML) over the file, key by key: a table merges into the one it names,
    /// any other value (an array too) replaces.
    pub fn merge(mut self, overrides: &str) -> ChatConfig {
        let overrides: toml::Table = overrides.parse().expect("overrides are TOML");
        merge(&mut self.0, overrides);
        self
    }

    pub fn text(&self) -> String {
        toml::to_string(&self.0).expect("a TOML table serialises")
    }

    fn each_table(mut self, mut f: impl FnMut(&str, &mut toml::Table)) -> ChatConfig {
        if let Some(toml::Value::Array(blocks)) = self.0.get_mut("table") {
            for b in blocks {
                let name = source_table(b).unwrap_or_default().to_string();
                if let toml::Value::Table(block) = b {
                    f(&name, block);
                }
            }
        }
        self
    }
}

fn toml_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .expect("a TOML value")
}

/// `message` for a block whose source is `db.message`.
fn source_table(block: &toml::Value) -> Option<&str> {
    block
        .get("source")?
        .as_str()?
        .rsplit_once('.')
        .map(|(_, t)| t)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}
