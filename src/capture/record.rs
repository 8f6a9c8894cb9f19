//! The records capture writes: AWS DMS JSON (IncludeTransactionDetails style), keyed by
//! `schema.table.<primary key>` so each row's changes stay in one partition.

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value as Json;

use super::CaptureError;
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

pub(super) async fn send(
    producer: &FutureProducer,
    topic: &str,
    batch: &[Out],
) -> Result<(), CaptureError> {
    if batch.is_empty() {
        return Ok(());
    }
    let records = batch.iter().map(|o| {
        FutureRecord::to(topic)
            .key(o.key.as_str())
            .payload(o.value.as_str())
    });
    crate::kafka::send_all(producer, records).await?;
    Ok(())
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
