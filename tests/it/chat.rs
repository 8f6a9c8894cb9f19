//! The chat schema of the Beekeeper write-up (conversation, conversation_member, message,
//! conversation_read) as a change log that renders as AWS DMS or Debezium records, and the
//! single-table mapping used by the stream tests.

#![allow(dead_code)]

use serde_json::{json, Map, Value};

use crate::common;

/// One row change in source order.
#[derive(Debug, Clone)]
pub struct Change {
    pub table: &'static str,
    pub op: &'static str, // load | insert | update | delete
    pub row: Value,
    pub before: Option<Value>,
    pub pos: u64,
    pub commit_us: i64,
}

#[derive(Debug, Default, Clone)]
pub struct Log {
    pub changes: Vec<Change>,
}

pub const TIME_COLUMNS: [&str; 3] = ["created_at", "joined_at", "updated_at"];

pub fn pk_columns(table: &str) -> &'static [&'static str] {
    match table {
        "conversation" | "message" | "users" => &["id"],
        "conversation_member" | "conversation_read" => &["conversation_id", "user_id"],
        "preferences" => &["user_id"],
        _ => panic!("unknown table {table}"),
    }
}

impl Log {
    pub fn push(
        &mut self,
        table: &'static str,
        op: &'static str,
        row: Value,
        before: Option<Value>,
    ) {
        let n = self.changes.len() as u64;
        self.changes.push(Change {
            table,
            op,
            row,
            before,
            pos: 4 + n * 100,
            commit_us: 1_700_000_000_000_000 + n as i64 * 1000,
        });
    }

    pub fn insert(&mut self, table: &'static str, row: Value) {
        self.push(table, "insert", row, None);
    }
    pub fn update(&mut self, table: &'static str, row: Value) {
        self.push(table, "update", row, None);
    }
    pub fn delete(&mut self, table: &'static str, row: Value) {
        self.push(table, "delete", row, None);
    }

    /// Records keyed by `chat.table.<pk>` (DMS primary-key partitioning with
    /// PartitionIncludeSchemaTable).
    pub fn dms(&self) -> Vec<(String, Option<String>)> {
        self.changes
            .iter()
            .map(|c| (key(c), Some(dms_record(c))))
            .collect()
    }

    pub fn debezium(&self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for c in &self.changes {
            out.push((key(c), Some(debezium_record(c))));
            if c.op == "delete" {
                out.push((key(c), None)); // the tombstone that follows a Debezium delete
            }
        }
        out
    }
}

pub fn key(c: &Change) -> String {
    let row = &c.row;
    let pk: Vec<String> = pk_columns(c.table)
        .iter()
        .map(|k| row.get(*k).map(|v| v.to_string()).unwrap_or_default())
        .collect();
    format!("chat.{}.{}", c.table, pk.join("."))
}

