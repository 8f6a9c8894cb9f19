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
//!   `f64` or `serde_json::Value`.
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
use super::{ChangeEvent, ControlRecord, DecodeError, Decoded, Op, Row, SourcePosition, TableRef};

/// The `data` object of a DMS record (JSON text) → [`Row`], by the same code [`decode`] uses,
/// so anything that renders rows as DMS does (`mysql::row_cells`) decodes them identically.
pub fn row_from_json(text: &str) -> Result<Row, DecodeError> {
    let raw: Shape<RawRow> = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    generic_row(required_object(Some(raw), "data")?, "data")
}

/// Decode one DMS record value.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let envelope: Shape<Envelope> =
        serde_json::from_str(utf8(bytes)?).map_err(|e| json_error(&e))?;
    let env = match envelope {
        Shape::Obj(env) => env,
        // A value that is JSON `null` carries nothing, like a Kafka tombstone.
        Shape::Null => return Ok(Decoded::Tombstone),
        Shape::Other(kind) => return Err(not_an_object_at_top(kind)),
    };
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

/// The top level of a DMS record, read in one pass.
struct Envelope<'a> {
    data: Option<Shape<RawRow<'a>>>,
    metadata: Option<Shape<Meta<'a>>>,
    has_control: bool,
    /// The before-image and the key it was found under.
    before_image: Option<(Cow<'a, str>, RawRow<'a>)>,
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
                let mut env = Envelope {
                    data: None,
                    metadata: None,
                    has_control: false,
                    before_image: None,
                };
                // Whether `before_image` came from the conventional `before-image` key, which
                // wins over any other object-valued key.
                let mut named_before_image = false;
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
                            // BeforeImageSettings.FieldName is user-chosen: any other
                            // object-valued key is the before-image.
                            if let Shape::Obj(row) = map.next_value::<Shape<RawRow>>()? {
                                let named = key == "before-image";
                                if env.before_image.is_none() || (named && !named_before_image) {
                                    named_before_image = named;
                                    env.before_image = Some((key, row));
                                }
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
/// `partition-key-*`, future keys) are skipped. Values are raw so a wrong type becomes a
/// precise error, not a serde message.
#[derive(serde::Deserialize)]
struct Meta<'a> {
    #[serde(rename = "record-type", borrow, default)]
    record_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    operation: Option<&'a RawValue>,
    #[serde(rename = "schema-name", borrow, default)]
    schema_name: Option<&'a RawValue>,
    #[serde(rename = "table-name", borrow, default)]
    table_name: Option<&'a RawValue>,
    #[serde(rename = "transaction-id", borrow, default)]
    transaction_id: Option<&'a RawValue>,
    #[serde(rename = "transaction-record-id", borrow, default)]
    transaction_record_id: Option<&'a RawValue>,
    #[serde(rename = "commit-timestamp", borrow, default)]
    commit_timestamp: Option<&'a RawValue>,
    #[serde(rename = "stream-position", borrow, default)]
    stream_position: Option<&'a RawValue>,
}

fn position(meta: &Meta, op: Op) -> Result<SourcePosition, DecodeError> {
    let transaction_id = match meta.transaction_id {
        None => None,
        Some(raw) => Some(match first_byte(raw) {
            b'"' => string_field(raw, "metadata.transaction-id")?.into_owned(),
            b'-' | b'0'..=b'9' => raw.get().to_owned(),
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
