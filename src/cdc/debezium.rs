//! Debezium JSON records (MySQL connector, `JsonConverter`) → [`Decoded`].
//!
//! The value is `{"schema": {..}, "payload": {..}}` with `schemas.enable=true`, else the payload
//! alone. The payload holds `before`, `after`, `source`, `op` (c | u | d | r | t | m) and
//! `ts_ms`; `transaction` is optional.
//!
//! Invariants:
//! - With a schema, columns are converted by their Connect logical type: DECIMAL bytes become
//!   exact decimal text (big-integer math, never `f64`), epoch-based DATETIME/DATE/TIME values
//!   become ISO text, plain `bytes` are base64-decoded. Without a schema only the generic,
//!   producer-independent conversion applies (base64 stays a string).
//! - Temporal text is rendered at the precision of its unit, always: milliseconds → 3 fraction
//!   digits, microseconds → 6, nanoseconds → 9 (`2020-05-30T10:34:43.000`); no zone suffix,
//!   since Debezium computes DATETIME epochs as if the wall clock were UTC.
//! - `payload.ts_ms` is when the connector saw the change, not the commit time: the commit time
//!   comes from `source`.
//! - A JSON `null` value (or payload) is a tombstone; `op: "m"` is a control record. Every
//!   other problem is a [`DecodeError`] naming the field; nothing here panics on any input.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::connect::{convert_row, EnvelopeSchema, Plans};
use super::json::{
    first_byte, integer, json_error, kind, lenient_string, not_an_object_at_top, quoted,
    required_name, required_object, string_field, unsigned_field, utf8, RawRow, Shape,
};
use super::{ChangeEvent, ControlRecord, DecodeError, Decoded, Op, Row, SourcePosition, TableRef};

/// Decode one Debezium record value.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut top =
        match serde_json::from_str::<Shape<Body>>(utf8(bytes)?).map_err(|e| json_error(&e))? {
            Shape::Obj(top) => top,
            Shape::Null => return Ok(Decoded::Tombstone),
            Shape::Other(kind) => return Err(not_an_object_at_top(kind)),
        };
    let schema = match top.schema.take() {
        None | Some(Shape::Null) => None,
        Some(Shape::Obj(schema)) => Some(schema),
        Some(Shape::Other(kind)) => {
            return Err(DecodeError::new(format!(
                "schema: expected an object, got {kind}"
            )))
        }
    };
    let body = match top.payload.take() {
        None => top,
        Some(Shape::Obj(body)) => *body,
        Some(Shape::Null) => return Ok(Decoded::Tombstone),
        Some(Shape::Other(kind)) => {
            return Err(DecodeError::new(format!(
                "payload: expected an object, got {kind}"
            )))
        }
    };

    let op_raw = body.op.ok_or_else(|| DecodeError::new("op: missing"))?;
    let op = match &*string_field(op_raw, "op")? {
        "c" => Op::Insert,
        "u" => Op::Update,
        "d" => Op::Delete,
        "r" => Op::Load,
        "t" => Op::Truncate,
        "m" => {
            let (schema, table) = match &body.source {
                Some(Shape::Obj(source)) => {
                    (lenient_string(source.db), lenient_string(source.table))
                }
                _ => (String::new(), String::new()),
            };
            return Ok(Decoded::Control(ControlRecord {
                operation: "message".to_owned(),
                schema,
                table,
            }));
        }
        other => {
            return Err(DecodeError::new(format!(
                "op: unknown value {}",
                quoted(other)
            )))
        }
    };

    let source = required_object(body.source, "source")?;
    let table = TableRef {
        schema: required_name(source.db, "source.db")?,
        table: required_name(source.table, "source.table")?,
    };
    let position = position(&source, body.transaction, op)?;

    let plans = match schema {
        Some(schema) if op != Op::Truncate => Some(Plans::new(schema)?),
        _ => None,
    };
    let row = |value: Option<Shape<RawRow>>, side: &str| -> Result<Option<Row>, DecodeError> {
        let plan = plans.as_ref().and_then(|p| p.side(side));
        match value {
            None | Some(Shape::Null) => Ok(None),
            Some(Shape::Obj(raw)) => convert_row(raw, plan, side).map(Some),
            Some(Shape::Other(kind)) => Err(DecodeError::new(format!(
                "{side}: expected an object, got {kind}"
            ))),
        }
    };
    let required = |row: Option<Row>, side: &str| {
        row.ok_or_else(|| {
            DecodeError::new(format!("{side}: missing or null for op {:?}", op_code(op)))
        })
    };
    let (before, after) = match op {
        Op::Truncate => (None, None),
        // The deleted row is `before`; `after` is null by definition.
        Op::Delete => (Some(required(row(body.before, "before")?, "before")?), None),
        Op::Insert | Op::Update | Op::Load => {
            let before = row(body.before, "before")?;
            (before, Some(required(row(body.after, "after")?, "after")?))
        }
    };
    Ok(Decoded::Change(ChangeEvent {
        table,
        op,
        before,
        after,
        position,
        kafka: None,
    }))
}

