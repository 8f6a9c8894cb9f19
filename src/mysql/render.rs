//! The one DMS rendering of MySQL values ([`render`]), for rows read with SQL and rows read
//! from the binlog ([`from_binlog`] normalises the latter first), and the way back into
//! [`cdc::Row`] through the DMS decoder's own code ([`row_cells`]): capture, verify and the
//! data-access layer can never disagree on a value.

use mysql_async::Value;
use serde_json::Value as Json;

use super::decode::{decode_text, jsonb_text};
use super::{ColumnInfo, ColumnKind, MysqlError, TableSchema};
use crate::cdc;

/// DMS rendering of one value read with the BINARY protocol (or normalised from the binlog by
/// [`from_binlog`]):
///
/// | column | JSON |
/// |---|---|
/// | integers (incl. BIGINT UNSIGNED) | number, exact |
/// | DECIMAL | string of its exact digits (`"-12.3400000000"`) |
/// | FLOAT / DOUBLE | number, shortest round-trip text of the stored float |
/// | BIT(1) | boolean |
/// | BIT(n>1) | number: the bits as an unsigned big-endian integer |
/// | DATE | `"YYYY-MM-DD"` |
/// | DATETIME(fsp), TIMESTAMP(fsp) | `"YYYY-MM-DDTHH:MM:SS[.f…]Z"` with `fsp` digits; TIMESTAMP in UTC |
/// | TIME(fsp) | `"[-]HH:MM:SS[.f…]"` (hours may exceed 24) |
/// | YEAR | number |
/// | JSON | string holding the JSON text |
/// | ENUM / SET | string (SET comma-separated) |
/// | CHAR / VARCHAR / TEXT | string |
/// | BINARY / VARBINARY / BLOB / other | `"0x"` + upper-case hex (DMS default) |
/// | NULL | null |
pub fn render(col: &ColumnInfo, v: Value) -> Json {
    match v {
        Value::NULL => Json::Null,
        v => render_non_null(col, v),
    }
}

fn render_non_null(col: &ColumnInfo, v: Value) -> Json {
    use ColumnKind as K;
    match (&col.kind, v) {
        (K::Int { unsigned, bytes }, Value::Int(i)) => {
            if *unsigned && i < 0 {
                // The binlog has no signedness without FULL metadata: reinterpret the bits.
                let bits = u32::from(*bytes).min(8) * 8;
                let mask = if bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                Json::from(i as u64 & mask)
            } else {
                Json::from(i)
            }
        }
        (K::Int { .. }, Value::UInt(u)) => Json::from(u),
        (K::Year, Value::Int(i)) => Json::from(i),
        (K::Year, Value::UInt(u)) => Json::from(u),
        (K::Int { .. } | K::Year, Value::Bytes(b)) => number_from_text(&b),
        (K::Decimal { .. }, Value::Bytes(b)) => Json::String(String::from_utf8_lossy(&b).into()),
        (K::Decimal { .. }, Value::Int(i)) => Json::String(i.to_string()),
        (K::Decimal { .. }, Value::UInt(u)) => Json::String(u.to_string()),
        (K::Float, Value::Float(f)) => float_json(f.to_string()),
        (K::Float, Value::Double(d)) => float_json((d as f32).to_string()),
        (K::Double, Value::Double(d)) => float_json(d.to_string()),
        (K::Double, Value::Float(f)) => float_json(f.to_string()),
        (K::Float | K::Double, Value::Bytes(b)) => number_from_text(&b),
        (K::Bit { bits }, Value::Bytes(b)) => {
            let n = b.iter().fold(0u128, |acc, &x| (acc << 8) | u128::from(x));
            if *bits == 1 {
                Json::Bool(n != 0)
            } else {
                Json::from(n.min(u128::from(u64::MAX)) as u64)
            }
        }
        (K::Bit { bits }, Value::Int(i)) if *bits == 1 => Json::Bool(i != 0),
        (K::Bit { bits }, Value::UInt(i)) if *bits == 1 => Json::Bool(i != 0),
        (K::Bit { .. }, Value::Int(i)) => Json::from(i),
        (K::Bit { .. }, Value::UInt(u)) => Json::from(u),
        (K::Date, Value::Date(y, m, d, ..)) => Json::String(format!("{y:04}-{m:02}-{d:02}")),
        (K::DateTime { fsp } | K::Timestamp { fsp }, Value::Date(y, mo, d, h, mi, s, us)) => {
            Json::String(format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{}Z",
                fraction(us, *fsp)
            ))
        }
        (K::Time { fsp }, Value::Time(neg, days, h, m, s, us)) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            Json::String(format!(
                "{}{hours:02}:{m:02}:{s:02}{}",
                if neg { "-" } else { "" },
                fraction(us, *fsp)
            ))
        }
        (K::Text | K::Enum { .. } | K::Set { .. }, Value::Bytes(b)) => Json::String(text(b)),
        // One normal form for JSON text, whoever reads it (see mapping::normalize_json);
        // text that is not JSON (a MariaDB LONGTEXT without its check) is kept as it is.
        (K::Json, Value::Bytes(b)) => {
            let t = text(b);
            Json::String(crate::mapping::normalize_json(&t).unwrap_or(t))
        }
        (K::Enum { values }, Value::Int(i)) => Json::String(enum_name(values, i)),
        (K::Binary { .. } | K::Other(_), Value::Bytes(b)) => Json::String(hex0x(&b)),
        // Anything else is a protocol form this table does not expect: keep it readable
        // rather than fail the row.
        (_, v) => fallback(v),
    }
}

