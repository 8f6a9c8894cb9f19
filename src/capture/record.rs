//! The records capture writes: AWS DMS JSON (IncludeTransactionDetails style), keyed by
//! `schema.table.<primary key>` so each row's changes stay in one partition.

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value as Json;

use super::{CaptureError, Settings};
use crate::mysql::{self, TableSchema};

/// The envelope metadata of one record (IncludeTransactionDetails style).
pub(super) struct Meta<'a> {
    pub(super) operation: &'a str,
    pub(super) schema: &'a str,
    pub(super) table: &'a str,
    pub(super) key_value: &'a str,
    /// Row changes only.
    pub(super) txn: Option<TxnMeta<'a>>,
    pub(super) stream_position: String,
}

pub(super) struct TxnMeta<'a> {
    pub(super) id: u64,
    pub(super) record_id: u64,
    pub(super) prev_id: u64,
    pub(super) prev_record_id: u64,
    pub(super) commit_ts: &'a str,
}

/// `{"data":{..},"before-image":{..}?,"metadata":{..}}`, keys in DMS order.
pub(super) fn record_json(
    meta: &Meta,
    data: &[(String, Json)],
    before: Option<&[(String, Json)]>,
) -> String {
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    // Built by hand: serde_json::Map would sort the keys, and DMS writes them in this order.
    let mut fields: Vec<(&str, Json)> = vec![
        ("timestamp", Json::String(now)),
        ("record-type", Json::String("data".into())),
        ("operation", Json::String(meta.operation.into())),
        ("partition-key-type", Json::String("primary-key".into())),
        ("partition-key-value", Json::String(meta.key_value.into())),
        ("schema-name", Json::String(meta.schema.into())),
        ("table-name", Json::String(meta.table.into())),
    ];
    if let Some(t) = &meta.txn {
        fields.push(("transaction-id", Json::from(t.id)));
        fields.push(("transaction-record-id", Json::from(t.record_id)));
        fields.push(("prev-transaction-id", Json::from(t.prev_id)));
        fields.push(("prev-transaction-record-id", Json::from(t.prev_record_id)));
        fields.push(("commit-timestamp", Json::String(t.commit_ts.into())));
    }
    fields.push((
        "stream-position",
        Json::String(meta.stream_position.clone()),
    ));
    let mut out = String::with_capacity(256 + data.len() * 24);
    out.push_str("{\"data\":");
    out.push_str(&mysql::data_json(data));
    if let Some(b) = before {
        out.push_str(",\"before-image\":");
        out.push_str(&mysql::data_json(b));
    }
    out.push_str(",\"metadata\":{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(k);
        out.push_str("\":");
        out.push_str(&v.to_string());
    }
    out.push_str("}}");
    out
}

/// `schema.table.<pk values joined by '.'>`: strings as they are, numbers as their text.
pub(super) fn partition_key(schema: &TableSchema, data: &[(String, Json)]) -> String {
    let mut key = format!("{}.{}", schema.schema, schema.table);
    for pk in &schema.primary_key {
        key.push('.');
        match data.iter().find(|(c, _)| c == pk).map(|(_, v)| v) {
            Some(Json::String(s)) => key.push_str(s),
            Some(v) => key.push_str(&v.to_string()),
            None => {}
        }
    }
    key
}

