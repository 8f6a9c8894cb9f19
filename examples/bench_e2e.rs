//! End-to-end bench on the local stack, in one run, for each write mode:
//!   (a) an ideal writer: the same items, already mapped, pushed straight into DynamoDB Local
//!       by the library's writer with the same parallelism (one stream per partition);
//!   (b) `cutover run` draining a pre-filled topic (default 200k records, 12 partitions),
//!       timed from its first written item to the group's commit of the last offset;
//! and reports (b)/(a) and the peak RSS (VmHWM) of `cutover run`.
//!
//!     scripts/bench-e2e                      # builds release, starts the stack, runs this
//!     cargo run --release --example bench_e2e -- --records 200000 --partitions 12 \
//!         --bin target/release/cutover

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cutover::cdc::{self, Decoded, Format};
use cutover::mapping::{ItemWrite, Mapped};
use cutover::sink::{SdkApi, Writer};
use cutover::Config;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use support::{arg, committed_total, metric, peak_rss_mb};

#[path = "chat_service/chat.rs"]
mod chat;
#[path = "support/mod.rs"]
mod support;

/// The chat service's `chat.message` mapping (examples/chat_service/cutover.toml) into
/// `table`, on the local stack.
fn config_text(topic: &str, table: &str, group: &str, mode: &str, listen: &str) -> String {
    let brokers =
        std::env::var("CUTOVER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let endpoint = std::env::var("CUTOVER_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:18000".into());
    chat::ChatConfig::named("chat")
        .only(&["message"])
        .target(table)
        .stack(&brokers, &endpoint)
        .stream(topic, group, &format!("{topic}.dlq"), "dms")
        .merge(&format!(
            r#"
[sink]
write_mode = "{mode}"
[telemetry]
listen = "{listen}"
"#
        ))
        .text()
}

fn record(i: usize) -> (String, String) {
    let id = 1_000_000 + i;
    let c = i % 1000;
    (
        format!("chat.message.{id}"),
        format!(
            r#"{{"data":{{"id":{id},"conversation_id":{c},"sender_id":{s},"body":"message number {i} with some text in it","created_at":"2024-01-02T10:{m:02}:{sec:02}.{ms:03}Z","edited":0}},"metadata":{{"timestamp":"2024-01-02T10:00:00.123456Z","record-type":"data","operation":"insert","partition-key-type":"primary-key","schema-name":"chat","table-name":"message","transaction-id":{tx},"transaction-record-id":1,"commit-timestamp":"2024-01-02T10:00:00.000000Z","stream-position":"mysql-bin-changelog.000042:{pos}:0:{pos}:{tx}:mysql-bin-changelog.000042:{pos}"}}}}"#,
            s = i % 97,
            m = (i / 60) % 60,
            sec = i % 60,
            ms = i % 1000,
            tx = 9_000_000_000u64 + i as u64,
            pos = 4 + i * 300,
        ),
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: usize = arg("--records", "200000").parse()?;
    let partitions: i32 = arg("--partitions", "12").parse()?;
    let bin = arg("--bin", "target/release/cutover");
    let modes = arg("--modes", "batch,conditional");
    let brokers =
        std::env::var("CUTOVER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    std::env::set_var(
        "AWS_ACCESS_KEY_ID",
        std::env::var("AWS_ACCESS_KEY_ID").unwrap_or("local".into()),
    );
    std::env::set_var(
        "AWS_SECRET_ACCESS_KEY",
        std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or("local".into()),
    );
    let stamp = chrono::Utc::now().timestamp();
    let topic = format!("bench-{stamp}");

    // Fill the topic once.
    support::create_topic_and_dlq(&brokers, &topic, partitions).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let records: Vec<(String, String)> = (0..n).map(record).collect();
    let t = Instant::now();
    let partition_of: Vec<i32> = cutover::kafka::send_all(
        &producer,
        records
            .iter()
            .map(|(k, v)| FutureRecord::to(&topic).key(k).payload(v)),
    )
    .await?
    .into_iter()
    .map(|(p, _)| p)
    .collect();
    eprintln!(
        "produced {n} records to {topic} ({partitions} partitions) in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    println!("| write mode | (a) ideal writer, items/s | (b) cutover run, records/s | (b)/(a) | peak RSS of run |");
    println!("|---|---|---|---|---|");
    for (round, mode) in modes.split(',').enumerate() {
        let table_a = format!("bench-a-{mode}-{stamp}");
        let table_b = format!("bench-b-{mode}-{stamp}");
        let listen = format!("127.0.0.1:{}", 19500 + round);
        let cfg_text = config_text(&topic, &table_a, "unused", mode, "");
        let cfg = Config::from_toml(&cfg_text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mapping = cfg.mapping()?;
        let client = cutover::sink::dynamo::client(&cfg.dynamodb).await;
        let spec = mapping
            .targets()
            .values()
            .next()
            .expect("one target")
            .clone();
        cutover::tables::create(&client, &spec, &table_a).await?;
        cutover::tables::create(&client, &spec, &table_b).await?;

        // (a) the same items, mapped up front, written by the library writer per partition.
        let mut streams: HashMap<i32, Vec<ItemWrite>> = HashMap::new();
        for ((_, v), p) in records.iter().zip(&partition_of) {
            let Decoded::Change(ev) = cdc::decode(Some(v.as_bytes()), Format::Dms)? else {
                continue;
            };
            if let Mapped::Writes(ws) = mapping.map(&ev)? {
                streams.entry(*p).or_default().extend(ws);
            }
        }
        let writer = Writer::new(
            SdkApi {
                client: client.clone(),
            },
            cfg.sink.clone(),
        );
        let batch = cfg.sink.max_batch_records;
        let t = Instant::now();
        let tasks: Vec<_> = streams
            .into_values()
            .map(|ws| {
                let w = writer.clone();
                tokio::spawn(async move {
                    let mut ws = ws;
                    while !ws.is_empty() {
                        let rest = ws.split_off(ws.len().min(batch));
                        w.write(std::mem::replace(&mut ws, rest))
                            .await
                            .expect("ideal write");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await?;
        }
        let ideal = n as f64 / t.elapsed().as_secs_f64();

        // (b) cutover run, draining the topic with a fresh group.
        let group = format!("bench-{mode}-{stamp}");
        let path = std::env::temp_dir().join(format!("bench-{mode}-{stamp}.toml"));
        std::fs::write(
            &path,
            config_text(
                &topic,
                &table_b,
                &group,
                if mode == "batch" {
                    "batch"
                } else {
                    "conditional"
                },
                &listen,
            ),
        )?;
        let mut child = Command::new(&bin)
            .arg("--config")
            .arg(&path)
            .arg("run")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?;
        let mut first = None;
        let deadline = Instant::now() + Duration::from_secs(1800);
        let done_at = loop {
            if Instant::now() > deadline {
                anyhow::bail!("cutover run did not drain the topic in time");
            }
            if let Some(s) = child.try_wait()? {
                anyhow::bail!("cutover run exited early: {s}");
            }
            if first.is_none() && metric(&listen, "cutover_items_written_total") > 0.0 {
                first = Some(Instant::now());
            }
            if first.is_some() {
                let (b, g, t) = (brokers.clone(), group.clone(), topic.clone());
                let c =
                    tokio::task::spawn_blocking(move || committed_total(&b, &g, &t, partitions))
                        .await?;
                if c >= n as i64 {
                    break Instant::now();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let rss = peak_rss_mb(child.id());
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        let run_rate = n as f64
            / done_at
                .duration_since(first.expect("first write"))
                .as_secs_f64();
        println!(
            "| {mode} | {ideal:.0} | {run_rate:.0} | {:.2} | {rss:.0} MB |",
            run_rate / ideal
        );
        for t in [&table_a, &table_b] {
            let _ = client.delete_table().table_name(t).send().await;
        }
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}
