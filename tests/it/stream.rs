//! `cutover run` / `cutover replay` end to end: records on a real broker → items in
//! DynamoDB Local, through the real binary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use serde_json::Value;

use crate::chat;
use crate::common::{self, Cutover};

pub struct Env {
    pub topic: String,
    pub table: String,
    pub group: String,
    pub dlq: String,
    pub config: PathBuf,
    pub client: Client,
}

pub async fn setup(name: &str, format: &str, partitions: i32, extra: &str) -> Env {
    common::require_stack();
    let topic = common::unique(name);
    let dlq = format!("{topic}.dlq");
    common::create_topic(&topic, partitions).await;
    common::create_topic(&dlq, 1).await;
    let table = common::unique(name);
    let group = format!("{topic}-group");
    let config = common::write_config(
        &topic,
        &chat::config(&topic, &table, &group, &dlq, format, extra),
    );
    common::cutover_ok(&config, &["tables", "create"]);
    Env {
        topic,
        table,
        group,
        dlq,
        config,
        client: common::dynamo().await,
    }
}

pub fn strip(items: &BTreeMap<String, Value>) -> Value {
    serde_json::to_value(common::without(items, &["_v", "_ttl"])).unwrap()
}

/// Start `cutover run`, wait until the table equals `expected` (without _v/_ttl), stop it.
pub async fn run_until(env: &Env, expected: &Value, timeout: Duration) -> BTreeMap<String, Value> {
    let mut run = Cutover::start(&env.config, &["run"]);
    let start = std::time::Instant::now();
    let mut last;
    loop {
        run.assert_running();
        last = common::scan(&env.client, &env.table).await;
        if &strip(&last) == expected {
            break;
        }
        if start.elapsed() > timeout {
            panic!(
                "table {} did not converge in {timeout:?}.\nexpected: {expected:#}\nactual: {:#}\nlog:\n{}",
                env.table,
                strip(&last),
                run.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = run.log_text();
    assert!(
        run.stop(),
        "cutover run did not exit cleanly on SIGTERM:\n{log}"
    );
    last
}

fn assert_versioned(items: &BTreeMap<String, Value>) {
    for (k, v) in items {
        assert!(v.get("_v").is_some(), "{k} has no _v: {v}");
        if v.get("_deleted").is_some() {
            assert!(v.get("_ttl").is_some(), "tombstone {k} has no _ttl");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dms_records_become_the_expected_items() {
    let env = setup("dms-items", "dms", 3, "").await;
    common::produce(&env.topic, &chat::scenario().dms()).await;
    let items = run_until(&env, &chat::expected_items(), Duration::from_secs(60)).await;
    assert_versioned(&items);
}

#[tokio::test(flavor = "multi_thread")]
async fn debezium_records_become_the_same_items() {
    let env = setup("dbz-items", "debezium", 3, "").await;
    common::produce(&env.topic, &chat::scenario().debezium()).await;
    let items = run_until(&env, &chat::expected_items(), Duration::from_secs(60)).await;
    assert_versioned(&items);
}

/// Run `cutover run` until the group has committed everything produced; returns the items.
pub async fn run_to_end(
    env: &Env,
    partitions: i32,
    delivered: &[(i32, i64)],
) -> BTreeMap<String, Value> {
    let run = Cutover::start(&env.config, &["run"]);
    common::wait_committed(
        &env.group,
        &env.topic,
        partitions,
        &common::ends(delivered),
        Duration::from_secs(180),
    )
    .await;
    let log = run.log_text();
    assert!(run.stop(), "cutover run did not exit cleanly:\n{log}");
    common::scan(&env.client, &env.table).await
}

/// Users and preferences merged into one item per user (`chat.users` owns it).
pub fn merge_config(topic: &str, table: &str, group: &str, dlq: &str) -> String {
    format!(
        r#"
    [kafka]
    brokers = "{brokers}"
    topics = ["{topic}"]
    group_id = "{group}"
    dlq_topic = "{dlq}"
    properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000" }}
    [dynamodb]
    endpoint_url = "{endpoint}"
    [telemetry]
    listen = ""
    [[table]]
    source = "chat.users"
    target = "{table}"
    primary_key = ["id"]
    partition_key = {{ name = "pk", template = "USER#{{id}}" }}
    columns = ["name", "email"]
    merge = true
    owner = true
    [[table]]
    source = "chat.preferences"
    target = "{table}"
    primary_key = ["user_id"]
    partition_key = {{ name = "pk", template = "USER#{{user_id}}" }}
    columns = ["theme", "lang"]
    merge = true
    "#,
        brokers = common::brokers(),
        endpoint = common::dynamo_endpoint(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_mode_joins_two_tables_into_one_item() {
    common::require_stack();
    let topic = common::unique("merge");
    let dlq = format!("{topic}.dlq");
    common::create_topic(&topic, 2).await;
    common::create_topic(&dlq, 1).await;
    let table = common::unique("merge");
    let group = format!("{topic}-g");
    let toml = merge_config(&topic, &table, &group, &dlq);
    let config = common::write_config(&topic, &toml);
    common::cutover_ok(&config, &["tables", "create"]);
    let mut log = chat::Log::default();
    log.insert(
        "users",
        serde_json::json!({"id": 1, "name": "Ada", "email": "ada@example.com"}),
    );
    log.insert(
        "preferences",
        serde_json::json!({"user_id": 1, "theme": "dark", "lang": "en"}),
    );
    log.insert(
        "users",
        serde_json::json!({"id": 2, "name": "Bob", "email": "bob@example.com"}),
    );
    log.insert(
        "preferences",
        serde_json::json!({"user_id": 2, "theme": "light", "lang": "de"}),
    );
    log.update(
        "users",
        serde_json::json!({"id": 1, "name": "Ada L.", "email": "ada@example.com"}),
    );
    log.delete(
        "preferences",
        serde_json::json!({"user_id": 2, "theme": "light", "lang": "de"}),
    );
    let delivered = common::produce(&topic, &log.dms()).await;
    let env = Env {
        topic,
        table,
        group,
        dlq,
        config,
        client: common::dynamo().await,
    };
    let items = run_to_end(&env, 2, &delivered).await;
    let items = common::without(&items, &["_v_users", "_v_preferences"]);
    assert_eq!(
        serde_json::to_value(&items).unwrap(),
        serde_json::json!({
            "USER#1|": {"pk": "USER#1", "name": "Ada L.", "email": "ada@example.com", "theme": "dark", "lang": "en"},
            "USER#2|": {"pk": "USER#2", "name": "Bob", "email": "bob@example.com"},
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_are_not_resurrected_by_a_replay() {
    let env = setup("no-resurrect", "dms", 3, "").await;
    common::produce(&env.topic, &chat::scenario().dms()).await;
    run_until(&env, &chat::expected_items(), Duration::from_secs(60)).await;
    // Replay everything, the insert of the deleted message included, into the same table.
    // One record per batch (and no catch-up batches), so the insert of the deleted row is
    // not folded into its delete and really arrives after the tombstone.
    let out = common::cutover_ok_env(
        &env.config,
        &[
            "replay",
            "--from",
            "earliest",
            "--idle-timeout",
            "3s",
            "--json",
        ],
        &[
            ("CUTOVER_SINK__MAX_BATCH_RECORDS", "1"),
            ("CUTOVER_SINK__CATCHUP_BATCH_RECORDS", "0"),
        ],
    );
    let summary: Value = serde_json::from_str(out.trim()).expect("summary json");
    assert_eq!(summary["records"], 11, "{summary}");
    assert!(
        summary["stale"].as_u64().unwrap() > 0,
        "replayed older versions must be stale: {summary}"
    );
    let items = common::scan(&env.client, &env.table).await;
    assert_eq!(strip(&items), chat::expected_items());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_key_change_moves_the_item() {
    let env = setup("pk-change", "auto", 2, "").await;
    let mut log = chat::Log::default();
    let before = serde_json::json!({"id": 200, "conversation_id": 5, "sender_id": 1, "body": "x", "created_at": "2024-01-01T00:00:00Z", "edited": 0});
    let after = serde_json::json!({"id": 201, "conversation_id": 5, "sender_id": 1, "body": "x", "created_at": "2024-01-01T00:00:00Z", "edited": 0});
    log.insert("message", before.clone());
    log.push("message", "update", after.clone(), Some(before.clone())); // DMS: update with before-image
                                                                        // Debezium: delete + tombstone + create for the next move, 201 → 202
    let mut after2 = after.clone();
    after2["id"] = serde_json::json!(202);
    let mut dbz = chat::Log {
        changes: log.changes.clone(),
    };
    dbz.delete("message", after.clone());
    dbz.insert("message", after2);
    let mut records = log.dms();
    let tail: Vec<_> = dbz.debezium().into_iter().skip(2).collect();
    records.extend(tail);
    let delivered = common::produce(&env.topic, &records).await;
    let items = run_to_end(&env, 2, &delivered).await;
    let live: Vec<&String> = items
        .iter()
        .filter(|(_, v)| v.get("_deleted").is_none())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(live, vec!["CONV#5|MSG#2024-01-01T00:00:00.000000Z#202"]);
    for old in [
        "CONV#5|MSG#2024-01-01T00:00:00.000000Z#200",
        "CONV#5|MSG#2024-01-01T00:00:00.000000Z#201",
    ] {
        assert_eq!(
            items[old]["_deleted"],
            true,
            "{old} must be a tombstone: {:?}",
            items.get(old)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_records_are_dead_lettered_and_the_rest_lands() {
    let env = setup("dlq", "auto", 3, "").await;
    let mut records = chat::scenario().dms();
    let big = "x".repeat(420 * 1024);
    let poison: Vec<(String, Option<String>, &str)> = vec![
        ("p1".into(), Some("this is not json".into()), "decode"),
        ("p2".into(), Some(r#"{"data":{"id":1},"metadata":{"record-type":"data","operation":"upsert","schema-name":"chat","table-name":"message"}}"#.into()), "decode"),
        ("p3".into(), Some(r#"{"data":{"id":1.2345678901234567e+18,"conversation_id":1,"sender_id":1,"created_at":"2024-01-01T00:00:00Z"},"metadata":{"record-type":"data","operation":"insert","schema-name":"chat","table-name":"message","stream-position":"mysql-bin-changelog.000009:1:0:1:1:mysql-bin-changelog.000009:1"}}"#.into()), "map"),
        ("p4".into(), Some(format!(r#"{{"data":{{"id":7,"conversation_id":9,"sender_id":1,"created_at":"2024-01-01T00:00:00Z","body":"{big}"}},"metadata":{{"record-type":"data","operation":"insert","schema-name":"chat","table-name":"message","stream-position":"mysql-bin-changelog.000009:2:0:1:1:mysql-bin-changelog.000009:2"}}}}"#)), "map"),
        ("p5".into(), Some(r#"{"before":null,"after":null,"source":{"db":"chat","table":"message","file":"mysql-bin.000009","pos":3,"row":0,"ts_ms":1},"op":"t","ts_ms":1}"#.into()), "map"),
    ];
    for (i, (k, v, _)) in poison.iter().enumerate() {
        records.insert(1 + i * 2, (k.clone(), v.clone()));
    }
    common::produce(&env.topic, &records).await;
    run_until(&env, &chat::expected_items(), Duration::from_secs(60)).await;
    let letters = common::read_topic(&env.dlq, poison.len(), Duration::from_secs(30)).await;
    assert_eq!(letters.len(), poison.len(), "dead letters");
    use rdkafka::message::Headers;
    use rdkafka::Message;
    for (k, v, stage) in &poison {
        let m = letters
            .iter()
            .find(|m| m.key() == Some(k.as_bytes()))
            .unwrap_or_else(|| panic!("no dead letter for {k}"));
        assert_eq!(
            m.payload(),
            v.as_ref().map(|v| v.as_bytes()),
            "original bytes of {k}"
        );
        let h: BTreeMap<String, String> = m
            .headers()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        assert_eq!(h["cutover.error.stage"], *stage, "{k}: {h:?}");
        assert!(!h["cutover.error.reason"].is_empty());
        assert_eq!(h["cutover.source.topic"], env.topic);
        assert!(h["cutover.source.offset"].parse::<i64>().is_ok());
        assert!(h["cutover.source.partition"].parse::<i32>().is_ok());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_stream_then_restart_converges() {
    let env = setup("crash", "dms", 6, "").await;
    let log = chat::generate(60, 6000, 7, true);
    let records = log.dms();
    let delivered = common::produce(&env.topic, &records).await;
    // Reference: the same records, applied by an uninterrupted run into another table.
    let reference = setup("crash-ref", "dms", 6, "").await;
    let delivered_ref = common::produce(&reference.topic, &records).await;
    let want = strip(&run_to_end(&reference, 6, &delivered_ref).await);

    for round in 0..2 {
        let mut run = Cutover::start(&env.config, &["run"]);
        // Kill it once a part of the topic is applied, mid-stream.
        let client = env.client.clone();
        let table = env.table.clone();
        let target = 600 * (round + 1);
        common::wait_until(
            "some items to be written",
            Duration::from_secs(120),
            move || {
                let (client, table) = (client.clone(), table.clone());
                async move {
                    client
                        .scan()
                        .table_name(&table)
                        .select(aws_sdk_dynamodb::types::Select::Count)
                        .send()
                        .await
                        .map(|o| o.count() as usize >= target)
                        .unwrap_or(false)
                }
            },
        )
        .await;
        run.assert_running();
        run.kill9();
    }
    let items = run_to_end(&env, 6, &delivered).await;
    assert_eq!(strip(&items), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_from_an_offset_and_from_a_time_rebuild_the_live_table() {
    let env = setup("replay", "dms", 4, "").await;
    let log = chat::generate(20, 800, 11, true);
    let all = log.dms();
    let (a, b) = all.split_at(all.len() / 2);
    let mut delivered = common::produce(&env.topic, a).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t_mid = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let delivered_b = common::produce(&env.topic, b).await;
    delivered.extend(delivered_b.iter().copied());
    let live = strip(&run_to_end(&env, 4, &delivered).await);

    // From offsets: rebuild state at t_mid into a new table, then replay B from its offsets.
    let t_mid = t_mid.to_rfc3339();
    let by_offset = common::unique("replay-off");
    common::cutover_ok(
        &env.config,
        &[
            "replay",
            "--from",
            "earliest",
            "--until",
            &t_mid,
            "--target-table",
            &by_offset,
            "--create-table",
            "--idle-timeout",
            "3s",
        ],
    );
    let mut starts: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in &delivered_b {
        let e = starts.entry(*p).or_insert(*o);
        *e = (*e).min(*o);
    }
    let from: Vec<String> = starts.iter().map(|(p, o)| format!("{p}:{o}")).collect();
    common::cutover_ok(
        &env.config,
        &[
            "replay",
            "--from",
            &from.join(","),
            "--target-table",
            &by_offset,
            "--idle-timeout",
            "3s",
        ],
    );
    common::assert_same_items(
        &strip(&common::scan(&env.client, &by_offset).await),
        &live,
        "replay by offset",
    );

    // From a time: state at t_mid into a new table, then everything after t_mid.
    let by_time = common::unique("replay-time");
    common::cutover_ok(
        &env.config,
        &[
            "replay",
            "--until",
            &t_mid,
            "--target-table",
            &by_time,
            "--create-table",
            "--idle-timeout",
            "3s",
        ],
    );
    common::cutover_ok(
        &env.config,
        &[
            "replay",
            "--from",
            &t_mid,
            "--target-table",
            &by_time,
            "--idle-timeout",
            "3s",
        ],
    );
    common::assert_same_items(
        &strip(&common::scan(&env.client, &by_time).await),
        &live,
        "replay by time",
    );

    // The live group's offsets are untouched by replays.
    let committed = common::committed(&env.group, &env.topic, 4);
    assert_eq!(committed, common::ends(&delivered));
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_mode_rebuilds_a_new_table_equal_to_the_live_one() {
    // Batch mode assumes each key's changes stay in one partition: no primary-key moves.
    let env = setup("batch-rebuild", "dms", 4, "").await;
    let delivered = common::produce(&env.topic, &chat::generate(20, 1500, 13, false).dms()).await;
    let live = strip(&run_to_end(&env, 4, &delivered).await);
    let rebuilt = common::unique("batch-rebuilt");
    common::cutover_ok(
        &env.config,
        &[
            "replay",
            "--target-table",
            &rebuilt,
            "--create-table",
            "--write-mode",
            "batch",
            "--idle-timeout",
            "3s",
        ],
    );
    common::assert_same_items(
        &strip(&common::scan(&env.client, &rebuilt).await),
        &live,
        "batch rebuild",
    );
}
