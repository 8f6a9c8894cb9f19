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

use std::borrow::Cow;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use chrono::{Datelike, Timelike};
use num_bigint::{BigInt, Sign};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::dms::{
    first_byte, generic_cell, json_error, kind, lenient_string, not_an_object_at_top, parse_digits,
    quoted, required_name, required_object, string_field, unquote, unsigned_field, utf8, RawRow,
    Shape,
};
use super::{
    Cell, ChangeEvent, ControlRecord, DecodeError, Decoded, Op, Row, SourcePosition, TableRef,
};

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
        Some(raw) => super::dms::binlog_file_seq(&string_field(raw, "source.file")?),
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

fn integer(raw: &RawValue) -> Result<i64, String> {
    let text = raw.get();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if parse_digits(digits).is_none() {
        return Err(format!("expected an integer, got {}", short(raw)));
    }
    text.parse()
        .map_err(|_| format!("integer out of range: {}", short(raw)))
}

/// A raw value for an error message, cut short if long.
fn short(raw: &RawValue) -> String {
    let text = raw.get();
    match text.char_indices().nth(64) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or(text)),
    }
}

// ---------------------------------------------------------------------------------------------
// Schema-aware conversion.
// ---------------------------------------------------------------------------------------------

const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";

/// How one column's value is converted, from its Connect schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    Generic,
    /// `org.apache.kafka.connect.data.Decimal`: base64 two's-complement, fixed scale.
    Decimal {
        scale: i32,
    },
    /// `io.debezium.data.VariableScaleDecimal`: `{"scale": s, "value": base64}`.
    VariableScaleDecimal,
    /// Epoch-based wall-clock date-time (DATETIME), computed as if UTC.
    Timestamp(Unit),
    /// Days since the epoch.
    Date,
    /// Time of day or, for MySQL TIME, a signed duration.
    Time(Unit),
    /// `io.debezium.data.Bits` with `length` 1: one bit as a boolean.
    Bit,
    /// Plain `bytes`, or `Bits` wider than one bit.
    Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Milli,
    Micro,
    Nano,
}

impl Unit {
    fn per_second(self) -> i64 {
        match self {
            Unit::Milli => 1_000,
            Unit::Micro => 1_000_000,
            Unit::Nano => 1_000_000_000,
        }
    }
    fn digits(self) -> usize {
        match self {
            Unit::Milli => 3,
            Unit::Micro => 6,
            Unit::Nano => 9,
        }
    }
}

/// The envelope schema: a struct whose fields are `before`, `after`, `source`, ...
#[derive(Deserialize)]
struct EnvelopeSchema<'a> {
    #[serde(borrow, default)]
    fields: Option<Vec<SideSchema<'a>>>,
}

#[derive(Deserialize)]
struct SideSchema<'a> {
    #[serde(borrow, default)]
    field: Option<&'a RawValue>,
    #[serde(borrow, default)]
    fields: Option<Vec<ColumnSchema<'a>>>,
}

/// Raw values, so a malformed schema gets an error that says where.
#[derive(Deserialize)]
struct ColumnSchema<'a> {
    #[serde(borrow, default)]
    field: Option<&'a RawValue>,
    #[serde(rename = "type", borrow, default)]
    ty: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    /// Read only for the logical types that need it.
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
}

/// The Connect schema parameters we use. They are strings (`"2"`); numbers are accepted too.
#[derive(Deserialize)]
struct Parameters<'a> {
    #[serde(borrow, default)]
    scale: Option<&'a RawValue>,
    #[serde(borrow, default)]
    length: Option<&'a RawValue>,
}

type Plan<'a> = Vec<(Cow<'a, str>, Conv)>;

/// Column conversions for `before` and `after`, in schema order.
struct Plans<'a> {
    before: Option<Plan<'a>>,
    after: Option<Plan<'a>>,
}

