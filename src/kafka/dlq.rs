//! Dead letters: records that cannot be decoded, mapped or written go to `kafka.dlq_topic`
//! with their original key, bytes and headers, plus headers that say why and where from:
//! `cutover.error.stage` (decode | map | write | unmapped), `cutover.error.reason`,
//! `cutover.source.topic`, `cutover.source.partition`, `cutover.source.offset`.
//!
//! A source offset is stored only after its dead letter is acknowledged, so nothing is lost.
//! Reasons never contain row values, only what is wrong and where.

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{KafkaConfig, Record};
use crate::error::FatalError;

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
            .map_err(|e| FatalError::new(format!("cannot create the dead-letter producer: {e}")))?;
        Ok(DeadLetters {
            producer,
            topic: k.dlq_topic.clone(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Send every dead letter and wait for the broker's acknowledgement of all of them.
    pub async fn send_all(&self, letters: &[(&Record, Stage, &str)]) -> Result<(), FatalError> {
        if letters.is_empty() {
            return Ok(());
        }
        let positions: Vec<(String, String)> = letters
            .iter()
            .map(|(r, _, _)| (r.partition.to_string(), r.offset.to_string()))
            .collect();
        let records: Vec<FutureRecord<'_, [u8], [u8]>> = letters
            .iter()
            .zip(&positions)
            .map(|((rec, stage, reason), (p, o))| {
                let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len() + 5);
                for (k, v) in &rec.headers {
                    headers = headers.insert(Header {
                        key: k,
                        value: Some(v.as_slice()),
                    });
                }
                for (k, v) in [
                    ("cutover.error.stage", stage.as_str()),
                    ("cutover.error.reason", *reason),
                    ("cutover.source.topic", rec.topic.as_str()),
                    ("cutover.source.partition", p.as_str()),
                    ("cutover.source.offset", o.as_str()),
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
                record
            })
            .collect();
        crate::kafka::send_all(&self.producer, records)
            .await
            .map_err(|e| {
                FatalError::new(format!(
                    "cannot write to the dead-letter topic {}: {e}",
                    self.topic
                ))
            })?;
        for (rec, stage, reason) in letters {
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
        }
        Ok(())
    }
}
