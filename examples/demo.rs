//! The demo behind `scripts/demo`: a chat service's MySQL change stream, as AWS DMS writes it,
//! streamed into one DynamoDB table by `cutover run`, then rebuilt into a second table by
//! `cutover replay`, with a short summary and timings.
//!
//!     scripts/demo                        # starts the local stack, builds, runs this
//!     cargo run --example demo -- --bin target/debug/cutover --messages 20000

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;
use support::{arg, committed_total, metric};

#[path = "support/mod.rs"]
mod support;

struct Log {
    records: Vec<(String, String)>,
    pos: u64,
}

impl Log {
    fn push(
        &mut self,
        table: &str,
        op: &str,
        key: String,
        row: serde_json::Value,
        before: Option<serde_json::Value>,
    ) {
        self.pos += 120;
        let commit = chrono::Utc::now();
        let mut rec = json!({
            "data": row,
            "metadata": {
                "timestamp": commit.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "record-type": "data", "operation": op, "partition-key-type": "primary-key",
                "schema-name": "chat", "table-name": table,
                "transaction-id": 5_000_000 + self.pos, "transaction-record-id": 1,
                "commit-timestamp": commit.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "stream-position": format!("mysql-bin-changelog.000001:{}:0:{}:{}:mysql-bin-changelog.000001:{}", self.pos, self.pos + 60, 5_000_000 + self.pos, self.pos),
            }
        });
        if let Some(b) = before {
            rec["before-image"] = b;
        }
        self.records
            .push((format!("chat.{table}.{key}"), rec.to_string()));
    }
}

fn history(conversations: u64, messages: u64) -> (Log, usize, usize, usize) {
    let mut log = Log {
        records: Vec::new(),
        pos: 4,
    };
    let (mut edits, mut deletes, mut moves) = (0, 0, 0);
    for c in 1..=conversations {
        log.push("conversation", "insert", c.to_string(), json!({"id": c, "title": format!("Team {c}"), "tenant_id": c % 10, "created_at": "2024-03-01T09:00:00Z"}), None);
        for u in 0..3 {
            let user = c * 10 + u;
            log.push("conversation_member", "insert", format!("{c}.{user}"), json!({"conversation_id": c, "user_id": user, "role": if u == 0 { "owner" } else { "member" }, "joined_at": "2024-03-01T09:00:00Z"}), None);
        }
    }
    let mut rng = 0x9E3779B97F4A7C15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for i in 0..messages {
        let id = 100_000 + i;
        let c = 1 + next(conversations);
        let row = json!({"id": id, "conversation_id": c, "sender_id": c * 10 + next(3), "body": format!("message {i}"),
            "created_at": format!("2024-03-01T{:02}:{:02}:{:02}.{:03}Z", 10 + (i / 3600) % 12, (i / 60) % 60, i % 60, i % 1000), "edited": 0});
        log.push("message", "insert", id.to_string(), row.clone(), None);
        match next(20) {
            0 => {
                let mut r = row.clone();
                r["body"] = json!(format!("message {i} (edited)"));
                r["edited"] = json!(1);
                log.push("message", "update", id.to_string(), r, None);
                edits += 1;
            }
            1 => {
                log.push("message", "delete", id.to_string(), row, None);
                deletes += 1;
            }
            2 => {
                let mut r = row.clone();
                r["id"] = json!(id + 10_000_000);
                log.push("message", "update", (id + 10_000_000).to_string(), r, Some(row));
                moves += 1;
            }
            3 => log.push("conversation_read", "update", format!("{c}.{}", c * 10 + 1), json!({"conversation_id": c, "user_id": c * 10 + 1, "last_read_message_id": id, "updated_at": "2024-03-01T12:00:00Z"}), None),
            _ => {}
        }
    }
    (log, edits, deletes, moves)
}

