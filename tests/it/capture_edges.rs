//! `cutover capture` at its edges (issue 11): DDL while capture lags, JSON values, character
//! sets, foreign-key cascades, tables added to the mapping later, rows too big for Kafka.
//! Real MariaDB (a database per test) and the real broker; records are read back from the
//! topic where the record itself is the contract.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::capture::{setup, Env};
use crate::common::source::cutover_json;
use crate::common::{self, Cutover};
use crate::verify::{counts, findings, repaired, table};

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
    let mut capture = Cutover::start(&env.config, &["capture"]);
    let t0 = std::time::Instant::now();
    while !capture.log_text().contains("binlog stream opened") {
        capture.assert_running();
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "capture did not reach the binlog in 60 s:\n{}",
            capture.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

const DOCS_TABLE: &str = r#"
[[table]]
source = "DB.docs"
target = "TARGET"
primary_key = ["id"]
partition_key = { name = "pk", template = "D#{id}" }
types = { id = "int", j = "json", t = "string" }
"#;

/// The JSON text both rows hold, spaced and ordered as a person writes it.
const DOC: &str = r#"{ "b": [1.10, 2, {"z": true, "a": null}], "amount": 12345678901234567890.123456789, "at": "2024-05-06 07:08:09.123456" }"#;
/// Its one normal form.
const DOC_NORMAL: &str = r#"{"amount":12345678901234567890.123456789,"at":"2024-05-06 07:08:09.123456","b":[1.1,2,{"a":null,"z":true}]}"#;

/// Issue 11.7: JSON with exact decimals and datetimes inside, through the snapshot and the
/// binlog, mapped as `json` (a DynamoDB map) and as `string`: every path writes one normal
/// form (capture's records, a MySQL read, an item read back through the mapping), so verify,
/// repair and shadow reads never churn on spacing, key order or number spelling. Before:
/// capture and MySQL reads kept the text as written, and an item read back came out with its
/// keys re-ordered and its decimals rounded through f64.
#[tokio::test(flavor = "multi_thread")]
async fn json_values_are_exact_and_one_normal_form_everywhere() {
    let env = setup(
        "capjson",
        "CREATE TABLE DB.docs (id INT PRIMARY KEY, j JSON, t JSON)",
        DOCS_TABLE,
    )
    .await;
    let doc = DOC.replace('\'', "''");
    env.exec(&format!("INSERT INTO DB.docs VALUES (1, '{doc}', '{doc}')"))
        .await;
    let mut capture = capture_until_streaming(&env).await;
    let mut run = Cutover::start(&env.config, &["run"]);
    env.exec(&format!("INSERT INTO DB.docs VALUES (2, '{doc}', '{doc}')"))
        .await;
    let got = records(&env, 2).await;
    for key in [("load".to_owned(), 1), ("insert".to_owned(), 2)] {
        assert_eq!(got[&key]["data"]["j"], json!(DOC_NORMAL), "{key:?}");
        assert_eq!(got[&key]["data"]["t"], json!(DOC_NORMAL), "{key:?}");
    }
    env.converge(
        "docs",
        &mut [&mut capture, &mut run],
        Duration::from_secs(120),
    )
    .await;
    let live = env.live_items().await;
    assert_eq!(
        live["D#1|"]["j"]["amount"],
        json!({"N": "12345678901234567890.123456789"}),
        "the decimal inside JSON is exact in DynamoDB"
    );
    assert_eq!(live["D#2|"]["t"], json!(DOC_NORMAL));

    // The access layer's two reads of row 2: MySQL's row, and the DynamoDB item mapped back.
    let cfg = cutover::Config::load(&env.config).expect("config");
    let mapping = cutover::mapping::Mapping::new(&cfg.tables, &cfg.sink).expect("mapping");
    let item = common::dynamo()
        .await
        .get_item()
        .table_name(&env.target)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("D#2".into()),
        )
        .send()
        .await
        .expect("get item")
        .item
        .expect("item 2");
    let from_dynamo = mapping
        .unmap(&format!("{}.docs", env.db), &item)
        .expect("unmap");
    let (schema, rows) = crate::common::source::rows(&env.pool, &env.db, "docs", "id").await;
    let row = rows.into_iter().nth(1).expect("row 2");
    let from_mysql = cutover::mysql::row_data(&schema, row).expect("row data");
    assert_eq!(from_mysql["j"], json!(DOC_NORMAL));
    assert_eq!(
        from_dynamo["j"], from_mysql["j"],
        "json-typed: {from_dynamo:?}"
    );
    assert_eq!(from_dynamo["t"], from_mysql["t"], "string-typed");
    assert!(capture.stop());
    assert!(run.stop());
}

