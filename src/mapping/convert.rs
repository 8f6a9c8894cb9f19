//! Column values → attribute values, by the declared column type: exact numbers, fixed-width
//! ISO date-times, JSON → M/L, SET → SS, binary; and DynamoDB's item-size rule.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::value::RawValue;

use crate::cdc::Cell;

/// How a column's value becomes an attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// By the wire type: string → S, number → N (no scientific notation), bool → BOOL,
    /// JSON object/array → M/L, bytes → B.
    Auto,
    String,
    /// Exact number (also from a numeric string). `int`, `number` and `decimal` differ only in
    /// that `int` rejects a fraction.
    Number,
    Int,
    /// FLOAT/DOUBLE: scientific notation is accepted and expanded exactly.
    Float,
    /// BIT(1) / BOOLEAN.
    Bool,
    /// DATETIME / TIMESTAMP, rendered per [`TimeFormat`].
    DateTime(TimeFormat),
    Date,
    Time,
    Year,
    /// JSON text → M / L, numbers kept exact.
    Json,
    /// SET (comma separated) → SS.
    Set,
    Enum,
    Binary(BinaryEncoding),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: fixed width, so it sorts as text in a sort key.
    Iso,
    EpochSeconds,
    EpochMillis,
    EpochMicros,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryEncoding {
    /// `0x`-prefixed or bare hex (DMS, with or without NoHexPrefix).
    Hex,
    Base64,
}

impl ColumnType {
    pub fn parse(text: &str) -> Result<ColumnType, String> {
        let (base, opt) = match text.split_once(':') {
            Some((b, o)) => (b, Some(o)),
            None => (text, None),
        };
        let time = |opt: Option<&str>| -> Result<TimeFormat, String> {
            Ok(match opt.unwrap_or("iso") {
                "iso" => TimeFormat::Iso,
                "epoch_seconds" => TimeFormat::EpochSeconds,
                "epoch_millis" => TimeFormat::EpochMillis,
                "epoch_micros" => TimeFormat::EpochMicros,
                other => {
                    return Err(format!(
                        "unknown time format {other:?}: iso, epoch_seconds, epoch_millis or epoch_micros"
                    ))
                }
            })
        };
        let ty = match base {
            "auto" => ColumnType::Auto,
            "string" | "text" | "varchar" | "char" => ColumnType::String,
            "number" | "decimal" | "numeric" => ColumnType::Number,
            "int" | "integer" | "bigint" => ColumnType::Int,
            "float" | "double" => ColumnType::Float,
            "bool" | "boolean" | "bit" => ColumnType::Bool,
            "datetime" | "timestamp" => ColumnType::DateTime(time(opt)?),
            "date" => ColumnType::Date,
            "time" => ColumnType::Time,
            "year" => ColumnType::Year,
            "json" => ColumnType::Json,
            "set" => ColumnType::Set,
            "enum" => ColumnType::Enum,
            "binary" | "blob" | "varbinary" => ColumnType::Binary(match opt.unwrap_or("hex") {
                "hex" => BinaryEncoding::Hex,
                "base64" => BinaryEncoding::Base64,
                other => return Err(format!("unknown binary encoding {other:?}: hex or base64")),
            }),
            other => {
                return Err(format!(
                    "unknown type {other:?}: auto, string, number, int, decimal, float, bool, datetime, timestamp, date, time, year, json, set, enum or binary"
                ))
            }
        };
        if opt.is_some() && !matches!(ty, ColumnType::DateTime(_) | ColumnType::Binary(_)) {
            return Err(format!("type {base} takes no option"));
        }
        Ok(ty)
    }
}

