//! Issue 10 item 11: `cutover run` started before its topic exists says that it waits (naming
//! the topic) and starts consuming within seconds of the topic appearing. Before, it waited
//! silently for librdkafka's 5-minute metadata refresh.

use std::time::{Duration, Instant};

use crate::chat;
use crate::common::{self, Cutover};
use crate::stream::strip;

#[tokio::test(flavor = "multi_thread")]
async fn run_started_before_its_topic_waits_and_then_consumes_within_seconds() {
    common::require_stack();
    let topic = common::unique("late-topic");
    let dlq = format!("{topic}.dlq");
    let table = common::unique("late-topic");
    let group = format!("{topic}-group");
    let config = common::write_config(
        &topic,
        &chat::config(&topic, &table, &group, &dlq, "dms", ""),
    );
    common::cutover_ok(&config, &["tables", "create"]);
    let client = common::dynamo().await;

    let mut run = Cutover::start(&config, &["run"]);
    common::wait_until(
        "the waiting-for-topic line",
        Duration::from_secs(60),
        || {
            let log = run.log_text();
            let line = log
                .lines()
                .any(|l| l.contains("waiting for topic") && l.contains(&topic));
            async move { line }
        },
    )
    .await;
    run.assert_running();

    common::create_topic(&topic, 3).await;
    common::create_topic(&dlq, 1).await;
    let created = Instant::now();
    common::produce(&topic, &chat::scenario().dms()).await;
    let expected = chat::expected_items();
    loop {
        run.assert_running();
        let items = common::scan(&client, &table).await;
        if strip(&items) == expected {
            break;
        }
        assert!(
            created.elapsed() < Duration::from_secs(30),
            "not consumed within 30 s of the topic's creation; log:\n{}",
            run.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seconds = created.elapsed().as_secs_f64();
    eprintln!("consumed {seconds:.1}s after the topic was created");
    assert!(run.stop(), "clean exit on SIGTERM");
}

/// Item 10b for `run`: after its first pass over the partitions, a mapped source table no
/// record came from (a typo in `source`) is logged as a warning; the others are not.
#[tokio::test(flavor = "multi_thread")]
async fn run_warns_about_a_mapped_table_without_records_after_the_first_pass() {
    let env = crate::stream::setup("run-unseen", "dms", 2, "").await;
    let typo = format!(
        "{}\n[[table]]\nsource = \"chat.mesage\"\ntarget = \"{}\"\nprimary_key = [\"id\"]\npartition_key = {{ name = \"pk\", template = \"TYPO#{{id}}\" }}\nsort_key = {{ name = \"sk\", template = \"TYPO\" }}\n",
        std::fs::read_to_string(&env.config).expect("config"),
        env.table
    );
    let config = common::write_config(&format!("{}-typo", env.topic), &typo);
    common::produce(&env.topic, &chat::scenario().dms()).await;
    let run = Cutover::start(&config, &["run"]);
    common::wait_until("the unseen-table warning", Duration::from_secs(60), || {
        let log = run.log_text();
        async move { log.contains("no record of mapped source table chat.mesage") }
    })
    .await;
    let log = run.log_text();
    assert!(
        !log.contains("no record of mapped source table chat.message "),
        "only the typo is named:\n{log}"
    );
    assert!(run.stop(), "clean exit on SIGTERM");
}