fn op_code(op: Op) -> &'static str {
    match op {
        Op::Load => "r",
        Op::Insert => "c",
        Op::Update => "u",
        Op::Delete => "d",
        Op::Truncate => "t",
    }
}

/// Both the top level and the payload: with an envelope, the top level has `schema` and
/// `payload` and the rest is read from the payload. Everything is read in one pass.
#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    schema: Option<Shape<EnvelopeSchema<'a>>>,
    #[serde(borrow, default, deserialize_with = "present")]
    payload: Option<Shape<Box<Body<'a>>>>,
    #[serde(borrow, default)]
    before: Option<Shape<RawRow<'a>>>,
    #[serde(borrow, default)]
    after: Option<Shape<RawRow<'a>>>,
    #[serde(borrow, default)]
    source: Option<Shape<Source<'a>>>,
    #[serde(borrow, default)]
    op: Option<&'a RawValue>,
    #[serde(borrow, default)]
    transaction: Option<Shape<Transaction<'a>>>,
}

/// Keeps a present `null` as `Some(Shape::Null)`, so `"payload": null` is seen as a tombstone.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Shape<T>>, D::Error> {
    Shape::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Source<'a> {
    #[serde(borrow, default)]
    db: Option<&'a RawValue>,
    #[serde(borrow, default)]
    table: Option<&'a RawValue>,
    #[serde(borrow, default)]
    file: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pos: Option<&'a RawValue>,
    #[serde(borrow, default)]
    row: Option<&'a RawValue>,
    #[serde(borrow, default)]
    gtid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts_ms: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts_us: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts_ns: Option<&'a RawValue>,
    #[serde(borrow, default)]
    snapshot: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Transaction<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

