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
//!   (`SELECT … FOR UPDATE`), read the item (and its version) and upsert or delete the row,
//!   then re-read the item's version and commit only if it is unchanged (else roll back and
//!   retry), so the CDC echo of the commit never carries an older value than the item. A
//!   concurrent DynamoDB-first write of the same row waits on that lock for its MySQL half,
//!   so it lands after the copy.
//!
//! Which of the two happens is decided when the entry is applied, from the path's stage at
//! that moment ([`direction`]), not by the store named when it was queued.
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
use crate::flags::{FlagContext, Origin};
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
    /// The request's tenant: the stage the entry is applied under is this tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
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

/// The store an entry is copied *into*, chosen now from the path's stage for the entry's
/// tenant (not when it was queued): the copy always goes from the store that is authoritative
/// at this moment to the other one. A stage that moved since (a rollback from `complete`,
/// say) turns the entry around, so a write made under the new stage is never overwritten by
/// the store that is no longer authoritative. (`flags set` refuses such a move while entries
/// are queued, unless `--force`; see README.) If the path can't be decided (no longer
/// declared), the queued direction is kept.
pub fn direction(access: &Access, entry: &RepairEntry) -> Behind {
    let ctx = FlagContext {
        key: String::new(),
        tenant: entry.tenant.clone(),
    };
    match access.decide(&entry.path, &ctx) {
        Ok(d) => match super::plan(d.stage).authoritative {
            Origin::Old => Behind::New,
            Origin::New => Behind::Old,
        },
        Err(e) => {
            tracing::warn!(target: "cutover::access", path = %entry.path, error = %e, "repair entry: no stage for its path; applying it in its queued direction");
            entry.behind
        }
    }
}

/// Apply one entry now, in the direction the path's stage gives now ([`direction`]).
pub async fn apply(access: &Access, entry: &RepairEntry) -> Result<(), AccessError> {
    let view = access
        .inner()
        .mapping
        .view(&entry.source)
        .ok_or_else(|| AccessError::UnknownEntity(entry.source.clone()))?;
    let behind = direction(access, entry);
    if behind != entry.behind {
        metrics::counter!("cutover_access_repairs_redirected_total", "store" => behind.store_name())
            .increment(1);
    }
    match behind {
        Behind::New => {
            let version = access.write_version().await?;
            match access.old().get(&view, &entry.key).await? {
                Some(row) => access.new_store().put(&view, &row, version).await,
                None => access.new_store().delete(&view, &entry.key, version).await,
            }
        }
        Behind::Old => {
            // The copy commits only if the item is unchanged since it was read: a layer
            // write landing in between would otherwise be overwritten by the CDC echo of
            // this commit (the transaction is rolled back and the entry retried).
            // Conflicts are retried at once a few times (a busy key would otherwise wait
            // out the worker's growing backoff), then handed to the worker's retry.
            let new = access.new_store();
            let mut attempts = 0;
            loop {
                let r = access
                    .old()
                    .copy_locked(
                        &view,
                        &entry.key,
                        || async { new.get_versioned(&view, &entry.key).await },
                        || async { new.version_of(&view, &entry.key).await },
                    )
                    .await;
                match r {
                    Err(AccessError::Conflict(_)) if attempts < 20 => {
                        attempts += 1;
                        metrics::counter!("cutover_access_repair_conflicts_total").increment(1);
                        let ms = 1 + rand::random::<u64>() % 10;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    r => return r,
                }
            }
        }
    }
}

/// How many entries of the repair topic the worker's group has not applied yet, counted by
/// reading from the group's committed offsets to the end of each partition (end-of-partition
/// events, not broker watermarks, so any Kafka-protocol broker answers it right); only the
/// entries of `path` when given. Stops counting at `cap`. 0 when the topic does not exist;
/// an error when it can't be read to its end within `timeout`.
pub async fn backlog(
    kafka: &KafkaConfig,
    cfg: &AccessConfig,
    path: Option<&str>,
    timeout: Duration,
    cap: u64,
) -> Result<u64, AccessError> {
    let (kafka, cfg, path) = (kafka.clone(), cfg.clone(), path.map(str::to_string));
    tokio::task::spawn_blocking(move || {
        backlog_blocking(&kafka, &cfg, path.as_deref(), timeout, cap)
    })
    .await
    .map_err(|e| AccessError::Repair(e.to_string()))?
}

fn backlog_blocking(
    kafka: &KafkaConfig,
    cfg: &AccessConfig,
    path: Option<&str>,
    timeout: Duration,
    cap: u64,
) -> Result<u64, AccessError> {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::error::KafkaError;
    use rdkafka::{Offset, TopicPartitionList};
    let topic = cfg.repair_topic.as_str();
    let fail = |what: &str, e: KafkaError| {
        AccessError::Repair(format!("{what} of repair topic {topic}: {e}"))
    };
    // The worker's group: only its committed offsets are fetched (no join, no rebalance).
    let group: BaseConsumer = crate::kafka::consumer_config(kafka, &cfg.repair_group)
        .create()
        .map_err(|e| fail("consumer", e))?;
    let md = group
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| fail("metadata", e))?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if parts.is_empty() {
        // No topic: nothing was ever queued.
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition(topic, *p);
    }
    let committed = group
        .committed_offsets(tpl, timeout)
        .map_err(|e| fail("committed offsets", e))?;
    let mut rc = crate::kafka::consumer_config(kafka, &format!("{}.backlog", cfg.repair_group));
    rc.set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false");
    let reader: BaseConsumer<crate::kafka::EofContext> = rc
        .create_with_context(crate::kafka::EofContext)
        .map_err(|e| fail("consumer", e))?;
    let mut assign = TopicPartitionList::new();
    for e in committed.elements() {
        let from = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            // Nothing committed yet: the worker starts at the beginning (earliest).
            _ => Offset::Beginning,
        };
        assign
            .add_partition_offset(topic, e.partition(), from)
            .map_err(|e| fail("assign", e))?;
    }
    rdkafka::consumer::Consumer::assign(&reader, &assign).map_err(|e| fail("assign", e))?;
    let mut open: std::collections::HashSet<i32> = parts.into_iter().collect();
    let deadline = std::time::Instant::now() + timeout;
    let mut n = 0u64;
    while !open.is_empty() && n < cap {
        if std::time::Instant::now() > deadline {
            return Err(AccessError::Repair(format!(
                "could not read repair topic {topic} to its end within {timeout:?}"
            )));
        }
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let of_path = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<RepairEntry>(p).ok())
                    .map(|e| e.path);
                // A malformed entry counts: it is unapplied work the worker must look at.
                if path.is_none() || of_path.is_none() || of_path.as_deref() == path {
                    n += 1;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(fail("read", e)),
            None => {}
        }
    }
    Ok(n)
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