impl<'a> Plans<'a> {
    fn new(schema: EnvelopeSchema<'a>) -> Result<Plans<'a>, DecodeError> {
        let mut plans = Plans {
            before: None,
            after: None,
        };
        for side in schema.fields.into_iter().flatten() {
            let side_name = match side.field {
                Some(raw) if first_byte(raw) == b'"' => unquote(raw).unwrap_or_default(),
                _ => continue,
            };
            let slot = match &*side_name {
                "before" => &mut plans.before,
                "after" => &mut plans.after,
                _ => continue,
            };
            let columns = side.fields.unwrap_or_default();
            let mut plan = Vec::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                // Error paths only: built when needed.
                let at = |what: &str| format!("schema: {side_name}.fields[{i}].{what}");
                let text = |raw: Option<&'a RawValue>, what: &str| match raw {
                    None => Ok(None),
                    Some(raw) if first_byte(raw) == b'"' => unquote(raw)
                        .map(Some)
                        .map_err(|e| DecodeError::new(format!("{}: {e}", at(what)))),
                    Some(raw) => Err(DecodeError::new(format!(
                        "{}: expected a string, got {}",
                        at(what),
                        kind(raw)
                    ))),
                };
                let field = text(column.field, "field")?
                    .ok_or_else(|| DecodeError::new(format!("{}: missing", at("field"))))?;
                let logical = text(column.name, "name")?;
                let ty = text(column.ty, "type")?;
                let conv = conv(logical.as_deref(), ty.as_deref(), column.parameters)
                    .map_err(|e| DecodeError::new(format!("schema: {side_name}.{field}: {e}")))?;
                plan.push((field, conv));
            }
            *slot = Some(plan);
        }
        Ok(plans)
    }

    fn side(&self, side: &str) -> Option<&[(Cow<'a, str>, Conv)]> {
        match side {
            "before" => self.before.as_deref(),
            "after" => self.after.as_deref(),
            _ => None,
        }
    }
}

/// The conversion for a column with this logical `name` and Connect `ty`.
fn conv(
    name: Option<&str>,
    ty: Option<&str>,
    parameters: Option<&RawValue>,
) -> Result<Conv, String> {
    let parameters = || -> Result<Option<Parameters>, String> {
        match parameters {
            None => Ok(None),
            Some(raw) => match serde_json::from_str::<Shape<Parameters>>(raw.get())
                .map_err(|e| format!("parameters: {e}"))?
            {
                Shape::Obj(p) => Ok(Some(p)),
                Shape::Null => Ok(None),
                Shape::Other(kind) => Err(format!("parameters: expected an object, got {kind}")),
            },
        }
    };
    Ok(match name {
        Some(DECIMAL) => {
            let raw = parameters()?
                .and_then(|p| p.scale)
                .ok_or("Decimal without parameters.scale")?;
            Conv::Decimal {
                scale: int_param(raw).ok_or_else(|| {
                    format!("parameters.scale: expected an integer, got {}", short(raw))
                })?,
            }
        }
        Some("io.debezium.data.VariableScaleDecimal") => Conv::VariableScaleDecimal,
        Some("io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp") => {
            Conv::Timestamp(Unit::Milli)
        }
        Some("io.debezium.time.MicroTimestamp") => Conv::Timestamp(Unit::Micro),
        Some("io.debezium.time.NanoTimestamp") => Conv::Timestamp(Unit::Nano),
        Some("io.debezium.time.Date" | "org.apache.kafka.connect.data.Date") => Conv::Date,
        Some("io.debezium.time.Time" | "org.apache.kafka.connect.data.Time") => {
            Conv::Time(Unit::Milli)
        }
        Some("io.debezium.time.MicroTime") => Conv::Time(Unit::Micro),
        Some("io.debezium.time.NanoTime") => Conv::Time(Unit::Nano),
        Some("io.debezium.data.Bits") => {
            let length = parameters()?.and_then(|p| p.length);
            if length.and_then(int_param) == Some(1) {
                Conv::Bit
            } else {
                Conv::Bytes
            }
        }
        // ZonedTimestamp / ZonedTime (ISO text), Year (a number), Json (JSON text), Enum and
        // EnumSet (text) are already what we want: the generic conversion keeps them as is.
        _ if ty == Some("bytes") => Conv::Bytes,
        _ => Conv::Generic,
    })
}

/// An integer Connect parameter. They are strings (`"2"`); accept a JSON number too.
fn int_param(raw: &RawValue) -> Option<i32> {
    let text = match first_byte(raw) {
        b'"' => unquote(raw).ok()?,
        _ => Cow::Borrowed(raw.get()),
    };
    let digits = text.strip_prefix('-').unwrap_or(&text);
    parse_digits(digits)?;
    text.parse().ok()
}

