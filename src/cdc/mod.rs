//! Decoding: Kafka record bytes → one [`ChangeEvent`] type, whatever produced them.
//!
//! Two producers are understood: AWS DMS JSON ([`dms`]) and Debezium JSON ([`debezium`]),
//! detected per record ([`Format::Auto`]) or fixed per topic.
//!
//! Invariants:
//! - Values are never rounded: numbers keep their exact decimal text ([`Cell::Number`]); nothing
//!   goes through `f64`. Typing happens later, in `mapping`, from the declared column types.
//! - A column that is absent from the record is absent from the row. It is not the same as
//!   [`Cell::Null`] (DMS leaves NULLs out unless `IncludeNullAndEmpty` is on).
//! - Bad input is an error value ([`DecodeError`]), never a panic; the consumer dead-letters it.
//! - Control records and tombstones are recognised and returned as such; they never stop the stream.

mod connect;
pub mod debezium;
pub mod dms;
mod json;

use serde::Serialize;

/// One column value, kept as close to the wire form as possible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "t", content = "v", rename_all = "snake_case")]
pub enum Cell {
    /// An explicit SQL NULL.
    Null,
    Bool(bool),
    /// A number, as its exact decimal text (`"12"`, `"-0.10"`, `"1.5e3"`).
    Number(String),
    /// A string: text, DMS hex binary (`0x..`), ISO dates, JSON text, ENUM/SET values.
    Str(String),
    /// Bytes already decoded by the producer's format (Debezium `bytes` fields).
    Bytes(Vec<u8>),
    /// A nested JSON object or array, as compact JSON text.
    Json(String),
}

/// A row: column name → value, in the producer's column order.
/// Rows are small, so lookups are linear; order is kept for stable output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Row(pub Vec<(String, Cell)>);

impl Row {
    pub fn get(&self, column: &str) -> Option<&Cell> {
        self.0.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(c, _)| c.as_str())
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A full-load / snapshot row (DMS `load`, Debezium `r`).
    Load,
    Insert,
    Update,
    Delete,
    /// The whole table was truncated (Debezium `t`). Never applied automatically.
    Truncate,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Load => "load",
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
        }
    }
}

/// The source table, `schema.table` (MySQL database = schema).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TableRef {
    pub schema: String,
    pub table: String,
}

/// Where the change sits in the source's log. Every field is optional because producers and
/// their settings differ; [`SourcePosition::version`] turns what is there into an order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourcePosition {
    /// Commit time of the source transaction, microseconds since the Unix epoch.
    pub commit_ts_us: Option<i64>,
    /// Source transaction id (DMS `transaction-id`, Debezium `source.gtid` or `transaction.id`).
    pub transaction_id: Option<String>,
    /// Position of the record inside its transaction (DMS `transaction-record-id`,
    /// Debezium `source.row`).
    pub record_in_txn: Option<u64>,
    /// Binlog file sequence number (`mysql-bin.000042` → 42), when known.
    pub log_file_seq: Option<u64>,
    /// Byte position in that binlog file, when known.
    pub log_pos: Option<u64>,
    /// The producer's raw position string (DMS `stream-position`), kept for diagnostics.
    pub stream_position: Option<String>,
    /// True for snapshot / full-load records.
    pub snapshot: bool,
}

/// The order of changes: `file_seq · 10^20 + pos · 10^8 + record_in_txn`.
///
/// This is the version guard shared by every writer (see `sink`): it is monotonic in the
/// source's binlog order, fits DynamoDB's 38-digit numbers, and is 0 when the record carries no
/// binlog position (full-load rows without one, DMS without `IncludeTransactionDetails`), so
/// such a record never overwrites a positioned one.
pub type Version = u128;

const POS_FACTOR: u128 = 100_000_000; // 10^8: room for record-in-transaction
const FILE_FACTOR: u128 = 1_000_000_000_000 * POS_FACTOR; // 10^20: room for 10^12 bytes per file