fn config(brokers: &str, endpoint: &str, topic: &str, table: &str, group: &str) -> String {
    format!(
        r#"# cutover.toml for the demo: the chat schema in one DynamoDB table (single-table design)
[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
dlq_topic = "{topic}.dlq"
format = "dms"
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000" }}

[dynamodb]
endpoint_url = "{endpoint}"
region = "us-east-1"

[telemetry]
listen = "127.0.0.1:19464"

[[table]]
source = "chat.conversation"
target = "{table}"
primary_key = ["id"]
partition_key = {{ name = "pk", template = "CONV#{{id}}" }}
sort_key = {{ name = "sk", template = "META" }}
attributes = {{ entity = "conversation" }}
types = {{ created_at = "datetime" }}

[[table]]
source = "chat.conversation_member"
target = "{table}"
primary_key = ["conversation_id", "user_id"]
partition_key = {{ name = "pk", template = "CONV#{{conversation_id}}" }}
sort_key = {{ name = "sk", template = "MEMBER#{{user_id}}" }}
attributes = {{ entity = "member", gsi1pk = "USER#{{user_id}}", gsi1sk = "CONV#{{conversation_id}}" }}
types = {{ joined_at = "datetime" }}
[[table.gsi]]
name = "gsi1"
partition_key = "gsi1pk"
sort_key = "gsi1sk"

[[table]]
source = "chat.message"
target = "{table}"
primary_key = ["id"]
partition_key = {{ name = "pk", template = "CONV#{{conversation_id}}" }}
sort_key = {{ name = "sk", template = "MSG#{{created_at}}#{{id}}" }}
attributes = {{ entity = "message" }}
rename = {{ body = "text" }}
types = {{ created_at = "datetime", edited = "bool" }}

[[table]]
source = "chat.conversation_read"
target = "{table}"
primary_key = ["conversation_id", "user_id"]
partition_key = {{ name = "pk", template = "CONV#{{conversation_id}}" }}
sort_key = {{ name = "sk", template = "READ#{{user_id}}" }}
attributes = {{ entity = "read" }}
types = {{ updated_at = "datetime" }}
"#
    )
}

async fn count(client: &aws_sdk_dynamodb::Client, table: &str) -> (usize, usize) {
    let (mut live, mut tomb) = (0, 0);
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for i in page.items() {
            if i.contains_key("_deleted") {
                tomb += 1
            } else {
                live += 1
            }
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    (live, tomb)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let bin = arg("--bin", "target/debug/cutover");
    let conversations: u64 = arg("--conversations", "1000").parse()?;
    let messages: u64 = arg("--messages", "20000").parse()?;
    let partitions = 12;
    let brokers =
        std::env::var("CUTOVER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let endpoint = std::env::var("CUTOVER_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:18000".into());
    let stamp = chrono::Utc::now().format("%H%M%S").to_string();
    let topic = format!("demo.chat.{stamp}");
    let table = format!("demo-chat-{stamp}");
    let group = format!("demo-{stamp}");
    let dir = std::env::temp_dir().join(format!("cutover-demo-{stamp}"));
    std::fs::create_dir_all(&dir)?;
    let cfg_path = dir.join("cutover.toml");
    std::fs::write(
        &cfg_path,
        config(&brokers, &endpoint, &topic, &table, &group),
    )?;
    let t_all = Instant::now();
    println!("== cutover demo: chat history → Kafka (DMS format) → DynamoDB");
    println!("   config: {}", cfg_path.display());

    let cutover = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(&bin)
            .arg("--config")
            .arg(&cfg_path)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()?;
        if !out.status.success() {
            anyhow::bail!(
                "cutover {args:?} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    println!("1. validate: {}", cutover(&["validate"])?);
    support::create_topic_and_dlq(&brokers, &topic, partitions).await?;
    println!(
        "2. tables create: {}",
        cutover(&["tables", "create"])?.replace('\n', ", ")
    );

    let (log, edits, deletes, moves) = history(conversations, messages);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "10")
        .create()?;
    let t = Instant::now();
    cutover::kafka::send_all(
        &producer,
        log.records
            .iter()
            .map(|(k, v)| FutureRecord::to(&topic).key(k).payload(v)),
    )
    .await?;
    let n = log.records.len();
    println!(
        "3. produced {n} DMS records ({conversations} conversations, {messages} messages, {edits} edits, {deletes} deletes, {moves} primary-key changes) in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut run = Command::new(&bin)
        .arg("--config")
        .arg(&cfg_path)
        .arg("run")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    loop {
        if let Some(s) = run.try_wait()? {
            anyhow::bail!("cutover run exited: {s}");
        }
        let (b, g, tp) = (brokers.clone(), group.clone(), topic.clone());
        if tokio::task::spawn_blocking(move || committed_total(&b, &g, &tp, partitions)).await?
            >= n as i64
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let written = metric("127.0.0.1:19464", "cutover_items_written_total");
    let latency_sum = metric("127.0.0.1:19464", "cutover_e2e_latency_seconds_sum");
    let latency_n = metric("127.0.0.1:19464", "cutover_e2e_latency_seconds_count");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(run.id().to_string())
        .status();
    let status = run.wait()?;
    println!(
        "4. cutover run drained the topic in {secs:.1}s ({:.0} records/s, {written:.0} item writes after coalescing), mean commit→write latency {:.2}s (a backlog: every record was produced first), stopped on SIGTERM: {status}",
        n as f64 / secs,
        if latency_n > 0.0 { latency_sum / latency_n } else { 0.0 }
    );

    let client = {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        aws_sdk_dynamodb::Client::new(&conf)
    };
    let (live, tomb) = count(&client, &table).await;
    println!("5. {table}: {live} live items, {tomb} tombstones (deleted and moved rows)");
    let q = client
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :m)")
        .expression_attribute_values(":pk", AttributeValue::S("CONV#1".into()))
        .expression_attribute_values(":m", AttributeValue::S("MSG#".into()))
        .filter_expression("attribute_not_exists(#d)")
        .expression_attribute_names("#d", "_deleted")
        .scan_index_forward(false)
        .limit(50)
        .send()
        .await?;
    if let Some(latest) = q.items().first() {
        println!(
            "   query CONV#1 newest message: sk={} text={:?}",
            latest
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                .unwrap_or("?"),
            latest
                .get("text")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                .unwrap_or("?")
        );
    }

    let rebuilt = format!("{table}-rebuilt");
    let t = Instant::now();
    let summary = cutover(&[
        "replay",
        "--from",
        "earliest",
        "--target-table",
        &rebuilt,
        "--create-table",
        "--idle-timeout",
        "3s",
    ])?;
    let (live2, tomb2) = count(&client, &rebuilt).await;
    println!(
        "6. replay into {rebuilt} in {:.1}s: {summary}",
        t.elapsed().as_secs_f64()
    );
    println!(
        "   rebuilt table: {live2} live items, {tomb2} tombstones: {}",
        if (live2, tomb2) == (live, tomb) {
            "same as the live table"
        } else {
            "DIFFERENT from the live table"
        }
    );
    println!("== done in {:.1}s", t_all.elapsed().as_secs_f64());
    if (live2, tomb2) != (live, tomb) {
        anyhow::bail!("the rebuilt table differs");
    }
    Ok(())
}
