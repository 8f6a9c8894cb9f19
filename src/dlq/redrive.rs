//! `cutover dlq redrive`: the originals of the selected dead letters, through today's mapping
//! and the version-guarded writer ([`crate::pipeline`], as `run` applies them), so a letter
//! older than what DynamoDB holds is stale, never a regression.
//!
//! Order per chunk: apply (or dead-letter again), then record the chunk's letters in the
//! redrive log. A crash between the two re-applies the chunk next time, which the version
//! guard makes harmless; a letter in the log is never applied twice by a redrive.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use super::{kafka, list, redrive_log_topic, DlqError, Filter, Letter, REDRIVE_OF};
use crate::error::FatalError;
use crate::kafka::KafkaConfig;
use crate::pipeline::{BatchStats, Selection};
use crate::tables::TablesError;

/// Records per pipeline batch.
const CHUNK: usize = 500;

/// What a redrive did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedriveSummary {
    /// Letters the filter selected.
    pub selected: usize,
    /// Of those, already in the redrive log: not applied again.
    pub already_redriven: usize,
    /// Letters re-driven now.
    pub redriven: usize,
    /// The pipeline's counts for them: applied, stale (a newer version is stored), skipped
    /// by rule, dead-lettered again (`dead_lettered`).
    pub stats: BatchStats,
    pub dlq_topic: String,
    pub redrive_log: String,
}

impl RedriveSummary {
    /// Every re-driven letter landed (or was stale / skipped by rule).
    pub fn ok(&self) -> bool {
        self.stats.dead_lettered == 0
    }

    pub fn text(&self) -> String {
        let t = &self.stats;
        format!(
            "re-drove {} of {} selected dead letter(s) from {} ({} already re-driven, skipped): \
             {} items applied, {} stale, {} skipped, {} dead-lettered again; recorded in {}\n",
            self.redriven,
            self.selected,
            self.dlq_topic,
            self.already_redriven,
            t.applied,
            t.stale,
            t.skipped,
            t.dead_lettered,
            self.redrive_log
        )
    }
}

/// Why a redrive stopped. Letters applied before it are recorded; the rest are untouched.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error(transparent)]
    Dlq(#[from] DlqError),
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error(transparent)]
    Fatal(#[from] FatalError),
}

/// Re-drive the letters `filter` selects that the redrive log does not have yet.
pub async fn redrive(
    stream: crate::run::Settings,
    filter: Filter,
    timeout: Duration,
) -> Result<RedriveSummary, RedriveError> {
    let client = crate::sink::dynamo::client(&stream.dynamodb).await;
    crate::tables::check_exist(&client, stream.mapping.targets().keys()).await?;
    let k = stream.kafka.clone();
    let letters = tokio::task::spawn_blocking(move || list(&k, &filter, false, timeout))
        .await
        .map_err(|e| DlqError::Other(format!("the reader task failed: {e}")))??;
    let log = redrive_log_topic(&stream.kafka);
    let mut summary = RedriveSummary {
        selected: letters.len(),
        already_redriven: letters.iter().filter(|l| l.redriven).count(),
        dlq_topic: stream.kafka.dlq_topic.clone(),
        redrive_log: log.clone(),
        ..Default::default()
    };
    let todo: Vec<Letter> = letters.into_iter().filter(|l| !l.redriven).collect();
    if todo.is_empty() {
        return Ok(summary);
    }
    ensure_topic(&stream.kafka, &log).await?;
    let producer: FutureProducer = crate::kafka::producer_config(&stream.kafka)
        .create()
        .map_err(kafka("cannot create the redrive-log producer"))?;
    let pipeline = stream.pipeline(client, Selection::default())?;
    for chunk in todo.chunks(CHUNK) {
        let records: Vec<_> = chunk
            .iter()
            .map(|l| {
                let mut r = l.original.clone();
                r.headers.push((
                    REDRIVE_OF.into(),
                    format!("{}:{}:{}", summary.dlq_topic, l.partition, l.offset).into_bytes(),
                ));
                r
            })
            .collect();
        let stats = pipeline.process(&records).await?;
        summary.stats += stats;
        summary.redriven += chunk.len();
        record(&producer, &log, chunk, &summary.dlq_topic).await?;
        tracing::info!(
            letters = chunk.len(),
            applied = stats.applied,
            stale = stats.stale,
            dead_lettered = stats.dead_lettered,
            "dead letters re-driven"
        );
    }
    Ok(summary)
}

/// One redrive-log record per letter, keyed `partition:offset` (the payload says where from
/// and when, never a row value).
async fn record(
    producer: &FutureProducer,
    log: &str,
    letters: &[Letter],
    dlq_topic: &str,
) -> Result<(), DlqError> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let rows: Vec<(String, String)> = letters
        .iter()
        .map(|l| {
            (
                format!("{}:{}", l.partition, l.offset),
                serde_json::json!({
                    "dlq_topic": dlq_topic,
                    "partition": l.partition,
                    "offset": l.offset,
                    "stage": l.stage,
                    "source_topic": l.source_topic,
                    "source_partition": l.source_partition,
                    "source_offset": l.source_offset,
                    "redriven_at": now,
                })
                .to_string(),
            )
        })
        .collect();
    let records = rows
        .iter()
        .map(|(k, v)| FutureRecord::<str, str>::to(log).key(k).payload(v));
    crate::kafka::send_all(producer, records)
        .await
        .map_err(kafka(format!(
            "cannot record the re-driven letters in {log} (they were applied; a new redrive \
             re-applies them harmlessly)"
        )))?;
    Ok(())
}

/// Create the redrive log (one partition) if it does not exist.
async fn ensure_topic(k: &KafkaConfig, topic: &str) -> Result<(), DlqError> {
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = crate::kafka::client_config(k)
        .create()
        .map_err(kafka("cannot create the Kafka admin client"))?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1));
    let results = admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(kafka(format!("cannot create the redrive log {topic}")))?;
    for r in results {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(DlqError::Other(format!(
                    "cannot create the redrive log topic {t}: {code}; create it (1 partition) \
                     or grant CreateTopics"
                )))
            }
        }
    }
    Ok(())
}
