//! `cutover capture` at its edges (issue 11): DDL while capture lags, JSON values, character
//! sets, foreign-key cascades, tables added to the mapping later, rows too big for Kafka.
//! Real MariaDB (a database per test) and the real broker; records are read back from the
//! topic where the record itself is the contract.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::capture::{setup, Env};
use crate::common::{self, Cutover};

/// Every CDC/load record capture wrote to the env's topic, waiting for at least `n`; keyed by
/// `(operation, id)`, the record's JSON.
async fn records(env: &Env, n: usize) -> BTreeMap<(String, i64), Value> {
    let msgs = common::read_topic(&env.topic, n, Duration::from_secs(60)).await;
    let mut out = BTreeMap::new();
    for m in &msgs {
        use rdkafka::Message;
        let v: Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).expect("record JSON");
        let op = v["metadata"]["operation"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let id = v["data"]["id"].as_i64().unwrap_or(-1);
        out.insert((op, id), v);
    }
    assert!(
        out.len() >= n,
        "expected {n} records on {}, got {}: {out:#?}",
        env.topic,
        out.len()
    );
    out
}

/// Start capture, wait until its full load is done and it streams the binlog.
async fn capture_until_streaming(env: &Env) -> Cutover {
    let capture = Cutover::start(&env.config, &["capture"]);
    common::wait_until(
        "capture to stream the binlog",
        Duration::from_secs(60),
        || async { capture.log_text().contains("binlog stream opened") },
    )
    .await;
    capture
}

const EVO_TABLE: &str = r#"
[[table]]
source = "DB.evo"
target = "TARGET"
primary_key = ["id"]
partition_key = { name = "pk", template = "E#{id}" }
"#;

/// Issue 11.6: row events written before a DDL and read after it (capture stopped, rows
/// written, ALTER, more rows, a second ALTER, capture started) each arrive rendered with the
/// columns they were written under. Before: the rows before the ALTERs were skipped (their
/// binlog columns differ from today's information_schema) with only a metric.
#[tokio::test(flavor = "multi_thread")]
async fn rows_render_with_the_columns_they_were_written_under() {
    let env = setup(
        "capddl",
        "CREATE TABLE DB.evo (id INT PRIMARY KEY, a VARCHAR(20), b INT UNSIGNED)",
        EVO_TABLE,
    )
    .await;
    let capture = capture_until_streaming(&env).await;
    assert!(capture.stop(), "capture exits 0 on SIGTERM");
    // Capture lags from here.
    env.exec("INSERT INTO DB.evo VALUES (1, 'one', 4294967295), (2, 'two', 2)")
        .await;
    env.exec("ALTER TABLE DB.evo DROP COLUMN b, ADD COLUMN c DECIMAL(8,3) AFTER id")
        .await;
    env.exec("INSERT INTO DB.evo VALUES (3, 1.5, 'three')")
        .await;
    env.exec("UPDATE DB.evo SET a = 'uno' WHERE id = 1").await;
    env.exec("ALTER TABLE DB.evo ADD COLUMN e ENUM('x','y') NOT NULL DEFAULT 'y'")
        .await;
    env.exec("INSERT INTO DB.evo (id, c, a, e) VALUES (4, 2.25, 'four', 'x')")
        .await;
    env.exec("DELETE FROM DB.evo WHERE id = 2").await;
    let capture = Cutover::start(&env.config, &["capture"]);
    let got = records(&env, 6).await;
    let data = |op: &str, id: i64| got[&(op.to_owned(), id)]["data"].clone();
    assert_eq!(
        data("insert", 1),
        json!({"id": 1, "a": "one", "b": 4294967295u64})
    );
    assert_eq!(data("insert", 2), json!({"id": 2, "a": "two", "b": 2}));
    assert_eq!(
        data("insert", 3),
        json!({"id": 3, "c": "1.500", "a": "three"})
    );
    assert_eq!(data("update", 1), json!({"id": 1, "c": null, "a": "uno"}));
    assert_eq!(
        got[&("update".to_owned(), 1)]["before-image"],
        json!({"id": 1, "c": null, "a": "one"})
    );
    assert_eq!(
        data("insert", 4),
        json!({"id": 4, "c": "2.250", "a": "four", "e": "x"})
    );
    assert_eq!(
        data("delete", 2),
        json!({"id": 2, "c": null, "a": "two", "e": "y"})
    );
    assert_eq!(got.len(), 6, "{got:#?}");
    assert!(capture.stop(), "{}", "capture exits 0 on SIGTERM");
}
