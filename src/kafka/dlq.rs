//! Dead letters: records that cannot be decoded, mapped or written go to `kafka.dlq_topic`
//! with their original key, bytes and headers, plus headers that say why and where from:
//! `cutover.error.stage` (decode | map | write | unmapped), `cutover.error.reason`,
//! `cutover.source.topic`, `cutover.source.partition`, `cutover.source.offset`.
//!
//! A source offset is stored only after its dead letter is acknowledged, so nothing is lost.
//! Reasons never contain row values, only what is wrong and where.
//!
//! A record too large for the producer (`message.max.bytes`, librdkafka's default 1,000,000,
//! or the broker's own limit) is sent as a *stub*: its key and headers, the reason, its
//! truncated payload, and `cutover.dlq.stub` = `true`, `cutover.original.bytes` = the payload's
//! size. So an oversized record is never a crash loop; the full value stays in the source topic
//! at `cutover.source.*` until its retention ends.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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
    max_bytes: usize,
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_BYTES: usize = 1_000_000;
/// Room left under the limit for our headers and the record's framing.
const MARGIN: usize = 16 * 1024;
/// Payload kept in a stub sent after the broker refused a record as too large.
const FALLBACK_STUB_PAYLOAD: usize = 16 * 1024;

impl DeadLetters {
    pub fn new(k: &KafkaConfig) -> Result<Self, FatalError> {
        let producer = crate::kafka::producer_config(k)
            .create()
            .map_err(|e| FatalError::new(format!("cannot create the dead-letter producer: {e}")))?;
        let max_bytes = k
            .properties
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_BYTES);
        Ok(DeadLetters {
            producer,
            topic: k.dlq_topic.clone(),
            max_bytes,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Send every dead letter and wait for the broker's acknowledgement of all of them.
    /// Records too large for the producer go as stubs (see the module docs); if the broker
    /// still refuses one as too large (its limit is lower), every large letter is sent again
    /// as a smaller stub.
    pub async fn send_all(&self, letters: &[(&Record, Stage, &str)]) -> Result<(), FatalError> {
        if letters.is_empty() {
            return Ok(());
        }
        let keep = self.max_bytes.saturating_sub(MARGIN).max(1024);
        let stubs = match self.send(letters, keep).await {
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {
                tracing::warn!(
                    topic = %self.topic,
                    "the broker refused a dead letter as too large: sending large ones as {FALLBACK_STUB_PAYLOAD}-byte stubs"
                );
                self.send(letters, FALLBACK_STUB_PAYLOAD).await
            }
            other => other,
        }
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
        if stubs > 0 {
            metrics::counter!("cutover_dlq_stubs_total").increment(stubs as u64);
        }
        Ok(())
    }

    /// Send `letters`, each whose size exceeds `keep` bytes as a stub with `keep` bytes of
    /// payload at most. Returns how many were stubs.
    async fn send(
        &self,
        letters: &[(&Record, Stage, &str)],
        keep: usize,
    ) -> Result<usize, KafkaError> {
        let meta: Vec<(String, String, Option<String>)> = letters
            .iter()
            .map(|(r, _, _)| {
                let size = record_bytes(r);
                let original =
                    (size > keep).then(|| r.payload.as_ref().map_or(0, Vec::len).to_string());
                (r.partition.to_string(), r.offset.to_string(), original)
            })
            .collect();
        let mut stubs = 0;
        let records: Vec<FutureRecord<'_, [u8], [u8]>> = letters
            .iter()
            .zip(&meta)
            .map(|((rec, stage, reason), (p, o, original))| {
                let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len() + 7);
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
                let mut payload = rec.payload.as_deref();
                if let Some(bytes) = original {
                    stubs += 1;
                    headers = headers
                        .insert(Header {
                            key: "cutover.dlq.stub",
                            value: Some("true"),
                        })
                        .insert(Header {
                            key: "cutover.original.bytes",
                            value: Some(bytes.as_str()),
                        });
                    let room = keep.saturating_sub(
                        record_bytes(rec) - rec.payload.as_ref().map_or(0, Vec::len),
                    );
                    payload = payload.map(|p| &p[..p.len().min(room)]);
                }
                let mut record: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&self.topic).headers(headers);
                if let Some(key) = &rec.key {
                    record = record.key(key.as_slice());
                }
                if let Some(payload) = payload {
                    record = record.payload(payload);
                }
                record
            })
            .collect();
        crate::kafka::send_all(&self.producer, records).await?;
        Ok(stubs)
    }
}

/// What a record weighs for the producer's size limit: key, payload and headers.
fn record_bytes(r: &Record) -> usize {
    r.key.as_ref().map_or(0, Vec::len)
        + r.payload.as_ref().map_or(0, Vec::len)
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}