/// `us` microseconds with `fsp` digits (truncated; the column holds no more).
fn fraction(us: u32, fsp: u32) -> String {
    if fsp == 0 {
        return String::new();
    }
    let digits = format!("{:06}", us.min(999_999));
    format!(".{}", &digits[..(fsp.min(6) as usize)])
}

/// The number in a text-protocol value, kept exact: integers as numbers, others as strings.
fn number_from_text(b: &[u8]) -> Json {
    let s = String::from_utf8_lossy(b);
    if let Ok(i) = s.parse::<i64>() {
        Json::from(i)
    } else if let Ok(u) = s.parse::<u64>() {
        Json::from(u)
    } else {
        float_json(s.into_owned())
    }
}

/// Shortest round-trip text (`f32`/`f64` Display) → a JSON number with those digits.
fn float_json(text: String) -> Json {
    match text
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        Some(n) => Json::Number(n),
        None => Json::String(text),
    }
}

fn enum_name(values: &[String], index: i64) -> String {
    // Index 0 is the empty "error" value MySQL stores for invalid input.
    usize::try_from(index)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| values.get(i))
        .cloned()
        .unwrap_or_default()
}

/// Text bytes as a string: values read with SQL arrive in the connection's utf8mb4, and
/// binlog values were decoded from their column's character set by [`from_binlog`].
fn text(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// `0x` + upper-case hex, as DMS writes binary without NoHexPrefix.
fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode_upper(b))
}

fn fallback(v: Value) -> Json {
    match v {
        Value::NULL => Json::Null,
        Value::Int(i) => Json::from(i),
        Value::UInt(u) => Json::from(u),
        Value::Float(f) => float_json(f.to_string()),
        Value::Double(d) => float_json(d.to_string()),
        Value::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => Json::String(s),
            Err(e) => Json::String(hex0x(e.as_bytes())),
        },
        Value::Date(y, mo, d, h, mi, s, us) => Json::String(format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z"
        )),
        Value::Time(neg, days, h, m, s, us) => Json::String(format!(
            "{}{:02}:{m:02}:{s:02}.{us:06}",
            if neg { "-" } else { "" },
            u64::from(days) * 24 + u64::from(h)
        )),
    }
}

