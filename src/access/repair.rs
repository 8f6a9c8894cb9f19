//! The repair queue: failed second writes (and the complete-stage journal) as Kafka records,
//! and the worker that applies them.
//!
//! An entry names a row (`source` + primary key) and which store is behind; it carries no
//! row values, so a stale entry can never write stale data. The worker copies the row's
//! *current* state from the up-to-date store:
//! - MySQL → DynamoDB (`behind = new`): read the binlog position, then the row, then write
//!   the item at that position through the guarded writer (a later commit's CDC record has a
//!   higher version and wins; an older one loses).
//! - DynamoDB → MySQL (`behind = old`): inside a MySQL transaction holding the row lock
//!   (`SELECT … FOR UPDATE`), read the item and upsert or delete the row. A concurrent
//!   DynamoDB-first write of the same row waits on that lock for its MySQL half, so it lands
//!   after the copy.
//!
//! What happens to an entry is decided by its error's class alone ([`Classify`]): `Retry`
//! (a store that is down or slow) is retried by the one retry policy until it applies, so an
//! outage only delays it; `Poison` (the entry names no mapped table, or its key can't be read)
//! is dropped, counted and logged with its reason, since waiting cannot fix it; `Fatal` (a
//! missing table, rejected credentials) stops the worker without committing, so the entry is
//! read again once an operator has acted. Offsets are committed only after an entry applied
//! or was dropped. Delivery is at least once and applying an entry twice is harmless.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::Message;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Access, AccessConfig, AccessError, RowJson};
use crate::error::{Classify, Disposition};
use crate::kafka::KafkaConfig;
use crate::sink::RetryPolicy;

/// Which store missed the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Behind {
    /// MySQL.
    Old,
    /// DynamoDB.
    New,
}

impl Behind {
    pub fn store_name(self) -> &'static str {
        match self {
            Behind::Old => "mysql",
            Behind::New => "dynamodb",
        }
    }
}

/// One queued repair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairEntry {
    pub path: String,
    /// `schema.table`.
    pub source: String,
    /// Primary-key columns only.
    pub key: RowJson,
    pub behind: Behind,
    pub stage: String,
    pub reason: String,
    pub at_us: i64,
}

/// Producer side.
#[derive(Clone)]
pub struct RepairQueue {
    producer: FutureProducer,
    topic: String,
    /// Next offset after the last entry this process queued, per partition.
    ends: Arc<std::sync::Mutex<HashMap<i32, i64>>>,
}