/// Convert one cell. `Ok(None)` is SQL NULL (or an empty SET), left to the null policy.
/// Errors name the problem but never echo the value (it may be personal data).
pub fn convert(cell: &Cell, ty: ColumnType) -> Result<Option<AttributeValue>, String> {
    if matches!(cell, Cell::Null) {
        return Ok(None);
    }
    let v = match ty {
        ColumnType::Auto => match cell {
            Cell::Null => return Ok(None),
            Cell::Bool(b) => AttributeValue::Bool(*b),
            Cell::Number(n) => AttributeValue::N(plain_number(n, false)?),
            Cell::Str(s) => AttributeValue::S(s.clone()),
            Cell::Bytes(b) => AttributeValue::B(Blob::new(b.clone())),
            Cell::Json(j) => json_to_av(j, 0)?,
        },
        ColumnType::String | ColumnType::Enum | ColumnType::Time => AttributeValue::S(match cell {
            Cell::Str(s) | Cell::Number(s) | Cell::Json(s) => s.clone(),
            Cell::Bool(b) => b.to_string(),
            Cell::Bytes(b) => format!("0x{}", hex::encode(b)),
            Cell::Null => return Ok(None),
        }),
        ColumnType::Number | ColumnType::Year => {
            AttributeValue::N(plain_number(text_of(cell)?, false)?)
        }
        ColumnType::Int => {
            let n = plain_number(text_of(cell)?, false)?;
            if n.contains('.') {
                return Err("expected an integer, got a fraction".into());
            }
            AttributeValue::N(n)
        }
        ColumnType::Float => AttributeValue::N(plain_number(text_of(cell)?, true)?),
        ColumnType::Bool => AttributeValue::Bool(to_bool(cell)?),
        ColumnType::DateTime(fmt) => {
            let t = to_datetime(cell)?;
            match fmt {
                TimeFormat::Iso => AttributeValue::S(format_iso(&t)),
                TimeFormat::EpochSeconds => AttributeValue::N(t.and_utc().timestamp().to_string()),
                TimeFormat::EpochMillis => {
                    AttributeValue::N(t.and_utc().timestamp_millis().to_string())
                }
                TimeFormat::EpochMicros => {
                    AttributeValue::N(t.and_utc().timestamp_micros().to_string())
                }
            }
        }
        ColumnType::Date => AttributeValue::S(to_date(cell)?.format("%Y-%m-%d").to_string()),
        ColumnType::Json => match cell {
            Cell::Str(s) | Cell::Json(s) => json_to_av(s, 0)?,
            _ => return Err("expected JSON text".into()),
        },
        ColumnType::Set => {
            let mut seen = BTreeSet::new();
            let mut items = Vec::new();
            let s = match cell {
                Cell::Str(s) => s,
                _ => return Err("expected a SET string".into()),
            };
            for part in s.split(',').filter(|p| !p.is_empty()) {
                if seen.insert(part) {
                    items.push(part.to_string());
                }
            }
            if items.is_empty() {
                return Ok(None); // DynamoDB has no empty sets.
            }
            AttributeValue::Ss(items)
        }
        ColumnType::Binary(enc) => AttributeValue::B(Blob::new(match (cell, enc) {
            (Cell::Bytes(b), _) => b.clone(),
            (Cell::Str(s), BinaryEncoding::Hex) => {
                let h = s
                    .strip_prefix("0x")
                    .or_else(|| s.strip_prefix("0X"))
                    .unwrap_or(s);
                hex::decode(h).map_err(|_| "expected hex binary (0x...)".to_string())?
            }
            (Cell::Str(s), BinaryEncoding::Base64) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| "expected base64 binary".to_string())?,
            _ => return Err("expected binary".into()),
        })),
    };
    Ok(Some(v))
}

/// Write the text of the `S` or `N` value [`convert`] gives `cell` into `out`, for the common
/// cases of key columns (plain numbers, strings, ISO date-times), and return true; return false,
/// writing nothing, for every other case (the caller converts).
pub(super) fn push_text(cell: &Cell, ty: ColumnType, out: &mut String) -> bool {
    match (ty, cell) {
        (
            ColumnType::Auto | ColumnType::Number | ColumnType::Year | ColumnType::Int,
            Cell::Number(n),
        ) if is_canonical_number(n) && (ty != ColumnType::Int || !n.contains('.')) => {
            out.push_str(n)
        }
        (ColumnType::Auto, Cell::Str(s))
        | (
            ColumnType::String | ColumnType::Enum | ColumnType::Time,
            Cell::Str(s) | Cell::Number(s) | Cell::Json(s),
        ) => out.push_str(s),
        (ColumnType::DateTime(TimeFormat::Iso), Cell::Str(s)) => {
            match fast_iso(s.trim().as_bytes()) {
                Some(t) if (0..=9999).contains(&chrono::Datelike::year(&t)) => push_iso(&t, out),
                _ => return false,
            }
        }
        _ => return false,
    }
    true
}