fn convert_row(
    raw: RawRow,
    plan: Option<&[(Cow<str>, Conv)]>,
    side: &str,
) -> Result<Row, DecodeError> {
    let columns = raw.into_columns(side)?;
    let mut row = Vec::with_capacity(columns.len());
    for (i, (name, value)) in columns.into_iter().enumerate() {
        // Columns usually come in schema order: try the same index first.
        let conv = plan.map_or(Conv::Generic, |plan| {
            match plan.get(i) {
                Some((field, conv)) if *field == name => Some(*conv),
                _ => plan
                    .iter()
                    .find(|(field, _)| *field == name)
                    .map(|(_, conv)| *conv),
            }
            .unwrap_or(Conv::Generic)
        });
        let cell =
            convert(value, conv).map_err(|e| DecodeError::new(format!("{side}.{name}: {e}")))?;
        row.push((name.into_owned(), cell));
    }
    Ok(Row(row))
}

fn convert(raw: &RawValue, conv: Conv) -> Result<Cell, String> {
    let first = first_byte(raw);
    if first == b'n' {
        return Ok(Cell::Null);
    }
    match conv {
        Conv::Generic => generic_cell(raw).map_err(|e| e.to_string()),
        // decimal.handling.mode=string/double changes the schema, but a plain number is exact
        // text anyway: keep it.
        Conv::Decimal { .. } if matches!(first, b'-' | b'0'..=b'9') => {
            Ok(Cell::Number(raw.get().to_owned()))
        }
        Conv::Decimal { scale } => Ok(Cell::Number(decimal_text(&base64_bytes(raw)?, scale)?)),
        Conv::VariableScaleDecimal => variable_scale_decimal(raw),
        Conv::Timestamp(unit) => timestamp_text(integer(raw)?, unit)
            .map(Cell::Str)
            .ok_or_else(|| format!("timestamp out of range: {}", raw.get())),
        Conv::Date => date_text(integer(raw)?)
            .map(Cell::Str)
            .ok_or_else(|| format!("date out of range: {}", raw.get())),
        Conv::Time(unit) => Ok(Cell::Str(time_text(integer(raw)?, unit))),
        Conv::Bit => Ok(Cell::Bool(
            base64_bytes(raw)?.first().is_some_and(|b| b & 1 == 1),
        )),
        Conv::Bytes => base64_bytes(raw).map(Cell::Bytes),
    }
}

/// Kafka Connect writes standard base64 with padding; accept it without padding too.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn base64_bytes(raw: &RawValue) -> Result<Vec<u8>, String> {
    if first_byte(raw) != b'"' {
        return Err(format!("expected a base64 string, got {}", kind(raw)));
    }
    let text = unquote(raw).map_err(|e| e.to_string())?;
    BASE64
        .decode(text.as_bytes())
        .map_err(|e| format!("invalid base64: {e}"))
}

/// Scales beyond this are not a real column (MySQL allows 30); refuse them rather than build
/// huge strings.
const MAX_SCALE: i32 = 1000;
/// DECIMAL(65) needs 28 bytes; far longer input is not a decimal, and its text conversion is
/// quadratic.
const MAX_DECIMAL_BYTES: usize = 256;

/// Big-endian two's-complement unscaled integer and a scale → exact decimal text:
/// (`[0x01, 0x4E]`, 2) → `"3.34"`; zero keeps its scale (`"0.00"`).
fn decimal_text(unscaled: &[u8], scale: i32) -> Result<String, String> {
    if !(-MAX_SCALE..=MAX_SCALE).contains(&scale) {
        return Err(format!("decimal scale out of range: {scale}"));
    }
    if unscaled.len() > MAX_DECIMAL_BYTES {
        return Err(format!("decimal too long: {} bytes", unscaled.len()));
    }
    let n = BigInt::from_signed_bytes_be(unscaled);
    let sign = if n.sign() == Sign::Minus { "-" } else { "" };
    let digits = n.magnitude().to_string();
    let places = scale.unsigned_abs() as usize;
    Ok(if scale <= 0 {
        if n.sign() == Sign::NoSign {
            digits
        } else {
            format!("{sign}{digits}{}", "0".repeat(places))
        }
    } else if digits.len() > places {
        let (int, frac) = digits.split_at(digits.len() - places);
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}0.{}{digits}", "0".repeat(places - digits.len()))
    })
}

