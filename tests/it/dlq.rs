//! `cutover dlq` (issue 13.6) on the real broker and DynamoDB Local: records dead-lettered by a
//! bad mapping are listed (without row values), re-driven after the mapping is fixed, and
//! land; a second redrive applies nothing twice; a letter that fails again exits 1.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, Cutover};

const SECRET: &str = "s3cr3t-body";

fn config(topic: &str, table: &str, template: &str) -> String {
    format!(
        r#"
[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{topic}-g"
dlq_topic = "{topic}.dlq"
format = "dms"
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000" }}
[dynamodb]
endpoint_url = "{dynamo}"
[sink]
batch_window = "20ms"
[telemetry]
listen = ""
[[table]]
source = "app.note"
target = "{table}"
primary_key = ["id"]
partition_key = {{ name = "pk", template = "{template}" }}
"#,
        brokers = common::brokers(),
        dynamo = common::dynamo_endpoint(),
    )
}

fn note(id: i64, pos: u64) -> (String, Option<String>) {
    let commit = "2024-05-01T10:00:00.000000Z";
    let record = json!({
        "data": {"id": id, "owner": format!("o{id}"), "body": format!("{SECRET}-{id}")},
        "metadata": {
            "timestamp": commit,
            "record-type": "data",
            "operation": "insert",
            "partition-key-type": "primary-key",
            "schema-name": "app",
            "table-name": "note",
            "transaction-id": pos,
            "transaction-record-id": 1,
            "commit-timestamp": commit,
            "stream-position": format!("mysql-bin-changelog.000001:{pos}:0:{}:{pos}:mysql-bin-changelog.000001:{pos}", pos + 60),
        }
    });
    (format!("app.note.{id}"), Some(record.to_string()))
}

fn dlq_json(config: &std::path::PathBuf, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["dlq", "list", "--format", "json"];
    all.extend_from_slice(args);
    let out = common::cutover_ok(config, &all);
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("dlq list json: {e}\n{out}"))
        .as_array()
        .expect("an array")
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_letter_of_a_bad_mapping_is_redriven_after_the_fix_and_lands() {
    common::require_stack();
    let topic = common::unique("redrive");
    let table = common::unique("redrive");
    common::create_topic(&topic, 2).await;
    common::create_topic(&format!("{topic}.dlq"), 1).await;
    // The bad mapping: a key column the rows don't have.
    let bad = common::write_config(&topic, &config(&topic, &table, "NOTE#{owner_id}"));
    common::cutover_ok(&bad, &["tables", "create"]);
    let mut records: Vec<_> = (1..=5).map(|i| note(i, 1000 + i as u64 * 100)).collect();
    records.push(("app.note.x".into(), Some("{not json".into())));
    let delivered = common::produce(&topic, &records).await;

    let run = Cutover::start(&bad, &["run"]);
    common::wait_committed(
        &format!("{topic}-g"),
        &topic,
        2,
        &common::ends(&delivered),
        Duration::from_secs(90),
    )
    .await;
    assert!(run.stop(), "run exits cleanly");

    // list: every letter, with stage, reason, source position and key; values on request only.
    let letters = dlq_json(&bad, &[]);
    assert_eq!(letters.len(), 6, "{letters:#?}");
    let maps: Vec<&Value> = letters.iter().filter(|l| l["stage"] == "map").collect();
    assert_eq!(maps.len(), 5, "{letters:#?}");
    for l in &maps {
        assert!(l["reason"].as_str().is_some_and(|r| !r.is_empty()), "{l}");
        assert_eq!(l["source_topic"], topic.as_str());
        assert!(
            l["source_partition"].is_i64() && l["source_offset"].is_i64(),
            "{l}"
        );
        assert!(
            l["key"]
                .as_str()
                .is_some_and(|k| k.starts_with("app.note.")),
            "{l}"
        );
        assert_eq!(l["redriven"], false);
    }
    let text = common::cutover_ok(&bad, &["dlq", "list"]);
    assert!(
        !text.contains(SECRET),
        "no row values without --show-values:\n{text}"
    );
    assert!(text.contains("6 dead letter(s): decode 1, map 5"), "{text}");
    assert!(common::cutover_ok(&bad, &["dlq", "list", "--show-values"]).contains(SECRET));
    assert_eq!(dlq_json(&bad, &["--stage", "decode"]).len(), 1);
    assert_eq!(
        dlq_json(&bad, &["--since", "2000-01-01T00:00:00Z"]).len(),
        6
    );
    assert_eq!(
        dlq_json(&bad, &["--since", "2999-01-01T00:00:00Z"]).len(),
        0
    );

    // Fix the mapping, re-drive the map letters: they land.
    let fixed = common::write_config(
        &format!("{topic}-fixed"),
        &config(&topic, &table, "NOTE#{id}"),
    );
    let out = common::cutover_ok(
        &fixed,
        &["dlq", "redrive", "--stage", "map", "--format", "json"],
    );
    let summary: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(summary["redriven"], 5, "{summary:#}");
    assert_eq!(summary["stats"]["applied"], 5, "{summary:#}");
    assert_eq!(summary["stats"]["dead_lettered"], 0, "{summary:#}");
    let items = common::scan(&common::dynamo().await, &table).await;
    let keys: Vec<&String> = items.keys().collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    for i in 1..=5 {
        assert!(
            items.keys().any(|k| k.contains(&format!("NOTE#{i}"))),
            "NOTE#{i} landed: {keys:?}"
        );
    }

    // A second redrive applies nothing twice.
    let out = common::cutover_ok(
        &fixed,
        &["dlq", "redrive", "--stage", "map", "--format", "json"],
    );
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            again["redriven"].as_u64(),
            again["already_redriven"].as_u64()
        ),
        (Some(0), Some(5)),
        "{again:#}"
    );
    assert!(dlq_json(&fixed, &["--stage", "map"])
        .iter()
        .all(|l| l["redriven"] == true));

    // The decode letter fails again: exit 1, a new letter that says where it came from.
    let out = common::cutover_cmd(&fixed, &["dlq", "redrive", "--reason-contains", ""])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 dead-lettered again"), "{stdout}");
    let letters = dlq_json(&fixed, &[]);
    assert_eq!(letters.len(), 7, "{letters:#?}");
    let last = letters.last().unwrap();
    assert_eq!(last["stage"], "decode");
    assert!(
        last["redrive_of"]
            .as_str()
            .is_some_and(|r| r.starts_with(&format!("{topic}.dlq:"))),
        "{last}"
    );
}
