//! `cutover verify [--repair]` on the real stack: MariaDB rows, DynamoDB Local items built from
//! them through the library's mapping and writer, then differences made by hand. Row-to-item,
//! merged and single-table mappings; repair never overwrites a newer write; sampling.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde_json::Value;

use crate::common::source::{self, cutover_json, cutover_output};
use crate::common::{self, require_stack, unique};
use cutover::cdc::{ChangeEvent, Op, SourcePosition, TableRef};
use cutover::mapping::{Mapped, Mapping};
use cutover::sink::{SdkApi, Writer};
use cutover::Config;

/// A database, the DynamoDB tables of a mapping, and its config file.
pub struct Setup {
    pub pool: mysql_async::Pool,
    pub db: String,
    pub config: PathBuf,
    pub cfg: Config,
    pub dynamo: Client,
}

/// `tables` is the `[[table]]` TOML with `{db}` and `{target}` placeholders.
pub async fn setup(prefix: &str, ddl: &[&str], tables: &str, topic: &str) -> Setup {
    require_stack();
    let (pool, db) = source::create_database(prefix).await;
    source::exec(
        &pool,
        &db,
        &ddl.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )
    .await;
    let target = unique(prefix);
    let state = std::env::temp_dir()
        .join("cutover-it")
        .join(format!("{}-verify.json", unique(prefix)));
    let text = format!(
        r#"
[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
dlq_topic = "{topic}.dlq"
[mysql]
url = "{mysql}"
[dynamodb]
endpoint_url = "{dynamo}"
region = "us-east-1"
[telemetry]
listen = ""
[verify]
page_size = 7
scan_segments = 3
state_file = "{state}"
[status]
probe_timeout = "3s"
[access]
repair_topic = "{repair}"
repair_group = "{repair}-group"
{tables}
"#,
        brokers = common::brokers(),
        group = unique("verify-group"),
        mysql = source::mysql_url(),
        dynamo = common::dynamo_endpoint(),
        state = state.display(),
        repair = unique(&format!("{prefix}-repair")),
        tables = tables.replace("{db}", &db).replace("{target}", &target),
    );
    let config = common::write_config(&unique(prefix), &text);
    let cfg = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let dynamo = common::dynamo().await;
    let mapping = Mapping::new(&cfg.tables, &cfg.sink).expect("mapping");
    for (name, spec) in mapping.targets() {
        cutover::tables::create(&dynamo, spec, name)
            .await
            .expect("create table");
    }
    Setup {
        pool,
        db,
        config,
        cfg,
        dynamo,
    }
}

impl Setup {
    pub fn target(&self) -> String {
        self.cfg.tables[0].target.clone()
    }

    pub async fn sql(&self, statements: &[&str]) {
        let s: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
        source::exec(&self.pool, &self.db, &s).await;
    }

    /// Write every row of every mapped table as the pipeline would (a `load` at version 0).
    pub async fn seed_items(&self) {
        let mapping = Mapping::new(&self.cfg.tables, &self.cfg.sink).expect("mapping");
        let writer = Writer::new(
            SdkApi {
                client: self.dynamo.clone(),
            },
            self.cfg.sink.clone(),
        );
        for t in &self.cfg.tables {
            let (db, table) = t.source.split_once('.').unwrap();
            let (schema, rows) =
                source::rows(&self.pool, db, table, &t.primary_key.join(", ")).await;
            let mut writes = Vec::new();
            for row in rows {
                let event = ChangeEvent {
                    table: TableRef {
                        schema: db.into(),
                        table: table.into(),
                    },
                    op: Op::Load,
                    before: None,
                    after: Some(cutover::mysql::row_cells(&schema, row).expect("cells")),
                    position: SourcePosition::default(),
                    kafka: None,
                };
                match mapping.map(&event).expect("map") {
                    Mapped::Writes(w) => writes.extend(w),
                    Mapped::Unmapped => panic!("unmapped"),
                }
            }
            writer.write(writes).await.expect("seed write");
        }
    }

    pub async fn get(&self, key: &[(&str, &str)]) -> Option<HashMap<String, AttributeValue>> {
        let mut req = self
            .dynamo
            .get_item()
            .table_name(self.target())
            .consistent_read(true);
        for (k, v) in key {
            req = req.key(*k, AttributeValue::S(v.to_string()));
        }
        req.send().await.expect("get item").item
    }

    pub async fn put(&self, item: &[(&str, AttributeValue)]) {
        let mut req = self.dynamo.put_item().table_name(self.target());
        for (k, v) in item {
            req = req.item(*k, v.clone());
        }
        req.send().await.expect("put item");
    }

    pub async fn delete(&self, key: &[(&str, &str)]) {
        let mut req = self.dynamo.delete_item().table_name(self.target());
        for (k, v) in key {
            req = req.key(*k, AttributeValue::S(v.to_string()));
        }
        req.send().await.expect("delete item");
    }

    /// `SET`/`REMOVE` one attribute of an item.
    pub async fn set_attr(&self, key: &[(&str, &str)], attr: &str, value: Option<AttributeValue>) {
        let mut req = self
            .dynamo
            .update_item()
            .table_name(self.target())
            .expression_attribute_names("#a", attr);
        for (k, v) in key {
            req = req.key(*k, AttributeValue::S(v.to_string()));
        }
        req = match value {
            Some(v) => req
                .update_expression("SET #a = :v")
                .expression_attribute_values(":v", v),
            None => req.update_expression("REMOVE #a"),
        };
        req.send().await.expect("update item");
    }

    pub async fn cleanup(self) {
        source::drop_database(&self.pool, &self.db).await;
        let mapping = Mapping::new(&self.cfg.tables, &self.cfg.sink).expect("mapping");
        for name in mapping.targets().keys() {
            let _ = self.dynamo.delete_table().table_name(name).send().await;
        }
    }
}

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn table<'a>(report: &'a Value, source_suffix: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["source"].as_str().unwrap().ends_with(source_suffix))
        .unwrap_or_else(|| panic!("no table {source_suffix} in {report}"))
}

