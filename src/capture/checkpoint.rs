//! Checkpoints: what a restart needs, kept in a Kafka topic (compacted, keyed by capture
//! name) and written only after every record before it was acknowledged.

use std::time::{Duration, Instant};

use mysql_async::Value;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde::{Deserialize, Serialize};

use super::{CaptureError, Settings};

/// What a restart needs. Written only after every record before it was acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Where CDC starts (or resumes): the first snapshot's position, then the end of the last
    /// acknowledged transaction.
    pub binlog_file: String,
    pub binlog_pos: u64,
    /// Present while the snapshot is unfinished.
    pub snapshot: Option<SnapshotProgress>,
    /// The tables (`schema.table`) this capture has loaded and streams. A table of the
    /// mapping not in it (mapped after the initial load) is snapshotted at the next start.
    /// Absent in checkpoints written before it was recorded: then the tables are taken as
    /// they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    /// `schema.table` of tables fully loaded.
    pub done: Vec<String>,
    /// The table being loaded and the last key acknowledged in it.
    pub current: Option<String>,
    pub last_key: Option<Vec<KeyValue>>,
}

/// A primary-key value, kept in the exact form the server returned so the keyset resumes
/// where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "snake_case")]
pub enum KeyValue {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Hex of the bytes.
    Bytes(String),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl From<&Value> for KeyValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::NULL => KeyValue::Null,
            Value::Int(i) => KeyValue::Int(*i),
            Value::UInt(u) => KeyValue::UInt(*u),
            Value::Float(f) => KeyValue::Float(*f),
            Value::Double(d) => KeyValue::Double(*d),
            Value::Bytes(b) => KeyValue::Bytes(hex::encode(b)),
            Value::Date(a, b, c, d, e, f, g) => KeyValue::Date(*a, *b, *c, *d, *e, *f, *g),
            Value::Time(a, b, c, d, e, f) => KeyValue::Time(*a, *b, *c, *d, *e, *f),
        }
    }
}

impl KeyValue {
    pub(super) fn to_value(&self) -> Value {
        match self {
            KeyValue::Null => Value::NULL,
            KeyValue::Int(i) => Value::Int(*i),
            KeyValue::UInt(u) => Value::UInt(*u),
            KeyValue::Float(f) => Value::Float(*f),
            KeyValue::Double(d) => Value::Double(*d),
            KeyValue::Bytes(h) => Value::Bytes(hex::decode(h).unwrap_or_default()),
            KeyValue::Date(a, b, c, d, e, f, g) => Value::Date(*a, *b, *c, *d, *e, *f, *g),
            KeyValue::Time(a, b, c, d, e, f) => Value::Time(*a, *b, *c, *d, *e, *f),
        }
    }
}

/// Reads and writes this capture's checkpoints.
pub(super) struct Checkpoints {
    pub(super) producer: FutureProducer,
    pub(super) topic: String,
    pub(super) key: String,
    pub(super) last_write: Option<Instant>,
}

impl Checkpoints {
    pub(super) async fn open(
        cfg: &Settings,
        producer: FutureProducer,
    ) -> Result<Self, CaptureError> {
        let c = &cfg.capture;
        ensure_checkpoint_topic(cfg).await?;
        Ok(Checkpoints {
            producer,
            topic: c.checkpoint_topic.clone(),
            key: c.name.clone(),
            last_write: None,
        })
    }

    /// The latest checkpoint of this capture: read the (single-partition) topic to its end,
    /// detected by librdkafka's partition EOF, not by broker watermarks.
    pub(super) fn load(&self, cfg: &Settings) -> Result<Option<Checkpoint>, CaptureError> {
        let mut cc = crate::kafka::client_config(&cfg.kafka);
        cc.set("group.id", format!("cutover-capture-{}-reader", self.key));
        cc.set("enable.auto.commit", "false");
        cc.set("enable.partition.eof", "true");
        cc.set("auto.offset.reset", "earliest");
        // Partition EOF is how the end is found: not worth librdkafka's ERROR line.
        let consumer: BaseConsumer<crate::kafka::EofContext> =
            cc.create_with_context(crate::kafka::EofContext)?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, rdkafka::Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut latest = None;
        loop {
            if Instant::now() > deadline {
                return Err(CaptureError::Checkpoint(format!(
                    "reading {} did not reach its end within 30 s",
                    self.topic
                )));
            }
            match consumer.poll(Duration::from_millis(500)) {
                None => continue,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(m)) => {
                    if m.key() == Some(self.key.as_bytes()) {
                        latest = match m.payload() {
                            None => None,
                            Some(p) => Some(serde_json::from_slice(p).map_err(|e| {
                                CaptureError::Checkpoint(format!(
                                    "unreadable checkpoint at {}[0]@{}: {e}",
                                    self.topic,
                                    m.offset()
                                ))
                            })?),
                        };
                    }
                }
            }
        }
        Ok(latest)
    }

    pub(super) async fn save(&mut self, cp: &Checkpoint) -> Result<(), CaptureError> {
        let body =
            serde_json::to_string(cp).map_err(|e| CaptureError::Checkpoint(e.to_string()))?;
        let record = FutureRecord::to(&self.topic)
            .key(self.key.as_str())
            .payload(body.as_str());
        crate::kafka::send_all(&self.producer, [record]).await?;
        self.last_write = Some(Instant::now());
        tracing::debug!(file = %cp.binlog_file, pos = cp.binlog_pos, snapshot = cp.snapshot.is_some(), "checkpoint");
        covered_now();
        Ok(())
    }

    pub(super) fn due(&self, interval: Duration) -> bool {
        self.last_write.is_none_or(|t| t.elapsed() >= interval)
    }
}

/// `cutover_capture_checkpoint_timestamp_seconds`: the last time (unix seconds) the saved
/// checkpoint covered everything capture had sent, so `time() - it` is the checkpoint's age
/// (what a restart would re-send), growing when saves fail or the loop is stuck.
pub(super) fn covered_now() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!("cutover_capture_checkpoint_timestamp_seconds").set(now);
}

pub(super) async fn ensure_checkpoint_topic(cfg: &Settings) -> Result<(), CaptureError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        crate::kafka::client_config(&cfg.kafka).create()?;
    let topic = NewTopic::new(
        &cfg.capture.checkpoint_topic,
        1,
        TopicReplication::Fixed(-1),
    )
    .set("cleanup.policy", "compact");
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(CaptureError::Checkpoint(format!(
                    "cannot create checkpoint topic {t}: {code}"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn key_values_round_trip() {
        for v in [
            Value::Int(-3),
            Value::UInt(u64::MAX),
            Value::Bytes(vec![0, 255, 7]),
            Value::Date(2024, 1, 2, 3, 4, 5, 6),
            Value::Time(true, 1, 2, 3, 4, 5),
        ] {
            let k = KeyValue::from(&v);
            let back: KeyValue = serde_json::from_str(&serde_json::to_string(&k).unwrap()).unwrap();
            assert_eq!(back.to_value(), v);
        }
    }
}
