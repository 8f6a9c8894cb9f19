//! `cutover run`: the long-running consumer group that streams changes into DynamoDB.
//!
//! Delivery rule: an offset is stored only after every record up to it is durably written or
//! dead-lettered (see `pipeline`), and stored offsets are committed every second, on partition
//! revocation (after draining in-flight batches) and on SIGINT/SIGTERM. A crash therefore
//! re-delivers at most the uncommitted tail, which the version guard in `sink` absorbs.
//!
//! Backpressure is per partition: a partition whose writer is behind (its queue is full) is
//! paused on the consumer and resumed when there is room (see `consumer`), so the poll loop
//! never waits, other partitions keep flowing, and rebalances and `max.poll.interval.ms` are
//! served on time.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::ConfigIssue;
use crate::consumer::{Offer, WorkerSettings, Workers};
use crate::error::{Classify, Disposition, FatalError};
use crate::kafka::dlq::DeadLetters;
use crate::kafka::{KafkaConfig, Record};
use crate::mapping::Mapping;
use crate::pipeline::{Pipeline, Selection, Unmapped};
use crate::sink::{DynamoConfig, SdkApi, SinkConfig, Writer};
use crate::tables::TablesError;
use crate::telemetry::Health;

/// `[run]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// Records buffered per partition between the poll loop and its writer. Bounds memory:
    /// at most `partitions × (queue_per_partition + max_batch_records)` records are held.
    pub queue_per_partition: usize,
    /// How long a revocation or shutdown waits for in-flight batches before giving up on them
    /// (their offsets are then not committed, and they are re-read: at-least-once).
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// What to do with records of tables that have no `[[table]]` block: `skip` or `dlq`.
    pub unmapped: Unmapped,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            queue_per_partition: 2000,
            drain_timeout: Duration::from_secs(30),
            unmapped: Unmapped::Skip,
        }
    }
}

impl RunConfig {
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.queue_per_partition == 0 {
            issues.push(ConfigIssue::new("run.queue_per_partition", "must be > 0"));
        }
        issues
    }
}

/// The rebalance and statistics hooks.
pub struct RunContext {
    workers: OnceLock<Arc<Workers<SdkApi>>>,
    drain_timeout: Duration,
}

impl ClientContext for RunContext {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    metrics::gauge!("cutover_consumer_lag", "topic" => topic.clone(), "partition" => p.to_string())
                        .set(part.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for RunContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let revoked: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                tracing::info!(partitions = revoked.len(), "partitions revoked: draining");
                // Their lag is now the new owner's to report; a stale value here would make a
                // lag-based autoscaler over-count.
                for (topic, partition) in &revoked {
                    metrics::gauge!("cutover_consumer_lag", "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(0.0);
                }
                if let Some(w) = self.workers.get() {
                    let late = w.stop(
                        |t, p| revoked.iter().any(|(rt, rp)| rt == t && *rp == p),
                        self.drain_timeout,
                    );
                    if !late.is_empty() {
                        tracing::warn!(?late, "drain timed out; their last batch will be re-read");
                    }
                }
                if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                    tracing::debug!(error = %e, "commit on revoke");
                }
            }
            Rebalance::Assign(tpl) => {
                let list: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}[{}]", e.topic(), e.partition()))
                    .collect();
                tracing::info!(partitions = %list.join(","), "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // A partition paused for backpressure before it was revoked starts unpaused when it
        // comes back (its worker, and what it kept aside, are gone).
        if let Rebalance::Assign(tpl) = rebalance {
            if let Err(e) = consumer.resume(tpl) {
                tracing::debug!(error = %e, "resume on assign");
            }
        }
    }
}

/// What a stream (`cutover run`, and `cutover replay` on top of it) runs with: the sections
/// it reads and the compiled mapping, resolved by its command before any I/O.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub sink: SinkConfig,
    pub run: RunConfig,
    pub dynamodb: DynamoConfig,
    pub mapping: Arc<Mapping>,
}

impl Settings {
    /// The per-partition workers' queue and batch bounds.
    pub fn workers(&self) -> WorkerSettings {
        WorkerSettings {
            queue: self.run.queue_per_partition,
            max_batch: self.sink.max_batch_records,
            window: self.sink.batch_window,
        }
    }

    /// The pipeline of this stream: the guarded writer on `client` and the dead-letter
    /// producer, applying `selection`.
    pub fn pipeline(
        &self,
        client: aws_sdk_dynamodb::Client,
        selection: Selection,
    ) -> Result<Pipeline<SdkApi>, FatalError> {
        Ok(Pipeline::new(
            self.mapping.clone(),
            Writer::new(SdkApi { client }, self.sink.clone()),
            DeadLetters::new(&self.kafka)?,
            Arc::new(self.kafka.clone()),
            self.run.unmapped,
            selection,
        ))
    }
}

