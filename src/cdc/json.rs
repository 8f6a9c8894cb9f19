//! The JSON plumbing both decoders share: one borrowed pass over the record (`Shape`,
//! `RawRow`, `Text`), the producer-independent cell conversion, and error helpers that name
//! the field and never echo a row value at length.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{Cell, DecodeError, Row};

/// A JSON value that should be an object: either the object read as `T`, or what it was
/// instead, so the caller can say `"<field>: expected an object, got a string"` without the
/// serde wording. (Relies on serde_json without `arbitrary_precision`, as in this crate.)
pub(super) enum Shape<T> {
    Obj(T),
    Null,
    Other(&'static str),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shape<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShapeVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapeVisitor<T> {
            type Value = Shape<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Shape::Obj)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Shape::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Shape::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Shape::Other("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Shape::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Shape::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Shape::Other("a number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Shape::Other("a string"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Shape::Other("an array"))
            }
        }
        deserializer.deserialize_any(ShapeVisitor(PhantomData))
    }
}

/// `field` must be present and an object.
pub(super) fn required_object<T>(value: Option<Shape<T>>, field: &str) -> Result<T, DecodeError> {
    match value {
        Some(Shape::Obj(v)) => Ok(v),
        None => Err(DecodeError::new(format!("{field}: missing"))),
        Some(Shape::Null) => Err(DecodeError::new(format!(
            "{field}: expected an object, got null"
        ))),
        Some(Shape::Other(kind)) => Err(DecodeError::new(format!(
            "{field}: expected an object, got {kind}"
        ))),
    }
}

pub(super) fn not_an_object_at_top(kind: &str) -> DecodeError {
    DecodeError::new(format!("expected a JSON object, got {kind}"))
}

/// A JSON value's raw text, validated by whoever captured it: serde_json ([`RawValue`], the
/// general path) or the DMS decoder's scanner (`str`, its fast path). The helpers below take
/// either, so both paths share every rule about values.
pub(super) trait RawText {
    fn text(&self) -> &str;
    /// The form a serde-captured value takes in a [`RawRow`] of this kind.
    fn from_raw(raw: &RawValue) -> &Self;
}

impl RawText for RawValue {
    fn text(&self) -> &str {
        self.get()
    }
    fn from_raw(raw: &RawValue) -> &Self {
        raw
    }
}

impl RawText for str {
    fn text(&self) -> &str {
        self
    }
    fn from_raw(raw: &RawValue) -> &Self {
        raw.get()
    }
}

/// A string (an object key or value), borrowed from the input unless it has escapes.
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}

/// A row as it is on the wire: column names and raw JSON values, in order. A repeated column
/// is kept aside so the error can name the row it is in.
pub(super) struct RawRow<'a, V: ?Sized = RawValue> {
    pub(super) columns: Vec<(Cow<'a, str>, &'a V)>,
    pub(super) duplicate: Option<Cow<'a, str>>,
}

impl<'a, V: ?Sized> RawRow<'a, V> {
    pub(super) fn with_capacity(n: usize) -> Self {
        RawRow {
            columns: Vec::with_capacity(n),
            duplicate: None,
        }
    }

    /// Add the next column; the first repeated name is kept aside (see [`RawRow::into_columns`]).
    pub(super) fn push(&mut self, name: Cow<'a, str>, value: &'a V) {
        if self.duplicate.is_none() && self.columns.iter().any(|(c, _)| *c == name) {
            self.duplicate = Some(name);
        } else {
            self.columns.push((name, value));
        }
    }

    /// The columns, or the error for a repeated one. `side` names the row.
    pub(super) fn into_columns(
        self,
        side: &str,
    ) -> Result<Vec<(Cow<'a, str>, &'a V)>, DecodeError> {
        match self.duplicate {
            None => Ok(self.columns),
            Some(name) => Err(DecodeError::new(format!(
                "{side}: duplicate column {}",
                quoted(&name)
            ))),
        }
    }
}