impl RepairQueue {
    pub fn new(kafka: &KafkaConfig, cfg: &AccessConfig) -> Result<RepairQueue, AccessError> {
        let mut pc = crate::kafka::producer_config(kafka);
        // One entry at a time on the request path: don't wait to fill a batch (librdkafka's
        // default linger is 5 ms), unless the user chose otherwise.
        if !kafka.properties.contains_key("linger.ms")
            && !kafka.properties.contains_key("queue.buffering.max.ms")
        {
            pc.set("linger.ms", "0");
        }
        let producer = pc
            .create()
            .map_err(|e| AccessError::Repair(e.to_string()))?;
        Ok(RepairQueue {
            producer,
            topic: cfg.repair_topic.clone(),
            ends: Arc::default(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Per partition, the offset after the last entry this process queued: the worker has
    /// applied everything once its group committed these.
    pub fn queued_ends(&self) -> HashMap<i32, i64> {
        self.ends.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Durably append one entry (returns after the broker acknowledged it).
    pub async fn enqueue(&self, entry: &RepairEntry) -> Result<(), AccessError> {
        let payload =
            serde_json::to_string(entry).map_err(|e| AccessError::Repair(e.to_string()))?;
        let key = format!(
            "{}.{}",
            entry.source,
            serde_json::Value::Object(entry.key.clone())
        );
        let record = rdkafka::producer::FutureRecord::to(&self.topic)
            .key(&key)
            .payload(&payload);
        let delivered = crate::kafka::send_all(&self.producer, [record])
            .await
            .map_err(|e| AccessError::Repair(e.to_string()))?;
        if let Ok(mut ends) = self.ends.lock() {
            for (p, o) in delivered {
                let e = ends.entry(p).or_insert(0);
                *e = (*e).max(o + 1);
            }
        }
        metrics::counter!("cutover_access_repairs_queued_total", "store" => entry.behind.store_name())
            .increment(1);
        Ok(())
    }
}

/// Apply one entry now.
pub async fn apply(access: &Access, entry: &RepairEntry) -> Result<(), AccessError> {
    let view = access
        .inner()
        .mapping
        .view(&entry.source)
        .ok_or_else(|| AccessError::UnknownEntity(entry.source.clone()))?;
    match entry.behind {
        Behind::New => {
            let version = access.write_version().await?;
            match access.old().get(&view, &entry.key).await? {
                Some(row) => access.new_store().put(&view, &row, version).await,
                None => access.new_store().delete(&view, &entry.key, version).await,
            }
        }
        Behind::Old => {
            let new = access.new_store();
            access
                .old()
                .copy_locked(&view, &entry.key, || async {
                    new.get(&view, &entry.key).await
                })
                .await
        }
    }
}

/// How long the worker waits between attempts at one entry: 100 ms doubling to 10 s, with
/// full jitter, for as long as the error is retryable.
pub const RETRY: RetryPolicy = RetryPolicy {
    first: Duration::from_millis(100),
    max: Duration::from_secs(10),
    max_retries: None,
};

/// Consume the repair topic until cancelled, applying each entry (retrying it while its error
/// is retryable) and committing after it applied or was dropped. Returns the error that stops
/// it (a `Fatal` one), without committing its entry. Run one per service instance, or as its
/// own job.
///
/// A worker that stops on an error is never silent: the error is logged at error level,
/// `cutover_access_repair_worker_up` drops to 0, `cutover_access_repair_worker_failures_total`
/// counts it, and [`Access::repair_worker_failure`] returns it (a service shows it on its
/// health or status output).
pub async fn run_worker(
    access: Access,
    kafka: KafkaConfig,
    cfg: AccessConfig,
    cancel: CancellationToken,
) -> Result<(), AccessError> {
    metrics::gauge!("cutover_access_repair_worker_up").set(1.0);
    access.set_repair_failure(None);
    let result = worker_loop(&access, kafka, cfg, cancel).await;
    metrics::gauge!("cutover_access_repair_worker_up").set(0.0);
    if let Err(e) = &result {
        metrics::counter!("cutover_access_repair_worker_failures_total").increment(1);
        tracing::error!(target: "cutover::access", error = %e, "the repair worker stopped: repairs and the complete-stage journal are not applied until it is fixed and restarted");
        access.set_repair_failure(Some(e.to_string()));
    }
    result
}

async fn worker_loop(
    access: &Access,
    kafka: KafkaConfig,
    cfg: AccessConfig,
    cancel: CancellationToken,
) -> Result<(), AccessError> {
    let mut cc = crate::kafka::consumer_config(&kafka, &cfg.repair_group);
    cc.set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = cc
        .create()
        .map_err(|e| AccessError::Repair(e.to_string()))?;
    consumer
        .subscribe(&[cfg.repair_topic.as_str()])
        .map_err(|e| AccessError::Repair(e.to_string()))?;
    let consumer = Arc::new(consumer);
    loop {
        let msg = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(target: "cutover::access", error = %e, "repair topic");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match msg.payload().map(serde_json::from_slice::<RepairEntry>) {
            Some(Ok(entry)) => {
                let attempt = || async { apply(access, &entry).await };
                let applied = tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    r = attempt
                        .retry(RETRY.delays())
                        .when(Classify::is_retryable)
                        .notify(|e, wait| {
                            tracing::warn!(target: "cutover::access", source = %entry.source, error = %e, ?wait, "repair not applied yet; retrying");
                        }) => r,
                };
                match applied {
                    Ok(()) => {
                        metrics::counter!("cutover_access_repairs_applied_total", "store" => entry.behind.store_name()).increment(1);
                    }
                    // (A retryable error never ends the loop: the policy has no retry limit.)
                    Err(e) => match e.disposition() {
                        Disposition::Poison | Disposition::Retry => {
                            metrics::counter!("cutover_access_repairs_dropped_total", "store" => entry.behind.store_name()).increment(1);
                            tracing::error!(target: "cutover::access", path = %entry.path, source = %entry.source, partition = msg.partition(), offset = msg.offset(), reason = %e, "repair entry dropped: it can never apply (run `cutover verify --repair` for this table)");
                        }
                        Disposition::Fatal => {
                            tracing::error!(target: "cutover::access", source = %entry.source, error = %e, "repair worker stopped: the entry stays queued until this is fixed");
                            return Err(e);
                        }
                    },
                }
            }
            _ => {
                metrics::counter!("cutover_access_repairs_malformed_total").increment(1);
                tracing::error!(target: "cutover::access", partition = msg.partition(), offset = msg.offset(), "malformed repair entry skipped");
            }
        }
        if let Err(e) = consumer.commit_message(&msg, CommitMode::Async) {
            tracing::warn!(target: "cutover::access", error = %e, "repair offset commit");
        }
    }
}
