//! Reading Kafka for `status`, blocking (run on a blocking thread): the group's committed
//! offsets, watermarks and a read around each committed offset; the capture's latest
//! checkpoint.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone as _, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message as _, Offset, TopicPartitionList};

use super::{kafka, PartitionStatus, StatusError};
use crate::cdc::{self, Decoded};
use crate::kafka::KafkaConfig;

/// Committed offsets, watermarks, and a read around each committed offset (blocking).
pub(super) fn partitions(
    k: &KafkaConfig,
    timeout: Duration,
    missing_ok: bool,
) -> Result<Vec<PartitionStatus>, StatusError> {
    // Reads the group's committed offsets only: no subscribe, no commit.
    let group: BaseConsumer = {
        let mut c = crate::kafka::client_config(k);
        c.set("group.id", &k.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        c.create().map_err(kafka("Kafka client"))?
    };
    let mut tpl = TopicPartitionList::new();
    let mut out = Vec::new();
    for topic in &k.topics {
        let md = group
            .fetch_metadata(Some(topic), timeout)
            .map_err(kafka(format!("metadata of topic {topic}")))?;
        for t in md.topics() {
            if let Some(e) = t.error() {
                if missing_ok
                    && RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition
                {
                    continue;
                }
                return Err(StatusError::Topic(format!(
                    "topic {topic}: {:?}",
                    KafkaError::MetadataFetch(e.into())
                )));
            }
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
                let high = group
                    .fetch_watermarks(topic, p.id(), timeout)
                    .ok()
                    .map(|(_, h)| h);
                out.push(PartitionStatus {
                    topic: topic.clone(),
                    partition: p.id(),
                    committed: None,
                    high_watermark: high,
                    lag: None,
                    pending: false,
                    drained: false,
                    last_applied_commit: None,
                    last_applied_table: None,
                });
            }
        }
    }
    let committed = group
        .committed_offsets(tpl, timeout)
        .map_err(kafka("committed offsets of the group"))?;
    for e in committed.elements() {
        if let Offset::Offset(o) = e.offset() {
            if let Some(p) = out
                .iter_mut()
                .find(|p| p.topic == e.topic() && p.partition == e.partition())
            {
                p.committed = Some(o);
            }
        }
    }
    for p in &mut out {
        p.lag = match (p.high_watermark, p.committed) {
            (Some(h), Some(c)) => Some((h - c).max(0)),
            (Some(h), None) => Some(h.max(0)),
            _ => None,
        };
    }
    probe(k, &mut out, timeout)?;
    for p in &mut out {
        p.drained = !p.pending && p.lag.unwrap_or(0) == 0;
    }
    Ok(out)
}

/// Read from `committed − 1` (or the beginning): the first record is the last applied one,
/// anything at or after `committed` is pending.
fn probe(
    k: &KafkaConfig,
    parts: &mut [PartitionStatus],
    timeout: Duration,
) -> Result<(), StatusError> {
    let reader: BaseConsumer = {
        let mut c = crate::kafka::client_config(k);
        c.set(
            "group.id",
            format!("cutover-status-{:016x}", rand::random::<u64>()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
        c.create().map_err(kafka("Kafka client"))?
    };
    let mut tpl = TopicPartitionList::new();
    for p in parts.iter() {
        let start = match p.committed {
            Some(c) if c > 0 => Offset::Offset(c - 1),
            Some(c) => Offset::Offset(c),
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(&p.topic, p.partition, start)
            .map_err(kafka(format!("assign {}/{}", p.topic, p.partition)))?;
    }
    reader.assign(&tpl).map_err(kafka("assign partitions"))?;
    let index: HashMap<(String, i32), usize> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.topic.clone(), p.partition), i))
        .collect();
    let mut done = vec![false; parts.len()];
    let single_topic = k.topics.len() == 1;
    let deadline = Instant::now() + timeout;
    while done.iter().any(|d| !d) && Instant::now() < deadline {
        match reader.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                let Some(&i) = index.get(&(m.topic().to_string(), m.partition())) else {
                    continue;
                };
                let p = &mut parts[i];
                let committed = p.committed.unwrap_or(0);
                if m.offset() < committed {
                    if let Ok(Decoded::Change(ev)) =
                        cdc::decode(m.payload(), k.format_for(&p.topic))
                    {
                        p.last_applied_commit = ev
                            .position
                            .commit_ts_us
                            .and_then(|us| Utc.timestamp_micros(us).single());
                        p.last_applied_table =
                            Some(format!("{}.{}", ev.table.schema, ev.table.table));
                    }
                } else {
                    p.pending = true;
                    done[i] = true;
                }
            }
            // The EOF event names the partition, not the topic: with several topics, read
            // until the timeout instead.
            Some(Err(KafkaError::PartitionEOF(partition))) if single_topic => {
                for (i, p) in parts.iter().enumerate() {
                    if p.partition == partition {
                        done[i] = true;
                    }
                }
            }
            Some(Err(e)) => tracing::debug!(error = %e, "status probe"),
        }
    }
    Ok(())
}

/// A capture checkpoint: when it was written, and its JSON.
pub(super) type Checkpoint = (Option<DateTime<Utc>>, serde_json::Value);

/// The latest checkpoint of capture `name` in `topic` (its one partition, read to the end,
/// found by partition EOF, not by watermarks): when it was written (the record's timestamp)
/// and where it stands. `None` when the topic or the capture's checkpoint does not exist.
pub(super) fn latest_checkpoint(
    k: &KafkaConfig,
    topic: &str,
    name: &str,
    timeout: Duration,
) -> Result<Option<Checkpoint>, StatusError> {
    let mut c = crate::kafka::client_config(k);
    c.set(
        "group.id",
        format!("cutover-status-{:016x}", rand::random::<u64>()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.auto.offset.store", "false")
    .set("enable.partition.eof", "true")
    .set("auto.offset.reset", "earliest");
    let reader: BaseConsumer<crate::kafka::EofContext> = c
        .create_with_context(crate::kafka::EofContext)
        .map_err(kafka("Kafka client"))?;
    let md = reader
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka(format!("metadata of topic {topic}")))?;
    if md
        .topics()
        .iter()
        .any(|t| t.error().is_some() || t.partitions().is_empty())
    {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(kafka(format!("assign {topic}/0")))?;
    reader.assign(&tpl).map_err(kafka("assign partitions"))?;
    let deadline = Instant::now() + timeout;
    let mut latest = None;
    loop {
        if Instant::now() > deadline {
            return Err(StatusError::Topic(format!(
                "reading the capture checkpoints in {topic} did not reach the end within {} (status.probe_timeout)",
                humantime::format_duration(timeout)
            )));
        }
        match reader.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(latest),
            Some(Err(e)) => tracing::debug!(error = %e, "status: capture checkpoints"),
            Some(Ok(m)) if m.key() == Some(name.as_bytes()) => {
                let at = m
                    .timestamp()
                    .to_millis()
                    .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
                latest = m
                    .payload()
                    .map(|p| (at, serde_json::from_slice(p).unwrap_or_default()));
            }
            Some(Ok(_)) => {}
        }
    }
}