fn position(
    source: &Source,
    transaction: Option<Shape<Transaction>>,
    op: Op,
) -> Result<SourcePosition, DecodeError> {
    let gtid = match source.gtid {
        Some(raw) => Some(string_field(raw, "source.gtid")?).filter(|g| !g.is_empty()),
        None => None,
    };
    let transaction_id = match (gtid, transaction) {
        (Some(gtid), _) => Some(gtid.into_owned()),
        (None, None | Some(Shape::Null)) => None,
        (None, Some(Shape::Obj(Transaction { id: None }))) => None,
        (None, Some(Shape::Obj(Transaction { id: Some(id) }))) => Some(match first_byte(id) {
            b'"' => string_field(id, "transaction.id")?.into_owned(),
            b'-' | b'0'..=b'9' => id.get().to_owned(),
            _ => {
                return Err(DecodeError::new(format!(
                    "transaction.id: expected a string or a number, got {}",
                    kind(id)
                )))
            }
        }),
        (None, Some(Shape::Other(kind))) => {
            return Err(DecodeError::new(format!(
                "transaction: expected an object, got {kind}"
            )))
        }
    };
    // An unrecognised file name only costs the version, like DMS's opaque stream-position.
    let log_file_seq = match source.file {
        Some(raw) => super::binlog_file_seq(&string_field(raw, "source.file")?),
        None => None,
    };
    let log_pos = source
        .pos
        .map(|raw| unsigned_field(raw, "source.pos"))
        .transpose()?;
    let record_in_txn = source
        .row
        .map(|raw| unsigned_field(raw, "source.row"))
        .transpose()?;
    let commit_ts_us = if let Some(raw) = source.ts_us {
        Some(signed_field(raw, "source.ts_us")?)
    } else if let Some(raw) = source.ts_ns {
        Some(signed_field(raw, "source.ts_ns")?.div_euclid(1000))
    } else if let Some(raw) = source.ts_ms {
        Some(
            signed_field(raw, "source.ts_ms")?
                .checked_mul(1000)
                .ok_or_else(|| DecodeError::new("source.ts_ms: out of range"))?,
        )
    } else {
        None
    };
    let snapshot = match source.snapshot {
        None => false,
        Some(raw) => match first_byte(raw) {
            b't' => true,
            b'f' => false,
            // true, first, last, first_in_data_collection, last_in_data_collection,
            // incremental, and whatever phase a later version adds: all but "false".
            b'"' => string_field(raw, "source.snapshot")? != "false",
            _ => {
                return Err(DecodeError::new(format!(
                    "source.snapshot: expected a string or a boolean, got {}",
                    kind(raw)
                )))
            }
        },
    };
    Ok(SourcePosition {
        commit_ts_us,
        transaction_id,
        record_in_txn,
        log_file_seq,
        log_pos,
        stream_position: None,
        snapshot: snapshot || op == Op::Load,
    })
}

/// An integer JSON number (optionally negative) that fits an `i64`.
fn signed_field(raw: &RawValue, field: &str) -> Result<i64, DecodeError> {
    integer(raw).map_err(|e| DecodeError::new(format!("{field}: {e}")))
}

#[cfg(test)]
mod tests {
    mod prop {
        use super::super::decode;
        use proptest::prelude::*;

        const CREATE: &str = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"},"field":"price"},{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","field":"at"},{"type":"bytes","optional":true,"field":"blob"}],"optional":true,"field":"after"}]},"payload":{"before":null,"after":{"id":1,"price":"AU4=","at":1590834883000042,"blob":"AQI="},"source":{"db":"shop","table":"orders","file":"mysql-bin.000003","pos":154,"row":0,"ts_ms":1590834883000,"snapshot":"false","gtid":null},"op":"c","ts_ms":1590834883100}}"#;

        fn json_value() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("null".to_owned()),
                Just("false".to_owned()),
                Just("{}".to_owned()),
                Just("[1]".to_owned()),
                "-?[0-9]{1,22}(\\.[0-9]{0,3})?([eE][+-]?[0-9]{1,3})?",
                "\"[A-Za-z0-9+/=:. \\-\\\\\"é]{0,16}\"",
                Just("\"c\"".to_owned()),
                Just("\"m\"".to_owned()),
                Just("\"last\"".to_owned()),
                Just(r#"{"scale":"-2147483648"}"#.to_owned()),
            ]
        }

        crate::cdc::test_support::decoder_never_panics!(decode, CREATE);

        proptest! {


            #[test]
            fn any_value_anywhere_never_panics(
                at in prop::sample::select(vec![
                    "\"AU4=\"", "1590834883000042", "\"2\"", "\"org.apache.kafka.connect.data.Decimal\"",
                    "\"io.debezium.time.MicroTimestamp\"", "\"bytes\"", "\"AQI=\"", "\"shop\"",
                    "\"orders\"", "\"mysql-bin.000003\"", "154", "1590834883000", "\"false\"",
                    "\"c\"", "null",
                ]),
                value in json_value(),
            ) {
                let record = CREATE.replacen(at, &value, 1);
                let _ = decode(record.as_bytes());
                let inner = record.split_once(r#""payload":"#).and_then(|(_, p)| p.strip_suffix('}')).map(str::to_owned);
                if let Some(payload) = inner {
                    let _ = decode(payload.as_bytes());
                }
            }

        }
    }
}
