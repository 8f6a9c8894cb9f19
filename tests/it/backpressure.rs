//! Issue 10 item 2 in `cutover run`: a partition whose writer is behind is paused and resumed
//! on the consumer (the poll loop never waits), and nothing is lost or applied twice out of
//! order across the pauses: with a queue of 4 records per partition and DynamoDB stalling,
//! every partition is paused and resumed over and over, and the table still ends equal to
//! the truth of the seeded workload (re-delivery, primary-key moves, hostile values).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{self, Cutover};
use crate::replay_complete::{config_text, stalling_proxy, topic_with};
use crate::workload::{self, Params};

#[tokio::test(flavor = "multi_thread")]
async fn run_pauses_a_partition_whose_writer_is_behind_and_ends_exact() {
    let w = workload::generate(Params {
        seed: 21,
        records: 3_000,
        partitions: 4,
        start_secs: chrono::Utc::now().timestamp() / 3600 * 3600 - 3600,
        ..Params::default()
    });
    let (topic, ends) = topic_with("backpressure", &w).await;
    let table = common::unique("backpressure");
    let text = config_text(
        &topic,
        &table,
        "max_batch_records = 8\n[run]\nqueue_per_partition = 4",
    );
    let cfg = cutover::Config::from_toml(&text).expect("config");
    let config = common::write_config(&topic, &text);
    common::cutover_ok(&config, &["tables", "create"]);
    let upstream = common::dynamo_endpoint()
        .trim_start_matches("http://")
        .to_string();
    let proxy = stalling_proxy(upstream, Duration::from_secs(3), Duration::from_secs(1)).await;

    let log = config.with_extension("run.log");
    let child = common::cutover_cmd(&config, &["run"])
        .env("CUTOVER_DYNAMODB__ENDPOINT_URL", format!("http://{proxy}"))
        .env("RUST_LOG", "info,cutover::run=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn cutover");
    let run = Cutover { child, log };
    let started = Instant::now();
    let ends: std::collections::HashMap<i32, i64> = ends
        .iter()
        .enumerate()
        .map(|(p, e)| (p as i32, *e))
        .collect();
    common::wait_committed(
        &format!("{topic}-group"),
        &topic,
        4,
        &ends,
        Duration::from_secs(600),
    )
    .await;
    eprintln!(
        "run committed every partition's end in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let text = run.log_text();
    assert!(run.stop(), "clean exit on SIGTERM");
    assert!(text.contains("writer behind: pausing"), "no pause happened");
    assert!(
        text.contains("writer caught up: resuming"),
        "no resume happened"
    );

    let client = common::dynamo().await;
    let mapping = cfg.mapping().expect("mapping");
    let diff = workload::check(&client, &mapping, &cfg.sink, &table, &w.truth)
        .await
        .expect("check");
    assert_eq!(diff.differences(), 0, "{diff:?}");
}