fn text_of(cell: &Cell) -> Result<&str, String> {
    match cell {
        Cell::Number(s) | Cell::Str(s) => Ok(s.trim()),
        _ => Err("expected a number".into()),
    }
}

/// Validate a decimal number and return DynamoDB's plain form. Scientific notation is accepted
/// only when `allow_exponent` (FLOAT/DOUBLE) and then expanded exactly, digit by digit; for
/// integers and decimals it means the producer already rounded the value (DMS BIGINT without
/// UseLargeIntegerValue), so it is refused rather than stored wrong.
pub fn plain_number(text: &str, allow_exponent: bool) -> Result<String, String> {
    if is_canonical_number(text) {
        return Ok(text.to_string());
    }
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) if allow_exponent => {
            let e: i32 = text[i + 1..]
                .parse()
                .map_err(|_| "malformed number exponent".to_string())?;
            (&text[..i], e)
        }
        Some(_) => {
            return Err(
                "number in scientific notation: the producer rounded it (for DMS, enable UseLargeIntegerValue); declare the column `float` if it really is one"
                    .into(),
            )
        }
        None => (text, 0),
    };
    let (neg, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("expected a decimal number".into());
    }
    if exp.unsigned_abs() > 400 {
        return Err("number out of DynamoDB's range".into());
    }
    // Place the decimal point: all digits, and the position of the point within them.
    let all: String = format!("{int}{frac}");
    let point = int.len() as i64 + exp as i64;
    let (int_part, frac_part) = if point <= 0 {
        (
            "0".to_string(),
            format!("{}{}", "0".repeat((-point) as usize), all),
        )
    } else if point as usize >= all.len() {
        (
            format!("{}{}", all, "0".repeat(point as usize - all.len())),
            String::new(),
        )
    } else {
        (
            all[..point as usize].to_string(),
            all[point as usize..].to_string(),
        )
    };
    let int_part = int_part.trim_start_matches('0');
    let frac_part = frac_part.trim_end_matches('0');
    let significant = {
        let joined = format!("{int_part}{frac_part}");
        let t = joined.trim_start_matches('0');
        t.len()
    };
    if significant > 38 {
        return Err(format!(
            "number has {significant} significant digits; DynamoDB keeps 38"
        ));
    }
    if int_part.len() > 126 || (int_part.is_empty() && frac_part.len() > 130 && significant > 0) {
        return Err("number out of DynamoDB's range".into());
    }
    let mut out = String::with_capacity(int_part.len() + frac_part.len() + 2);
    if neg && significant > 0 {
        out.push('-');
    }
    out.push_str(if int_part.is_empty() { "0" } else { int_part });
    if !frac_part.is_empty() {
        out.push('.');
        out.push_str(frac_part);
    }
    Ok(out)
}

/// Already DynamoDB's plain form: `-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?`, not `-0`, at most 38
/// significant digits. Nearly every value is; the general path above handles the rest.
pub(super) fn is_canonical_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let int_ok = int == "0"
        || (!int.is_empty() && !int.starts_with('0') && int.bytes().all(|b| b.is_ascii_digit()));
    let frac_ok = frac.is_none_or(|f| {
        !f.is_empty() && !f.ends_with('0') && f.bytes().all(|b| b.is_ascii_digit())
    });
    if !int_ok || !frac_ok || digits == "0" && text.starts_with('-') {
        return false;
    }
    let significant = if int == "0" {
        frac.map_or(0, |f| f.trim_start_matches('0').len())
    } else {
        int.len() + frac.map_or(0, str::len)
    };
    significant <= 38 && int.len() <= 126
}