impl SourcePosition {
    pub fn version(&self) -> Version {
        match (self.log_file_seq, self.log_pos) {
            (Some(file), Some(pos)) => {
                let rec = self.record_in_txn.unwrap_or(0).min(POS_FACTOR as u64 - 1) as u128;
                let pos = (pos as u128).min(FILE_FACTOR / POS_FACTOR - 1);
                (file as u128).saturating_mul(FILE_FACTOR) + pos * POS_FACTOR + rec
            }
            _ => 0,
        }
    }
}

/// `mysql-bin.000042` → 42: the digits after the last `.`.
pub fn binlog_file_seq(file: &str) -> Option<u64> {
    let (_, digits) = file.rsplit_once('.')?;
    json::parse_digits(digits)
}

/// Where the record came from in Kafka.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KafkaPos {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One row change, whatever the producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeEvent {
    pub table: TableRef,
    pub op: Op,
    /// The row before the change: DMS `before-image`, Debezium `before`. For deletes, producers
    /// that carry the deleted row only in `data` (DMS) have it in `before` here as well.
    pub before: Option<Row>,
    /// The row after the change; `None` for deletes and truncates.
    pub after: Option<Row>,
    pub position: SourcePosition,
    /// Filled in by the consumer, not by the decoder.
    pub kafka: Option<KafkaPos>,
}

impl ChangeEvent {
    /// The row that identifies the item: `after` for upserts, `before` for deletes.
    pub fn identity_row(&self) -> Option<&Row> {
        match self.op {
            Op::Delete | Op::Truncate => self.before.as_ref(),
            _ => self.after.as_ref().or(self.before.as_ref()),
        }
    }
}

/// A DMS control record (table definition change). Not applied: the pipeline counts it by
/// [`ControlRecord::kind`] and logs it (`cutover_control_records_total{kind}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlRecord {
    pub operation: String,
    pub schema: String,
    pub table: String,
}

impl ControlRecord {
    /// What the record announces, for counting and for the operator's hint.
    pub fn kind(&self) -> ControlKind {
        match self.operation.as_str() {
            "create-table" => ControlKind::CreateTable,
            "drop-table" => ControlKind::DropTable,
            "truncate-table" | "truncate" => ControlKind::Truncate,
            "rename-table" => ControlKind::Rename,
            "change-columns" | "add-column" | "drop-column" | "rename-column"
            | "column-type-change" => ControlKind::ColumnChange,
            "message" => ControlKind::Message,
            _ => ControlKind::Other,
        }
    }
}

/// The kinds of control record (DMS `metadata.operation` of a `control` record; Debezium's
/// truncate and logical-decoding messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlKind {
    CreateTable,
    DropTable,
    Truncate,
    Rename,
    ColumnChange,
    Message,
    Other,
}

impl ControlKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlKind::CreateTable => "create_table",
            ControlKind::DropTable => "drop_table",
            ControlKind::Truncate => "truncate",
            ControlKind::Rename => "rename",
            ControlKind::ColumnChange => "column_change",
            ControlKind::Message => "message",
            ControlKind::Other => "other",
        }
    }
}

/// What one Kafka record decodes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decoded {
    Change(ChangeEvent),
    Control(ControlRecord),
    /// A Kafka tombstone (null value), e.g. after a Debezium delete: nothing to apply.
    Tombstone,
}

/// Which producer wrote the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Detect per record: `metadata` → DMS, `payload` / `op` → Debezium.
    #[default]
    Auto,
    Dms,
    Debezium,
}

/// Why a record could not be decoded. Always poison: dead-letter it and go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    pub reason: String,
}

impl DecodeError {
    pub fn new(reason: impl Into<String>) -> Self {
        DecodeError {
            reason: reason.into(),
        }
    }
}