pub fn counts(t: &Value) -> (u64, u64, u64, Option<u64>, u64) {
    (
        t["matching"].as_u64().unwrap(),
        t["missing"].as_u64().unwrap(),
        t["different"].as_u64().unwrap(),
        t["extra"].as_u64(),
        t["errors"].as_u64().unwrap(),
    )
}

/// kind → sorted "pk" or "pk|sk" texts, with the differing attributes for `different`.
pub fn findings(t: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in t["findings"].as_array().unwrap() {
        let key = f["key"].as_object().unwrap();
        let mut k = key["pk"].as_str().unwrap().to_string();
        if let Some(sk) = key.get("sk") {
            k = format!("{k}|{}", sk.as_str().unwrap());
        }
        if let Some(attrs) = f.get("attributes") {
            let a: Vec<&str> = attrs
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect();
            k = format!("{k} [{}]", a.join(","));
        }
        out.entry(f["kind"].as_str().unwrap().to_string())
            .or_default()
            .push(k);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

pub fn repaired(t: &Value) -> (u64, u64) {
    (
        t["repaired"]["repaired"].as_u64().unwrap(),
        t["repaired"]["unrepaired"].as_u64().unwrap(),
    )
}

const MESSAGE_DDL: &str = "CREATE TABLE message (id BIGINT PRIMARY KEY, conversation_id VARCHAR(32) NOT NULL, body TEXT, score DECIMAL(10,2))";

pub const MESSAGE_MAPPING: &str = r#"
[[table]]
source = "{db}.message"
target = "{target}"
primary_key = ["id"]
partition_key = { name = "pk", template = "MSG#{id}" }
"#;

async fn message_rows(setup: &Setup, n: u64) {
    let values: Vec<String> = (1..=n)
        .map(|i| {
            let body = if i == 10 {
                "NULL".to_string()
            } else {
                format!("'hello {i}'")
            };
            format!("({i}, 'c{}', {body}, {i}.5)", i % 3)
        })
        .collect();
    setup
        .sql(&[&format!("INSERT INTO message VALUES {}", values.join(", "))])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_to_item_differences_are_reported_repaired_and_gone() {
    let setup = setup("vrow", &[MESSAGE_DDL], MESSAGE_MAPPING, "unused").await;
    message_rows(&setup, 20).await;
    setup.seed_items().await;
    let clean = cutover_json(&setup.config, &["verify"], 0);
    assert_eq!(counts(table(&clean, ".message")), (20, 0, 0, Some(0), 0));
    assert_eq!(clean["clean"], true);

    setup.delete(&[("pk", "MSG#3")]).await;
    setup
        .set_attr(&[("pk", "MSG#5")], "body", Some(s("tampered")))
        .await;
    setup
        .put(&[
            ("pk", s("MSG#7")),
            ("_v", AttributeValue::N("0".into())),
            ("_deleted", AttributeValue::Bool(true)),
            ("_ttl", AttributeValue::N("1".into())),
        ])
        .await;
    setup
        .set_attr(&[("pk", "MSG#9")], "stray", Some(s("x")))
        .await;
    setup
        .set_attr(&[("pk", "MSG#10")], "body", Some(s("was null")))
        .await;
    setup
        .put(&[
            ("pk", s("MSG#999")),
            ("body", s("ghost")),
            ("_v", AttributeValue::N("0".into())),
        ])
        .await;

    let report = cutover_json(&setup.config, &["verify"], 1);
    // The JSON shape.
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&report),
        [
            "clean",
            "finished_at",
            "repair",
            "sample",
            "started_at",
            "tables",
            "unrecognised",
            "verdict"
        ]
    );
    assert_eq!(
        keys(&report["tables"][0]),
        [
            "different",
            "differing_attributes",
            "errors",
            "extra",
            "findings",
            "matching",
            "missing",
            "notes",
            "repaired",
            "rows",
            "source",
            "target",
            "unchecked"
        ]
    );
    assert_eq!(report["clean"], false);
    assert_eq!(report["verdict"], "differences");
    assert_eq!(report["repair"], false);
    assert_eq!(report["sample"], Value::Null);
    let t = table(&report, ".message");
    assert_eq!(t["rows"], 20);
    assert_eq!(counts(t), (15, 2, 3, Some(1), 0));
    let f = findings(t);
    assert_eq!(f["missing"], ["MSG#3", "MSG#7"]);
    assert_eq!(
        f["different"],
        ["MSG#10 [body]", "MSG#5 [body]", "MSG#9 [stray]"]
    );
    assert_eq!(f["extra"], ["MSG#999"]);
    assert_eq!(t["differing_attributes"]["body"], 2);
    assert_eq!(t["differing_attributes"]["stray"], 1);
    // Values are redacted unless asked for.
    assert!(!report.to_string().contains("tampered"), "{report}");
    assert!(t["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f.get("values").is_none()));

    let shown = cutover_json(
        &setup.config,
        &["verify", "--show-values", "--show", "1"],
        1,
    );
    let t = table(&shown, ".message");
    let diff = t["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "different")
        .unwrap();
    assert_eq!(
        t["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "different")
            .count(),
        1,
        "--show 1"
    );
    assert!(diff["values"].is_object(), "{diff}");

    // The human report: one line per table, the keys, the verdict.
    let (code, text, _) = cutover_output(&setup.config, &["verify"]);
    assert_eq!(code, 1);
    assert!(
        text.contains("MSG#999") && text.contains("DIFFERENCES"),
        "{text}"
    );
    assert!(!text.contains("tampered"), "{text}");

    let fixed = cutover_json(&setup.config, &["verify", "--repair"], 0);
    let t = table(&fixed, ".message");
    assert_eq!(repaired(t), (6, 0), "{t}");
    assert_eq!(fixed["clean"], true);

    let again = cutover_json(&setup.config, &["verify"], 0);
    assert_eq!(counts(table(&again, ".message")), (20, 0, 0, Some(0), 0));
    let ghost = setup.get(&[("pk", "MSG#999")]).await.expect("tombstone");
    assert_eq!(ghost.get("_deleted"), Some(&AttributeValue::Bool(true)));
    let nine = setup.get(&[("pk", "MSG#9")]).await.unwrap();
    assert!(!nine.contains_key("stray"));
    let ten = setup.get(&[("pk", "MSG#10")]).await.unwrap();
    assert!(!ten.contains_key("body"), "NULL body is removed again");
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_never_overwrites_a_newer_write() {
    let setup = setup("vnewer", &[MESSAGE_DDL], MESSAGE_MAPPING, "unused").await;
    message_rows(&setup, 5).await;
    setup.seed_items().await;
    // A CDC write from after any position the repair can read: version 10^37.
    let newer = format!("1{}", "0".repeat(37));
    setup
        .set_attr(&[("pk", "MSG#2")], "body", Some(s("newer")))
        .await;
    setup
        .set_attr(
            &[("pk", "MSG#2")],
            "_v",
            Some(AttributeValue::N(newer.clone())),
        )
        .await;
    // And an older one that the repair must fix.
    setup
        .set_attr(&[("pk", "MSG#3")], "body", Some(s("older")))
        .await;
    let report = cutover_json(&setup.config, &["verify", "--repair"], 1);
    let t = table(&report, ".message");
    assert_eq!(counts(t).2, 2);
    assert_eq!(repaired(t), (1, 1), "{t}");
    let two = setup.get(&[("pk", "MSG#2")]).await.unwrap();
    assert_eq!(two.get("body"), Some(&s("newer")));
    assert_eq!(two.get("_v"), Some(&AttributeValue::N(newer)));
    let three = setup.get(&[("pk", "MSG#3")]).await.unwrap();
    assert_eq!(three.get("body"), Some(&s("hello 3")));
    // The repair's version is the binlog position, above the seed's 0.
    let v: u128 = match three.get("_v") {
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(v >= 100_000_000_000_000_000_000, "{v}");
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_parts_are_verified_and_repaired_separately() {
    let mapping = r#"
[[table]]
source = "{db}.users"
target = "{target}"
primary_key = ["id"]
partition_key = { name = "pk", template = "USER#{id}" }
columns = ["id", "name", "email"]
merge = true
owner = true

[[table]]
source = "{db}.preferences"
target = "{target}"
primary_key = ["user_id"]
partition_key = { name = "pk", template = "USER#{user_id}" }
columns = ["user_id", "theme", "lang"]
merge = true
"#;
    let setup = setup(
        "vmerge",
        &[
            "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(100))",
            "CREATE TABLE preferences (user_id INT PRIMARY KEY, theme VARCHAR(20), lang VARCHAR(5))",
        ],
        mapping,
        "unused",
    )
    .await;
    setup
        .sql(&[
            "INSERT INTO users VALUES (1,'ann','a@x'),(2,'bob','b@x'),(3,'cy','c@x'),(4,'di','d@x'),(5,'ed','e@x'),(6,'flo','f@x')",
            "INSERT INTO preferences VALUES (1,'dark','en'),(2,'light','de'),(3,'dark','fr'),(4,'dark','en'),(5,'light','en'),(6,'dark','it')",
        ])
        .await;
    setup.seed_items().await;
    cutover_json(&setup.config, &["verify"], 0);

    setup.set_attr(&[("pk", "USER#2")], "theme", None).await;
    setup
        .sql(&["DELETE FROM preferences WHERE user_id = 3"])
        .await;
    setup.delete(&[("pk", "USER#4")]).await;
    setup
        .set_attr(&[("pk", "USER#5")], "name", Some(s("eddie")))
        .await;

    let report = cutover_json(&setup.config, &["verify"], 1);
    let users = table(&report, ".users");
    let prefs = table(&report, ".preferences");
    assert_eq!(counts(users), (4, 1, 1, Some(0), 0), "{users}");
    assert_eq!(counts(prefs), (3, 1, 1, Some(1), 0), "{prefs}");
    assert_eq!(findings(users)["different"], ["USER#5 [name]"]);
    assert_eq!(findings(prefs)["different"], ["USER#2 [theme]"]);
    assert_eq!(findings(prefs)["extra"], ["USER#3"]);
    assert_eq!(findings(prefs)["missing"], ["USER#4"]);

    let fixed = cutover_json(&setup.config, &["verify", "--repair"], 0);
    assert_eq!(repaired(table(&fixed, ".users")), (2, 0));
    assert_eq!(repaired(table(&fixed, ".preferences")), (3, 0));
    cutover_json(&setup.config, &["verify"], 0);
    let three = setup.get(&[("pk", "USER#3")]).await.unwrap();
    assert_eq!(three.get("name"), Some(&s("cy")), "the owner part stays");
    assert!(!three.contains_key("theme") && !three.contains_key("lang"));
    let four = setup.get(&[("pk", "USER#4")]).await.unwrap();
    assert_eq!(four.get("name"), Some(&s("di")));
    assert_eq!(four.get("theme"), Some(&s("dark")));

    // The owner row is deleted (the owner's delete tombstones the item, as the pipeline does)
    // while its preferences row stays: the part under the tombstone is still compared.
    setup.sql(&["DELETE FROM users WHERE id = 6"]).await;
    for (attr, value) in [
        ("_deleted", AttributeValue::Bool(true)),
        ("_ttl", AttributeValue::N("4000000000".into())),
    ] {
        setup.set_attr(&[("pk", "USER#6")], attr, Some(value)).await;
    }
    for attr in ["id", "name", "email"] {
        setup.set_attr(&[("pk", "USER#6")], attr, None).await;
    }
    let report = cutover_json(&setup.config, &["verify"], 0);
    assert_eq!(
        counts(table(&report, ".preferences")),
        (5, 0, 0, Some(0), 0)
    );
    setup
        .set_attr(&[("pk", "USER#6")], "lang", Some(s("xx")))
        .await;
    let report = cutover_json(&setup.config, &["verify"], 1);
    assert_eq!(
        findings(table(&report, ".preferences"))["different"],
        ["USER#6 [lang]"]
    );
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_table_sources_are_told_apart_by_their_key_templates() {
    let mapping = r#"
[[table]]
source = "{db}.conversation"
target = "{target}"
primary_key = ["id"]
partition_key = { name = "pk", template = "CONV#{id}" }
sort_key = { name = "sk", template = "META" }
attributes = { entity = "conversation" }

[[table]]
source = "{db}.message"
target = "{target}"
primary_key = ["id"]
partition_key = { name = "pk", template = "CONV#{conversation_id}" }
sort_key = { name = "sk", template = "MSG#{id}" }
attributes = { entity = "message" }
"#;
    let setup = setup(
        "vsingle",
        &[
            "CREATE TABLE conversation (id INT PRIMARY KEY, title VARCHAR(50))",
            "CREATE TABLE message (id INT PRIMARY KEY, conversation_id INT NOT NULL, body VARCHAR(100))",
        ],
        mapping,
        "unused",
    )
    .await;
    setup
        .sql(&[
            "INSERT INTO conversation VALUES (1,'one'),(2,'two'),(3,'three')",
            "INSERT INTO message VALUES (1,2,'a'),(2,3,'b'),(3,1,'c'),(4,2,'d'),(5,3,'e'),(6,1,'f')",
        ])
        .await;
    setup.seed_items().await;
    cutover_json(&setup.config, &["verify"], 0);

    setup.delete(&[("pk", "CONV#2"), ("sk", "META")]).await;
    setup
        .put(&[
            ("pk", s("CONV#1")),
            ("sk", s("MSG#77")),
            ("entity", s("message")),
            ("body", s("ghost")),
            ("_v", AttributeValue::N("0".into())),
        ])
        .await;
    setup.put(&[("pk", s("OTHER#1")), ("sk", s("x"))]).await;
    setup
        .set_attr(&[("pk", "CONV#2"), ("sk", "MSG#4")], "body", Some(s("z")))
        .await;

    let report = cutover_json(&setup.config, &["verify"], 1);
    let conv = table(&report, ".conversation");
    let msg = table(&report, ".message");
    assert_eq!(counts(conv), (2, 1, 0, Some(0), 0), "{conv}");
    assert_eq!(counts(msg), (5, 0, 1, Some(1), 0), "{msg}");
    assert_eq!(findings(conv)["missing"], ["CONV#2|META"]);
    assert_eq!(findings(msg)["different"], ["CONV#2|MSG#4 [body]"]);
    assert_eq!(findings(msg)["extra"], ["CONV#1|MSG#77"]);
    assert_eq!(report["unrecognised"][setup.target()], 1);

    // Unrecognised items are never touched: still not clean after repair.
    let fixed = cutover_json(&setup.config, &["verify", "--repair"], 1);
    assert_eq!(repaired(table(&fixed, ".conversation")), (1, 0));
    assert_eq!(repaired(table(&fixed, ".message")), (2, 0));
    assert!(setup.get(&[("pk", "OTHER#1"), ("sk", "x")]).await.is_some());
    setup.delete(&[("pk", "OTHER#1"), ("sk", "x")]).await;
    let again = cutover_json(&setup.config, &["verify"], 0);
    assert_eq!(counts(table(&again, ".message")), (6, 0, 0, Some(0), 0));
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_checks_part_of_the_table_and_says_extras_are_unchecked() {
    let setup = setup("vsample", &[MESSAGE_DDL], MESSAGE_MAPPING, "unused").await;
    message_rows(&setup, 300).await;
    setup.sql(&["ANALYZE TABLE message"]).await;
    setup.seed_items().await;
    for sample in ["40", "10%"] {
        let report = cutover_json(&setup.config, &["verify", "--sample", sample], 0);
        let t = table(&report, ".message");
        let rows = t["rows"].as_u64().unwrap();
        assert!((1..=60).contains(&rows), "--sample {sample}: {rows} rows");
        assert_eq!(t["extra"], Value::Null, "extras are not checked");
        assert_eq!(t["matching"].as_u64().unwrap(), rows);
        assert!(report["sample"].is_string());
    }
    // A difference in a full sample (ratio 1) is found.
    setup
        .set_attr(&[("pk", "MSG#150")], "body", Some(s("x")))
        .await;
    let report = cutover_json(&setup.config, &["verify", "--sample", "1.0"], 1);
    assert_eq!(table(&report, ".message")["different"], 1);
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_exit_2_and_unknown_tables_exit_1() {
    let setup = setup("vconf", &[MESSAGE_DDL], MESSAGE_MAPPING, "unused").await;
    let (code, _, err) = cutover_output(&setup.config, &["verify", "--table", "nope.nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a mapped source table"), "{err}");
    // A mapping whose primary_key is not the table's: refused, with both named.
    let wrong = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace(
            r#"primary_key = ["id"]"#,
            r#"primary_key = ["conversation_id"]"#,
        )
        .replace("MSG#{id}", "MSG#{conversation_id}");
    let wrong = common::write_config(&unique("vconf-pk"), &wrong);
    let (code, _, err) = cutover_output(&wrong, &["verify"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("primary_key [conversation_id] is not the table's primary key [id]"),
        "{err}"
    );
    let bad = common::write_config(
        &unique("vconf-bad"),
        "[verify]\npage_size = 0\n[kafka]\ntopics=[\"t\"]\n[[table]]\nsource=\"a.b\"\ntarget=\"ttt\"\nprimary_key=[\"id\"]\npartition_key={name=\"pk\",template=\"{id}\"}\n",
    );
    let (code, _, err) = cutover_output(&bad, &["verify"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("verify.page_size"), "{err}");
    setup.cleanup().await;
}
