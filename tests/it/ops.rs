//! Operating `cutover`: validation, fatal errors, telemetry endpoints, rebalancing.

use std::io::{Read, Write};
use std::time::Duration;

use crate::chat;
use crate::common::{self, Cutover};
use crate::stream::{self, setup, strip};

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let status = body
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn validate_lists_every_problem_with_its_key() {
    let path = common::write_config(
        &common::unique("bad-config"),
        r#"
[kafka]
brokers = ""
topics = []
bogus = true
[sink]
write_mode = "batch"
concurrency = 0
[[table]]
source = "message"
target = "x"
primary_key = []
partition_key = { name = "pk", template = "MSG#{id" }
types = { created_at = "datetime:weekly" }
merge = true
"#,
    );
    let out = common::cutover_cmd(&path, &["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "config errors exit with 2");
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "kafka.bogus",
        "kafka.brokers",
        "kafka.topics",
        "sink.concurrency",
        "table[0].source",
        "table[0].target",
        "table[0].primary_key",
        "table[0].partition_key.template",
        "table[0].types.created_at",
        "table[0].columns",
        "table[0].merge",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_table_stops_run_with_a_clear_message() {
    common::require_stack();
    let topic = common::unique("fatal");
    common::create_topic(&topic, 1).await;
    let table = common::unique("never-created");
    let config = common::write_config(
        &topic,
        &chat::config(&topic, &table, "g", &format!("{topic}.dlq"), "dms", ""),
    );
    let out = common::cutover_cmd(&config, &["run"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing") && err.contains(&table), "{err}");
}

/// `replay --create-table --write-mode batch` of merge tables is refused before anything is
/// done: the new table does not exist afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn replay_refuses_batch_mode_for_merge_tables_before_creating_the_table() {
    common::require_stack();
    let topic = common::unique("merge-batch");
    let table = common::unique("merge-batch");
    let new_table = format!("{table}-v2");
    let config = common::write_config(
        &topic,
        &stream::merge_config(&topic, &table, "g", &format!("{topic}.dlq")),
    );
    let out = common::cutover_cmd(
        &config,
        &[
            "replay",
            "--target-table",
            &new_table,
            "--create-table",
            "--write-mode",
            "batch",
        ],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("merge-mode"), "{err}");
    let described = common::dynamo()
        .await
        .describe_table()
        .table_name(&new_table)
        .send()
        .await;
    match described {
        Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e)) => assert_eq!(
            aws_sdk_dynamodb::error::ProvideErrorMetadata::code(e.err()),
            Some("ResourceNotFoundException"),
            "{new_table}"
        ),
        other => panic!("{new_table} was created, or DynamoDB is unreachable: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn run_serves_metrics_liveness_and_readiness() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = setup("telemetry", "dms", 2, "").await;
    // the [telemetry] section of the chat config is overridden by the environment
    let mut cmd = common::cutover_cmd(&env.config, &["run"]);
    cmd.env("CUTOVER_TELEMETRY__LISTEN", &listen)
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    common::produce(&env.topic, &chat::scenario().dms()).await;
    let (client, table) = (env.client.clone(), env.table.clone());
    common::wait_until("items", Duration::from_secs(60), move || {
        let (c, t) = (client.clone(), table.clone());
        async move { strip(&common::scan(&c, &t).await) == chat::expected_items() }
    })
    .await;
    assert_eq!(http_get(&listen, "/healthz").0, 200);
    assert_eq!(http_get(&listen, "/readyz").0, 200);
    let (status, metrics) = http_get(&listen, "/metrics");
    assert_eq!(status, 200);
    for m in [
        "cutover_records_in_total",
        "cutover_items_written_total",
        "cutover_e2e_latency_seconds",
        &format!("table=\"{}\"", env.table),
        "op=\"insert\"",
        "outcome=\"applied\"",
    ] {
        assert!(metrics.contains(m), "{m} not in /metrics:\n{metrics}");
    }
    let _ = std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGINT must drain and exit 0: {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_consumer_takes_partitions_over_without_losing_anything() {
    let env = setup("rebalance", "dms", 6, "").await;
    let log = chat::generate(30, 3000, 5, true);
    let records = log.dms();
    let (first, second) = records.split_at(records.len() / 2);
    let reference = setup("rebalance-ref", "dms", 6, "").await;
    let delivered_ref = common::produce(&reference.topic, &records).await;
    let want = strip(&crate::stream::run_to_end(&reference, 6, &delivered_ref).await);

    let mut delivered = common::produce(&env.topic, first).await;
    let a = Cutover::start(&env.config, &["run"]);
    let (client, table) = (env.client.clone(), env.table.clone());
    common::wait_until(
        "the first consumer to write",
        Duration::from_secs(60),
        move || {
            let (c, t) = (client.clone(), table.clone());
            async move {
                c.scan()
                    .table_name(&t)
                    .select(aws_sdk_dynamodb::types::Select::Count)
                    .send()
                    .await
                    .map(|o| o.count() > 300)
                    .unwrap_or(false)
            }
        },
    )
    .await;
    let b = Cutover::start(&env.config, &["run"]); // joins the group: a rebalance mid-stream
    delivered.extend(common::produce(&env.topic, second).await);
    common::wait_committed(
        &env.group,
        &env.topic,
        6,
        &common::ends(&delivered),
        Duration::from_secs(180),
    )
    .await;
    let (log_a, log_b) = (a.log_text(), b.log_text());
    assert!(a.stop() && b.stop(), "both consumers exit cleanly");
    assert!(
        log_a.contains("partitions revoked"),
        "the first consumer saw a revocation:\n{log_a}"
    );
    assert!(
        log_b.contains("partitions assigned"),
        "the second consumer got partitions:\n{log_b}"
    );
    let items = common::scan(&env.client, &env.table).await;
    common::assert_same_items(&strip(&items), &want, "after a rebalance");
}

/// Scale-out (infra/README.md quotes its output): three consumers in one group share the
/// partitions; one is killed with SIGKILL mid-stream; the others take its partitions over
/// and the final items are exact.
#[tokio::test(flavor = "multi_thread")]
async fn three_consumers_share_partitions_and_survive_a_kill() {
    let partitions = 12;
    let env = setup("scale-out", "dms", partitions, "").await;
    let reference = setup("scale-out-ref", "dms", partitions, "").await;
    let records = chat::generate(60, 8000, 23, true).dms();
    let delivered_ref = common::produce(&reference.topic, &records).await;
    let t = std::time::Instant::now();
    let want = strip(&crate::stream::run_to_end(&reference, partitions, &delivered_ref).await);
    let single = t.elapsed();

    let delivered = common::produce(&env.topic, &records).await;
    let t = std::time::Instant::now();
    let consumers: Vec<Cutover> = (0..3)
        .map(|_| Cutover::start(&env.config, &["run"]))
        .collect();
    // Wait until every consumer owns partitions, then kill one mid-stream.
    let logs: Vec<std::path::PathBuf> = consumers.iter().map(|c| c.log.clone()).collect();
    common::wait_until(
        "all three consumers to get partitions",
        Duration::from_secs(60),
        move || {
            let logs = logs.clone();
            async move {
                logs.iter().all(|l| {
                    let text = std::fs::read_to_string(l).unwrap_or_default();
                    text.lines()
                        .rev()
                        .find(|x| x.contains("partitions assigned"))
                        .is_some_and(|x| x.contains('['))
                })
            }
        },
    )
    .await;
    let shares: Vec<usize> = consumers
        .iter()
        .map(|c| {
            c.log_text()
                .lines()
                .rev()
                .find(|x| x.contains("partitions assigned"))
                .map(|x| x.matches('[').count())
                .unwrap_or(0)
        })
        .collect();
    let assigned_after = t.elapsed();
    // ...and until a good part of the topic is applied, so the kill lands mid-stream.
    let (client, table) = (env.client.clone(), env.table.clone());
    common::wait_until("3000 items", Duration::from_secs(120), move || {
        let (c, t) = (client.clone(), table.clone());
        async move {
            c.scan()
                .table_name(&t)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .send()
                .await
                .map(|o| o.count() >= 3000)
                .unwrap_or(false)
        }
    })
    .await;
    let mut consumers = consumers.into_iter();
    let victim = consumers.next().unwrap();
    let rest: Vec<Cutover> = consumers.collect();
    let killed_at = t.elapsed();
    victim.kill9();
    let t_kill = std::time::Instant::now();
    common::wait_committed(
        &env.group,
        &env.topic,
        partitions,
        &common::ends(&delivered),
        Duration::from_secs(300),
    )
    .await;
    let drained_after_kill = t_kill.elapsed();
    let total = t.elapsed();
    let takeover: Vec<String> = rest
        .iter()
        .map(|c| {
            c.log_text()
                .lines()
                .rev()
                .find(|x| x.contains("partitions assigned"))
                .map(|x| x.matches('[').count().to_string())
                .unwrap_or_default()
        })
        .collect();
    for c in rest {
        assert!(c.stop(), "survivors exit cleanly");
    }
    let items = common::scan(&env.client, &env.table).await;
    common::assert_same_items(
        &strip(&items),
        &want,
        "after killing one of three consumers",
    );
    eprintln!(
        "SCALE-OUT {} records, {partitions} partitions: one consumer drained them in {single:.1?}; \
         three consumers got {shares:?} partitions after {assigned_after:.1?}; one was SIGKILLed at {killed_at:.1?}, \
         the survivors then held {takeover:?} partitions and committed the last offset {drained_after_kill:.1?} later \
         ({total:.1?} in all); {} items equal the single-consumer run",
        records.len(),
        items.len()
    );
}

/// A fatal error mid-stream (the table is deleted under `cutover run`) stops the process
/// without committing what it could not write; after the table is back, a restart applies
/// every record after the failure: nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_fatal_error_mid_stream_loses_nothing() {
    let env = setup("fatal-mid", "dms", 2, "").await;
    let mut first = chat::Log::default();
    for c in 1..=20 {
        first.insert("conversation", serde_json::json!({"id": c, "title": format!("c{c}"), "tenant_id": 1, "created_at": "2024-01-01T00:00:00Z"}));
    }
    let mut delivered = common::produce(&env.topic, &first.dms()).await;
    let mut run = Cutover::start(&env.config, &["run"]);
    let (client, table) = (env.client.clone(), env.table.clone());
    common::wait_until("the first records", Duration::from_secs(60), move || {
        let (c, t) = (client.clone(), table.clone());
        async move { common::scan(&c, &t).await.len() == 20 }
    })
    .await;
    run.assert_running();
    env.client
        .delete_table()
        .table_name(&env.table)
        .send()
        .await
        .expect("delete table");
    let mut second = chat::Log::default();
    for m in 1..=30 {
        second.insert("message", serde_json::json!({"id": m, "conversation_id": 1, "sender_id": 1, "body": format!("m{m}"), "created_at": "2024-01-01T00:00:00Z", "edited": 0}));
    }
    // keep positions after the first batch's
    for c in &mut second.changes {
        c.pos += 10_000;
    }
    delivered.extend(common::produce(&env.topic, &second.dms()).await);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "run did not stop on a missing table:\n{}",
            run.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "a fatal error exits non-zero");
    let log = run.log_text();
    assert!(log.contains("does not exist"), "clear message:\n{log}");
    let ends = common::ends(&delivered);
    let committed = common::committed(&env.group, &env.topic, 2);
    assert!(
        ends.iter()
            .any(|(p, e)| committed.get(p).copied().unwrap_or(0) < *e),
        "unwritten records must not be committed: {committed:?} vs {ends:?}"
    );

    common::cutover_ok(&env.config, &["tables", "create"]);
    let items = crate::stream::run_to_end(&env, 2, &delivered).await;
    let messages = items.keys().filter(|k| k.contains("|MSG#")).count();
    assert_eq!(
        messages,
        30,
        "every record after the failure is applied: {:?}",
        items.keys().collect::<Vec<_>>()
    );
}