/// Why a stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A target table is missing or DynamoDB is unreachable (checked at startup).
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error("{what}")]
    Kafka {
        what: String,
        #[source]
        source: KafkaError,
    },
    /// What stopped the stream: a write that can't succeed, the dead-letter topic.
    #[error(transparent)]
    Fatal(#[from] FatalError),
    #[error("the drain task failed")]
    Drain(#[from] tokio::task::JoinError),
}

impl Classify for RunError {
    fn disposition(&self) -> Disposition {
        match self {
            RunError::Tables(e) => e.disposition(),
            RunError::Kafka { .. } => Disposition::Retry,
            RunError::Fatal(_) | RunError::Drain(_) => Disposition::Fatal,
        }
    }
}

pub(crate) fn kafka_error(what: impl Into<String>) -> impl FnOnce(KafkaError) -> RunError {
    let what = what.into();
    move |source| RunError::Kafka { what, source }
}

/// The mapped source tables (`schema.table`) of `mapping` (only those in `only`, when given)
/// that no record has come from in this process. The pipeline counts every change it takes
/// per source (`cutover_records_in_total{table}`); this reads those counts back. A table named
/// wrong in `[[table]] source` would otherwise be skipped silently, record after record.
pub fn unseen_sources(
    mapping: &Mapping,
    only: Option<&std::collections::HashSet<String>>,
) -> Vec<String> {
    let text = crate::telemetry::metrics_handle().render();
    let seen: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("cutover_records_in_total{"))
        .filter_map(|l| {
            let rest = &l[l.find("table=\"")? + 7..];
            Some(&rest[..rest.find('"')?])
        })
        .collect();
    let mut unseen: Vec<String> = mapping
        .targets()
        .keys()
        .flat_map(|t| mapping.sources_of(t))
        .filter(|s| only.is_none_or(|o| o.contains(s)) && !seen.contains(s.as_str()))
        .collect();
    unseen.sort();
    unseen.dedup();
    unseen
}

/// Log each mapped source table without a record after a full pass of the topics (`what`).
pub fn warn_unseen(unseen: &[String], what: &str) {
    for source in unseen {
        tracing::warn!(
            source = %source,
            "no record of mapped source table {source} in {what}: is `[[table]] source` spelled as the CDC records name it (schema.table)?"
        );
    }
}

/// `run`: once the group has committed the end offsets this consumer's first assignment had
/// (its first full pass), warn about mapped source tables no record came from.
fn watch_first_pass(
    consumer: Arc<StreamConsumer<RunContext>>,
    mapping: Arc<Mapping>,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let mut ends: Option<Vec<(String, i32, i64)>> = None;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            let c = consumer.clone();
            let known = ends.clone();
            let step = tokio::task::spawn_blocking(move || {
                let timeout = Duration::from_secs(5);
                let Some(ends) = known else {
                    let assigned = c.assignment().ok()?;
                    let mut ends = Vec::new();
                    for e in assigned.elements() {
                        let (_, high) =
                            c.fetch_watermarks(e.topic(), e.partition(), timeout).ok()?;
                        ends.push((e.topic().to_string(), e.partition(), high));
                    }
                    return (!ends.is_empty()).then_some((ends, false));
                };
                let committed = c.committed(timeout).ok()?;
                let assigned = c.assignment().ok()?;
                let done = ends.iter().all(|(t, p, high)| {
                    *high <= 0
                        || assigned.find_partition(t, *p).is_none()
                        || committed.find_partition(t, *p).is_some_and(
                            |e| matches!(e.offset(), rdkafka::Offset::Offset(o) if o >= *high),
                        )
                });
                Some((ends, done))
            })
            .await;
            match step {
                // An empty topic has no first pass to speak of.
                Ok(Some((e, true))) if e.iter().all(|(_, _, high)| *high <= 0) => return,
                Ok(Some((_, true))) => break,
                Ok(Some((e, false))) => ends = Some(e),
                _ => {}
            }
        }
        warn_unseen(
            &unseen_sources(&mapping, None),
            "this consumer's first pass over its partitions",
        );
    });
}

/// The topics of `wanted` the brokers do not have (yet).
fn missing_topics<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    wanted: &[String],
) -> Result<Vec<String>, KafkaError> {
    let mut missing = Vec::new();
    for topic in wanted {
        let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let there = meta
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !there {
            missing.push(topic.clone());
        }
    }
    Ok(missing)
}