/// One record ready to send.
pub(super) struct Out {
    pub(super) key: String,
    pub(super) value: String,
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;
/// Room left for the record's framing and headers under `message.max.bytes`.
const FRAMING_BYTES: usize = 1024;

/// The largest record (key + value) the producer accepts: `message.max.bytes` from
/// `[kafka] properties`, less room for framing.
pub(super) fn max_record_bytes(cfg: &Settings) -> usize {
    cfg.kafka
        .properties
        .get("message.max.bytes")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
        .saturating_sub(FRAMING_BYTES)
}

/// Send a batch and wait for every acknowledgement. A record bigger than the producer
/// accepts goes to the dead-letter topic instead (its key, its metadata without the row
/// values, the reason in `cutover.error.*` headers), is counted and logged, and the stream
/// goes on: one huge row must not stop capture for good.
pub(super) async fn send(
    producer: &FutureProducer,
    cfg: &Settings,
    batch: &[Out],
) -> Result<(), CaptureError> {
    if batch.is_empty() {
        return Ok(());
    }
    let limit = max_record_bytes(cfg);
    let fits = |o: &Out| o.key.len() + o.value.len() <= limit;
    let records = batch.iter().filter(|o| fits(o)).map(|o| {
        FutureRecord::to(cfg.capture.topic.as_str())
            .key(o.key.as_str())
            .payload(o.value.as_str())
    });
    crate::kafka::send_all(producer, records).await?;
    let oversize: Vec<&Out> = batch.iter().filter(|o| !fits(o)).collect();
    if oversize.is_empty() {
        return Ok(());
    }
    let letters: Vec<(String, String)> = oversize
        .iter()
        .map(|o| {
            let size = o.key.len() + o.value.len();
            let reason = format!(
                "record of {size} bytes is larger than the producer's message.max.bytes allows ({limit} bytes for key and value)"
            );
            tracing::error!(key = %o.key, bytes = size, limit, dlq = %cfg.kafka.dlq_topic, "row too large for Kafka: dead-lettered, capture goes on");
            metrics::counter!("cutover_capture_dead_letters_total", "reason" => "oversize").increment(1);
            (reason.clone(), dead_letter_body(o, &reason, size))
        })
        .collect();
    let records = oversize.iter().zip(&letters).map(|(o, (reason, body))| {
        let headers = rdkafka::message::OwnedHeaders::new()
            .insert(rdkafka::message::Header {
                key: "cutover.error.stage",
                value: Some("capture"),
            })
            .insert(rdkafka::message::Header {
                key: "cutover.error.reason",
                value: Some(reason.as_str()),
            })
            .insert(rdkafka::message::Header {
                key: "cutover.source.topic",
                value: Some(cfg.capture.topic.as_str()),
            });
        FutureRecord::to(cfg.kafka.dlq_topic.as_str())
            .key(o.key.as_str())
            .payload(body.as_str())
            .headers(headers)
    });
    crate::kafka::send_all(producer, records).await?;
    Ok(())
}

/// What a dead letter for an oversize record holds: the reason, the size, and the record's
/// `metadata` (operation, table, key, stream position), never its row values.
fn dead_letter_body(o: &Out, reason: &str, size: usize) -> String {
    let metadata = serde_json::from_str::<Json>(&o.value)
        .ok()
        .and_then(|mut v| v.get_mut("metadata").map(Json::take))
        .unwrap_or(Json::Null);
    serde_json::json!({
        "reason": reason,
        "bytes": size,
        "partition-key-value": o.key,
        "metadata": metadata,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::{Decoded, Op};

    fn schema() -> TableSchema {
        TableSchema {
            schema: "s".into(),
            table: "t".into(),
            columns: vec![],
            primary_key: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn records_decode_as_dms_with_versions() {
        let data = vec![
            ("a".to_string(), Json::from(1)),
            ("b".to_string(), Json::String("x".into())),
            ("d".to_string(), Json::String("1.50".into())),
        ];
        let key = partition_key(&schema(), &data);
        assert_eq!(key, "s.t.1.x");
        let meta = Meta {
            operation: "update",
            schema: "s",
            table: "t",
            key_value: &key,
            txn: Some(TxnMeta {
                id: 3_000_000_000_100,
                record_id: 2,
                prev_id: 0,
                prev_record_id: 0,
                commit_ts: "2024-01-01T00:00:00.000000Z",
            }),
            stream_position: "mysql-bin.000003:150:0:150:3000000000100:mysql-bin.000003:150".into(),
        };
        let text = record_json(&meta, &data, Some(&data[..1]));
        let Decoded::Change(ev) = crate::cdc::dms::decode(text.as_bytes()).unwrap() else {
            panic!("not a change")
        };
        assert_eq!(ev.op, Op::Update);
        assert_eq!(
            ev.position.version(),
            3 * 10u128.pow(20) + 150 * 10u128.pow(8) + 2
        );
        assert_eq!(ev.before.unwrap().len(), 1);
        assert_eq!(
            ev.after.unwrap().columns().collect::<Vec<_>>(),
            vec!["a", "b", "d"]
        );

        let load = Meta {
            operation: "load",
            schema: "s",
            table: "t",
            key_value: &key,
            txn: None,
            stream_position: "mysql-bin.000003:120".into(),
        };
        let Decoded::Change(ev) =
            crate::cdc::dms::decode(record_json(&load, &data, None).as_bytes()).unwrap()
        else {
            panic!("not a change")
        };
        assert_eq!(ev.op, Op::Load);
        assert_eq!(
            ev.position.version(),
            3 * 10u128.pow(20) + 120 * 10u128.pow(8)
        );
    }
}
