//! AWS DMS JSON records (Kafka target) → [`Decoded`].
//!
//! The envelope is `{"data": {..}, "metadata": {..}}` for row changes and
//! `{"control": {..}, "metadata": {..}}` for table-definition changes; a before-image object may
//! sit next to `data` under any other key (`BeforeImageSettings.FieldName`, usually
//! `before-image`). See `shared/reference/aws-dms-kafka-format.md`.
//!
//! Invariants:
//! - One borrowed, typed pass over the bytes: column values are captured as raw JSON text and
//!   classified by their first byte, so numbers keep their exact text and nothing goes through
//!   `f64` or `serde_json::Value`. The pass is `cdc::scan`'s hand-written scanner for the
//!   records DMS writes; anything it does not take is read by serde_json, which words the
//!   error. Both build the same envelope, and everything after it is shared.
//! - Values are not typed here: `0x..` hex binary, numbers sent as strings, and BIGINTs in
//!   scientific notation (no `UseLargeIntegerValue`) all come out as DMS wrote them; the mapping
//!   layer types them from the declared column types and rejects what cannot be exact.
//! - A control record is never an error as long as it is a JSON object with `metadata`.
//! - Every problem is a [`DecodeError`] naming the field; nothing here panics on any input.
//!

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::binlog_file_seq;
use super::json::{
    first_byte, generic_row, json_error, kind, lenient_string, not_an_object_at_top, parse_digits,
    quoted, required_name, required_object, string_field, unsigned_field, utf8, RawRow, Shape,
    Text,
};
use super::scan;
use super::{ChangeEvent, ControlRecord, DecodeError, Decoded, Op, Row, SourcePosition, TableRef};

/// The `data` object of a DMS record (JSON text) → [`Row`], by the same code [`decode`] uses,
/// so anything that renders rows as DMS does (`mysql::row_cells`) decodes them identically.
pub fn row_from_json(text: &str) -> Result<Row, DecodeError> {
    let raw = match scan::row(text) {
        Some(row) => Shape::Obj(row),
        None => serde_json::from_str::<Shape<RawRow<str>>>(text).map_err(|e| json_error(&e))?,
    };
    generic_row(required_object(Some(raw), "data")?, "data")
}

/// Decode one DMS record value.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let text = utf8(bytes)?;
    match scan::envelope(text) {
        Some(env) => from_envelope(env),
        None => decode_general(text),
    }
}

/// The record's envelope when it is a DMS record the fast scanner reads (a JSON object with
/// `metadata`): `cdc::decode`'s auto-detection takes that as the answer.
pub(super) fn fast(bytes: &[u8]) -> Option<Result<Decoded, DecodeError>> {
    let env = scan::envelope(std::str::from_utf8(bytes).ok()?)?;
    Some(from_envelope(env))
}

/// The general path: serde_json reads the envelope and words every syntax error.
fn decode_general(text: &str) -> Result<Decoded, DecodeError> {
    let envelope: Shape<Envelope> = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    match envelope {
        Shape::Obj(env) => from_envelope(env),
        // A value that is JSON `null` carries nothing, like a Kafka tombstone.
        Shape::Null => Ok(Decoded::Tombstone),
        Shape::Other(kind) => Err(not_an_object_at_top(kind)),
    }
}

