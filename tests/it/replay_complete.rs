//! Issue 10 items 1–2: `cutover replay --from earliest` reads every record of every
//! partition, even while the sink is slower than `--idle-timeout` per batch, and says how far
//! it got per partition.
//!
//! Realistic size and hostile input: the seeded DMS workload of the soak
//! (`examples/support/workload.rs`: multi-row transactions, re-delivery of old records after
//! newer ones, primary-key moves across partitions, separators and odd charsets in keys),
//! ≥ 100k records on 8 partitions. DynamoDB Local is reached through a proxy that delays every
//! request, so one batch takes longer than the idle timeout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common;
use crate::workload::{self, Params, Workload};

/// A TCP proxy to `upstream` that stalls: every `period` it holds what clients send for
/// `stall` (DynamoDB seems frozen, like the soak's SIGSTOP, but briefly), and passes it on
/// otherwise. Every batch in flight during a stall takes longer than `stall`. Runs until the
/// test ends.
pub async fn stalling_proxy(upstream: String, period: Duration, stall: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let started = tokio::time::Instant::now();
    // When the current stall (if any) ends.
    let open_at = move || {
        let t = started.elapsed().as_secs_f64() % period.as_secs_f64();
        let stall_from = (period - stall).as_secs_f64();
        (t >= stall_from).then(|| Duration::from_secs_f64(period.as_secs_f64() - t))
    };
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if let Some(wait) = open_at() {
                                    tokio::time::sleep(wait).await;
                                }
                                if sw.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

/// A fresh topic (and its `.dlq`) holding `w`; returns the topic and each partition's end.
pub async fn topic_with(prefix: &str, w: &Workload) -> (String, Vec<i64>) {
    common::require_stack();
    let topic = common::unique(prefix);
    common::create_topic(&topic, w.params.partitions).await;
    common::create_topic(&format!("{topic}.dlq"), 1).await;
    let ends = workload::produce(&common::brokers(), &topic, w)
        .await
        .unwrap_or_else(|e| panic!("produce {topic}: {e:#}"));
    (topic, ends)
}

/// The config of a stream over `topic` into `target` (mapping of the workload's shop).
pub fn config_text(topic: &str, target: &str, sink: &str) -> String {
    format!(
        r#"
[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{topic}-group"
dlq_topic = "{topic}.dlq"
format = "dms"
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000" }}
[dynamodb]
region = "us-east-1"
[sink]
{sink}
{tables}"#,
        brokers = common::brokers(),
        tables = workload::tables_toml(target),
    )
}

/// Run `cutover` with DynamoDB at `endpoint`; returns (exit success, stdout, stderr).
pub async fn cutover_at(
    config: PathBuf,
    endpoint: String,
    args: Vec<String>,
) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = common::cutover_cmd(
            &config,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .env("CUTOVER_DYNAMODB__ENDPOINT_URL", endpoint)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cutover");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("cutover task")
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Item 1 (replay completeness) under a sink slower than the idle timeout: before the fix,
/// the poll loop waited in `dispatch` while one partition's queue was full, and the burst of
/// missed idle ticks ended partitions that still had records (exit 0 after a fraction).
#[tokio::test(flavor = "multi_thread")]
async fn replay_of_100k_records_with_a_slow_sink_applies_every_record() {
    let started = Instant::now();
    let w = workload::generate(Params {
        seed: 10,
        records: 100_000,
        partitions: 8,
        start_secs: chrono::Utc::now().timestamp() / 3600 * 3600 - 3600,
        ..Params::default()
    });
    eprintln!("generated in {:.1}s", started.elapsed().as_secs_f64());
    let (topic, ends) = topic_with("replay100k", &w).await;
    let total: i64 = ends.iter().sum();
    eprintln!(
        "generated and produced {total} records on {} partitions in {:.1}s",
        ends.len(),
        started.elapsed().as_secs_f64()
    );

    let target = common::unique("replay100k");
    let text = config_text(&topic, "replay100k-base", "");
    let cfg = cutover::Config::from_toml(&text).expect("config");
    let config = common::write_config(&topic, &text);
    let upstream = common::dynamo_endpoint()
        .trim_start_matches("http://")
        .to_string();
    // Every 5 s DynamoDB stalls for 1.5 s: the batches in flight then take longer than the
    // 1 s idle timeout, and every partition's queue fills up meanwhile.
    let proxy = stalling_proxy(
        upstream,
        Duration::from_secs(5),
        Duration::from_millis(1500),
    )
    .await;
    let args: Vec<String> = [
        "replay",
        "--from",
        "earliest",
        "--target-table",
        &target,
        "--create-table",
        "--idle-timeout",
        "1s",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let t = Instant::now();
    let (ok, stdout, stderr) = cutover_at(config, format!("http://{proxy}"), args).await;
    let seconds = t.elapsed().as_secs_f64();
    let summary: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    eprintln!("replay took {seconds:.1}s, exit ok={ok}: {summary}");

    let t = Instant::now();
    let client = common::dynamo().await;
    let mapping = cfg.mapping().expect("mapping");
    let diff = workload::check(&client, &mapping, &cfg.sink, &target, &w.truth)
        .await
        .expect("check");
    eprintln!("checked in {:.1}s: {diff:?}", t.elapsed().as_secs_f64());
    assert_eq!(
        summary["records"].as_i64(),
        Some(total),
        "records read: exit ok={ok}\n{}",
        tail(&stderr, 20)
    );
    assert!(ok, "replay failed:\n{}", tail(&stderr, 20));
    assert_eq!(
        diff.differences(),
        0,
        "the rebuilt table differs from the truth: {diff:?}"
    );
    eprintln!("checked; total {:.1}s", started.elapsed().as_secs_f64());
}

/// Item 1's edges: `--from p:o` past the end is refused before the target table is created;
/// a full replay reports each partition (start, end, read_to, records) and names a mapped
/// source table no record came from (item 10b: a typo in `source`).
#[tokio::test(flavor = "multi_thread")]
async fn replay_refuses_a_start_past_the_end_and_reports_each_partition() {
    let env = crate::stream::setup("replay-report", "dms", 3, "").await;
    let typo = format!(
        "{}\n[[table]]\nsource = \"chat.mesage\"\ntarget = \"{}\"\nprimary_key = [\"id\"]\npartition_key = {{ name = \"pk\", template = \"TYPO#{{id}}\" }}\nsort_key = {{ name = \"sk\", template = \"TYPO\" }}\n",
        std::fs::read_to_string(&env.config).expect("config"),
        env.table
    );
    let config = common::write_config(&format!("{}-typo", env.topic), &typo);
    let delivered = common::produce(&env.topic, &crate::chat::scenario().dms()).await;
    let ends = common::ends(&delivered);

    let fresh = common::unique("replay-report");
    let out = common::cutover_cmd(
        &config,
        &[
            "replay",
            "--from",
            "0:999999",
            "--target-table",
            &fresh,
            "--create-table",
        ],
    )
    .output()
    .expect("run cutover");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a start past the end is refused");
    assert!(stderr.contains("past the end"), "{stderr}");
    let described = env.client.describe_table().table_name(&fresh).send().await;
    assert!(described.is_err(), "the refused replay created no table");

    let out = common::cutover_cmd(
        &config,
        &[
            "replay",
            "--target-table",
            &fresh,
            "--create-table",
            "--idle-timeout",
            "2s",
            "--json",
        ],
    )
    .output()
    .expect("run cutover");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a JSON summary");
    assert_eq!(summary["complete"], true, "{summary}");
    assert_eq!(summary["records"].as_u64(), Some(delivered.len() as u64));
    let parts = summary["per_partition"].as_array().expect("per partition");
    assert_eq!(parts.len(), 3, "{summary}");
    for p in parts {
        let n = p["partition"].as_i64().unwrap() as i32;
        let end = ends.get(&n).copied().unwrap_or(0);
        assert_eq!(p["start"], 0, "{p}");
        assert_eq!(p["read_to"].as_i64(), Some(end), "{p}");
        assert_eq!(p["records"].as_i64(), Some(end), "{p}");
        assert_eq!(p["ended"], "end", "{p}");
        // Watermarks may be reported low (see shared/reference), never high.
        assert!(p["end"].as_i64().unwrap() <= end, "{p}");
    }
    assert_eq!(
        summary["unseen_sources"],
        serde_json::json!(["chat.mesage"]),
        "{summary}"
    );
    assert!(
        stderr.contains("no record of mapped source table chat.mesage"),
        "{stderr}"
    );
}