const TXT_TABLE: &str = r#"
[[table]]
source = "DB.txt"
target = "TARGET"
primary_key = ["id"]
partition_key = { name = "pk", template = "X#{id}" }
"#;

/// Issue 11.8: latin1 is MySQL's cp1252 (’ “ ” – € ™ survive), and other character sets
/// (cp1251, gbk, sjis, ucs2, a latin1 ENUM) decode too, through the snapshot and the binlog.
/// Before: the binlog's cp1252 bytes came out as C1 control characters, the others as U+FFFD.
#[tokio::test(flavor = "multi_thread")]
async fn character_sets_decode_through_snapshot_and_binlog() {
    let env = setup(
        "capcharset",
        "CREATE TABLE DB.txt (id INT PRIMARY KEY,
            l VARCHAR(40) CHARACTER SET latin1, r VARCHAR(40) CHARACTER SET cp1251,
            g VARCHAR(40) CHARACTER SET gbk, s TEXT CHARACTER SET sjis,
            u VARCHAR(40) CHARACTER SET ucs2, e ENUM('€uro','™') CHARACTER SET latin1)",
        TXT_TABLE,
    )
    .await;
    let row = "'’quoted’ “double” – €5 ™ café', 'Привет', '中文', '日本語', 'ŝ€', '€uro'";
    env.exec(&format!("INSERT INTO DB.txt VALUES (1, {row})"))
        .await;
    let mut capture = capture_until_streaming(&env).await;
    let mut run = Cutover::start(&env.config, &["run"]);
    env.exec(&format!("INSERT INTO DB.txt VALUES (2, {row})"))
        .await;
    let got = records(&env, 2).await;
    let want = json!({"l": "’quoted’ “double” – €5 ™ café", "r": "Привет", "g": "中文",
                      "s": "日本語", "u": "ŝ€", "e": "€uro"});
    for (key, id) in [("load", 1), ("insert", 2)] {
        let mut want = want.clone();
        want["id"] = json!(id);
        assert_eq!(got[&(key.to_owned(), id)]["data"], want, "{key}");
    }
    env.converge(
        "txt",
        &mut [&mut capture, &mut run],
        Duration::from_secs(120),
    )
    .await;
    assert!(capture.stop());
    assert!(run.stop());
}

/// Every record on `topic`, waiting for at least `n`, as JSON.
async fn all_records(topic: &str, n: usize) -> Vec<Value> {
    use rdkafka::Message;
    common::read_topic(topic, n, Duration::from_secs(60))
        .await
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap_or_default()).expect("record JSON"))
        .collect()
}