/// A binlog row value in the form the binary protocol would have returned, so [`render`]
/// has one input form: ENUM index → name, SET bitmask → `a,b`, TIMESTAMP epoch seconds →
/// UTC date-time, YEAR text → number, BINARY(n) zero padding restored, MySQL binary JSON →
/// JSON text. Errors name the problem, not the value.
pub fn from_binlog(
    col: &ColumnInfo,
    v: mysql_async::binlog::value::BinlogValue<'_>,
) -> Result<Value, String> {
    use mysql_async::binlog::value::BinlogValue as B;
    use ColumnKind as K;
    let v = match v {
        B::Value(v) => v,
        B::Jsonb(j) => return Ok(Value::Bytes(jsonb_text(j)?.into_bytes())),
        B::JsonDiff(_) => {
            return Err(
                "partial JSON update in the binlog: set binlog_row_value_options='' so rows carry full JSON values"
                    .into(),
            )
        }
    };
    Ok(match (&col.kind, v) {
        (_, Value::NULL) => Value::NULL,
        // The binlog holds text in its column's character set; rendering takes UTF-8.
        (K::Text | K::Json, Value::Bytes(b)) => {
            Value::Bytes(decode_text(col.charset.as_deref(), b)?.into_bytes())
        }
        (K::Enum { values }, Value::Int(i)) => Value::Bytes(enum_name(values, i).into_bytes()),
        (K::Set { values }, Value::Bytes(mask)) => {
            // Little-endian bitmask, bit i = values[i].
            let names: Vec<&str> = values
                .iter()
                .enumerate()
                .filter(|(i, _)| mask.get(i / 8).is_some_and(|byte| byte >> (i % 8) & 1 == 1))
                .map(|(_, v)| v.as_str())
                .collect();
            Value::Bytes(names.join(",").into_bytes())
        }
        (K::Timestamp { .. }, Value::Bytes(b)) => {
            let s = String::from_utf8_lossy(&b);
            let (secs, frac) = s.split_once('.').unwrap_or((&s, ""));
            let secs: i64 = secs
                .parse()
                .map_err(|_| "TIMESTAMP: not epoch seconds".to_string())?;
            let us: u32 = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<6}")[..6]
                    .parse()
                    .map_err(|_| "TIMESTAMP: bad fraction".to_string())?
            };
            let t = chrono::DateTime::from_timestamp(secs, us * 1000)
                .ok_or_else(|| "TIMESTAMP out of range".to_string())?
                .naive_utc();
            use chrono::{Datelike, Timelike};
            Value::Date(
                t.year().clamp(0, 9999) as u16,
                t.month() as u8,
                t.day() as u8,
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                us,
            )
        }
        (K::Year, Value::Bytes(b)) => {
            let y: i64 = String::from_utf8_lossy(&b)
                .parse()
                .map_err(|_| "YEAR: not a number".to_string())?;
            // YEAR 0000 is stored as 0 and decoded as 1900 + 0.
            Value::Int(if y == 1900 { 0 } else { y })
        }
        (K::Binary { fixed: Some(n) }, Value::Bytes(mut b)) => {
            if b.len() < *n as usize {
                b.resize(*n as usize, 0);
            }
            Value::Bytes(b)
        }
        (_, v) => v,
    })
}

/// A rendered row: (column, DMS JSON value) in schema order.
pub type RenderedRow = Vec<(String, Json)>;

/// The rendered values of a row read with the BINARY protocol (conn.exec*), in the row's
/// column order (schema order when selected with [`select_list`](super::select_list)).
pub fn row_values(schema: &TableSchema, row: mysql_async::Row) -> Result<RenderedRow, MysqlError> {
    let names: Vec<String> = row
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    let values = row.unwrap();
    let mut data = Vec::with_capacity(values.len());
    for (name, value) in names.into_iter().zip(values) {
        let col = schema.column(&name).ok_or_else(|| MysqlError::Schema {
            schema: schema.schema.clone(),
            table: schema.table.clone(),
            message: format!(
                "column {name} is not in the table's schema (changed since it was read?)"
            ),
        })?;
        data.push((name, render(col, value)));
    }
    Ok(data)
}

/// The DMS `data` object of a row read with the BINARY protocol (conn.exec*). The values are
/// those of [`row_values`]; a `serde_json::Map` orders keys by name (this crate does not enable
/// serde_json's `preserve_order`), so records are written from [`row_values`] / [`data_json`],
/// which keep schema order.
pub fn row_data(
    schema: &TableSchema,
    row: mysql_async::Row,
) -> Result<serde_json::Map<String, Json>, MysqlError> {
    Ok(row_values(schema, row)?.into_iter().collect())
}

/// The cdc::Row that cdc::dms would decode from `row_data`'s JSON, produced by the DMS
/// decoder's own JSON → Cell code, so capture → run and verify/access can never disagree.
/// Columns are in schema order, as `cutover run` sees them.
pub fn row_cells(schema: &TableSchema, row: mysql_async::Row) -> Result<cdc::Row, MysqlError> {
    cells_of(&row_values(schema, row)?)
}

/// A rendered row as JSON object text, keys in the given order.
pub fn data_json(values: &[(String, Json)]) -> String {
    let mut out = String::with_capacity(values.len() * 24);
    out.push('{');
    for (i, (k, v)) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Serialising a str or a Value into a String cannot fail.
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        out.push_str(&serde_json::to_string(v).unwrap_or_default());
    }
    out.push('}');
    out
}

