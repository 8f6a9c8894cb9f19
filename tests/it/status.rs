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