/// `{"scale": 2, "value": "AU4="}` → `"3.34"`.
fn variable_scale_decimal(raw: &RawValue) -> Result<Cell, String> {
    #[derive(Deserialize)]
    struct Value<'a> {
        #[serde(borrow, default)]
        scale: Option<&'a RawValue>,
        #[serde(borrow, default)]
        value: Option<&'a RawValue>,
    }
    let value = match serde_json::from_str::<Shape<Value>>(raw.get()).map_err(|e| e.to_string())? {
        Shape::Obj(value) => value,
        Shape::Null => return Ok(Cell::Null),
        Shape::Other(kind) => {
            return Err(format!(
                "expected an object {{scale, value}} for io.debezium.data.VariableScaleDecimal, got {kind}"
            ))
        }
    };
    let scale = value.scale.ok_or("scale: missing")?;
    let scale = i32::try_from(integer(scale).map_err(|e| format!("scale: {e}"))?)
        .map_err(|_| format!("scale: out of range: {}", scale.get()))?;
    let bytes =
        base64_bytes(value.value.ok_or("value: missing")?).map_err(|e| format!("value: {e}"))?;
    decimal_text(&bytes, scale).map(Cell::Number)
}

/// Epoch count in `unit` → `YYYY-MM-DDTHH:MM:SS.fff…` with the unit's digits; `None` outside
/// years 0000–9999.
fn timestamp_text(value: i64, unit: Unit) -> Option<String> {
    let per_second = unit.per_second();
    let secs = value.div_euclid(per_second);
    let fraction = value.rem_euclid(per_second);
    let t = chrono::DateTime::from_timestamp(secs, 0)?.naive_utc();
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{fraction:0width$}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        width = unit.digits()
    ))
}

/// Days since the epoch → `YYYY-MM-DD`; `None` outside years 0000–9999.
fn date_text(days: i64) -> Option<String> {
    let d = chrono::DateTime::from_timestamp(days.checked_mul(86_400)?, 0)?.date_naive();
    if !(0..=9999).contains(&d.year()) {
        return None;
    }
    Some(format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()))
}

