//! `cutover capture` end to end: real MariaDB → capture → real broker → `cutover run` →
//! DynamoDB Local, through the real binaries. Expected items are computed from MySQL's own rows
//! with `mysql::row_cells` + `Mapping` (the same path `cutover verify` takes).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use cutover::cdc::{ChangeEvent, Op, SourcePosition, TableRef};
use cutover::mapping::{Change, Mapped, Mapping};
use cutover::mysql::MysqlConfig;
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use crate::common::{self, Cutover};

fn mysql_url() -> String {
    std::env::var("CUTOVER_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://cutover:cutover@127.0.0.1:13306/cutover".into())
}

async fn pool() -> mysql_async::Pool {
    let cfg = MysqlConfig {
        url: mysql_url(),
        ..Default::default()
    };
    let pool = cfg.pool().expect("mysql pool");
    pool.get_conn()
        .await
        .unwrap_or_else(|e| panic!("MariaDB is not reachable at {}: {e}", cfg));
    pool
}

/// A fresh database, a topic, a DynamoDB table and a config that captures `table` of it.
pub(crate) struct Env {
    pub(crate) db: String,
    pub(crate) topic: String,
    pub(crate) target: String,
    pub(crate) config: PathBuf,
    pub(crate) pool: mysql_async::Pool,
}