/// `(operation, table, id)` of records.
fn ops(records: &[Value]) -> Vec<(String, String, i64)> {
    let mut out: Vec<_> = records
        .iter()
        .map(|v| {
            (
                v["metadata"]["operation"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                v["metadata"]["table-name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                v["data"]["id"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    out.sort();
    out
}

const FK_TABLE: &str = r#"
[[table]]
source = "DB.child"
target = "TARGET"
primary_key = ["id"]
partition_key = { name = "pk", template = "C#{id}" }
"#;

/// `parent (id)` and `child (id, p, q)`, whose `p` cascades on delete of its parent and
/// whose `q` is set NULL on an update of its parent's id; `tables` maps them.
async fn fk_env(prefix: &str, tables: &str) -> Env {
    let env = setup(
        prefix,
        "CREATE TABLE DB.parent (id INT PRIMARY KEY)",
        tables,
    )
    .await;
    env.exec(
        "CREATE TABLE DB.child (id INT PRIMARY KEY, p INT, q INT,
            CONSTRAINT fk_child_p FOREIGN KEY (p) REFERENCES DB.parent (id) ON DELETE CASCADE,
            CONSTRAINT fk_child_q FOREIGN KEY (q) REFERENCES DB.parent (id) ON UPDATE SET NULL)",
    )
    .await;
    env
}

/// Issue 11.9: changes made by ON DELETE CASCADE / ON UPDATE SET NULL have no row events:
/// capture warns at start, once per table, naming the constraint and `verify --repair`.
/// Before: nothing was said.
#[tokio::test(flavor = "multi_thread")]
async fn cascading_foreign_keys_are_warned_about_once_per_table() {
    let env = fk_env("capfk", FK_TABLE).await;
    let capture = capture_until_streaming(&env).await;
    let log = capture.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("verify --repair") && l.contains("child"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning for the table:\n{log}");
    for want in [
        "fk_child_p",
        "ON DELETE CASCADE",
        "fk_child_q",
        "ON UPDATE SET NULL",
    ] {
        assert!(warnings[0].contains(want), "{want} in {}", warnings[0]);
    }
    assert!(capture.stop());
}

/// Issue 11.9, the drift itself: parent and child mapped, capture → topic → `run` →
/// DynamoDB. Deleting a parent cascades to its children and changing a parent's id sets the
/// children's reference to NULL inside InnoDB, with no row events: only the parent's own
/// changes reach DynamoDB, and the children's items are left as they were. `verify` finds
/// exactly that drift (exit 1: the cascaded-away children extra, the SET NULL child
/// different), `verify --repair` fixes it while the pipeline runs, and a second `verify` is
/// clean (exit 0) with every item equal to MySQL's row.
#[tokio::test(flavor = "multi_thread")]
async fn foreign_key_cascade_drift_is_found_by_verify_and_fixed_by_repair() {
    let parent_block = FK_TABLE
        .replace("DB.child", "DB.parent")
        .replace("C#", "P#");
    let env = fk_env("capfkfix", &format!("{parent_block}{FK_TABLE}")).await;
    env.exec("INSERT INTO DB.parent VALUES (1), (2), (3)").await;
    env.exec("INSERT INTO DB.child VALUES (10, 1, NULL), (11, 1, 3), (12, NULL, 2), (13, 3, 3)")
        .await;
    let mut capture = capture_until_streaming(&env).await;
    let mut run = Cutover::start(&env.config, &["run"]);
    let tables = ["parent", "child"];
    env.converge_tables(
        &tables,
        &mut [&mut capture, &mut run],
        Duration::from_secs(120),
    )
    .await;

    // Cascades: children 10 and 11 go with parent 1; child 12's q becomes NULL.
    env.exec("DELETE FROM DB.parent WHERE id = 1").await;
    env.exec("UPDATE DB.parent SET id = 20 WHERE id = 2").await;
    // The parent's own row events arrive (and everything before them).
    common::wait_until(
        "the parent's changes in DynamoDB",
        Duration::from_secs(120),
        || async {
            let live = env.live_items().await;
            live.contains_key("P#20|") && !live.contains_key("P#1|") && !live.contains_key("P#2|")
        },
    )
    .await;
    let mut expected = BTreeMap::new();
    for t in tables {
        expected.extend(env.expected(t).await);
    }
    let live = env.live_items().await;
    let drift: Vec<&String> = live
        .keys()
        .chain(expected.keys())
        .filter(|k| live.get(*k) != expected.get(*k))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(drift, ["C#10|", "C#11|", "C#12|"], "the cascades' drift");
    assert_eq!(live["C#12|"]["q"], json!({"N": "2"}), "{live:#?}");

    let report = cutover_json(&env.config, &["verify"], 1);
    assert_eq!(report["verdict"], "differences", "{report}");
    let child = table(&report, ".child");
    assert_eq!(counts(child), (1, 0, 1, Some(2), 0), "{child}");
    let f = findings(child);
    assert_eq!(f["extra"], ["C#10", "C#11"], "{child}");
    assert_eq!(f["different"], ["C#12 [q]"], "{child}");
    assert_eq!(f.len(), 2, "{child}");
    let parent = table(&report, ".parent");
    assert_eq!(counts(parent), (2, 0, 0, Some(0), 0), "{parent}");

    let fixed = cutover_json(&env.config, &["verify", "--repair"], 0);
    assert_eq!(repaired(table(&fixed, ".child")), (3, 0), "{fixed}");
    assert_eq!(fixed["clean"], true, "{fixed}");
    let again = cutover_json(&env.config, &["verify"], 0);
    assert_eq!(again["verdict"], "clean", "{again}");
    assert_eq!(counts(table(&again, ".child")), (2, 0, 0, Some(0), 0));
    assert_eq!(
        env.live_items().await,
        expected,
        "every item equals MySQL's row"
    );
    // And the running pipeline leaves it so.
    env.converge_tables(
        &tables,
        &mut [&mut capture, &mut run],
        Duration::from_secs(60),
    )
    .await;
    assert!(capture.stop());
    assert!(run.stop());
}

const A_TABLE: &str = r#"
[[table]]
source = "DB.a"
target = "TARGET"
primary_key = ["id"]
partition_key = { name = "pk", template = "A#{id}" }
"#;

/// Issue 11.9: a table added to the mapping after the initial load is snapshotted at the next
/// start (the checkpoint records the table set), its changes since are streamed, and the
/// tables loaded before are not loaded again. Before: it was never loaded.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_added_to_the_mapping_later_is_snapshotted() {
    let env = setup(
        "capadd",
        "CREATE TABLE DB.a (id INT PRIMARY KEY, v VARCHAR(10))",
        A_TABLE,
    )
    .await;
    env.exec("CREATE TABLE DB.b (id INT PRIMARY KEY, v VARCHAR(10))")
        .await;
    env.exec("INSERT INTO DB.a VALUES (1, 'a1')").await;
    env.exec("INSERT INTO DB.b VALUES (1, 'b1'), (2, 'b2')")
        .await;
    let capture = capture_until_streaming(&env).await;
    assert!(capture.stop());
    env.exec("INSERT INTO DB.b VALUES (3, 'b3')").await;
    env.exec("INSERT INTO DB.a VALUES (2, 'a2')").await;
    // Map b too.
    let text = std::fs::read_to_string(&env.config).expect("config");
    let b_block = A_TABLE
        .replace("DB.a", &format!("{}.b", env.db))
        .replace("A#", "B#")
        .replace("TARGET", &env.target);
    std::fs::write(&env.config, format!("{text}\n{b_block}")).expect("config");
    let capture = capture_until_streaming(&env).await;
    let got = ops(&all_records(&env.topic, 6).await);
    let s = |op: &str, t: &str, id: i64| (op.to_owned(), t.to_owned(), id);
    assert_eq!(
        got,
        vec![
            s("insert", "a", 2),
            s("insert", "b", 3),
            s("load", "a", 1),
            s("load", "b", 1),
            s("load", "b", 2),
            s("load", "b", 3),
        ],
        "b loaded once, a not loaded again:\n{}",
        capture.log_text()
    );
    assert!(capture
        .log_text()
        .contains("tables added to the mapping since the initial load"));
    assert!(capture.stop());
}

const BIG_TABLE: &str = r#"
[[table]]
source = "DB.big"
target = "TARGET"
primary_key = ["id"]
partition_key = { name = "pk", template = "G#{id}" }
"#;

/// Issue 11.9: a row bigger than the producer's message.max.bytes (librdkafka's 1 MB
/// default) goes to the dead-letter topic with its key and the reason, from the snapshot and
/// from the binlog, and capture goes on. Before: the first such row stopped capture for good.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_row_is_dead_lettered_and_capture_goes_on() {
    let env = setup(
        "capbig",
        "CREATE TABLE DB.big (id INT PRIMARY KEY, body LONGTEXT)",
        BIG_TABLE,
    )
    .await;
    env.exec("INSERT INTO DB.big VALUES (1, 'small'), (2, REPEAT('x', 1200000))")
        .await;
    let mut capture = capture_until_streaming(&env).await;
    env.exec("INSERT INTO DB.big VALUES (3, REPEAT('y', 1200000))")
        .await;
    env.exec("INSERT INTO DB.big VALUES (4, 'after')").await;
    let got = ops(&all_records(&env.topic, 2).await);
    let s = |op: &str, id: i64| (op.to_owned(), "big".to_owned(), id);
    assert_eq!(got, vec![s("insert", 4), s("load", 1)]);
    let letters =
        common::read_topic(&format!("{}.dlq", env.topic), 2, Duration::from_secs(30)).await;
    use rdkafka::message::{Headers, Message};
    let mut keys: Vec<String> = letters
        .iter()
        .map(|m| String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![format!("{}.big.2", env.db), format!("{}.big.3", env.db)]
    );
    for m in &letters {
        let reason = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "cutover.error.reason"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        assert!(reason.contains("message.max.bytes"), "{reason}");
        let body: Value = serde_json::from_slice(m.payload().unwrap_or_default()).expect("body");
        assert!(body["metadata"]["stream-position"].is_string(), "{body}");
        assert!(
            !body.to_string().contains("xxxx"),
            "no row values in the dead letter"
        );
    }
    capture.assert_running();
    assert!(capture.stop());
}