/// Wait, saying so, until every topic exists: librdkafka would otherwise notice a topic
/// created after the subscription only at its next metadata refresh (5 minutes by default).
/// Checks every second. `false` when shut down while waiting.
async fn wait_for_topics<C: ConsumerContext + 'static>(
    consumer: &Arc<StreamConsumer<C>>,
    topics: &[String],
    shutdown: &CancellationToken,
) -> Result<bool, RunError> {
    let mut said: Option<std::time::Instant> = None;
    loop {
        let (c, t) = (consumer.clone(), topics.to_vec());
        let missing = tokio::task::spawn_blocking(move || missing_topics(&c, &t)).await?;
        match missing {
            Ok(m) if m.is_empty() => {
                if said.is_some() {
                    tracing::info!(topics = ?topics, "the topics exist now");
                }
                return Ok(true);
            }
            Ok(m) => {
                if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(missing = %m.join(","), "waiting for topic {} to exist (checking every second; create it, or fix kafka.topics)", m.join(", "));
                    said = Some(std::time::Instant::now());
                }
            }
            Err(e) => {
                if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(error = %e, "cannot read the topics' metadata; retrying every second");
                    said = Some(std::time::Instant::now());
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Run until SIGINT/SIGTERM (or `shutdown` is cancelled) or a fatal error.
pub async fn run(
    cfg: Settings,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let client = crate::sink::dynamo::client(&cfg.dynamodb).await;
    crate::tables::check_tables(
        &client,
        cfg.mapping.targets().iter().map(|(n, s)| (n.as_str(), s)),
    )
    .await?;
    let pipeline = Arc::new(cfg.pipeline(client, Selection::default())?);

    let context = RunContext {
        workers: OnceLock::new(),
        drain_timeout: cfg.run.drain_timeout,
    };
    let consumer: Arc<StreamConsumer<RunContext>> = Arc::new(
        crate::kafka::consumer_config(&cfg.kafka, &cfg.kafka.group_id)
            .create_with_context(context)
            .map_err(kafka_error("cannot create the Kafka consumer"))?,
    );
    if !wait_for_topics(&consumer, &cfg.kafka.topics, &shutdown).await? {
        return Ok(());
    }
    let topics: Vec<&str> = cfg.kafka.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(kafka_error(format!("cannot subscribe to {topics:?}")))?;

    let cancel = shutdown.child_token();
    let store = consumer.clone();
    let workers = Workers::new(
        pipeline,
        cfg.workers(),
        Arc::new(move |topic, partition, last, stats| {
            if let Err(e) = store.store_offset(topic, partition, last) {
                // The partition was revoked meanwhile; its new owner re-reads from the commit.
                tracing::debug!(topic, partition, error = %e, "offset not stored");
            }
            tracing::debug!(topic, partition, last, ?stats, "batch durable");
        }),
        cancel.clone(),
    );
    let _ = consumer.context().workers.set(workers.clone());
    watch_first_pass(consumer.clone(), cfg.mapping.clone(), cancel.clone());
    health.set_ready(true);
    tracing::info!(topics = ?cfg.kafka.topics, group = %cfg.kafka.group_id, "consuming");

    let pause = |topic: &str, partition: i32, on: bool| {
        let mut l = TopicPartitionList::new();
        l.add_partition(topic, partition);
        let r = if on {
            consumer.pause(&l)
        } else {
            consumer.resume(&l)
        };
        if let Err(e) = r {
            // Revoked meanwhile: nothing to pause or resume.
            tracing::debug!(topic, partition, error = %e, "pause/resume");
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                for (topic, partition) in workers.refill() {
                    tracing::debug!(topic, partition, "writer caught up: resuming");
                    pause(&topic, partition, false);
                }
            }
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    if workers.offer(Record::from_message(&m)) == Offer::Full {
                        use rdkafka::Message;
                        let (topic, partition) = (m.topic(), m.partition());
                        tracing::debug!(topic, partition, "writer behind: pausing");
                        metrics::counter!("cutover_partition_pauses_total").increment(1);
                        pause(topic, partition, true);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka consumer error");
                    metrics::counter!("cutover_kafka_errors_total").increment(1);
                }
            },
        }
    }

    health.set_ready(false);
    tracing::info!("stopping: draining in-flight batches");
    let drain = cfg.run.drain_timeout;
    let w = workers.clone();
    let late = tokio::task::spawn_blocking(move || w.stop(|_, _| true, drain)).await?;
    if !late.is_empty() {
        tracing::warn!(?late, "drain timed out; their last batch will be re-read");
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final commit");
    }
    consumer.unsubscribe();
    match workers.fatal() {
        Some(e) => Err(e.into()),
        None => {
            tracing::info!("stopped cleanly; offsets committed");
            Ok(())
        }
    }
}