/// Decode one record value. `None` is a Kafka tombstone.
pub fn decode(value: Option<&[u8]>, format: Format) -> Result<Decoded, DecodeError> {
    let Some(bytes) = value else {
        return Ok(Decoded::Tombstone);
    };
    match format {
        Format::Dms => dms::decode(bytes),
        Format::Debezium => debezium::decode(bytes),
        Format::Auto => match detect(bytes) {
            Some(Format::Debezium) => debezium::decode(bytes),
            Some(_) => dms::decode(bytes),
            None => undetected(bytes),
        },
    }
}

/// When detection fails, say why as the decoders would: not JSON, a JSON `null` (a tombstone
/// written as a value), not an object, or an object of neither shape.
fn undetected(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let value: &serde_json::value::RawValue =
        serde_json::from_str(json::utf8(bytes)?).map_err(|e| json::json_error(&e))?;
    match value.get().as_bytes().first() {
        Some(b'n') => Ok(Decoded::Tombstone),
        Some(b'{') => Err(DecodeError::new(
            "unrecognised record: neither a DMS envelope (metadata) nor a Debezium one (payload/op)",
        )),
        _ => Err(json::not_an_object_at_top(json::kind(value))),
    }
}

/// Cheap detection without a full parse: look at the top-level keys.
fn detect(bytes: &[u8]) -> Option<Format> {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default, deserialize_with = "present")]
        metadata: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default, deserialize_with = "present")]
        payload: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default, deserialize_with = "present")]
        op: Option<&'a serde_json::value::RawValue>,
    }
    /// A key that is there counts even when its value is `null` (`"payload": null`).
    fn present<'de: 'a, 'a, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<&'a serde_json::value::RawValue>, D::Error> {
        <&'a serde_json::value::RawValue as serde::Deserialize>::deserialize(d).map(Some)
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    if probe.metadata.is_some() {
        Some(Format::Dms)
    } else if probe.payload.is_some() || probe.op.is_some() {
        Some(Format::Debezium)
    } else {
        None
    }
}

impl crate::error::Classify for DecodeError {
    /// Poison by its type: the same bytes decode the same way every time.
    fn disposition(&self) -> crate::error::Disposition {
        crate::error::Disposition::Poison
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    /// The properties every decoder has, whatever its format: no panic on arbitrary bytes, on
    /// JSON-ish text, or on `record` (a valid record) with a few bytes overwritten, removed or
    /// inserted; the auto-detecting entry point neither. Written once, run for each decoder
    /// (inside a `proptest`-importing module: `decoder_never_panics!(decode, RECORD);`).
    macro_rules! decoder_never_panics {
        ($decode:path, $record:expr) => {
            proptest! {
                #[test]
                fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                    let _ = $decode(&bytes);
                    let _ = crate::cdc::decode(Some(&bytes), crate::cdc::Format::Auto);
                }

                #[test]
                fn json_ish_text_never_panics(s in "[{}\\[\\]\":,0-9a-z\\-. \\\\\u{e9}]{0,200}") {
                    let _ = $decode(s.as_bytes());
                    let _ = crate::cdc::decode(Some(s.as_bytes()), crate::cdc::Format::Auto);
                }

                #[test]
                fn mutated_records_never_panic(
                    edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)
                ) {
                    let bytes = crate::cdc::test_support::mutate($record.as_bytes(), &edits);
                    let _ = $decode(&bytes);
                    let _ = crate::cdc::decode(Some(&bytes), crate::cdc::Format::Auto);
                }
            }
        };
    }
    pub(crate) use decoder_never_panics;

    /// Apply byte edits (overwrite, remove, insert) to a valid record, for the no-panic fuzz
    /// properties of both decoders.
    pub fn mutate(record: &[u8], edits: &[(proptest::sample::Index, u8, u8)]) -> Vec<u8> {
        let mut bytes = record.to_vec();
        for (at, byte, how) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] = *byte,
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, *byte),
            }
        }
        bytes
    }
}