/// Everything after the syntax, the same for both paths.
fn from_envelope(env: Envelope) -> Result<Decoded, DecodeError> {
    let meta = required_object(env.metadata, "metadata")?;

    let record_type = match meta.record_type {
        Some(raw) => Some(string_field(raw, "metadata.record-type")?),
        None => None,
    };
    // DMS always sends record-type; without it, the envelope's shape decides.
    let is_control = match record_type.as_deref() {
        Some("data") => false,
        Some("control") => true,
        Some(other) => {
            return Err(DecodeError::new(format!(
                "metadata.record-type: unknown value {}",
                quoted(other)
            )))
        }
        None if env.data.is_none() && env.has_control => true,
        None if env.data.is_some() => false,
        None => return Err(DecodeError::new("metadata.record-type: missing")),
    };
    if is_control {
        return Ok(Decoded::Control(ControlRecord {
            operation: lenient_string(meta.operation),
            schema: lenient_string(meta.schema_name),
            table: lenient_string(meta.table_name),
        }));
    }

    let op = match meta.operation {
        None => return Err(DecodeError::new("metadata.operation: missing")),
        Some(raw) => match &*string_field(raw, "metadata.operation")? {
            "load" => Op::Load,
            "insert" => Op::Insert,
            "update" => Op::Update,
            "delete" => Op::Delete,
            other => {
                return Err(DecodeError::new(format!(
                    "metadata.operation: unknown value {}",
                    quoted(other)
                )))
            }
        },
    };
    let table = TableRef {
        schema: required_name(meta.schema_name, "metadata.schema-name")?,
        table: required_name(meta.table_name, "metadata.table-name")?,
    };
    let position = position(&meta, op)?;

    let data = generic_row(required_object(env.data, "data")?, "data")?;
    let (before, after) = match op {
        // DMS carries the deleted row in `data`; a before-image adds nothing to it.
        Op::Delete => (Some(data), None),
        _ => {
            let before = env
                .before_image
                .map(|(key, row)| generic_row(row, &key))
                .transpose()?;
            (before, Some(data))
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

/// The top level of a DMS record, read in one pass (by serde, or by [`scan`]).
#[derive(Default)]
pub(super) struct Envelope<'a> {
    pub(super) data: Option<Shape<RawRow<'a, str>>>,
    pub(super) metadata: Option<Shape<Meta<'a>>>,
    pub(super) has_control: bool,
    /// The before-image and the key it was found under.
    pub(super) before_image: Option<(Cow<'a, str>, RawRow<'a, str>)>,
    /// Whether `before_image` came from the conventional `before-image` key, which wins over
    /// any other object-valued key.
    named_before_image: bool,
}

impl<'a> Envelope<'a> {
    /// An object under a key other than `data`, `metadata` and `control`: the before-image
    /// (BeforeImageSettings.FieldName is user-chosen). The first one is kept, unless a later
    /// one is under the conventional name.
    pub(super) fn offer_before_image(&mut self, key: Cow<'a, str>, row: RawRow<'a, str>) {
        let named = key == "before-image";
        if self.before_image.is_none() || (named && !self.named_before_image) {
            self.named_before_image = named;
            self.before_image = Some((key, row));
        }
    }
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a DMS record object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut env = Envelope::default();
                while let Some(Text(key)) = map.next_key()? {
                    match &*key {
                        "data" => {
                            if env.data.is_some() {
                                return Err(de::Error::custom("duplicate key \"data\""));
                            }
                            env.data = Some(map.next_value()?);
                        }
                        "metadata" => {
                            if env.metadata.is_some() {
                                return Err(de::Error::custom("duplicate key \"metadata\""));
                            }
                            env.metadata = Some(map.next_value()?);
                        }
                        "control" => {
                            map.next_value::<IgnoredAny>()?;
                            env.has_control = true;
                        }
                        _ => {
                            if let Shape::Obj(row) = map.next_value::<Shape<RawRow<str>>>()? {
                                env.offer_before_image(key, row);
                            }
                        }
                    }
                }
                Ok(env)
            }
        }
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// The `metadata` fields we read; the rest (`timestamp`, `prev-transaction-id`,
/// `partition-key-*`, future keys) are skipped. Values are raw JSON text so a wrong type
/// becomes a precise error, not a serde message; a `null` value is the same as an absent key.
#[derive(serde::Deserialize, Default)]
pub(super) struct Meta<'a> {
    #[serde(rename = "record-type", borrow, default, deserialize_with = "raw")]
    pub(super) record_type: Option<&'a str>,
    #[serde(borrow, default, deserialize_with = "raw")]
    pub(super) operation: Option<&'a str>,
    #[serde(rename = "schema-name", borrow, default, deserialize_with = "raw")]
    pub(super) schema_name: Option<&'a str>,
    #[serde(rename = "table-name", borrow, default, deserialize_with = "raw")]
    pub(super) table_name: Option<&'a str>,
    #[serde(rename = "transaction-id", borrow, default, deserialize_with = "raw")]
    pub(super) transaction_id: Option<&'a str>,
    #[serde(
        rename = "transaction-record-id",
        borrow,
        default,
        deserialize_with = "raw"
    )]
    pub(super) transaction_record_id: Option<&'a str>,
    #[serde(rename = "commit-timestamp", borrow, default, deserialize_with = "raw")]
    pub(super) commit_timestamp: Option<&'a str>,
    #[serde(rename = "stream-position", borrow, default, deserialize_with = "raw")]
    pub(super) stream_position: Option<&'a str>,
}