fn to_bool(cell: &Cell) -> Result<bool, String> {
    match cell {
        Cell::Bool(b) => Ok(*b),
        Cell::Number(n) | Cell::Str(n) => match n.trim() {
            "1" | "true" | "TRUE" | "t" | "0x01" | "0x1" | "\u{1}" => Ok(true),
            "0" | "false" | "FALSE" | "f" | "0x00" | "0x0" | "\u{0}" => Ok(false),
            _ => Err("expected a boolean".into()),
        },
        Cell::Bytes(b) if b.len() <= 8 => Ok(b.iter().any(|x| *x != 0)),
        _ => Err("expected a boolean".into()),
    }
}

/// Parse a DATETIME/TIMESTAMP: ISO-8601 text with `T` or space, optional fraction and optional
/// zone (converted to UTC), or a number of epoch milliseconds (Debezium without schemas).
fn to_datetime(cell: &Cell) -> Result<NaiveDateTime, String> {
    match cell {
        Cell::Str(s) => parse_datetime(s.trim()),
        Cell::Number(n) => {
            let ms: i64 = n
                .parse()
                .map_err(|_| "expected epoch milliseconds".to_string())?;
            DateTime::from_timestamp_millis(ms)
                .map(|d| d.naive_utc())
                .ok_or_else(|| "epoch milliseconds out of range".into())
        }
        _ => Err("expected a date-time".into()),
    }
}

fn parse_datetime(s: &str) -> Result<NaiveDateTime, String> {
    if let Some(d) = fast_iso(s.as_bytes()) {
        return Ok(d);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d.naive_utc());
    }
    let bare = s.strip_suffix('Z').unwrap_or(s);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(bare, fmt) {
            return Ok(d);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(bare, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default());
    }
    Err("expected an ISO-8601 date-time".into())
}

/// The common shapes, without chrono's format machinery (this runs for every datetime column of
/// every record): `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|±HH:MM]`. Anything else returns `None`
/// and takes the general path.
fn fast_iso(b: &[u8]) -> Option<NaiveDateTime> {
    fn num(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    }
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(&b[0..4])? as i32, num(&b[5..7])?, num(&b[8..10])?)?;
    let (mut rest, mut nanos) = (&b[19..], 0u32);
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = num(&frac[..n])? * 10u32.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let time = chrono::NaiveTime::from_hms_nano_opt(
        num(&b[11..13])?,
        num(&b[14..16])?,
        num(&b[17..19])?,
        nanos,
    )?;
    let local = NaiveDateTime::new(date, time);
    match rest {
        b"" | b"Z" | b"z" => Some(local),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let offset = i64::from(num(&[*h1, *h2])? * 3600 + num(&[*m1, *m2])? * 60);
            let offset = if *sign == b'+' { offset } else { -offset };
            local.checked_sub_signed(chrono::TimeDelta::seconds(offset))
        }
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, fixed width (so it sorts as text in a sort key).
pub(super) fn format_iso(t: &NaiveDateTime) -> String {
    use chrono::Datelike;
    if !(0..=9999).contains(&t.year()) {
        return t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    }
    let mut out = String::with_capacity(27);
    push_iso(t, &mut out);
    out
}

/// [`format_iso`] for years 0..=9999, written into `out`.
fn push_iso(t: &NaiveDateTime, out: &mut String) {
    use chrono::{Datelike, Timelike};
    for (n, width, sep) in [
        (t.year() as u32, 4, '-'),
        (t.month(), 2, '-'),
        (t.day(), 2, 'T'),
        (t.hour(), 2, ':'),
        (t.minute(), 2, ':'),
        (t.second(), 2, '.'),
        (t.nanosecond().min(999_999_999) / 1000, 6, 'Z'),
    ] {
        let mut div = 10u32.pow(width - 1);
        while div > 0 {
            out.push(char::from(b'0' + ((n / div) % 10) as u8));
            div /= 10;
        }
        out.push(sep);
    }
}