impl<'de: 'a, 'a, V: RawText + ?Sized + 'a> Deserialize<'de> for RawRow<'a, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor<'a, V: ?Sized>(PhantomData<&'a V>);
        impl<'de: 'a, 'a, V: RawText + ?Sized + 'a> Visitor<'de> for RowVisitor<'a, V> {
            type Value = RawRow<'a, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a row object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut row = RawRow::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(Text(name)) = map.next_key()? {
                    let value: &'a RawValue = map.next_value()?;
                    row.push(name, V::from_raw(value));
                }
                Ok(row)
            }
        }
        deserializer.deserialize_map(RowVisitor(PhantomData))
    }
}

/// A row with every value converted by [`generic_cell`]. `side` names the row in errors.
pub(super) fn generic_row<V: RawText + ?Sized>(
    raw: RawRow<V>,
    side: &str,
) -> Result<Row, DecodeError> {
    let columns = raw.into_columns(side)?;
    let mut row = Vec::with_capacity(columns.len());
    for (name, value) in columns {
        let cell =
            generic_cell(value).map_err(|e| DecodeError::new(format!("{side}.{name}: {e}")))?;
        row.push((name.into_owned(), cell));
    }
    Ok(Row(row))
}

/// The producer-independent conversion, by the value's first byte: strings are unescaped,
/// numbers keep their exact text, objects and arrays become compact JSON text.
pub(super) fn generic_cell<V: RawText + ?Sized>(raw: &V) -> Result<Cell, serde_json::Error> {
    let text = raw.text();
    Ok(match first_byte(raw) {
        b'"' => Cell::Str(unquote(raw)?.into_owned()),
        b'n' => Cell::Null,
        b't' => Cell::Bool(true),
        b'f' => Cell::Bool(false),
        b'{' | b'[' => Cell::Json(compact_json(text)),
        _ => Cell::Number(text.to_owned()),
    })
}

/// The first byte of a raw value (serde_json never captures leading whitespace).
pub(super) fn first_byte<V: RawText + ?Sized>(raw: &V) -> u8 {
    raw.text().as_bytes().first().copied().unwrap_or(b' ')
}

/// What kind of JSON value this is, for error messages.
pub(super) fn kind<V: RawText + ?Sized>(raw: &V) -> &'static str {
    match first_byte(raw) {
        b'"' => "a string",
        b'n' => "null",
        b't' | b'f' => "a boolean",
        b'{' => "an object",
        b'[' => "an array",
        _ => "a number",
    }
}

/// The contents of a raw JSON string, borrowed when there is nothing to unescape.
pub(super) fn unquote<V: RawText + ?Sized>(raw: &V) -> Result<Cow<'_, str>, serde_json::Error> {
    let text = raw.text();
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        if !inner.contains('\\') {
            return Ok(Cow::Borrowed(inner));
        }
    }
    serde_json::from_str::<String>(text).map(Cow::Owned)
}

/// `raw` must be a string; `field` names it in the error.
pub(super) fn string_field<'a, V: RawText + ?Sized>(
    raw: &'a V,
    field: &str,
) -> Result<Cow<'a, str>, DecodeError> {
    if first_byte(raw) != b'"' {
        return Err(DecodeError::new(format!(
            "{field}: expected a string, got {}",
            kind(raw)
        )));
    }
    unquote(raw).map_err(|e| DecodeError::new(format!("{field}: {e}")))
}

/// A non-negative integer, sent as a JSON number or as a string of digits.
pub(super) fn unsigned_field<V: RawText + ?Sized>(
    raw: &V,
    field: &str,
) -> Result<u64, DecodeError> {
    let text = match first_byte(raw) {
        b'"' => string_field(raw, field)?,
        _ => Cow::Borrowed(raw.text()),
    };
    parse_digits(&text).ok_or_else(|| {
        DecodeError::new(format!(
            "{field}: expected a non-negative integer, got {}",
            raw.text()
        ))
    })
}

/// A name that must be a non-empty string.
pub(super) fn required_name<V: RawText + ?Sized>(
    raw: Option<&V>,
    field: &str,
) -> Result<String, DecodeError> {
    let raw = raw.ok_or_else(|| DecodeError::new(format!("{field}: missing")))?;
    let name = string_field(raw, field)?;
    if name.is_empty() {
        return Err(DecodeError::new(format!("{field}: empty")));
    }
    Ok(name.into_owned())
}