pub(crate) async fn setup(prefix: &str, ddl: &str, table_block: &str) -> Env {
    common::require_stack();
    let pool = pool().await;
    let db = common::unique(prefix).replace('-', "_");
    let topic = common::unique(prefix);
    let target = common::unique(prefix);
    common::create_topic(&topic, 3).await;
    common::create_topic(&format!("{topic}.dlq"), 1).await;
    let mut conn = pool.get_conn().await.expect("conn");
    conn.query_drop(format!("CREATE DATABASE `{db}`"))
        .await
        .expect("create db");
    conn.query_drop(ddl.replace("DB.", &format!("`{db}`.")))
        .await
        .expect("create table");
    let config = common::write_config(
        &topic,
        &format!(
            r#"
[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{topic}-g"
dlq_topic = "{topic}.dlq"
properties = {{ "session.timeout.ms" = "6000" }}
[mysql]
url = "{url}"
[capture]
name = "{topic}"
topic = "{topic}"
checkpoint_topic = "{topic}.cp"
snapshot_batch = 50
[telemetry]
listen = ""
{table}
"#,
            brokers = common::brokers(),
            url = mysql_url(),
            table = table_block
                .replace("DB.", &format!("{db}."))
                .replace("TARGET", &target),
        ),
    );
    common::cutover_ok(&config, &["tables", "create"]);
    Env {
        db,
        topic,
        target,
        config,
        pool,
    }
}

impl Env {
    pub(crate) async fn exec(&self, sql: &str) {
        let mut conn = self.pool.get_conn().await.expect("conn");
        conn.query_drop(sql.replace("DB.", &format!("`{}`.", self.db)))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// What DynamoDB must hold: every MySQL row mapped as a load (keyed like `common::scan`,
    /// without `_v`).
    pub(crate) async fn expected(&self, table: &str) -> BTreeMap<String, Value> {
        let cfg = cutover::Config::load(&self.config).expect("config");
        let mapping = Mapping::new(&cfg.tables, &cfg.sink).expect("mapping");
        let mut conn = self.pool.get_conn().await.expect("conn");
        let schema = cutover::mysql::table_schema(&mut conn, &self.db, table)
            .await
            .expect("schema");
        let rows: Vec<mysql_async::Row> = conn
            .exec(
                format!(
                    "SELECT {} FROM `{}`.`{table}`",
                    cutover::mysql::select_list(&schema),
                    self.db
                ),
                (),
            )
            .await
            .expect("select");
        let mut out = BTreeMap::new();
        for row in rows {
            let cells = cutover::mysql::row_cells(&schema, row).expect("cells");
            let event = ChangeEvent {
                table: TableRef {
                    schema: self.db.clone(),
                    table: table.into(),
                },
                op: Op::Load,
                before: None,
                after: Some(cells),
                position: SourcePosition::default(),
                kafka: None,
            };
            let Mapped::Writes(writes) = mapping.map(&event).expect("map") else {
                panic!("unmapped")
            };
            for w in writes {
                let Change::Upsert { set, .. } = w.change else {
                    continue;
                };
                let mut item: BTreeMap<String, Value> = BTreeMap::new();
                for k in &w.key {
                    item.insert(k.name.to_string(), common::av_json(&k.value));
                }
                for (name, v) in set {
                    item.insert(name, common::av_json(&v));
                }
                let pk = item.get("pk").cloned().unwrap_or(Value::Null);
                let sk = item.get("sk").and_then(|v| v.as_str()).unwrap_or("");
                out.insert(
                    format!("{}|{sk}", pk.as_str().unwrap_or(&pk.to_string())),
                    serde_json::to_value(item).expect("json"),
                );
            }
        }
        out
    }

    /// DynamoDB's live items (tombstones left out), without `_v`.
    pub(crate) async fn live_items(&self) -> BTreeMap<String, Value> {
        let items = common::scan(&common::dynamo().await, &self.target).await;
        common::without(&items, &["_v"])
            .into_iter()
            .filter(|(_, v)| v.get("_deleted").is_none())
            .collect()
    }

    /// Wait until DynamoDB holds exactly MySQL's rows of `table`; see [`Env::converge_tables`].
    pub(crate) async fn converge(&self, table: &str, runs: &mut [&mut Cutover], stall: Duration) {
        self.converge_tables(&[table], runs, stall).await
    }

    /// Wait until DynamoDB holds exactly MySQL's rows of `tables` (all mapped to the env's
    /// target), and `verify` says so. Fails when the items have not changed for `stall`
    /// without matching, not at a fixed deadline (see [`common::Progress`]): under load the
    /// pipeline is slower, and only a pipeline that stopped converging is a failure.
    pub(crate) async fn converge_tables(
        &self,
        tables: &[&str],
        runs: &mut [&mut Cutover],
        stall: Duration,
    ) {
        let mut expected = BTreeMap::new();
        for table in tables {
            expected.extend(self.expected(table).await);
        }
        let mut progress = common::Progress::new(stall);
        loop {
            for r in runs.iter_mut() {
                r.assert_running();
            }
            let live = self.live_items().await;
            if live == expected {
                // And the tool users run says so too: verify exits 0 (clean) only when every
                // row matches and no item is extra.
                let out = common::cutover_ok(&self.config, &["verify", "--format", "json"]);
                let report: Value = serde_json::from_str(&out).expect("verify --format json");
                assert_eq!(report["clean"], Value::Bool(true), "verify report: {out}");
                return;
            }
            let (n, wanted) = (live.len(), expected.len());
            let diff: Vec<_> = expected
                .iter()
                .filter(|(k, v)| live.get(*k) != Some(v))
                .take(3)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let extra: Vec<_> = live
                .keys()
                .filter(|k| !expected.contains_key(*k))
                .take(3)
                .cloned()
                .collect();
            if let Some(why) = progress.observe(live) {
                panic!(
                    "DynamoDB did not converge to MySQL's {tables:?} ({why}; {n} vs {wanted} items); missing/different: {diff:?}; extra: {extra:?}\nlogs:\n{}",
                    runs.iter().map(|r| r.log_text()).collect::<Vec<_>>().join("\n---\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

const TYPES_DDL: &str = "CREATE TABLE DB.types (
    id BIGINT UNSIGNED PRIMARY KEY,
    dec38 DECIMAL(38,10), dt DATETIME(6), ts TIMESTAMP NULL, d DATE, tm TIME, y YEAR,
    j JSON, e ENUM('red','gr''een'), s SET('a','b','c'), flag BIT(1), bl BLOB,
    vb VARBINARY(16), txt TEXT, f FLOAT, dbl DOUBLE, n INT NULL)";

const TYPES_TABLE: &str = r#"
[[table]]
source = "DB.types"
target = "TARGET"
primary_key = ["id"]
partition_key = { name = "pk", template = "T#{id}" }
null = "null"
types = { id = "int", dec38 = "decimal", dt = "datetime", ts = "timestamp", d = "date", tm = "time", y = "year", j = "json", e = "enum", s = "set", flag = "bool", bl = "binary", vb = "binary", txt = "string", f = "float", dbl = "double", n = "int" }
"#;

const TYPES_ROW: &str = "(18446744073709551615, '-1234567890123456789012345678.0123456789',
    '2024-02-29 23:59:58.123456', '2024-03-01 12:00:00', '1999-12-31', '-26:03:04', 2024,
    '{\"k\": [1, 2.50, \"x\"]}', 'gr''een', 'a,c', b'1', 0x00FF10, 0xDEADBEEF, 'héllo', 0.1, 1.5e-7, NULL)";

fn types_expected(pk: &str, id: &str) -> Value {
    json!({
        "pk": pk, "id": {"N": id},
        "dec38": {"N": "-1234567890123456789012345678.0123456789"},
        "dt": "2024-02-29T23:59:58.123456Z", "ts": "2024-03-01T12:00:00.000000Z",
        "d": "1999-12-31", "tm": "-26:03:04", "y": {"N": "2024"},
        "j": {"k": [{"N": "1"}, {"N": "2.5"}, "x"]},
        "e": "gr'een", "s": {"SS": ["a", "c"]}, "flag": true,
        "bl": {"B": "AP8Q"}, "vb": {"B": "3q2+7w=="}, "txt": "héllo",
        "f": {"N": "0.1"}, "dbl": {"N": "0.00000015"}, "n": null
    })
}

/// 1. Every column type, from the snapshot and from the binlog, with exact values.
#[tokio::test(flavor = "multi_thread")]
async fn types_round_trip_through_snapshot_and_binlog() {
    let env = setup("captypes", TYPES_DDL, TYPES_TABLE).await;
    env.exec(&format!("INSERT INTO DB.types VALUES {TYPES_ROW}"))
        .await;
    let mut capture = Cutover::start(&env.config, &["capture"]);
    let mut run = Cutover::start(&env.config, &["run"]);
    env.converge(
        "types",
        &mut [&mut capture, &mut run],
        Duration::from_secs(120),
    )
    .await;
    // Binlog: an insert, then an update of another row, all from CDC.
    env.exec(&format!(
        "INSERT INTO DB.types VALUES {}",
        TYPES_ROW.replacen("18446744073709551615", "7", 1)
    ))
    .await;
    env.exec("INSERT INTO DB.types (id) VALUES (8)").await;
    env.exec("UPDATE DB.types SET txt = 'bye', n = 5, flag = b'0', s = '' WHERE id = 8")
        .await;
    env.converge(
        "types",
        &mut [&mut capture, &mut run],
        Duration::from_secs(120),
    )
    .await;
    let live = env.live_items().await;
    assert_eq!(
        live["T#18446744073709551615|"],
        types_expected("T#18446744073709551615", "18446744073709551615")
    );
    assert_eq!(live["T#7|"], types_expected("T#7", "7"), "binlog insert");
    assert_eq!(
        live["T#8|"],
        json!({"pk": "T#8", "id": {"N": "8"}, "dec38": null, "dt": null, "ts": null, "d": null,
               "tm": null, "y": null, "j": null, "e": null, "s": null, "flag": false, "bl": null, "vb": null,
               "txt": "bye", "f": null, "dbl": null, "n": {"N": "5"}}),
        "binlog update (an empty SET is NULL under null = \"null\")"
    );
    assert!(capture.stop(), "capture exits 0 on SIGTERM");
    assert!(run.stop());
}

const ITEMS_DDL: &str = "CREATE TABLE DB.items (
    id INT PRIMARY KEY, grp INT NOT NULL, name VARCHAR(40), amount DECIMAL(12,2))";

const ITEMS_TABLE: &str = r#"
[[table]]
source = "DB.items"
target = "TARGET"
primary_key = ["id"]
partition_key = { name = "pk", template = "I#{id}" }
types = { id = "int", grp = "int", amount = "decimal" }
"#;

/// A steady mix of inserts, updates, deletes and primary-key changes, until `stop`.
async fn churn(
    pool: mysql_async::Pool,
    db: String,
    stop: tokio_util::sync::CancellationToken,
) -> u64 {
    let mut conn = pool.get_conn().await.expect("conn");
    let mut n = 0u64;
    let mut next_id = 100_000;
    while !stop.is_cancelled() {
        let k = (n * 7919) % 1000 + 1;
        let sql = match n % 5 {
            0 => {
                next_id += 1;
                format!(
                    "INSERT INTO `{db}`.items VALUES ({next_id}, {}, 'new', 1.25)",
                    n % 10
                )
            }
            1 => format!(
                "UPDATE `{db}`.items SET name = 'upd{n}', amount = amount + 1 WHERE id = {k}"
            ),
            2 => format!("DELETE FROM `{db}`.items WHERE id = {k}"),
            // A primary-key change: the old key must disappear from DynamoDB.
            3 => format!("UPDATE IGNORE `{db}`.items SET id = id + 500000 WHERE id = {k}"),
            _ => format!(
                "UPDATE `{db}`.items SET grp = grp + 1 WHERE id BETWEEN {k} AND {}",
                k + 3
            ),
        };
        conn.query_drop(sql).await.expect("churn");
        n += 1;
    }
    n
}

async fn fill_items(env: &Env, rows: u32) {
    let values: Vec<String> = (1..=rows)
        .map(|i| format!("({i}, {}, 'row{i}', {}.{:02})", i % 10, i, i % 100))
        .collect();
    for chunk in values.chunks(500) {
        env.exec(&format!("INSERT INTO DB.items VALUES {}", chunk.join(",")))
            .await;
    }
}

/// 2. Writes running while the snapshot reads, then CDC: DynamoDB equals MySQL's final state.
#[tokio::test(flavor = "multi_thread")]
async fn snapshot_under_concurrent_writes_converges() {
    let env = setup("capsnap", ITEMS_DDL, ITEMS_TABLE).await;
    fill_items(&env, 3000).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(churn(env.pool.clone(), env.db.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut capture = Cutover::start(&env.config, &["capture"]);
    let mut run = Cutover::start(&env.config, &["run"]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.cancel();
    let writes = writer.await.expect("writer");
    assert!(writes > 100, "only {writes} concurrent writes");
    env.converge(
        "items",
        &mut [&mut capture, &mut run],
        Duration::from_secs(120),
    )
    .await;
    assert!(
        capture.log_text().contains("full load done"),
        "{}",
        capture.log_text()
    );
    assert!(capture.stop());
    assert!(run.stop());
}

/// 3. SIGKILL mid-snapshot and mid-CDC; each restart resumes from its checkpoint and
/// DynamoDB converges to MySQL. The waits fail on a stall (nothing advancing for 60 s / 90 s),
/// not on a wall-clock deadline: the fixed 90 s deadline they had failed under machine load.
#[tokio::test(flavor = "multi_thread")]
async fn crash_mid_snapshot_and_mid_cdc_converges() {
    let env = setup("capcrash", ITEMS_DDL, ITEMS_TABLE).await;
    fill_items(&env, 8000).await;
    let mut run = Cutover::start(&env.config, &["run"]);
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(churn(env.pool.clone(), env.db.clone(), stop.clone()));

    // Mid-snapshot: kill once at least one page is checkpointed, before the load is done.
    let capture = Cutover::start(&env.config, &["capture"]);
    let t0 = std::time::Instant::now();
    while !capture.log_text().contains("snapshot opened") && t0.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let killed_mid_snapshot = !capture.log_text().contains("full load done");
    capture.kill9();

    let capture = Cutover::start(&env.config, &["capture"]);
    // Progress: the log grows while the load goes on ("snapshot progress" every 5 s).
    common::wait_progressing(
        "the resumed capture to finish its load",
        Duration::from_secs(60),
        || async { capture.log_text().contains("full load done") },
        || capture.log_text().len(),
    )
    .await;
    assert!(
        capture.log_text().contains("resuming from checkpoint"),
        "{}",
        capture.log_text()
    );
    // Mid-CDC.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    capture.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut capture = Cutover::start(&env.config, &["capture"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    writer.await.expect("writer");
    env.converge(
        "items",
        &mut [&mut capture, &mut run],
        Duration::from_secs(90),
    )
    .await;
    let log = capture.log_text();
    assert!(
        log.contains("resuming from checkpoint") && !log.contains("starting with a full load"),
        "the CDC restart resumes the binlog: {log}"
    );
    assert!(
        killed_mid_snapshot,
        "the first kill landed after the load finished: make the table bigger"
    );
    assert!(capture.stop());
    assert!(run.stop());
}

/// A throwaway MariaDB with its own datadir and port, stopped on drop.
struct Throwaway {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl Throwaway {
    fn start(args: &[&str]) -> Throwaway {
        // Under the target directory, not /tmp: see the tmpdir below.
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(common::unique("capture-mariadb"));
        std::fs::create_dir_all(&dir).expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let out = std::process::Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .output()
            .expect("mariadb-install-db must be installed");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Its own tmpdir beside its datadir: the shared /tmp (the server's default) fills up
        // and is cleaned under parallel runs, which made start-up and temporary tables flake.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).expect("tmpdir");
        let child = std::process::Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--server-id=7")
            .arg("--user=root")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("err.log")).expect("log"))
            .spawn()
            .expect("mariadbd must be installed");
        Throwaway { child, dir, port }
    }

    fn url(&self) -> String {
        format!("mysql://capt:capt@127.0.0.1:{}/mysql", self.port)
    }

    /// Wait for the server, then create a capture user over the socket.
    async fn ready(&self) {
        let sock = self.dir.join("sock");
        let t0 = std::time::Instant::now();
        loop {
            let ok = std::process::Command::new("mariadb")
                .arg("--no-defaults")
                .arg(format!("--socket={}", sock.display()))
                .arg("-uroot")
                .arg("-e")
                .arg("CREATE USER IF NOT EXISTS 'capt'@'%' IDENTIFIED BY 'capt'; GRANT ALL ON *.* TO 'capt'@'%'; CREATE DATABASE IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY)")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "throwaway mariadbd did not start: {}",
                std::fs::read_to_string(self.dir.join("err.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// 4. Servers that cannot be captured are refused with exit code 2, naming the setting.
#[tokio::test(flavor = "multi_thread")]
async fn unusable_servers_are_refused_naming_the_setting() {
    common::require_stack();
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--skip-log-bin"], &["log_bin"]),
        (
            &["--log-bin=mb", "--binlog-format=STATEMENT"],
            &["binlog_format is STATEMENT", "binlog_format=ROW"],
        ),
        (
            &[
                "--log-bin=mb",
                "--binlog-format=ROW",
                "--binlog-row-image=MINIMAL",
                "--binlog-row-metadata=FULL",
            ],
            &["binlog_row_image is MINIMAL", "binlog_row_image=FULL"],
        ),
        (
            &[
                "--log-bin=mb",
                "--binlog-format=ROW",
                "--binlog-row-metadata=MINIMAL",
            ],
            &["binlog_row_metadata is MINIMAL", "binlog_row_metadata=FULL"],
        ),
    ];
    let servers: Vec<Throwaway> = cases
        .iter()
        .map(|(args, _)| Throwaway::start(args))
        .collect();
    for s in &servers {
        s.ready().await;
    }
    for (server, (args, wants)) in servers.iter().zip(cases.iter()) {
        let topic = common::unique("caprefuse");
        let config = common::write_config(
            &topic,
            &format!(
                r#"
[kafka]
brokers = "{}"
topics = ["{topic}"]
[mysql]
url = "{}"
[capture]
topic = "{topic}"
checkpoint_topic = "{topic}.cp"
tables = ["app.t"]
[telemetry]
listen = ""
[[table]]
source = "app.t"
target = "refused"
primary_key = ["id"]
partition_key = {{ name = "pk", template = "{{id}}" }}
"#,
                common::brokers(),
                server.url()
            ),
        );
        let out = common::cutover_cmd(&config, &["capture"])
            .output()
            .expect("run capture");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for want in *wants {
            assert!(
                stderr.contains(want),
                "{args:?}: missing {want:?} in {stderr}"
            );
        }
    }
}
