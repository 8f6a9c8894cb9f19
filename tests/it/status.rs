//! `cutover status` on the real stack: DMS records of MariaDB rows on a topic, `cutover run`
//! draining them into DynamoDB Local, `cutover verify`, and the verdict at each step.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::source::{self, cutover_json, cutover_output};
use crate::common::{self, Cutover};
use crate::verify::setup;

/// A DMS record of one row as it is now (the data object exactly as capture renders it).
async fn dms_records(
    setup: &crate::verify::Setup,
    table: &str,
    op: &str,
    first_pos: u64,
) -> Vec<(String, Option<String>)> {
    let (schema, rows) = source::rows(&setup.pool, &setup.db, table, "id").await;
    let now = chrono::Utc::now();
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            let data = cutover::mysql::row_data(&schema, row).expect("row data");
            let key = format!("{}.{table}.{}", setup.db, data["id"]);
            let pos = first_pos + i as u64 * 100;
            let commit = (now + chrono::Duration::milliseconds(i as i64))
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            let record = json!({
                "data": data,
                "metadata": {
                    "timestamp": commit,
                    "record-type": "data",
                    "operation": op,
                    "partition-key-type": "primary-key",
                    "schema-name": setup.db,
                    "table-name": table,
                    "transaction-id": pos,
                    "transaction-record-id": 1,
                    "commit-timestamp": commit,
                    "stream-position": format!("mysql-bin-changelog.000001:{pos}:0:{}:{pos}:mysql-bin-changelog.000001:{pos}", pos + 60),
                }
            });
            (key, Some(record.to_string()))
        })
        .collect()
}