/// A rendered row as the DMS decoder decodes it.
pub fn cells_of(values: &[(String, Json)]) -> Result<cdc::Row, MysqlError> {
    cdc::dms::row_from_json(&data_json(values)).map_err(|e| MysqlError::Value {
        column: "*".into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: ColumnKind) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            kind,
            nullable: true,
            column_type: String::new(),
            charset: Some("utf8mb4".into()),
        }
    }

    fn r(kind: ColumnKind, v: Value) -> String {
        render(&col(kind), v).to_string()
    }

    #[test]
    fn integers_exact_and_unsigned() {
        let int = |unsigned, bytes| ColumnKind::Int { unsigned, bytes };
        assert_eq!(r(int(false, 4), Value::Int(-5)), "-5");
        assert_eq!(
            r(int(true, 8), Value::UInt(u64::MAX)),
            "18446744073709551615"
        );
        // Signed bits from a binlog without signedness metadata.
        assert_eq!(r(int(true, 8), Value::Int(-1)), "18446744073709551615");
        assert_eq!(r(int(true, 1), Value::Int(-1)), "255");
        assert_eq!(r(int(true, 3), Value::Int(-1)), "16777215");
        assert_eq!(r(int(false, 8), Value::Bytes(b"-42".to_vec())), "-42");
    }

    #[test]
    fn decimals_keep_every_digit_as_a_string() {
        let d = ColumnKind::Decimal {
            precision: 38,
            scale: 10,
        };
        assert_eq!(
            r(
                d.clone(),
                Value::Bytes(b"1234567890123456789012345678.0123456789".to_vec())
            ),
            "\"1234567890123456789012345678.0123456789\""
        );
        assert_eq!(
            r(d, Value::Bytes(b"-0.0000000001".to_vec())),
            "\"-0.0000000001\""
        );
    }

    #[test]
    fn floats_shortest_round_trip() {
        assert_eq!(r(ColumnKind::Float, Value::Float(0.1)), "0.1");
        assert_eq!(
            r(ColumnKind::Float, Value::Float(3.4028235e38)),
            "3.4028235e+38"
        );
        assert_eq!(r(ColumnKind::Double, Value::Double(0.1)), "0.1");
        assert_eq!(r(ColumnKind::Double, Value::Double(-1.5e-300)), "-1.5e-300");
        assert_eq!(r(ColumnKind::Double, Value::Double(2.0)), "2.0");
    }

    #[test]
    fn bits() {
        assert_eq!(
            r(ColumnKind::Bit { bits: 1 }, Value::Bytes(vec![1])),
            "true"
        );
        assert_eq!(
            r(ColumnKind::Bit { bits: 1 }, Value::Bytes(vec![0])),
            "false"
        );
        assert_eq!(
            r(ColumnKind::Bit { bits: 12 }, Value::Bytes(vec![0x0A, 0xBC])),
            "2748"
        );
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(
            r(ColumnKind::Date, Value::Date(2024, 2, 29, 0, 0, 0, 0)),
            "\"2024-02-29\""
        );
        assert_eq!(
            r(
                ColumnKind::DateTime { fsp: 6 },
                Value::Date(2024, 2, 29, 23, 59, 58, 123456)
            ),
            "\"2024-02-29T23:59:58.123456Z\""
        );
        assert_eq!(
            r(
                ColumnKind::DateTime { fsp: 0 },
                Value::Date(1999, 1, 2, 3, 4, 5, 0)
            ),
            "\"1999-01-02T03:04:05Z\""
        );
        assert_eq!(
            r(
                ColumnKind::Timestamp { fsp: 3 },
                Value::Date(2024, 1, 1, 0, 0, 0, 120000)
            ),
            "\"2024-01-01T00:00:00.120Z\""
        );
        assert_eq!(
            r(
                ColumnKind::Time { fsp: 0 },
                Value::Time(true, 1, 2, 3, 4, 0)
            ),
            "\"-26:03:04\""
        );
        assert_eq!(
            r(
                ColumnKind::Time { fsp: 2 },
                Value::Time(false, 0, 12, 0, 0, 500000)
            ),
            "\"12:00:00.50\""
        );
        assert_eq!(r(ColumnKind::Year, Value::Int(2024)), "2024");
        assert_eq!(r(ColumnKind::Year, Value::Bytes(b"1999".to_vec())), "1999");
    }

    #[test]
    fn strings_json_enum_set_binary_null() {
        assert_eq!(
            r(ColumnKind::Text, Value::Bytes("héllo".into())),
            "\"héllo\""
        );
        assert_eq!(
            r(
                ColumnKind::Json,
                Value::Bytes(br#"{"a": [1, 2.50]}"#.to_vec())
            ),
            r#""{\"a\":[1,2.5]}""#,
            "JSON text in its one normal form"
        );
        let e = ColumnKind::Enum {
            values: vec!["a".into(), "b".into()],
        };
        assert_eq!(r(e.clone(), Value::Bytes(b"b".to_vec())), "\"b\"");
        assert_eq!(r(e.clone(), Value::Int(2)), "\"b\"");
        assert_eq!(r(e, Value::Int(0)), "\"\"");
        let s = ColumnKind::Set {
            values: vec!["x".into(), "y".into()],
        };
        assert_eq!(r(s, Value::Bytes(b"x,y".to_vec())), "\"x,y\"");
        assert_eq!(
            r(
                ColumnKind::Binary { fixed: None },
                Value::Bytes(vec![0, 0xAB, 0x0A])
            ),
            "\"0x00AB0A\""
        );
        assert_eq!(
            r(ColumnKind::Other("geometry".into()), Value::Bytes(vec![1])),
            "\"0x01\""
        );
        assert_eq!(r(ColumnKind::Text, Value::NULL), "null");
        assert_eq!(
            r(
                ColumnKind::Decimal {
                    precision: 5,
                    scale: 2
                },
                Value::NULL
            ),
            "null"
        );
    }

    #[test]
    fn latin1_binlog_text() {
        use mysql_async::binlog::value::BinlogValue as B;
        let mut c = col(ColumnKind::Text);
        c.charset = Some("latin1".into());
        let v = from_binlog(
            &c,
            B::Value(Value::Bytes(vec![0x63, 0x61, 0x66, 0xE9, 0x80])),
        )
        .unwrap();
        assert_eq!(render(&c, v), "café€");
    }

    #[test]
    fn binlog_values_normalised() {
        use mysql_async::binlog::value::BinlogValue as B;
        let set = col(ColumnKind::Set {
            values: vec!["x".into(), "y".into(), "z".into()],
        });
        assert_eq!(
            from_binlog(&set, B::Value(Value::Bytes(vec![0b101]))).unwrap(),
            Value::Bytes(b"x,z".to_vec())
        );
        let e = col(ColumnKind::Enum {
            values: vec!["a".into(), "b".into()],
        });
        assert_eq!(
            from_binlog(&e, B::Value(Value::Int(1))).unwrap(),
            Value::Bytes(b"a".to_vec())
        );
        let ts = col(ColumnKind::Timestamp { fsp: 6 });
        let v = from_binlog(&ts, B::Value(Value::Bytes(b"1700000000.000120".to_vec()))).unwrap();
        assert_eq!(
            render(&ts, v).to_string(),
            "\"2023-11-14T22:13:20.000120Z\""
        );
        let y = col(ColumnKind::Year);
        assert_eq!(
            from_binlog(&y, B::Value(Value::Bytes(b"2024".to_vec()))).unwrap(),
            Value::Int(2024)
        );
        let bin = col(ColumnKind::Binary { fixed: Some(4) });
        assert_eq!(
            from_binlog(&bin, B::Value(Value::Bytes(vec![1]))).unwrap(),
            Value::Bytes(vec![1, 0, 0, 0])
        );
        assert!(from_binlog(&ts, B::Value(Value::Bytes(b"x".to_vec()))).is_err());
    }

    #[test]
    fn cells_go_through_the_dms_decoder() {
        let data = vec![
            ("d".to_string(), Json::String("1.50".into())),
            ("n".to_string(), Json::from(7)),
            ("b".to_string(), Json::Bool(true)),
            ("x".to_string(), Json::Null),
        ];
        let row = cells_of(&data).unwrap();
        assert_eq!(
            row.0,
            vec![
                ("d".to_string(), cdc::Cell::Str("1.50".into())),
                ("n".to_string(), cdc::Cell::Number("7".into())),
                ("b".to_string(), cdc::Cell::Bool(true)),
                ("x".to_string(), cdc::Cell::Null),
            ]
        );
    }
}
