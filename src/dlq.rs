//! Dead letters: records that cannot be decoded, mapped or written go to `kafka.dlq_topic`
//! with their original key, bytes and headers, plus headers that say why and where from:
//! `cutover.error.stage` (decode | map | write | unmapped), `cutover.error.reason`,
//! `cutover.source.topic`, `cutover.source.partition`, `cutover.source.offset`.
//!
//! A source offset is stored only after its dead letter is acknowledged, so nothing is lost.
//! Reasons never contain row values, only what is wrong and where.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::KafkaConfig;
use crate::pipeline::Record;
use crate::sink::FatalError;

/// Where a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Map,
    Write,
    Unmapped,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Map => "map",
            Stage::Write => "write",
            Stage::Unmapped => "unmapped",
        }
    }
}

#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetters {
    pub fn new(k: &KafkaConfig) -> Result<Self, FatalError> {
        let producer = crate::kafka::producer_config(k)
            .create()
            .map_err(|e| FatalError(format!("cannot create the dead-letter producer: {e}")))?;
        Ok(DeadLetters {
            producer,
            topic: k.dlq_topic.clone(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Send and wait for the broker's acknowledgement.
    pub async fn send(&self, rec: &Record, stage: Stage, reason: &str) -> Result<(), FatalError> {
        let partition = rec.partition.to_string();
        let offset = rec.offset.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len() + 5);
        for (k, v) in &rec.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        for (k, v) in [
            ("cutover.error.stage", stage.as_str()),
            ("cutover.error.reason", reason),
            ("cutover.source.topic", rec.topic.as_str()),
            ("cutover.source.partition", partition.as_str()),
            ("cutover.source.offset", offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = &rec.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &rec.payload {
            record = record.payload(payload.as_slice());
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| {
                FatalError(format!(
                    "cannot write to the dead-letter topic {}: {e}",
                    self.topic
                ))
            })?;
        metrics::counter!("cutover_dlq_total", "topic" => rec.topic.clone(), "stage" => stage.as_str())
            .increment(1);
        tracing::warn!(
            topic = %rec.topic,
            partition = rec.partition,
            offset = rec.offset,
            stage = stage.as_str(),
            reason,
            "record dead-lettered"
        );
        Ok(())
    }
}