fn partitions(report: &Value) -> &Vec<Value> {
    report["partitions"].as_array().expect("partitions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_not_ready_until_drained_and_verified() {
    let topic = common::unique("vstatus");
    let flag_file = format!("{}.flags.toml", common::unique("vstatus"));
    let mapping = format!(
        "[flags]\nfile = \"{flag_file}\"\n[flags.paths.\"message.read\"]\n{}",
        crate::verify::MESSAGE_MAPPING
    );
    let setup = setup(
        "vstatus",
        &["CREATE TABLE message (id BIGINT PRIMARY KEY, body TEXT, score DECIMAL(10,2))"],
        &mapping,
        &topic,
    )
    .await;
    common::create_topic(&topic, 2).await;
    setup
        .sql(&["INSERT INTO message VALUES (1,'a',1.5),(2,'b',2.5),(3,'c',NULL),(4,'d',4.25),(5,'e',5)"])
        .await;
    let records = dms_records(&setup, "message", "load", 1000).await;
    let delivered = common::produce(&topic, &records).await;

    // Nothing consumed, no verify.
    let before = cutover_json(&setup.config, &["status"], 1);
    for field in [
        "checked_at",
        "ready",
        "verdict",
        "reasons",
        "group_id",
        "partitions",
        "tables",
        "paths",
        "verify",
    ] {
        assert!(
            before.get(field).is_some(),
            "status JSON lacks {field}: {before}"
        );
    }
    assert_eq!(before["ready"], false);
    assert!(before["verdict"].as_str().unwrap().starts_with("NOT READY"));
    assert_eq!(partitions(&before).len(), 2);
    assert!(partitions(&before).iter().all(|p| p["committed"].is_null()));
    assert!(partitions(&before).iter().any(|p| p["drained"] == false));
    let reasons = before["reasons"].to_string();
    assert!(reasons.contains("nothing committed yet"), "{reasons}");
    assert!(reasons.contains("no verify result"), "{reasons}");

    // Drain.
    let run = Cutover::start(&setup.config, &["run"]);
    common::wait_committed(
        &setup.cfg.kafka.group_id,
        &topic,
        2,
        &common::ends(&delivered),
        Duration::from_secs(60),
    )
    .await;
    assert!(run.stop());

    let drained = cutover_json(&setup.config, &["status"], 1);
    let reasons = drained["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "only the verify is missing: {drained}");
    for p in partitions(&drained) {
        if p["committed"].as_i64().unwrap_or(0) > 0 {
            assert_eq!(p["drained"], true, "{p}");
            assert_eq!(p["lag"], 0, "{p}");
            assert!(p["last_applied_commit"].is_string(), "{p}");
            assert_eq!(
                p["last_applied_table"],
                format!("{}.message", setup.db),
                "{p}"
            );
        }
    }
    let t = &drained["tables"][0];
    assert!(t["last_applied_commit"].is_string(), "{t}");

    assert!(
        drained["flags_error"]
            .as_str()
            .unwrap()
            .contains("No such file"),
        "{drained}"
    );
    common::cutover_ok(&setup.config, &["flags", "set", "message.read", "shadow"]);
    cutover_json(&setup.config, &["verify"], 0);
    let ready = cutover_json(&setup.config, &["status"], 0);
    assert_eq!(ready["paths"][0]["path"], "message.read");
    assert_eq!(ready["paths"][0]["stage"], "shadow");
    assert_eq!(ready["ready"], true);
    let verdict = ready["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("READY: CDC drained (lag 0), verify clean"),
        "{verdict}"
    );
    assert!(verdict.ends_with("paths at stage shadow"), "{verdict}");
    assert_eq!(ready["verify"]["clean"], true);
    let (code, text, _) = cutover_output(&setup.config, &["status"]);
    assert_eq!(code, 0);
    assert!(text.contains("READY") && text.contains(&topic), "{text}");

    // A new change on the topic: not ready until consumed.
    setup
        .sql(&["UPDATE message SET body = 'a2' WHERE id = 1"])
        .await;
    let more = dms_records(&setup, "message", "update", 5000).await;
    common::produce(&topic, &more[..1]).await;
    let lagging = cutover_json(&setup.config, &["status"], 1);
    assert!(
        partitions(&lagging).iter().any(|p| p["drained"] == false),
        "{lagging}"
    );
    assert!(lagging["verdict"]
        .as_str()
        .unwrap()
        .starts_with("NOT READY"));
    setup.cleanup().await;
}

/// A capture checkpoint written at `at` (record timestamp), as capture writes it.
async fn checkpoint(topic: &str, name: &str, at: chrono::DateTime<chrono::Utc>) {
    use rdkafka::producer::FutureRecord;
    let body =
        json!({"binlog_file": "mysql-bin.000001", "binlog_pos": 4, "snapshot": null}).to_string();
    let record = FutureRecord::to(topic)
        .key(name)
        .payload(body.as_str())
        .timestamp(at.timestamp_millis());
    cutover::kafka::send_all(&common::producer(), [record])
        .await
        .expect("produce checkpoint");
}

/// Commit `group`'s offset of `topic`/0 at `offset` (the repair worker applied everything).
fn commit(group: &str, topic: &str, offset: i64) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("tpl");
    c.commit(&tpl, CommitMode::Sync).expect("commit");
}

fn reasons(report: &Value) -> String {
    report["reasons"].to_string()
}

/// READY needs a live capture (a checkpoint younger than `status.max_capture_age`) and an
/// empty repair queue, besides a drained group and a clean verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_not_ready_with_a_stale_capture_or_a_repair_backlog() {
    let topic = common::unique("vscap");
    let checkpoints = format!("{topic}.cp");
    let name = common::unique("vscap-name");
    let mapping = format!(
        "[capture]\nname = \"{name}\"\ntopic = \"{topic}\"\ncheckpoint_topic = \"{checkpoints}\"\n{}",
        crate::verify::MESSAGE_MAPPING
    );
    let setup = setup(
        "vscap",
        &["CREATE TABLE message (id BIGINT PRIMARY KEY, body TEXT, score DECIMAL(10,2))"],
        &mapping,
        &topic,
    )
    .await;
    common::create_topic(&topic, 1).await;
    setup
        .sql(&["INSERT INTO message VALUES (1,'a',1.5),(2,'b',2.5)"])
        .await;
    setup.seed_items().await;
    cutover_json(&setup.config, &["verify"], 0);

    // Capture has never checkpointed.
    let report = cutover_json(&setup.config, &["status"], 1);
    assert_eq!(report["reasons"].as_array().unwrap().len(), 1, "{report}");
    assert!(reasons(&report).contains("no checkpoint in"), "{report}");

    // A checkpoint two hours old: capture is dead (its lag reads 0: nothing is produced).
    common::create_topic(&checkpoints, 1).await;
    let now = chrono::Utc::now();
    checkpoint(&checkpoints, &name, now - chrono::Duration::hours(2)).await;
    checkpoint(&checkpoints, "another-capture", now).await;
    let report = cutover_json(&setup.config, &["status"], 1);
    assert!(
        reasons(&report).contains("last checkpoint is 2h0m old"),
        "{report}"
    );
    assert_eq!(report["capture"]["position"], "mysql-bin.000001:4");

    // A fresh one: READY.
    checkpoint(&checkpoints, &name, chrono::Utc::now()).await;
    let report = cutover_json(&setup.config, &["status"], 0);
    assert_eq!(report["ready"], true, "{report}");
    assert!(
        report["repair_queue"].is_null(),
        "no repair topic: {report}"
    );

    // Repair entries the worker has not applied: NOT READY until its group has them.
    let repair = setup.cfg.access.repair_topic.clone();
    common::create_topic(&repair, 1).await;
    common::produce(
        &repair,
        &[
            ("k1".to_string(), Some("{}".to_string())),
            ("k2".to_string(), Some("{}".to_string())),
        ],
    )
    .await;
    let report = cutover_json(&setup.config, &["status"], 1);
    assert!(reasons(&report).contains("repair queue"), "{report}");
    commit(&setup.cfg.access.repair_group, &repair, 2);
    let report = cutover_json(&setup.config, &["status"], 0);
    assert_eq!(report["repair_queue"]["backlog"], 0, "{report}");

    // A sampled verify is not enough.
    cutover_json(&setup.config, &["verify", "--sample", "1"], 0);
    let report = cutover_json(&setup.config, &["status"], 1);
    assert!(reasons(&report).contains("was a sample"), "{report}");
    setup.cleanup().await;
}