/// The names of [`Meta`]'s fields on the wire, for the scanner.
pub(super) const META_FIELDS: [&str; 8] = [
    "record-type",
    "operation",
    "schema-name",
    "table-name",
    "transaction-id",
    "transaction-record-id",
    "commit-timestamp",
    "stream-position",
];

impl<'a> Meta<'a> {
    /// The field for `META_FIELDS[i]`.
    pub(super) fn field(&mut self, i: usize) -> Option<&mut Option<&'a str>> {
        Some(match i {
            0 => &mut self.record_type,
            1 => &mut self.operation,
            2 => &mut self.schema_name,
            3 => &mut self.table_name,
            4 => &mut self.transaction_id,
            5 => &mut self.transaction_record_id,
            6 => &mut self.commit_timestamp,
            7 => &mut self.stream_position,
            _ => return None,
        })
    }
}

/// An optional value's raw text (`null` is `None`, as for any `Option`).
fn raw<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<&'a str>, D::Error> {
    Option::<&'a RawValue>::deserialize(d).map(|v| v.map(RawValue::get))
}

fn position(meta: &Meta, op: Op) -> Result<SourcePosition, DecodeError> {
    let transaction_id = match meta.transaction_id {
        None => None,
        Some(raw) => Some(match first_byte(raw) {
            b'"' => string_field(raw, "metadata.transaction-id")?.into_owned(),
            b'-' | b'0'..=b'9' => raw.to_owned(),
            _ => {
                return Err(DecodeError::new(format!(
                    "metadata.transaction-id: expected a number or a string, got {}",
                    kind(raw)
                )))
            }
        }),
    };
    let record_in_txn = match meta.transaction_record_id {
        None => None,
        Some(raw) => Some(unsigned_field(raw, "metadata.transaction-record-id")?),
    };
    let commit_ts_us = match meta.commit_timestamp {
        None => None,
        Some(raw) => {
            let text = string_field(raw, "metadata.commit-timestamp")?;
            Some(parse_iso_timestamp_us(&text).ok_or_else(|| {
                DecodeError::new(format!(
                    "metadata.commit-timestamp: not an ISO-8601 timestamp: {}",
                    quoted(&text)
                ))
            })?)
        }
    };
    let stream_position = match meta.stream_position {
        None => None,
        Some(raw) => Some(string_field(raw, "metadata.stream-position")?.into_owned()),
    };
    // The position string is opaque: when it does not start `file.NNN:pos`, the record is
    // still good, it just has no version.
    let (log_file_seq, log_pos) = match stream_position.as_deref().and_then(parse_stream_position) {
        Some((file, pos)) => (Some(file), Some(pos)),
        None => (None, None),
    };
    Ok(SourcePosition {
        commit_ts_us,
        transaction_id,
        record_in_txn,
        log_file_seq,
        log_pos,
        stream_position,
        snapshot: op == Op::Load,
    })
}

/// `mysql-bin-changelog.002171:36912271:...` → `(2171, 36912271)`: the first component is the
/// binlog file, the second the byte position in it.
fn parse_stream_position(s: &str) -> Option<(u64, u64)> {
    let mut parts = s.split(':');
    let file = binlog_file_seq(parts.next()?)?;
    let pos = parse_digits(parts.next()?)?;
    Some((file, pos))
}