fn iso(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

pub fn dms_record(c: &Change) -> String {
    let mut envelope = Map::new();
    envelope.insert("data".into(), c.row.clone());
    if let Some(b) = &c.before {
        envelope.insert("before-image".into(), b.clone());
    }
    let txn = 9_000_000 + c.pos;
    envelope.insert(
        "metadata".into(),
        json!({
            "timestamp": iso(c.commit_us + 5000),
            "record-type": "data",
            "operation": c.op,
            "partition-key-type": "primary-key",
            "schema-name": "chat",
            "table-name": c.table,
            "transaction-id": txn,
            "transaction-record-id": 1,
            "commit-timestamp": iso(c.commit_us),
            "stream-position": format!("mysql-bin-changelog.000001:{}:0:{}:{txn}:mysql-bin-changelog.000001:{}", c.pos, c.pos + 60, c.pos),
        }),
    );
    Value::Object(envelope).to_string()
}

/// Debezium without schemas: DATETIME columns are epoch milliseconds.
pub fn debezium_record(c: &Change) -> String {
    let conv = |row: &Value| -> Value {
        let mut row = row.clone();
        if let Value::Object(m) = &mut row {
            for col in TIME_COLUMNS {
                if let Some(Value::String(s)) = m.get(col) {
                    let ms = chrono::DateTime::parse_from_rfc3339(s)
                        .unwrap()
                        .timestamp_millis();
                    m.insert(col.into(), json!(ms));
                }
            }
        }
        row
    };
    let (op, before, after) = match c.op {
        "load" => ("r", Value::Null, conv(&c.row)),
        "insert" => ("c", Value::Null, conv(&c.row)),
        "update" => (
            "u",
            c.before.as_ref().map(conv).unwrap_or(Value::Null),
            conv(&c.row),
        ),
        "delete" => ("d", conv(&c.row), Value::Null),
        other => panic!("op {other}"),
    };
    json!({
        "before": before,
        "after": after,
        "source": {
            "version": "2.5.0.Final", "connector": "mysql", "name": "chat",
            "ts_ms": c.commit_us / 1000, "snapshot": if op == "r" { "true" } else { "false" },
            "db": "chat", "table": c.table, "server_id": 1, "gtid": null,
            "file": "mysql-bin.000001", "pos": c.pos, "row": 1, "thread": 7
        },
        "op": op,
        "ts_ms": c.commit_us / 1000 + 5,
        "transaction": null
    })
    .to_string()
}

/// The single-table mapping of the chat schema (the chat service's, renamed to `chat`, into
/// `table`); the messages of these tests carry an `internal_flags` column that is excluded.
pub fn config(
    topic: &str,
    table: &str,
    group: &str,
    dlq: &str,
    format: &str,
    extra: &str,
) -> String {
    crate::chat_service::ChatConfig::named("chat")
        .target(table)
        .table_key("message", "exclude", r#"["internal_flags"]"#)
        .stack(&common::brokers(), &common::dynamo_endpoint())
        .stream(topic, group, dlq, format)
        .merge(&format!("[sink]\nbatch_window = \"20ms\"\n{extra}"))
        .text()
}

/// The scenario of the mapped-items tests.
pub fn scenario() -> Log {
    let mut log = Log::default();
    log.insert(
        "conversation",
        json!({"id": 1, "title": "General", "tenant_id": 7, "created_at": "2024-01-01T10:00:00Z"}),
    );
    log.insert("conversation_member", json!({"conversation_id": 1, "user_id": 10, "role": "owner", "joined_at": "2024-01-01T10:00:00Z"}));
    log.insert("conversation_member", json!({"conversation_id": 1, "user_id": 11, "role": "member", "joined_at": "2024-01-01T10:05:00Z"}));
    log.insert("message", json!({"id": 100, "conversation_id": 1, "sender_id": 10, "body": "hello", "created_at": "2024-01-01T10:01:00.123Z", "meta": "{\"mentions\":[11],\"big\":12345678901234567890123}", "edited": 0, "internal_flags": 3}));
    log.insert("message", json!({"id": 101, "conversation_id": 1, "sender_id": 11, "body": "hi!", "created_at": "2024-01-01T10:02:00Z", "meta": null, "edited": 0, "internal_flags": 0}));
    log.update("message", json!({"id": 101, "conversation_id": 1, "sender_id": 11, "body": "hi all", "created_at": "2024-01-01T10:02:00Z", "meta": null, "edited": 1, "internal_flags": 0}));
    log.insert("message", json!({"id": 102, "conversation_id": 1, "sender_id": 10, "body": "oops", "created_at": "2024-01-01T10:03:00Z", "meta": null, "edited": 0, "internal_flags": 0}));
    log.delete("message", json!({"id": 102, "conversation_id": 1, "sender_id": 10, "body": "oops", "created_at": "2024-01-01T10:03:00Z", "meta": null, "edited": 0, "internal_flags": 0}));
    log.insert("conversation_read", json!({"conversation_id": 1, "user_id": 11, "last_read_message_id": 101, "updated_at": "2024-01-01T10:04:00Z"}));
    log.update("conversation", json!({"id": 1, "title": "General chat", "tenant_id": 7, "created_at": "2024-01-01T10:00:00Z"}));
    log.update("conversation_member", json!({"conversation_id": 1, "user_id": 11, "role": "admin", "joined_at": "2024-01-01T10:05:00Z"}));
    log
}

/// The items `scenario()` must produce, without `_v` / `_ttl` (checked separately).
pub fn expected_items() -> Value {
    json!({
        "CONV#1|META": {"pk": "CONV#1", "sk": "META", "entity": "conversation", "id": {"N": "1"}, "title": "General chat", "tenant_id": {"N": "7"}, "created_at": "2024-01-01T10:00:00.000000Z"},
        "CONV#1|MEMBER#10": {"pk": "CONV#1", "sk": "MEMBER#10", "entity": "member", "gsi1pk": "USER#10", "gsi1sk": "CONV#1", "conversation_id": {"N": "1"}, "user_id": {"N": "10"}, "role": "owner", "joined_at": "2024-01-01T10:00:00.000000Z"},
        "CONV#1|MEMBER#11": {"pk": "CONV#1", "sk": "MEMBER#11", "entity": "member", "gsi1pk": "USER#11", "gsi1sk": "CONV#1", "conversation_id": {"N": "1"}, "user_id": {"N": "11"}, "role": "admin", "joined_at": "2024-01-01T10:05:00.000000Z"},
        "CONV#1|MSG#2024-01-01T10:01:00.123000Z#100": {"pk": "CONV#1", "sk": "MSG#2024-01-01T10:01:00.123000Z#100", "entity": "message", "id": {"N": "100"}, "conversation_id": {"N": "1"}, "sender_id": {"N": "10"}, "text": "hello", "created_at": "2024-01-01T10:01:00.123000Z", "meta": {"mentions": [{"N": "11"}], "big": {"N": "12345678901234567890123"}}, "edited": false},
        "CONV#1|MSG#2024-01-01T10:02:00.000000Z#101": {"pk": "CONV#1", "sk": "MSG#2024-01-01T10:02:00.000000Z#101", "entity": "message", "id": {"N": "101"}, "conversation_id": {"N": "1"}, "sender_id": {"N": "11"}, "text": "hi all", "created_at": "2024-01-01T10:02:00.000000Z", "edited": true},
        "CONV#1|MSG#2024-01-01T10:03:00.000000Z#102": {"pk": "CONV#1", "sk": "MSG#2024-01-01T10:03:00.000000Z#102", "_deleted": true},
        "CONV#1|READ#11": {"pk": "CONV#1", "sk": "READ#11", "entity": "read", "conversation_id": {"N": "1"}, "user_id": {"N": "11"}, "last_read_message_id": {"N": "101"}, "updated_at": "2024-01-01T10:04:00.000000Z"},
    })
}

/// A deterministic random chat history: conversations, members, messages with edits and
/// deletes, read markers, and a few primary-key changes. Rows carry full images.
pub fn generate(conversations: u64, messages: u64, seed: u64, key_moves: bool) -> Log {
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    let mut log = Log::default();
    let mut live: Vec<Value> = Vec::new();
    let mut next_id = 1_000u64;
    for c in 1..=conversations {
        log.insert("conversation", json!({"id": c, "title": format!("conv {c}"), "tenant_id": c % 5, "created_at": "2024-01-01T10:00:00Z"}));
        for u in 0..2 {
            log.insert("conversation_member", json!({"conversation_id": c, "user_id": c * 10 + u, "role": "member", "joined_at": "2024-01-01T10:00:00Z"}));
        }
    }
    for i in 0..messages {
        let c = 1 + next(conversations);
        next_id += 1;
        let row = json!({"id": next_id, "conversation_id": c, "sender_id": c * 10, "body": format!("message {i}"),
            "created_at": format!("2024-01-02T{:02}:{:02}:{:02}.{:03}Z", (i / 3600) % 24, (i / 60) % 60, i % 60, i % 1000),
            "meta": null, "edited": 0, "internal_flags": 0});
        log.insert("message", row.clone());
        live.push(row);
        match next(10) {
            0..=2 if !live.is_empty() => {
                let k = next(live.len() as u64) as usize;
                let mut r = live[k].clone();
                r["body"] = json!(format!("edited {i}"));
                r["edited"] = json!(1);
                live[k] = r.clone();
                log.update("message", r);
            }
            3 if !live.is_empty() => {
                let k = next(live.len() as u64) as usize;
                let r = live.swap_remove(k);
                log.delete("message", r);
            }
            4 if key_moves && !live.is_empty() => {
                // primary-key change: the row moves to a new id (DMS update with before-image)
                let k = next(live.len() as u64) as usize;
                let before = live[k].clone();
                next_id += 1;
                let mut after = before.clone();
                after["id"] = json!(next_id);
                live[k] = after.clone();
                log.push("message", "update", after, Some(before));
            }
            5 => log.update("conversation", json!({"id": c, "title": format!("conv {c} #{i}"), "tenant_id": c % 5, "created_at": "2024-01-01T10:00:00Z"})),
            6 => log.push("conversation_read", "update", json!({"conversation_id": c, "user_id": c * 10 + 1, "last_read_message_id": next_id, "updated_at": "2024-01-02T00:00:00Z"}), None),
            _ => {}
        }
    }
    log
}

/// Every chat config is the chat service's own, renamed and adjusted: the helper keeps what
/// it is not told to change.
#[test]
fn chat_configs_derive_from_the_service_config() {
    use crate::chat_service::ChatConfig;
    let load =
        |c: ChatConfig| cutover::Config::from_toml(&c.text()).unwrap_or_else(|e| panic!("{e}"));
    let all = load(ChatConfig::named("shop"));
    let sources: Vec<&str> = all.tables.iter().map(|t| t.source.as_str()).collect();
    assert_eq!(
        sources,
        [
            "shop.conversation",
            "shop.conversation_member",
            "shop.message",
            "shop.conversation_read"
        ]
    );
    assert!(all.tables.iter().all(|t| t.target == "shop"));
    assert_eq!(all.kafka.topics, ["shop.cdc"]);
    assert_eq!(all.flags.paths.len(), 4);
    let one = load(
        ChatConfig::named("shop")
            .only(&["message"])
            .target("shop-v2")
            .table_key("message", "exclude", r#"["internal_flags"]"#)
            .stack("b:9092", "http://d:8000")
            .stream("t", "g", "t.dlq", "debezium")
            .set("flags.paths", r#"{ "message.read" = {} }"#)
            .merge("[sink]\nbatch_window = \"5ms\""),
    );
    assert_eq!(one.tables.len(), 1);
    assert_eq!(one.tables[0].target, "shop-v2");
    assert_eq!(one.tables[0].exclude, ["internal_flags"]);
    assert_eq!(
        one.tables[0].rename.get("body").map(String::as_str),
        Some("text")
    );
    assert_eq!(one.kafka.brokers, "b:9092");
    assert_eq!(one.kafka.topics, ["t"]);
    assert_eq!(one.kafka.format, cutover::cdc::Format::Debezium);
    assert_eq!(one.kafka.properties.len(), 2);
    assert_eq!(one.dynamodb.endpoint_url.as_deref(), Some("http://d:8000"));
    assert_eq!(one.flags.paths.keys().collect::<Vec<_>>(), ["message.read"]);
    assert_eq!(one.flags.reload, std::time::Duration::from_millis(500));
    assert_eq!(one.sink.batch_window, std::time::Duration::from_millis(5));
}
