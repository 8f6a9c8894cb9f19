//! Kafka Connect schemas, as Debezium's `JsonConverter` writes them with
//! `schemas.enable=true`: each column's logical type decides how its value becomes a [`Cell`]
//! (exact decimals from two's-complement bytes, ISO text from epoch-based temporal types,
//! decoded `bytes`).

use std::borrow::Cow;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use chrono::{Datelike, Timelike};
use num_bigint::{BigInt, Sign};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{
    first_byte, generic_cell, integer, kind, parse_digits, short, unquote, RawRow, Shape,
};
use super::{Cell, DecodeError, Row};

const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";

/// How one column's value is converted, from its Connect schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conv {
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
pub(super) enum Unit {
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
pub(super) struct EnvelopeSchema<'a> {
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
pub(super) struct Plans<'a> {
    before: Option<Plan<'a>>,
    after: Option<Plan<'a>>,
}

impl<'a> Plans<'a> {
    pub(super) fn new(schema: EnvelopeSchema<'a>) -> Result<Plans<'a>, DecodeError> {
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

    pub(super) fn side(&self, side: &str) -> Option<&[(Cow<'a, str>, Conv)]> {
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

pub(super) fn convert_row(
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
}