/// ISO-8601 date-time → microseconds since the Unix epoch.
///
/// `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM|±HHMM|±HH]`; `T` may be a space; without a zone the
/// time is UTC. Fraction digits past microseconds are truncated.
pub(super) fn parse_iso_timestamp_us(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let year = i32::try_from(num(0, 4)?).ok()?;
    let date = chrono::NaiveDate::from_ymd_opt(year, num(5, 2)?, num(8, 2)?)?;
    let time = date.and_hms_opt(num(11, 2)?, num(14, 2)?, num(17, 2)?)?;
    let mut at = 19;
    let mut micros: i64 = 0;
    if sep(at, b".,") {
        at += 1;
        let start = at;
        while let Some(&d) = b.get(at).filter(|d| d.is_ascii_digit()) {
            if at - start < 6 {
                micros = micros * 10 + i64::from(d - b'0');
            }
            at += 1;
        }
        let digits = at - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    let offset_secs: i64 = match b.get(at) {
        None => 0,
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let hours = num(at + 1, 2)?;
            let (minutes, end) = match b.get(at + 3) {
                None => (0, at + 3),
                Some(b':') => (num(at + 4, 2)?, at + 6),
                Some(_) => (num(at + 3, 2)?, at + 5),
            };
            if end != b.len() || hours > 23 || minutes > 59 {
                return None;
            }
            let secs = i64::from(hours * 3600 + minutes * 60);
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        Some(_) => return None,
    };
    let secs = time.and_utc().timestamp().checked_sub(offset_secs)?;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// Check a DMS Kafka target endpoint's `KafkaSettings` (snake_case keys as in Terraform's
/// `kafka_settings`, values as text) against what this decoder and the version guard need.
/// Returns every problem; empty means supported. Used by infra/'s sync test.
pub fn check_kafka_settings(settings: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    let get = |k: &str| settings.get(k).map(|v| v.trim().to_ascii_lowercase());
    match get("message_format").as_deref() {
        Some("json") | Some("json-unformatted") => {}
        other => problems.push(format!(
            "message_format = {other:?}: cutover decodes \"json\" or \"json-unformatted\""
        )),
    }
    for (key, why) in [
        (
            "include_transaction_details",
            "the version guard needs stream-position, transaction-id and transaction-record-id",
        ),
        (
            "include_null_and_empty",
            "without it a NULL column is left out and cannot be told from a missing one",
        ),
        (
            "partition_include_schema_table",
            "keys must include schema.table so rows of different tables with the same primary key spread over partitions",
        ),
    ] {
        if get(key).as_deref() != Some("true") {
            problems.push(format!("{key} must be true: {why}"));
        }
    }
    // Accepted either way: no_hex_prefix (both forms decode), include_control_details and
    // include_table_alter_operations (control records are recognised and skipped),
    // include_partition_value (ignored).
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_position_file_and_pos() {
        assert_eq!(
            parse_stream_position(
                "mysql-bin-changelog.002171:36912271:0:36912333:9324410911751:mysql-bin-changelog.002171:36912209"
            ),
            Some((2171, 36912271))
        );
        assert_eq!(
            parse_stream_position("mysql-bin.000003:154"),
            Some((3, 154))
        );
        assert_eq!(parse_stream_position("binlog.1:0:x"), Some((1, 0)));
    }

    #[test]
    fn stream_position_unparseable() {
        for s in [
            "",
            "mysql-bin.000003",
            "mysql-bin.000003:",
            "mysql-bin:154",
            "mysql-bin.:154",
            "mysql-bin.00x3:154",
            "mysql-bin.000003:+154",
            "mysql-bin.000003:-1",
            "mysql-bin.000003: 154",
            "mysql-bin.99999999999999999999999:1",
            "opaque",
        ] {
            assert_eq!(parse_stream_position(s), None, "{s}");
        }
    }

    #[test]
    fn binlog_file_seq_digits_after_last_dot() {
        assert_eq!(binlog_file_seq("mysql-bin.000042"), Some(42));
        assert_eq!(binlog_file_seq("host.name-bin.000007"), Some(7));
        assert_eq!(binlog_file_seq("mysql-bin"), None);
    }

    #[test]
    fn iso_timestamps() {
        let base = 1_572_562_435_000_000; // 2019-10-31T22:53:55Z
        assert_eq!(
            parse_iso_timestamp_us("2019-10-31T22:53:55.000000Z"),
            Some(base)
        );
        assert_eq!(parse_iso_timestamp_us("2019-10-31T22:53:55Z"), Some(base));
        assert_eq!(parse_iso_timestamp_us("2019-10-31T22:53:55"), Some(base));
        assert_eq!(parse_iso_timestamp_us("2019-10-31 22:53:55"), Some(base));
        assert_eq!(
            parse_iso_timestamp_us("2019-10-31T22:53:55.5"),
            Some(base + 500_000)
        );
        assert_eq!(
            parse_iso_timestamp_us("2019-10-31T22:53:55.123456789Z"),
            Some(base + 123_456)
        );
        assert_eq!(
            parse_iso_timestamp_us("2019-10-31T23:53:55+01:00"),
            Some(base)
        );
        assert_eq!(
            parse_iso_timestamp_us("2019-10-31T21:23:55-0130"),
            Some(base)
        );
        assert_eq!(parse_iso_timestamp_us("2019-10-31T20:53:55-02"), Some(base));
        assert_eq!(parse_iso_timestamp_us("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso_timestamp_us("1969-12-31T23:59:59.999999Z"),
            Some(-1)
        );
    }

    #[test]
    fn iso_timestamps_rejected() {
        for s in [
            "",
            "2019-10-31",
            "2019-10-31T22:53",
            "2019-13-01T00:00:00Z",
            "2019-02-30T00:00:00Z",
            "2019-10-31T24:00:00Z",
            "2019-10-31T22:53:55.Z",
            "2019-10-31T22:53:55ZZ",
            "2019-10-31T22:53:55+1",
            "2019-10-31T22:53:55+01:0",
            "2019-10-31T22:53:55+24:00",
            "2019-10-31T22:53:55 ",
            "+019-10-31T22:53:55",
            "2019/10/31T22:53:55",
            "２019-10-31T22:53:55",
        ] {
            assert_eq!(parse_iso_timestamp_us(s), None, "{s}");
        }
    }

    mod prop {
        use super::super::decode;
        use proptest::prelude::*;

        const INSERT: &str = r#"{"data":{"id":100000161,"fname":"val61s","n":null,"j":{"a":[1,2]}},"metadata":{"timestamp":"2019-10-31T22:53:59.721201Z","record-type":"data","operation":"insert","partition-key-type":"primary-key","schema-name":"sbtest","table-name":"sbtest_x","transaction-id":9324410911751,"transaction-record-id":1,"commit-timestamp":"2019-10-31T22:53:55.000000Z","stream-position":"mysql-bin-changelog.002171:36912271:0"},"before-image":{"id":1}}"#;

        fn json_scalar() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                Just("{}".to_owned()),
                Just("[]".to_owned()),
                "-?[0-9]{1,25}(\\.[0-9]{0,5})?([eE][+-]?[0-9]{1,3})?",
                "\"[a-z0-9:. \\-\\\\\"é]{0,20}\"",
                Just("\"data\"".to_owned()),
                Just("\"control\"".to_owned()),
                Just("\"delete\"".to_owned()),
                Just("\"2019-10-31T22:53:55Z\"".to_owned()),
                Just("\"mysql-bin.000001:4\"".to_owned()),
            ]
        }

        crate::cdc::test_support::decoder_never_panics!(decode, INSERT);

        /// Where the fast scanner reads a record, it reads it as the general path does: the
        /// same decoded record or the same error, and auto-detection would have said DMS.
        fn paths_agree(bytes: &[u8]) -> Result<bool, TestCaseError> {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Ok(false);
            };
            let Some(env) = super::super::scan::envelope(text) else {
                return Ok(false);
            };
            prop_assert_eq!(
                super::super::from_envelope(env),
                super::super::decode_general(text),
                "{}",
                text
            );
            prop_assert_eq!(crate::cdc::detect(bytes), Some(crate::cdc::Format::Dms));
            Ok(true)
        }

        #[test]
        fn fast_path_reads_dms_records() {
            assert!(paths_agree(INSERT.as_bytes()).unwrap());
            let spaced = INSERT.replace("\":", "\" :\n ").replace(",\"", "\t,\r \"");
            assert!(paths_agree(format!(" {spaced} ").as_bytes()).unwrap());
        }

        /// One token of a record with whitespace around it, sometimes.
        fn ws() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec!["", "", "", " ", "\n ", "\t"])
        }

        proptest! {
            #[test]
            fn fast_path_agrees_with_the_general_path_on_mutations(
                edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4)
            ) {
                paths_agree(&crate::cdc::test_support::mutate(INSERT.as_bytes(), &edits))?;
            }

            #[test]
            fn fast_path_agrees_with_the_general_path(
                meta in proptest::collection::vec((prop::sample::select(vec![
                    "record-type", "operation", "schema-name", "table-name", "transaction-id",
                    "transaction-record-id", "commit-timestamp", "stream-position", "timestamp",
                    "x\\u0079",
                ]), json_scalar()), 0..10),
                columns in proptest::collection::vec((prop::sample::select(vec!["id", "a", "b", "c\\\"", ""]), json_scalar()), 0..6),
                others in proptest::collection::vec((prop::sample::select(vec![
                    "before-image", "bi", "data", "metadata", "control", "zz",
                ]), json_scalar()), 0..3),
                op in prop::sample::select(vec!["insert", "update", "delete", "load", "upsert"]),
                image in proptest::option::of(proptest::collection::vec((prop::sample::select(vec!["id", "a"]), json_scalar()), 0..3)),
                spaces in proptest::collection::vec(ws(), 8),
            ) {
                let object = |pairs: &[(&str, String)]| {
                    let body: Vec<String> = pairs
                        .iter()
                        .enumerate()
                        .map(|(i, (k, v))| format!("{}\"{k}\"{}:{}{v}", spaces[i % 8], spaces[(i + 1) % 8], spaces[(i + 2) % 8]))
                        .collect();
                    format!("{{{}{}}}", body.join(","), spaces[3])
                };
                let mut meta: Vec<(&str, String)> = meta;
                meta.extend([
                    ("record-type", "\"data\"".to_owned()),
                    ("operation", format!("\"{op}\"")),
                    ("schema-name", "\"s\"".to_owned()),
                    ("table-name", "\"t\"".to_owned()),
                    ("stream-position", "\"mysql-bin.000002:77:0\"".to_owned()),
                ]);
                let turn = spaces.iter().filter(|s| s.is_empty()).count() % meta.len();
                meta.rotate_left(turn);
                let mut top = vec![("data", object(&columns)), ("metadata", object(&meta))];
                if let Some(image) = &image {
                    top.push(("before-image", object(image)));
                }
                top.extend(others);
                let turn = spaces[0].len() % top.len();
                top.rotate_left(turn);
                let record = object(&top);
                paths_agree(record.as_bytes())?;
            }
        }

        proptest! {


            #[test]
            fn any_metadata_value_never_panics(
                key in prop::sample::select(vec![
                    "record-type", "operation", "schema-name", "table-name", "transaction-id",
                    "transaction-record-id", "commit-timestamp", "stream-position", "other",
                ]),
                value in json_scalar(),
                data in json_scalar(),
            ) {
                let record = format!(
                    r#"{{"data":{data},"metadata":{{"record-type":"data","operation":"update","schema-name":"s","table-name":"t","{key}":{value}}}}}"#
                );
                let _ = decode(record.as_bytes());
                let record = format!(r#"{{"data":{{"c":{value}}},"metadata":{{"{key}":{value}}},"x":{data}}}"#);
                let _ = decode(record.as_bytes());
            }

        }
    }
}