fn to_date(cell: &Cell) -> Result<NaiveDate, String> {
    match cell {
        Cell::Number(n) => {
            let days: i64 = n
                .parse()
                .map_err(|_| "expected days since epoch".to_string())?;
            Utc.timestamp_opt(days.saturating_mul(86_400), 0)
                .single()
                .map(|d| d.date_naive())
                .ok_or_else(|| "date out of range".into())
        }
        _ => to_datetime(cell).map(|d| d.date()),
    }
}

pub(super) fn epoch_seconds(cell: &Cell) -> Result<i64, String> {
    to_datetime(cell).map(|d| d.and_utc().timestamp())
}

/// JSON text → M / L / scalars, keeping numbers exact (via raw values, never f64).
fn json_to_av(text: &str, depth: usize) -> Result<AttributeValue, String> {
    if depth >= 32 {
        return Err("JSON nested deeper than DynamoDB's 32 levels".into());
    }
    let t = text.trim_start();
    let invalid = |_| "invalid JSON".to_string();
    Ok(match t.as_bytes().first() {
        Some(b'{') => {
            let map: HashMap<String, &RawValue> = serde_json::from_str(t).map_err(invalid)?;
            let mut out = HashMap::with_capacity(map.len());
            for (k, v) in map {
                out.insert(k, json_to_av(v.get(), depth + 1)?);
            }
            AttributeValue::M(out)
        }
        Some(b'[') => {
            let list: Vec<&RawValue> = serde_json::from_str(t).map_err(invalid)?;
            AttributeValue::L(
                list.into_iter()
                    .map(|v| json_to_av(v.get(), depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some(b'"') => AttributeValue::S(serde_json::from_str(t).map_err(invalid)?),
        Some(b't') | Some(b'f') => AttributeValue::Bool(serde_json::from_str(t).map_err(invalid)?),
        Some(b'n') => {
            let () = serde_json::from_str(t).map_err(invalid)?;
            AttributeValue::Null(true)
        }
        Some(_) => {
            let raw: &RawValue = serde_json::from_str(t).map_err(invalid)?;
            AttributeValue::N(plain_number(raw.get(), true)?)
        }
        None => return Err("empty JSON".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Cell {
        Cell::Number(s.into())
    }
    fn s(x: &str) -> Cell {
        Cell::Str(x.into())
    }

    #[test]
    fn numbers_are_exact_and_bounded() {
        assert_eq!(plain_number("0012.500", false).unwrap(), "12.5");
        assert_eq!(plain_number("-0.0", false).unwrap(), "0");
        assert_eq!(plain_number("1.5e3", true).unwrap(), "1500");
        assert_eq!(plain_number("1.25E-3", true).unwrap(), "0.00125");
        assert!(plain_number("1e3", false).is_err());
        assert!(plain_number("12345678901234567890123456789012345678", false).is_ok());
        assert!(plain_number("123456789012345678901234567890123456789", false).is_err());
        assert!(plain_number("abc", false).is_err());
        assert!(plain_number("", false).is_err());
        assert!(plain_number(".", false).is_err());
    }

    #[test]
    fn time_formats() {
        let t = |c: Cell, f| convert(&c, ColumnType::DateTime(f)).unwrap().unwrap();
        assert_eq!(
            t(s("2020-05-30T10:34:43Z"), TimeFormat::Iso),
            AttributeValue::S("2020-05-30T10:34:43.000000Z".into())
        );
        assert_eq!(
            t(s("2020-05-30 10:34:43.5"), TimeFormat::EpochMillis),
            AttributeValue::N("1590834883500".into())
        );
        assert_eq!(
            t(s("2020-05-30T12:34:43+02:00"), TimeFormat::EpochSeconds),
            AttributeValue::N("1590834883".into())
        );
        assert_eq!(
            t(n("1590834883500"), TimeFormat::Iso),
            AttributeValue::S("2020-05-30T10:34:43.500000Z".into())
        );
        assert!(convert(
            &s("0000-00-00 00:00:00"),
            ColumnType::DateTime(TimeFormat::Iso)
        )
        .is_err());
    }

    proptest::proptest! {
        /// The fast ISO path agrees with chrono's general parser and formatter.
        #[test]
        fn fast_iso_agrees_with_chrono(y in 1i32..9999, mo in 1u32..13, d in 1u32..29, h in 0u32..24, mi in 0u32..60, sec in 0u32..60,
                                       frac in proptest::option::of("[0-9]{1,9}"), sep in proptest::bool::ANY,
                                       zone in 0u8..4, oh in 0u32..14, om in 0u32..60) {
            let zone = match zone { 0 => String::new(), 1 => "Z".into(), 2 => format!("+{oh:02}:{om:02}"), _ => format!("-{oh:02}:{om:02}") };
            let text = format!("{y:04}-{mo:02}-{d:02}{}{h:02}:{mi:02}:{sec:02}{}{zone}", if sep { 'T' } else { ' ' },
                               frac.as_ref().map(|f| format!(".{f}")).unwrap_or_default());
            let fast = fast_iso(text.as_bytes());
            let rfc = text.replacen(' ', "T", 1);
            let slow = DateTime::parse_from_rfc3339(&rfc).map(|d| d.naive_utc()).ok().or_else(|| {
                NaiveDateTime::parse_from_str(rfc.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").ok()
            });
            proptest::prop_assert_eq!(fast, slow, "{}", text);
            if let Some(t) = fast {
                proptest::prop_assert_eq!(format_iso(&t), t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
            }
        }
    }

    proptest::proptest! {
        /// No panic on any value, whatever the declared type; and every number accepted is
        /// plain decimal text DynamoDB takes.
        #[test]
        fn conversion_never_panics(text in ".{0,60}", digits in "[-+]?[0-9]{0,45}(\\.[0-9]{0,45})?([eE][-+]?[0-9]{1,4})?", pick in 0usize..16) {
            let types = ["auto", "string", "number", "int", "float", "bool", "datetime", "datetime:epoch_millis",
                "date", "time", "year", "json", "set", "enum", "binary", "binary:base64"];
            let ty = ColumnType::parse(types[pick]).unwrap();
            for cell in [Cell::Str(text.clone()), Cell::Number(text.clone()), Cell::Number(digits.clone()),
                         Cell::Json(text.clone()), Cell::Bytes(text.clone().into_bytes())] {
                if let Ok(Some(AttributeValue::N(n))) = convert(&cell, ty) {
                    proptest::prop_assert!(plain_number(&n, false).is_ok(), "{} -> {}", digits, n);
                }
            }
        }

        /// A key's text written directly is the text of the value `convert` gives.
        #[test]
        fn key_text_written_directly_is_the_converted_text(
            text in "[-+ 0-9.eE:T]{0,30}|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z?",
            pick in 0usize..9,
        ) {
            let types = ["auto", "string", "number", "int", "year", "enum", "time", "datetime", "float"];
            let ty = ColumnType::parse(types[pick]).unwrap();
            for cell in [Cell::Str(text.clone()), Cell::Number(text.clone()), Cell::Json(text.clone())] {
                let mut out = String::from("K#");
                if push_text(&cell, ty, &mut out) {
                    let converted = match convert(&cell, ty) {
                        Ok(Some(AttributeValue::S(s) | AttributeValue::N(s))) => s,
                        other => panic!("{cell:?} as {ty:?}: written directly, converts to {other:?}"),
                    };
                    proptest::prop_assert_eq!(out, format!("K#{converted}"));
                } else {
                    proptest::prop_assert_eq!(out, "K#");
                }
            }
        }

        #[test]
        fn canonical_numbers_take_the_fast_path_unchanged(n in "-?[0-9]{1,40}(\\.[0-9]{1,40})?") {
            if is_canonical_number(&n) {
                // what the general path would produce from the same text
                let mut general = n.clone();
                general.push('0'); // defeat the fast path: a trailing zero is not canonical
                if !n.contains('.') { general.insert(general.len() - 1, '.') }
                proptest::prop_assert_eq!(plain_number(&general, false).ok(), Some(n.clone()));
            }
        }
    }
}