/// A count of `unit` since midnight → `HH:MM:SS.fff…`. MySQL TIME is a duration
/// (-838:59:59 to 838:59:59), so hours may pass 24 and the value may be negative (`-01:30:00.000000`).
fn time_text(value: i64, unit: Unit) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let per_second = unit.per_second().unsigned_abs();
    let magnitude = value.unsigned_abs();
    let (secs, fraction) = (magnitude / per_second, magnitude % per_second);
    format!(
        "{sign}{:02}:{:02}:{:02}.{fraction:0width$}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        width = unit.digits()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        BASE64.decode(s).unwrap()
    }

    #[test]
    fn decimal_positive_negative_zero() {
        assert_eq!(decimal_text(&b64("AU4="), 2).unwrap(), "3.34"); // 0x014E = 334
        assert_eq!(decimal_text(&[0xFE, 0xB2], 2).unwrap(), "-3.34"); // -334
        assert_eq!(decimal_text(&[0xFB], 2).unwrap(), "-0.05");
        assert_eq!(decimal_text(&[0x05], 4).unwrap(), "0.0005");
        assert_eq!(decimal_text(&[0x00], 2).unwrap(), "0.00");
        assert_eq!(decimal_text(&[], 2).unwrap(), "0.00");
        assert_eq!(decimal_text(&[0x00], 0).unwrap(), "0");
        assert_eq!(decimal_text(&[0x7F], 0).unwrap(), "127");
        assert_eq!(decimal_text(&[0x80], 0).unwrap(), "-128");
        assert_eq!(decimal_text(&[0xFF], 0).unwrap(), "-1");
        assert_eq!(decimal_text(&[0x00, 0xFF], 1).unwrap(), "25.5"); // leading 0 keeps it positive
        assert_eq!(decimal_text(&[0x0C], -2).unwrap(), "1200");
        assert_eq!(decimal_text(&[0x00], -2).unwrap(), "0");
        assert!(decimal_text(&[0x01], 1001).is_err());
        assert!(decimal_text(&[0x01; 257], 0).is_err());
    }

    #[test]
    fn decimal_wider_than_u128() {
        // 2^127 * 256 + 1 needs 17 bytes; scale 10.
        let mut bytes = vec![0x00, 0x80];
        bytes.extend([0u8; 15]);
        bytes.push(0x01);
        let n = BigInt::from_signed_bytes_be(&bytes).to_string();
        let text = decimal_text(&bytes, 10).unwrap();
        assert_eq!(text.replace('.', ""), n);
        assert_eq!(text.split_once('.').unwrap().1.len(), 10);
    }

    #[test]
    fn temporal_text() {
        assert_eq!(
            timestamp_text(0, Unit::Milli).unwrap(),
            "1970-01-01T00:00:00.000"
        );
        assert_eq!(
            timestamp_text(1_590_834_883_123, Unit::Milli).unwrap(),
            "2020-05-30T10:34:43.123"
        );
        assert_eq!(
            timestamp_text(1_590_834_883_000_042, Unit::Micro).unwrap(),
            "2020-05-30T10:34:43.000042"
        );
        assert_eq!(
            timestamp_text(1_590_834_883_000_000_007, Unit::Nano).unwrap(),
            "2020-05-30T10:34:43.000000007"
        );
        assert_eq!(
            timestamp_text(-1, Unit::Milli).unwrap(),
            "1969-12-31T23:59:59.999"
        );
        assert_eq!(timestamp_text(i64::MAX, Unit::Milli), None);
        assert_eq!(timestamp_text(i64::MIN, Unit::Micro), None);
        assert_eq!(date_text(0).unwrap(), "1970-01-01");
        assert_eq!(date_text(18_412).unwrap(), "2020-05-30");
        assert_eq!(date_text(-1).unwrap(), "1969-12-31");
        assert_eq!(date_text(i64::MAX), None);
        assert_eq!(time_text(0, Unit::Milli), "00:00:00.000");
        assert_eq!(time_text(37_883_123, Unit::Milli), "10:31:23.123");
        assert_eq!(
            time_text(3_020_399_000_000, Unit::Micro),
            "838:59:59.000000"
        );
        assert_eq!(time_text(-5_400_000_000, Unit::Micro), "-01:30:00.000000");
        assert_eq!(time_text(1, Unit::Nano), "00:00:00.000000001");
        assert_eq!(time_text(i64::MIN, Unit::Nano), "-2562047:47:16.854775808");
    }

    #[test]
    fn bits() {
        let raw = |s: &str| -> Box<RawValue> { RawValue::from_string(s.to_owned()).unwrap() };
        assert_eq!(convert(&raw("\"AQ==\""), Conv::Bit), Ok(Cell::Bool(true)));
        assert_eq!(convert(&raw("\"AA==\""), Conv::Bit), Ok(Cell::Bool(false)));
        assert_eq!(convert(&raw("\"Ag==\""), Conv::Bit), Ok(Cell::Bool(false))); // only bit 0
        assert_eq!(convert(&raw("\"\""), Conv::Bit), Ok(Cell::Bool(false)));
        assert_eq!(
            convert(&raw("\"BQE=\""), Conv::Bytes),
            Ok(Cell::Bytes(vec![5, 1]))
        );
        assert_eq!(convert(&raw("null"), Conv::Bit), Ok(Cell::Null));
        assert!(convert(&raw("1"), Conv::Bit).is_err());
    }

    #[test]
    fn base64_with_or_without_padding() {
        let raw = |s: &str| -> Box<RawValue> { RawValue::from_string(s.to_owned()).unwrap() };
        assert_eq!(base64_bytes(&raw("\"AU4=\"")), Ok(vec![1, 0x4E]));
        assert_eq!(base64_bytes(&raw("\"AU4\"")), Ok(vec![1, 0x4E]));
        assert!(base64_bytes(&raw("\"AU4!\""))
            .unwrap_err()
            .starts_with("invalid base64"));
    }

    #[test]
    fn int_parameter() {
        let raw = |s: &str| -> Box<RawValue> { RawValue::from_string(s.to_owned()).unwrap() };
        assert_eq!(int_param(&raw("\"2\"")), Some(2));
        assert_eq!(int_param(&raw("2")), Some(2));
        assert_eq!(int_param(&raw("\"-3\"")), Some(-3));
        assert_eq!(int_param(&raw("\"2.0\"")), None);
        assert_eq!(int_param(&raw("\"99999999999\"")), None);
        assert_eq!(int_param(&raw("true")), None);
    }

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

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = decode(&bytes);
                let _ = crate::cdc::decode(Some(&bytes), crate::cdc::Format::Auto);
            }

            #[test]
            fn json_ish_text_never_panics(s in "[{}\\[\\]\":,0-9a-z\\-. \\\\\u{e9}]{0,200}") {
                let _ = decode(s.as_bytes());
                let _ = crate::cdc::decode(Some(s.as_bytes()), crate::cdc::Format::Auto);
            }

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

            #[test]
            fn mutated_records_never_panic(
                edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)
            ) {
                let bytes = crate::cdc::test_support::mutate(CREATE.as_bytes(), &edits);
                let _ = decode(&bytes);
                let _ = crate::cdc::decode(Some(&bytes), crate::cdc::Format::Auto);
            }
        }
    }
}