/// For control records, which must never fail: a string as is, absent or null as `""`,
/// anything else as its JSON text.
pub(super) fn lenient_string<V: RawText + ?Sized>(raw: Option<&V>) -> String {
    match raw {
        None => String::new(),
        Some(raw) => match first_byte(raw) {
            b'n' => String::new(),
            b'"' => unquote(raw).map_or_else(|_| raw.text().to_owned(), Cow::into_owned),
            _ => raw.text().to_owned(),
        },
    }
}

/// A value quoted for an error message, cut short if long.
pub(super) fn quoted(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}…", s.get(..cut).unwrap_or(s)),
    }
}

/// Valid JSON text without the whitespace outside strings; escapes and key order are kept.
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        out.push(c);
    }
    out
}

/// The record as text. Validating it once up front is cheaper than letting serde_json's slice
/// reader validate every string and raw value on its own.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(bytes)
        .map_err(|e| DecodeError::new(format!("not JSON: invalid UTF-8: {e}")))
}

/// A serde_json error as a decode reason.
pub(crate) fn json_error(e: &serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax => DecodeError::new(format!("not JSON: {e}")),
        Category::Eof => DecodeError::new(format!("truncated JSON: {e}")),
        Category::Data | Category::Io => DecodeError::new(e.to_string()),
    }
}

/// Only ASCII digits (no sign, no spaces), fitting a `u64`.
pub(super) fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(super) fn integer<V: RawText + ?Sized>(raw: &V) -> Result<i64, String> {
    let text = raw.text();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if parse_digits(digits).is_none() {
        return Err(format!("expected an integer, got {}", short(raw)));
    }
    text.parse()
        .map_err(|_| format!("integer out of range: {}", short(raw)))
}

/// A raw value for an error message, cut short if long.
pub(super) fn short<V: RawText + ?Sized>(raw: &V) -> String {
    let text = raw.text();
    match text.char_indices().nth(64) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_nested_json_keeping_strings() {
        assert_eq!(
            compact_json("{ \"a\" : [1, 2.50 ,\n\"x y\\\" z\"], \"b\":{} }"),
            "{\"a\":[1,2.50,\"x y\\\" z\"],\"b\":{}}"
        );
    }

    #[test]
    fn generic_cells() {
        let cell = |s: &str| {
            let raw: &RawValue = serde_json::from_str(s).unwrap();
            generic_cell(raw).unwrap()
        };
        assert_eq!(cell("12"), Cell::Number("12".into()));
        assert_eq!(cell("-0.10"), Cell::Number("-0.10".into()));
        assert_eq!(
            cell("1.2345678901234567e+18"),
            Cell::Number("1.2345678901234567e+18".into())
        );
        assert_eq!(cell("1e400"), Cell::Number("1e400".into()));
        assert_eq!(cell("\"a\\u00e9\\n\""), Cell::Str("aé\n".into()));
        assert_eq!(cell("\"0x0A\""), Cell::Str("0x0A".into()));
        assert_eq!(cell("true"), Cell::Bool(true));
        assert_eq!(cell("null"), Cell::Null);
        assert_eq!(
            cell("[1, {\"k\": null}]"),
            Cell::Json("[1,{\"k\":null}]".into())
        );
    }

    #[test]
    fn unsigned_fields() {
        let f = |s: &str| {
            let raw: &RawValue = serde_json::from_str(s).unwrap();
            unsigned_field(raw, "x")
        };
        assert_eq!(f("7"), Ok(7));
        assert_eq!(f("\"7\""), Ok(7));
        assert!(f("-7").is_err());
        assert!(f("7.0").is_err());
        assert!(f("\"\"").is_err());
        assert!(f("true").is_err());
    }

    #[test]
    fn quoted_cuts_long_values() {
        assert_eq!(quoted("upsert"), "\"upsert\"");
        assert_eq!(quoted(&"é".repeat(100)), format!("\"{}\"…", "é".repeat(64)));
    }
}
