//! The workers with a mocked DynamoDB: faults the real service can't produce on demand (a
//! write that never returns, a panic inside the write path).

use std::sync::atomic::AtomicU64;

use super::*;
use crate::cdc::Format;
use crate::kafka::dlq::DeadLetters;
use crate::kafka::KafkaConfig;
use crate::mapping::{Mapping, TableConfig};
use crate::pipeline::{Selection, Unmapped};
use crate::sink::dynamo::MockDynamoApi;
use crate::sink::{SinkConfig, Writer};

fn pipeline(api: MockDynamoApi) -> Arc<Pipeline<MockDynamoApi>> {
    #[derive(serde::Deserialize)]
    struct Tables {
        table: Vec<TableConfig>,
    }
    let t: Tables = toml::from_str(
        r#"
        [[table]]
        source = "app.users"
        target = "users"
        primary_key = ["id"]
        partition_key = { name = "pk", template = "USER#{id}" }
        "#,
    )
    .expect("tables");
    let sink = SinkConfig {
        max_retries: 0,
        ..SinkConfig::default()
    };
    let mapping = Mapping::new(&t.table, &sink).expect("mapping");
    let kafka = KafkaConfig {
        brokers: "127.0.0.1:1".into(),
        format: Format::Dms,
        dlq_topic: "t.dlq".into(),
        ..KafkaConfig::default()
    };
    Arc::new(Pipeline::new(
        Arc::new(mapping),
        Writer::new(api, sink),
        DeadLetters::new(&kafka).expect("dlq producer"),
        Arc::new(kafka),
        Unmapped::Skip,
        Selection::default(),
    ))
}

fn record(partition: i32, offset: i64) -> Record {
    let payload = format!(
        r#"{{"data":{{"id":{offset},"name":"n"}},"metadata":{{"timestamp":"2024-03-01T00:00:00.000000Z","record-type":"data","operation":"insert","partition-key-type":"primary-key","schema-name":"app","table-name":"users","transaction-id":1,"transaction-record-id":1,"commit-timestamp":"2024-03-01T00:00:00.000000Z","stream-position":"mysql-bin.000001:{pos}:0"}}}}"#,
        pos = 4 + offset * 100
    );
    Record {
        topic: "t".into(),
        partition,
        offset,
        key: Some(format!("app.users.{offset}").into_bytes()),
        payload: Some(payload.into_bytes()),
        headers: Vec::new(),
        timestamp_ms: None,
    }
}

fn settings(queue: usize) -> WorkerSettings {
    WorkerSettings {
        queue,
        max_batch: 10,
        window: Duration::from_millis(1),
    }
}

/// Item 7: a panic in the write path is fatal, is reported, and reports no batch (the offset
/// is not stored, so it is not committed). Before, the task died silently and `wait_all`
/// never returned.
#[tokio::test]
async fn a_panicking_worker_is_fatal_and_reports_no_batch() {
    let mut api = MockDynamoApi::new();
    api.expect_write_one()
        .returning(|_| panic!("boom in the writer"));
    api.expect_write_batch().returning(|_, _| panic!("boom"));
    let reported = Arc::new(AtomicU64::new(0));
    let r = reported.clone();
    let cancel = CancellationToken::new();
    let workers = Workers::new(
        pipeline(api),
        settings(100),
        Arc::new(move |_, _, _, _| {
            r.fetch_add(1, Ordering::SeqCst);
        }),
        cancel.clone(),
    );
    assert_eq!(workers.offer(record(0, 0)), Offer::Queued);
    tokio::time::timeout(Duration::from_secs(10), cancel.cancelled())
        .await
        .expect("the panic cancels the stream");
    tokio::time::timeout(Duration::from_secs(10), workers.wait_all())
        .await
        .expect("the panicked worker counts as ended");
    let fatal = workers.fatal().expect("a fatal error").to_string();
    assert!(fatal.contains("panicked"), "{fatal}");
    assert!(fatal.contains("t[0]"), "{fatal}");
    assert_eq!(reported.load(Ordering::SeqCst), 0, "no batch reported");
}

/// Item 2: a full queue never blocks the caller; the record is kept aside in order, the
/// partition is named for a pause, and refill names it for resuming once there is room.
/// Other partitions are unaffected.
#[tokio::test]
async fn a_full_queue_keeps_records_aside_instead_of_blocking() {
    let mut api = MockDynamoApi::new();
    api.expect_write_one().returning(|_| Ok(true));
    let applied = Arc::new(Mutex::new(Vec::<(i32, i64)>::new()));
    let a = applied.clone();
    let workers = Workers::new(
        pipeline(api),
        settings(2),
        Arc::new(move |_, p, last, _| a.lock().unwrap().push((p, last))),
        CancellationToken::new(),
    );
    // Fill partition 0 faster than its worker can drain: nothing blocks.
    let mut full = 0;
    for o in 0..50 {
        match workers.offer(record(0, o)) {
            Offer::Queued => {}
            Offer::Full | Offer::Held => full += 1,
            Offer::Duplicate => panic!("not a duplicate"),
        }
    }
    assert!(full > 0, "a queue of 2 fills up");
    assert!(workers.is_full("t", 0));
    assert_eq!(workers.offer(record(0, 3)), Offer::Duplicate);
    assert_eq!(
        workers.offer(record(1, 0)),
        Offer::Queued,
        "partition 1 is unaffected"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut resumed = false;
    while Instant::now() < deadline && !resumed {
        resumed = workers.refill().contains(&("t".to_string(), 0));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        resumed,
        "refill resumes the partition once its records are queued"
    );
    workers.close(|_, _| true);
    tokio::time::timeout(Duration::from_secs(10), workers.wait_all())
        .await
        .expect("workers end");
    let last0 = applied
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| *p == 0)
        .map(|(_, o)| *o)
        .max();
    assert_eq!(last0, Some(49), "every record of partition 0, in order");
}

/// Item 8: a worker that outlives the drain timeout is fenced (reports nothing) and aborted,
/// and the partition's next worker starts only after it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_worker_is_fenced_before_the_next_one_starts() {
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let mut api = MockDynamoApi::new();
    api.expect_write_one().returning(move |_| {
        // The first write never returns (within the test).
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(true)
    });
    let reported = Arc::new(Mutex::new(Vec::<i64>::new()));
    let r = reported.clone();
    let workers = Workers::new(
        pipeline(api),
        settings(100),
        Arc::new(move |_, _, last, _| r.lock().unwrap().push(last)),
        CancellationToken::new(),
    );
    workers.offer(record(0, 0));
    // Stop while the first write is in flight.
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let w = workers.clone();
    let late = tokio::task::spawn_blocking(move || w.stop(|_, _| true, Duration::from_millis(10)))
        .await
        .unwrap();
    assert_eq!(late, vec![("t".to_string(), 0)]);
    // Reassigned: the next worker of partition 0 writes offset 1 only after the old one ended.
    workers.offer(record(0, 1));
    tokio::time::sleep(Duration::from_millis(800)).await;
    workers.close(|_, _| true);
    tokio::time::timeout(Duration::from_secs(10), workers.wait_all())
        .await
        .expect("workers end");
    assert_eq!(
        *reported.lock().unwrap(),
        vec![1],
        "the fenced worker reported nothing"
    );
}
