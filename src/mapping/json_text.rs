//! The one normal form of JSON text, shared by every path that holds a JSON column as text:
//! capture (snapshot and binlog), verify and the data-access layer read MySQL rows through
//! `mysql::render`, which normalizes with [`normalize_json`]; an item's JSON attribute goes back
//! to text with [`av_json_text`]. Both write the same text for the same value, so no path sees
//! a difference that is only spacing, key order or the spelling of a number.
//!
//! The form: no whitespace; object keys sorted (by code point, as `BTreeMap` orders them);
//! strings re-escaped by serde_json; numbers exact and plain (DynamoDB's form,
//! [`plain_number`]: `1.10` → `1.1`, `1.5e3` → `1500`), kept as written when they have more
//! digits than DynamoDB holds.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::value::RawValue;

use super::convert::plain_number;

/// Deeper than this is refused (serde_json's own limit is 128).
const MAX_DEPTH: usize = 100;

/// JSON text in its normal form; an error (never echoing the value) when it is not JSON.
pub fn normalize_json(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    write_normal(text, 0, &mut out)?;
    Ok(out)
}

fn write_normal(text: &str, depth: usize, out: &mut String) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("JSON nested deeper than {MAX_DEPTH} levels"));
    }
    let t = text.trim();
    let invalid = |_| "invalid JSON".to_string();
    match t.as_bytes().first() {
        Some(b'{') => {
            let map: BTreeMap<String, &RawValue> = serde_json::from_str(t).map_err(invalid)?;
            out.push('{');
            for (i, (k, v)) in map.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(&k, out);
                out.push(':');
                write_normal(v.get(), depth + 1, out)?;
            }
            out.push('}');
        }
        Some(b'[') => {
            let list: Vec<&RawValue> = serde_json::from_str(t).map_err(invalid)?;
            out.push('[');
            for (i, v) in list.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_normal(v.get(), depth + 1, out)?;
            }
            out.push(']');
        }
        Some(b'"') => {
            let s: String = serde_json::from_str(t).map_err(invalid)?;
            push_string(&s, out);
        }
        Some(b't' | b'f' | b'n') => {
            let v: serde_json::Value = serde_json::from_str(t).map_err(invalid)?;
            out.push_str(&v.to_string());
        }
        Some(_) => {
            let raw: &RawValue = serde_json::from_str(t).map_err(invalid)?;
            push_number(raw.get(), out);
        }
        None => return Err("empty JSON".into()),
    }
    Ok(())
}

fn push_string(s: &str, out: &mut String) {
    // Serialising a str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn push_number(n: &str, out: &mut String) {
    match plain_number(n, true) {
        Ok(p) => out.push_str(&p),
        Err(_) => out.push_str(n),
    }
}

/// A JSON-typed attribute (an item's map or list) as normal-form JSON text, numbers exact:
/// the text [`normalize_json`] makes of the JSON the attribute was converted from.
pub fn av_json_text(v: &AttributeValue) -> String {
    let mut out = String::new();
    write_av(v, &mut out);
    out
}

fn write_av(v: &AttributeValue, out: &mut String) {
    match v {
        AttributeValue::S(s) => push_string(s, out),
        AttributeValue::N(n) => push_number(n, out),
        AttributeValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AttributeValue::L(l) => {
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_av(x, out);
            }
            out.push(']');
        }
        AttributeValue::M(m) => {
            let sorted: BTreeMap<&String, &AttributeValue> = m.iter().collect();
            out.push('{');
            for (i, (k, x)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(k, out);
                out.push(':');
                write_av(x, out);
            }
            out.push('}');
        }
        AttributeValue::Ss(s) => {
            let list: Vec<AttributeValue> = s.iter().cloned().map(AttributeValue::S).collect();
            write_av(&AttributeValue::L(list), out);
        }
        AttributeValue::B(b) => push_string(&format!("0x{}", hex::encode_upper(b.as_ref())), out),
        _ => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_form_for_spacing_order_and_number_spelling() {
        let a = normalize_json(
            r#" { "b" : [1.10, 2, "x\u00e9"], "a": {"z": null, "y": true}, "n": 1.5e3 } "#,
        )
        .unwrap();
        assert_eq!(a, r#"{"a":{"y":true,"z":null},"b":[1.1,2,"xé"],"n":1500}"#);
        let b = normalize_json(r#"{"n":1500,"a":{"z":null,"y":true},"b":[1.1,2,"xé"]}"#).unwrap();
        assert_eq!(a, b);
        // Exact: no float rounding of long decimals, big integers stay integers.
        assert_eq!(
            normalize_json(r#"{"d": 12345678901234567890.123456789, "u": 18446744073709551615}"#)
                .unwrap(),
            r#"{"d":12345678901234567890.123456789,"u":18446744073709551615}"#
        );
        assert!(normalize_json("{nope").is_err());
        assert!(normalize_json("").is_err());
    }

    #[test]
    fn attributes_write_the_same_text() {
        let text = r#"{"b":[1.10,"2024-01-02 03:04:05.000006"],"a":12345678901234567890.5}"#;
        let av = super::super::convert::convert(
            &crate::cdc::Cell::Str(text.into()),
            super::super::ColumnType::Json,
        )
        .unwrap()
        .unwrap();
        assert_eq!(av_json_text(&av), normalize_json(text).unwrap());
    }
}
