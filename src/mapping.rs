//! Mapping: one [`ChangeEvent`] → the [`ItemWrite`]s that apply it to DynamoDB.
//!
//! Each `[[table]]` block maps one source table (`schema.table`) onto a target table:
//! key templates over columns (`CONV#{conversation_id}`), renames and excludes, explicit column
//! types, constant/derived attributes, a TTL attribute, and merge mode (several source tables
//! write disjoint attribute sets, "parts", of the same item).
//!
//! Invariants:
//! - Pure and deterministic: the same event always maps to the same writes, so replays and
//!   duplicates produce identical items.
//! - Exact: numbers keep their decimal digits (DECIMAL never goes through `f64`); a BIGINT that a
//!   producer rounded into scientific notation is rejected, not stored.
//! - DynamoDB's limits (400 KB items, 2048/1024-byte keys, 38-digit numbers, non-empty keys,
//!   non-empty sets, 32 levels of nesting) are checked here, so a violation is a [`MapError`]
//!   that dead-letters the record instead of failing a batch.
//! - A change of the item key (primary key, or any key-template column given a before-image)
//!   becomes a delete of the old item followed by a write of the new one, at the same version.
//! - Table and attribute names come only from this validated mapping, never from record data.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::cdc::{Cell, ChangeEvent, Op, Row, Version};
use crate::config::ConfigIssue;
use crate::sink::{SinkConfig, WriteMode};

// ---------------------------------------------------------------------------------------------
// Configuration (`[[table]]`)
// ---------------------------------------------------------------------------------------------

/// One `[[table]]` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TableConfig {
    /// Source table as `schema.table` (the MySQL database is the schema).
    pub source: String,
    /// Target DynamoDB table name.
    pub target: String,
    /// Primary-key columns of the source table.
    pub primary_key: Vec<String>,
    /// Partition key attribute: `{ name = "pk", template = "CONV#{conversation_id}" }`.
    pub partition_key: KeyConfig,
    /// Optional sort key attribute: `{ name = "sk", template = "MSG#{created_at}#{id}" }`.
    pub sort_key: Option<KeyConfig>,
    /// The columns that become attributes. Optional, except in merge mode, where it declares
    /// the part of the item this table owns. Unlisted columns are ignored when it is set.
    pub columns: Option<Vec<String>>,
    /// Column types: `auto` (default), `string`, `number`, `int`, `decimal`, `float`, `bool`,
    /// `datetime[:FORMAT]`, `timestamp[:FORMAT]`, `date`, `time`, `year`, `json`, `set`,
    /// `enum`, `binary[:hex|base64]`. FORMAT is `iso` (default, fixed 6-digit fraction),
    /// `epoch_seconds`, `epoch_millis` or `epoch_micros`.
    pub types: BTreeMap<String, String>,
    /// Attribute renames: `{ column = "attribute" }`.
    pub rename: BTreeMap<String, String>,
    /// Columns that never become attributes (they may still be used in keys).
    pub exclude: Vec<String>,
    /// What a NULL column becomes: `remove` (the attribute is removed) or `null` (NULL type).
    pub null: NullPolicy,
    /// What a column absent from the record means: `keep` (leave the attribute as it is;
    /// DMS omits NULLs without IncludeNullAndEmpty and may omit LOBs) or `remove` (needs `columns`).
    pub missing: MissingPolicy,
    /// Constant and derived attributes: `{ entity = "message", gsi1pk = "USER#{sender_id}" }`.
    pub attributes: BTreeMap<String, String>,
    /// A TTL attribute (epoch seconds) derived from a time column or the commit time.
    pub ttl: Option<TtlConfig>,
    /// Merge mode: this table writes only its `columns` into items shared with other tables.
    pub merge: bool,
    /// In merge mode, the table whose delete deletes the whole item (e.g. `users` for
    /// users + preferences). Deleting another part removes only its attributes.
    pub owner: bool,
    /// Global secondary indexes of the target table (for `cutover tables create`).
    pub gsi: Vec<GsiConfig>,
}

/// A key attribute and the template that renders it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyConfig {
    /// Attribute name, e.g. `pk`.
    pub name: String,
    /// Template over columns, e.g. `USER#{id}`; `{{` and `}}` are literal braces.
    pub template: String,
    /// `S` (default) or `N`. An `N` key's template must be a single `{column}`.
    #[serde(rename = "type")]
    pub kind: KeyType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    #[default]
    S,
    N,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
        }
    }
}

/// `[table.ttl]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TtlConfig {
    /// TTL attribute name; it is also the table's TTL attribute for tombstones.
    pub attribute: String,
    /// Time column the expiry counts from; the source commit time when absent.
    pub from: Option<String>,
    /// How long after `from` the item expires, e.g. `"30d"`.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
}

/// `[[table.gsi]]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GsiConfig {
    pub name: String,
    /// Partition key attribute of the index.
    pub partition_key: String,
    #[serde(rename = "partition_key_type")]
    pub partition_key_type: KeyType,
    pub sort_key: Option<String>,
    pub sort_key_type: KeyType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullPolicy {
    #[default]
    Remove,
    Null,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    #[default]
    Keep,
    Remove,
}

/// Default TTL attribute, used for tombstones when a target has no `[table.ttl]`.
pub const DEFAULT_TTL_ATTRIBUTE: &str = "_ttl";

// ---------------------------------------------------------------------------------------------
// What the mapping produces
// ---------------------------------------------------------------------------------------------

/// The slice of an item one source table owns, and how its order is guarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `schema.table` of the source.
    pub source: String,
    /// Attribute holding this part's version (see [`crate::cdc::SourcePosition::version`]).
    pub version_attribute: String,
    /// True when several tables share the item; writes then touch only this part.
    pub merge: bool,
    /// Whether deleting this part deletes the item (always true outside merge mode).
    pub owner: bool,
    /// Attribute names the part owns, when declared (`columns` + derived attributes).
    pub attributes: Option<Vec<String>>,
    /// Attribute set to `true` on tombstones.
    pub deleted_attribute: String,
    /// TTL attribute of the target table.
    pub ttl_attribute: String,
}

/// A key attribute value, with its text form for identity and coalescing.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyAttr {
    pub name: Arc<str>,
    pub value: AttributeValue,
}

/// What to do to one part of one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Set these attributes and remove those (UpdateItem semantics: others are kept).
    Upsert {
        set: Vec<(String, AttributeValue)>,
        remove: Vec<String>,
    },
    /// The source row is gone. `remove` lists the attributes known to belong to the part.
    Delete { remove: Vec<String> },
}

/// One write to one item, at one source version.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemWrite {
    pub table: Arc<str>,
    pub key: Vec<KeyAttr>,
    /// `table \x1f pk \x1f sk`: identity of the item, for coalescing and logs (no row data
    /// beyond the key).
    pub key_id: String,
    pub part: Arc<Part>,
    pub version: Version,
    pub commit_ts_us: Option<i64>,
    pub change: Change,
}

/// A record that cannot be mapped. Always poison: dead-letter it and go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

/// The result of mapping one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    Writes(Vec<ItemWrite>),
    /// The event's table has no `[[table]]` block.
    Unmapped,
}

// ---------------------------------------------------------------------------------------------
// Compiled mapping
// ---------------------------------------------------------------------------------------------

/// A target table as the mapping implies it: key schema, indexes, TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub name: String,
    pub partition_key: (String, KeyType),
    pub sort_key: Option<(String, KeyType)>,
    pub gsis: Vec<GsiConfig>,
    pub ttl_attribute: String,
}

/// The validated, compiled set of `[[table]]` blocks.
#[derive(Debug)]
pub struct Mapping {
    /// schema → table → mapping (nested, so lookups borrow the event's strings).
    by_source: HashMap<String, HashMap<String, Arc<TableMap>>>,
    targets: BTreeMap<String, TargetSpec>,
}

/// A few names → values, looked up linearly: for the handful of entries a table has, a string
/// compare beats hashing, and this runs for every column of every record.
#[derive(Debug, Default)]
struct Names<V>(Vec<(String, V)>);

impl<V> Names<V> {
    fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<V> FromIterator<(String, V)> for Names<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        Names(iter.into_iter().collect())
    }
}

fn name_set<'a>(names: impl IntoIterator<Item = &'a String>) -> Names<()> {
    names.into_iter().map(|n| (n.clone(), ())).collect()
}

#[derive(Debug)]
struct TableMap {
    target: Arc<str>,
    partition_key: CompiledKey,
    sort_key: Option<CompiledKey>,
    columns: Option<Names<()>>,
    declared_columns: Option<Vec<String>>,
    types: Names<ColumnType>,
    rename: Names<String>,
    exclude: Names<()>,
    null: NullPolicy,
    missing: MissingPolicy,
    attributes: Vec<(String, Template)>,
    ttl: Option<(String, Option<String>, u64)>,
    part: Arc<Part>,
    key_names: Names<()>,
    primary_key: Vec<String>,
}

#[derive(Debug)]
struct CompiledKey {
    name: Arc<str>,
    template: Template,
    kind: KeyType,
}

impl Mapping {
    /// Validate and compile. Every problem is returned at once.
    pub fn new(tables: &[TableConfig], sink: &SinkConfig) -> Result<Mapping, Vec<ConfigIssue>> {
        let issues = validate_tables(tables, sink);
        if !issues.is_empty() {
            return Err(issues);
        }
        let targets = target_specs(tables);
        let mut by_source: HashMap<String, HashMap<String, Arc<TableMap>>> = HashMap::new();
        for t in tables {
            let (schema, table) = split_source(&t.source).expect("validated");
            let target = &targets[&t.target];
            let compile_key = |k: &KeyConfig| CompiledKey {
                name: Arc::from(k.name.as_str()),
                template: Template::parse(&k.template).expect("validated"),
                kind: k.kind,
            };
            let types = t
                .types
                .iter()
                .map(|(c, ty)| (c.clone(), ColumnType::parse(ty).expect("validated")))
                .collect();
            let attr_name = |c: &String| t.rename.get(c).cloned().unwrap_or_else(|| c.clone());
            let mut part_attrs: Option<Vec<String>> = t.columns.as_ref().map(|cols| {
                cols.iter()
                    .filter(|c| !t.exclude.contains(c))
                    .map(attr_name)
                    .chain(t.attributes.keys().cloned())
                    .collect()
            });
            if let (Some(attrs), Some(ttl)) = (part_attrs.as_mut(), t.ttl.as_ref()) {
                attrs.push(ttl.attribute.clone());
            }
            let version_attribute = if t.merge {
                format!("{}_{}", sink.version_attribute, table)
            } else {
                sink.version_attribute.clone()
            };
            let key_names = name_set(
                std::iter::once(&t.partition_key.name).chain(t.sort_key.as_ref().map(|k| &k.name)),
            );
            let map = TableMap {
                target: Arc::from(t.target.as_str()),
                partition_key: compile_key(&t.partition_key),
                sort_key: t.sort_key.as_ref().map(compile_key),
                columns: t.columns.as_ref().map(name_set),
                declared_columns: t.columns.clone(),
                types,
                rename: t.rename.clone().into_iter().collect(),
                exclude: name_set(&t.exclude),
                null: t.null,
                missing: t.missing,
                attributes: t
                    .attributes
                    .iter()
                    .map(|(n, tpl)| (n.clone(), Template::parse(tpl).expect("validated")))
                    .collect(),
                ttl: t
                    .ttl
                    .as_ref()
                    .map(|ttl| (ttl.attribute.clone(), ttl.from.clone(), ttl.after.as_secs())),
                part: Arc::new(Part {
                    source: t.source.clone(),
                    version_attribute,
                    merge: t.merge,
                    owner: !t.merge || t.owner,
                    attributes: part_attrs,
                    deleted_attribute: sink.deleted_attribute.clone(),
                    ttl_attribute: target.ttl_attribute.clone(),
                }),
                key_names,
                primary_key: t.primary_key.clone(),
            };
            by_source
                .entry(schema.to_string())
                .or_default()
                .insert(table.to_string(), Arc::new(map));
        }
        Ok(Mapping { by_source, targets })
    }

    /// Target tables, by name.
    pub fn targets(&self) -> &BTreeMap<String, TargetSpec> {
        &self.targets
    }

    /// Source tables (`schema.table`) mapped onto `target`.
    pub fn sources_of(&self, target: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_source
            .iter()
            .flat_map(|(s, tables)| {
                tables
                    .iter()
                    .filter(|(_, m)| &*m.target == target)
                    .map(move |(t, _)| format!("{s}.{t}"))
            })
            .collect();
        v.sort();
        v
    }

    /// Map one event. Deterministic and allocation-light; never panics on any input.
    pub fn map(&self, event: &ChangeEvent) -> Result<Mapped, MapError> {
        let Some(table) = self
            .by_source
            .get(event.table.schema.as_str())
            .and_then(|t| t.get(event.table.table.as_str()))
        else {
            return Ok(Mapped::Unmapped);
        };
        table.map(event).map(Mapped::Writes)
    }

    /// Like [`Mapping::map`], writing into `target` instead of the configured table
    /// (`cutover replay --target-table`).
    pub fn map_into(&self, event: &ChangeEvent, target: &Arc<str>) -> Result<Mapped, MapError> {
        let mut mapped = self.map(event)?;
        if let Mapped::Writes(writes) = &mut mapped {
            for w in writes {
                w.key_id = format!("{target}{}", &w.key_id[w.table.len()..]);
                w.table = target.clone();
            }
        }
        Ok(mapped)
    }
}

/// What the data-access layer and `verify` need to know about one source's slice of a target.
#[derive(Debug, Clone)]
pub struct SourceView {
    pub source: String,
    pub target: Arc<str>,
    pub primary_key: Vec<String>,
    /// The primary key plus every column the key templates read: what it takes to address
    /// the item (e.g. `id`, `conversation_id`, `created_at` for `CONV#{conversation_id}` /
    /// `MSG#{created_at}#{id}`).
    pub key_columns: Vec<String>,
    pub part: Arc<Part>,
    /// Partition key attribute name and the columns its template reads.
    pub partition_key: (Arc<str>, Vec<String>),
    /// Sort key attribute name and the literal text its template starts with (`MSG#` for
    /// `MSG#{id}`): in a single-table design this tells one entity's items from another's.
    pub sort_key: Option<(Arc<str>, String)>,
}

impl Mapping {
    fn table(&self, source: &str) -> Option<&Arc<TableMap>> {
        let (schema, table) = split_source(source)?;
        self.by_source.get(schema)?.get(table)
    }

    /// Every mapped source, `schema.table`, sorted.
    pub fn sources(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_source
            .iter()
            .flat_map(|(s, t)| t.keys().map(move |t| format!("{s}.{t}")))
            .collect();
        v.sort();
        v
    }

    /// The shape of one source's mapping, or `None` if it has no `[[table]]` block.
    pub fn view(&self, source: &str) -> Option<SourceView> {
        let t = self.table(source)?;
        let mut key_columns = t.primary_key.clone();
        for k in std::iter::once(&t.partition_key).chain(t.sort_key.iter()) {
            for c in k.template.columns() {
                if !key_columns.iter().any(|x| x == c) {
                    key_columns.push(c.to_string());
                }
            }
        }
        Some(SourceView {
            source: source.to_string(),
            target: t.target.clone(),
            primary_key: t.primary_key.clone(),
            key_columns,
            part: t.part.clone(),
            partition_key: (
                t.partition_key.name.clone(),
                t.partition_key
                    .template
                    .columns()
                    .map(str::to_string)
                    .collect(),
            ),
            sort_key: t
                .sort_key
                .as_ref()
                .map(|k| (k.name.clone(), k.template.literal_prefix())),
        })
    }

    /// The item key a row of `source` maps to (with its identity text), e.g. for a GetItem.
    pub fn key_of(&self, source: &str, row: &Row) -> Result<(Vec<KeyAttr>, String), MapError> {
        let t = self
            .table(source)
            .ok_or_else(|| MapError(format!("{source} has no [[table]] mapping")))?;
        t.key(row)
    }

    /// Render only the partition key of `source` from the columns it reads (for a Query).
    pub fn partition_key_of(&self, source: &str, row: &Row) -> Result<KeyAttr, MapError> {
        let t = self
            .table(source)
            .ok_or_else(|| MapError(format!("{source} has no [[table]] mapping")))?;
        let k = &t.partition_key;
        let text = k.template.render(|col| t.key_text(row, col))?;
        let value = match k.kind {
            KeyType::S => AttributeValue::S(text),
            KeyType::N => AttributeValue::N(
                plain_number(&text, false).map_err(|e| MapError(format!("key {}: {e}", k.name)))?,
            ),
        };
        Ok(KeyAttr {
            name: k.name.clone(),
            value,
        })
    }

    /// The reverse of [`Mapping::map`] for one source's part of an item: the row as the DMS
    /// `data` object would carry it (column names, DMS value shapes), as far as the mapping
    /// kept it. Renames are undone, key-only columns are recovered from the key templates,
    /// typed attributes go back to DMS text forms (ISO datetimes, `0x` hex, JSON text, SET
    /// text). Columns the mapping dropped (`exclude`, unlisted) are absent. `None` when the item
    /// is a tombstone or lacks this part.
    pub fn unmap(
        &self,
        source: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let t = self.table(source)?;
        if matches!(
            item.get(&t.part.deleted_attribute),
            Some(AttributeValue::Bool(true))
        ) {
            return None;
        }
        if t.part.merge && !item.contains_key(&t.part.version_attribute) {
            return None;
        }
        let mut out = serde_json::Map::new();
        let reverse: HashMap<&str, &str> = t
            .rename
            .0
            .iter()
            .map(|(c, a)| (a.as_str(), c.as_str()))
            .collect();
        let derived: HashSet<&str> = t.attributes.iter().map(|(n, _)| n.as_str()).collect();
        for (name, value) in item {
            if t.key_names.contains(name)
                || derived.contains(name.as_str())
                || *name == t.part.version_attribute
                || *name == t.part.deleted_attribute
                || *name == t.part.ttl_attribute
            {
                continue;
            }
            let column = reverse.get(name.as_str()).copied().unwrap_or(name.as_str());
            if !t.keeps(column) || (t.part.merge && t.columns.is_none()) {
                continue;
            }
            if let Some(v) = unconvert(value, t.column_type(column)) {
                out.insert(column.to_string(), v);
            }
        }
        for k in std::iter::once(&t.partition_key).chain(t.sort_key.iter()) {
            if let Some(text) = item.get(&*k.name).and_then(key_text_of) {
                for (col, v) in k.template.unrender(&text) {
                    out.entry(col).or_insert_with(|| text_to_json(&v));
                }
            }
        }
        Some(out)
    }
}

fn key_text_of(v: &AttributeValue) -> Option<String> {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => Some(s.clone()),
        _ => None,
    }
}

/// A key fragment back to JSON: digits become numbers, anything else stays text.
fn text_to_json(text: &str) -> serde_json::Value {
    if is_canonical_number(text) {
        if let Ok(n) = serde_json::from_str::<serde_json::Number>(text) {
            return serde_json::Value::Number(n);
        }
    }
    serde_json::Value::String(text.to_string())
}

/// One attribute back to the DMS value shape of its column type.
fn unconvert(v: &AttributeValue, ty: ColumnType) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match (v, ty) {
        (AttributeValue::Null(_), _) => J::Null,
        (AttributeValue::Bool(b), _) => J::Bool(*b),
        (AttributeValue::N(n), ColumnType::DateTime(f)) if f != TimeFormat::Iso => {
            let n: i64 = n.parse().ok()?;
            let us = match f {
                TimeFormat::EpochSeconds => n.checked_mul(1_000_000)?,
                TimeFormat::EpochMillis => n.checked_mul(1_000)?,
                _ => n,
            };
            J::String(format_iso(
                &chrono::DateTime::from_timestamp_micros(us)?.naive_utc(),
            ))
        }
        (AttributeValue::N(n), _) => text_to_json(n),
        (AttributeValue::S(s), _) => J::String(s.clone()),
        (AttributeValue::B(b), _) => J::String(format!("0x{}", hex::encode_upper(b.as_ref()))),
        (AttributeValue::Ss(items), _) => J::String(items.join(",")),
        (AttributeValue::M(_) | AttributeValue::L(_), _) => J::String(av_to_json(v).to_string()),
        _ => return None,
    })
}

/// A JSON-typed attribute back to JSON (numbers keep their digits where they fit).
fn av_to_json(v: &AttributeValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        AttributeValue::S(s) => J::String(s.clone()),
        AttributeValue::N(n) => text_to_json(n),
        AttributeValue::Bool(b) => J::Bool(*b),
        AttributeValue::Null(_) => J::Null,
        AttributeValue::L(l) => J::Array(l.iter().map(av_to_json).collect()),
        AttributeValue::M(m) => {
            J::Object(m.iter().map(|(k, v)| (k.clone(), av_to_json(v))).collect())
        }
        AttributeValue::Ss(s) => J::Array(s.iter().cloned().map(J::String).collect()),
        AttributeValue::B(b) => J::String(format!("0x{}", hex::encode_upper(b.as_ref()))),
        _ => J::Null,
    }
}

impl TableMap {
    fn map(&self, event: &ChangeEvent) -> Result<Vec<ItemWrite>, MapError> {
        let version = event.position.version();
        let commit = event.position.commit_ts_us;
        match event.op {
            Op::Truncate => Err(MapError(
                "truncate is not applied automatically: rebuild the table with `cutover replay`"
                    .into(),
            )),
            Op::Delete => {
                let row = event
                    .before
                    .as_ref()
                    .ok_or_else(|| MapError("delete without the deleted row".into()))?;
                let key = self.key(row)?;
                Ok(vec![self.delete_write(key, row, version, commit)])
            }
            Op::Load | Op::Insert | Op::Update => {
                let row = event
                    .after
                    .as_ref()
                    .ok_or_else(|| MapError(format!("{} without a row", event.op.as_str())))?;
                let key = self.key(row)?;
                let mut writes = Vec::with_capacity(1);
                if let Some(before) = event.before.as_ref().filter(|_| event.op == Op::Update) {
                    // A before-image that lacks key columns cannot show a key change.
                    if let Ok(old) = self.key(before) {
                        if old.1 != key.1 {
                            writes.push(self.delete_write(old, before, version, commit));
                        }
                    }
                }
                let (set, remove) = self.attributes(row, commit)?;
                let write = self.write(key, version, commit, Change::Upsert { set, remove });
                check_item_size(&write)?;
                writes.push(write);
                Ok(writes)
            }
        }
    }

    fn write(
        &self,
        key: (Vec<KeyAttr>, String),
        version: Version,
        commit_ts_us: Option<i64>,
        change: Change,
    ) -> ItemWrite {
        ItemWrite {
            table: self.target.clone(),
            key: key.0,
            key_id: key.1,
            part: self.part.clone(),
            version,
            commit_ts_us,
            change,
        }
    }

    fn delete_write(
        &self,
        key: (Vec<KeyAttr>, String),
        row: &Row,
        version: Version,
        commit: Option<i64>,
    ) -> ItemWrite {
        let remove = match &self.part.attributes {
            Some(attrs) => attrs.clone(),
            None => row
                .columns()
                .filter(|c| self.keeps(c))
                .map(|c| self.attr_name(c).to_string())
                .chain(self.attributes.iter().map(|(n, _)| n.clone()))
                .filter(|n| !self.key_names.contains(n))
                .collect(),
        };
        self.write(key, version, commit, Change::Delete { remove })
    }

    fn keeps(&self, column: &str) -> bool {
        !self.exclude.contains(column) && self.columns.as_ref().is_none_or(|c| c.contains(column))
    }

    fn attr_name<'a>(&'a self, column: &'a str) -> &'a str {
        self.rename
            .get(column)
            .map(String::as_str)
            .unwrap_or(column)
    }

    fn column_type(&self, column: &str) -> ColumnType {
        self.types.get(column).copied().unwrap_or(ColumnType::Auto)
    }

    /// The item key and its identity text.
    fn key(&self, row: &Row) -> Result<(Vec<KeyAttr>, String), MapError> {
        let mut id = String::with_capacity(64);
        id.push_str(&self.target);
        let mut attrs = Vec::with_capacity(2);
        for k in std::iter::once(&self.partition_key).chain(self.sort_key.iter()) {
            let text = k.template.render(|col| self.key_text(row, col))?;
            let (limit, role) = if attrs.is_empty() {
                (2048, "partition")
            } else {
                (1024, "sort")
            };
            if text.is_empty() {
                return Err(MapError(format!("{role} key {} is empty", k.name)));
            }
            if text.len() > limit {
                return Err(MapError(format!(
                    "{role} key {} is {} bytes, over DynamoDB's {limit}",
                    k.name,
                    text.len()
                )));
            }
            id.push('\x1f');
            id.push_str(&text);
            let value = match k.kind {
                KeyType::S => AttributeValue::S(text),
                KeyType::N => AttributeValue::N(
                    plain_number(&text, false)
                        .map_err(|e| MapError(format!("key {}: {e}", k.name)))?,
                ),
            };
            attrs.push(KeyAttr {
                name: k.name.clone(),
                value,
            });
        }
        Ok((attrs, id))
    }

    fn key_text(&self, row: &Row, column: &str) -> Result<String, MapError> {
        let cell = row
            .get(column)
            .ok_or_else(|| MapError(format!("key column {column} is missing from the record")))?;
        match convert(cell, self.column_type(column))
            .map_err(|e| MapError(format!("key column {column}: {e}")))?
        {
            None => Err(MapError(format!("key column {column} is NULL"))),
            Some(AttributeValue::S(s)) | Some(AttributeValue::N(s)) => Ok(s),
            Some(AttributeValue::Bool(b)) => Ok(b.to_string()),
            Some(AttributeValue::B(b)) => Ok(hex::encode(b.as_ref())),
            Some(_) => Err(MapError(format!(
                "key column {column} is not a scalar (json/set cannot be in a key)"
            ))),
        }
    }

    #[allow(clippy::type_complexity)]
    fn attributes(
        &self,
        row: &Row,
        commit: Option<i64>,
    ) -> Result<(Vec<(String, AttributeValue)>, Vec<String>), MapError> {
        let mut set = Vec::with_capacity(row.len() + self.attributes.len() + 1);
        let mut remove = Vec::new();
        for (column, cell) in &row.0 {
            if !self.keeps(column) {
                continue;
            }
            let name = self.attr_name(column);
            if self.key_names.contains(name) {
                return Err(MapError(format!(
                    "column {column} maps onto key attribute {name}: rename or exclude it"
                )));
            }
            match convert(cell, self.column_type(column))
                .map_err(|e| MapError(format!("column {column}: {e}")))?
            {
                Some(v) => set.push((name.to_string(), v)),
                None => match self.null {
                    NullPolicy::Remove => remove.push(name.to_string()),
                    NullPolicy::Null => set.push((name.to_string(), AttributeValue::Null(true))),
                },
            }
        }
        if self.missing == MissingPolicy::Remove {
            if let Some(cols) = &self.declared_columns {
                for c in cols {
                    if row.get(c).is_none() && !self.exclude.contains(c) {
                        remove.push(self.attr_name(c).to_string());
                    }
                }
            }
        }
        for (name, tpl) in &self.attributes {
            let text = tpl.render(|col| {
                self.key_text(row, col)
                    .map_err(|e| MapError(format!("attribute {name}: {}", e.0)))
            })?;
            set.push((name.clone(), AttributeValue::S(text)));
        }
        if let Some((attr, from, after)) = &self.ttl {
            let base_secs = match from {
                Some(col) => match row.get(col) {
                    Some(cell) => Some(
                        epoch_seconds(cell)
                            .map_err(|e| MapError(format!("ttl column {col}: {e}")))?,
                    ),
                    None => None,
                },
                None => commit.map(|us| us.div_euclid(1_000_000)),
            };
            match base_secs {
                Some(s) => set.push((
                    attr.clone(),
                    AttributeValue::N((s.saturating_add(*after as i64)).to_string()),
                )),
                None => remove.push(attr.clone()),
            }
        }
        Ok((set, remove))
    }
}

// ---------------------------------------------------------------------------------------------
// Validation (pure)
// ---------------------------------------------------------------------------------------------

fn split_source(source: &str) -> Option<(&str, &str)> {
    let (schema, table) = source.split_once('.')?;
    (!schema.is_empty() && !table.is_empty() && !table.contains('.')).then_some((schema, table))
}

fn target_specs(tables: &[TableConfig]) -> BTreeMap<String, TargetSpec> {
    let mut out: BTreeMap<String, TargetSpec> = BTreeMap::new();
    for t in tables {
        let spec = out.entry(t.target.clone()).or_insert_with(|| TargetSpec {
            name: t.target.clone(),
            partition_key: (t.partition_key.name.clone(), t.partition_key.kind),
            sort_key: t.sort_key.as_ref().map(|k| (k.name.clone(), k.kind)),
            gsis: Vec::new(),
            ttl_attribute: DEFAULT_TTL_ATTRIBUTE.to_string(),
        });
        for g in &t.gsi {
            if !spec.gsis.iter().any(|x| x.name == g.name) {
                spec.gsis.push(g.clone());
            }
        }
        if let Some(ttl) = &t.ttl {
            spec.ttl_attribute = ttl.attribute.clone();
        }
    }
    for spec in out.values_mut() {
        spec.gsis.sort_by(|a, b| a.name.cmp(&b.name));
    }
    out
}

/// Every problem in the `[[table]]` blocks, with its key path.
pub fn validate_tables(tables: &[TableConfig], sink: &SinkConfig) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let mut sources = HashSet::new();
    for (i, t) in tables.iter().enumerate() {
        let at = |k: &str| format!("table[{i}].{k}");
        match split_source(&t.source) {
            None => issues.push(ConfigIssue::new(
                at("source"),
                format!("{:?} must be schema.table", t.source),
            )),
            Some(_) => {
                if !sources.insert(t.source.clone()) {
                    issues.push(ConfigIssue::new(at("source"), "mapped twice"));
                }
            }
        }
        if !valid_table_name(&t.target) {
            issues.push(ConfigIssue::new(
                at("target"),
                "must be a DynamoDB table name: 3-255 of [A-Za-z0-9_.-]",
            ));
        }
        if t.primary_key.is_empty() {
            issues.push(ConfigIssue::new(
                at("primary_key"),
                "list the source table's primary-key columns",
            ));
        }
        let mut check_key = |k: &KeyConfig, path: &str| {
            if k.name.is_empty() {
                issues.push(ConfigIssue::new(
                    at(&format!("{path}.name")),
                    "must not be empty",
                ));
            }
            match Template::parse(&k.template) {
                Err(e) => issues.push(ConfigIssue::new(at(&format!("{path}.template")), e)),
                Ok(tpl) => {
                    if path == "partition_key" && tpl.columns().next().is_none() {
                        issues.push(ConfigIssue::new(
                            at(&format!("{path}.template")),
                            "must use at least one {column}",
                        ));
                    }
                    if k.kind == KeyType::N && !tpl.is_single_column() {
                        issues.push(ConfigIssue::new(
                            at(&format!("{path}.template")),
                            "an N key must be exactly one {column}",
                        ));
                    }
                }
            }
        };
        check_key(&t.partition_key, "partition_key");
        if let Some(sk) = &t.sort_key {
            check_key(sk, "sort_key");
            if sk.name == t.partition_key.name {
                issues.push(ConfigIssue::new(
                    at("sort_key.name"),
                    "must differ from partition_key.name",
                ));
            }
        }
        for (col, ty) in &t.types {
            if let Err(e) = ColumnType::parse(ty) {
                issues.push(ConfigIssue::new(at(&format!("types.{col}")), e));
            }
        }
        for (name, tpl) in &t.attributes {
            if let Err(e) = Template::parse(tpl) {
                issues.push(ConfigIssue::new(at(&format!("attributes.{name}")), e));
            }
            if name == &t.partition_key.name || t.sort_key.as_ref().is_some_and(|k| &k.name == name)
            {
                issues.push(ConfigIssue::new(
                    at(&format!("attributes.{name}")),
                    "is a key attribute",
                ));
            }
        }
        if let Some(cols) = &t.columns {
            let declared: HashSet<&String> = cols.iter().collect();
            for (what, list) in [
                ("rename", t.rename.keys().collect::<Vec<_>>()),
                ("types", t.types.keys().collect()),
            ] {
                for c in list {
                    if !declared.contains(c) && !t.primary_key.contains(c) {
                        issues.push(ConfigIssue::new(
                            at(&format!("{what}.{c}")),
                            "is not one of the table's columns",
                        ));
                    }
                }
            }
        }
        if let Some(ttl) = &t.ttl {
            if ttl.attribute.is_empty() {
                issues.push(ConfigIssue::new(at("ttl.attribute"), "must not be empty"));
            }
            if ttl.after.is_zero() {
                issues.push(ConfigIssue::new(at("ttl.after"), "must be > 0"));
            }
        }
        if t.missing == MissingPolicy::Remove && t.columns.is_none() {
            issues.push(ConfigIssue::new(
                at("missing"),
                "`remove` needs `columns`, to know which attributes a missing column means",
            ));
        }
        if t.merge && t.columns.is_none() {
            issues.push(ConfigIssue::new(
                at("columns"),
                "merge mode needs the columns this table owns",
            ));
        }
        if t.owner && !t.merge {
            issues.push(ConfigIssue::new(
                at("owner"),
                "only meaningful with merge = true",
            ));
        }
        if t.merge && sink.write_mode == WriteMode::Batch {
            issues.push(ConfigIssue::new(
                at("merge"),
                "merge mode needs sink.write_mode = \"conditional\" (BatchWriteItem replaces whole items)",
            ));
        }
        for (g, gsi) in t.gsi.iter().enumerate() {
            if gsi.name.is_empty() || gsi.partition_key.is_empty() {
                issues.push(ConfigIssue::new(
                    at(&format!("gsi[{g}]")),
                    "needs name and partition_key",
                ));
            }
        }
    }
    // Blocks that share a target must agree on its key schema and TTL attribute; merge parts
    // must own disjoint attributes and at most one may be the owner.
    let mut by_target: BTreeMap<&str, Vec<(usize, &TableConfig)>> = BTreeMap::new();
    for (i, t) in tables.iter().enumerate() {
        by_target.entry(t.target.as_str()).or_default().push((i, t));
    }
    for blocks in by_target.values() {
        let (_, first) = blocks[0];
        let key_of = |t: &TableConfig| {
            (
                (t.partition_key.name.clone(), t.partition_key.kind),
                t.sort_key.as_ref().map(|k| (k.name.clone(), k.kind)),
            )
        };
        let mut owned: HashMap<String, usize> = HashMap::new();
        let mut owners = 0;
        for &(i, t) in blocks {
            if key_of(t) != key_of(first) {
                issues.push(ConfigIssue::new(
                    format!("table[{i}].partition_key"),
                    format!(
                        "target {} is also mapped with a different key schema (names and types must match)",
                        t.target
                    ),
                ));
            }
            if let (Some(a), Some(b)) = (&t.ttl, &first.ttl) {
                if a.attribute != b.attribute {
                    issues.push(ConfigIssue::new(
                        format!("table[{i}].ttl.attribute"),
                        "a table has one TTL attribute; blocks of the same target must agree",
                    ));
                }
            }
            if t.merge {
                owners += usize::from(t.owner);
                for c in t.columns.iter().flatten() {
                    let name = t.rename.get(c).unwrap_or(c).clone();
                    if let Some(other) = owned.insert(name.clone(), i) {
                        issues.push(ConfigIssue::new(
                            format!("table[{i}].columns"),
                            format!("attribute {name} is also owned by table[{other}]"),
                        ));
                    }
                }
            }
        }
        if owners > 1 {
            issues.push(ConfigIssue::new(
                format!("table[{}].owner", blocks[0].0),
                format!("target {} has {owners} owners; at most one", first.target),
            ));
        }
    }
    issues
}

/// Things that are valid but deserve a look, with their key path.
pub fn warnings(tables: &[TableConfig]) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        for (path, key) in std::iter::once(("partition_key", &t.partition_key))
            .chain(t.sort_key.as_ref().map(|k| ("sort_key", k)))
        {
            let Ok(tpl) = Template::parse(&key.template) else {
                continue;
            };
            let outside: Vec<&str> = tpl
                .columns()
                .filter(|c| !t.primary_key.iter().any(|p| p == c))
                .collect();
            if !outside.is_empty() {
                out.push(ConfigIssue::new(
                    format!("table[{i}].{path}.template"),
                    format!(
                        "uses {} outside the primary key: a change to it moves the item, which is only seen with a before-image (DMS BeforeImageSettings with those columns; Debezium always sends one)",
                        outside.join(", ")
                    ),
                ));
            }
        }
    }
    out
}

fn valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

// ---------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Col(String),
}

/// A `{column}` template, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("unclosed {{ in {text:?}")),
                        }
                    }
                    if name.is_empty() || name.contains('{') {
                        return Err(format!("bad column name {{{name}}} in {text:?}"));
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Col(name));
                }
                '}' => {
                    return Err(format!(
                        "unmatched }} in {text:?} (write }}}} for a literal)"
                    ))
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Template(pieces))
    }

    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Col(c) => Some(c.as_str()),
            Piece::Lit(_) => None,
        })
    }

    /// The literal text before the first column (`MSG#` for `MSG#{id}`).
    pub fn literal_prefix(&self) -> String {
        match self.0.first() {
            Some(Piece::Lit(l)) => l.clone(),
            _ => String::new(),
        }
    }

    /// Recover column values from a rendered key (see [`Template::unrender_exact`]); a key
    /// that doesn't fit the template yields nothing.
    pub fn unrender(&self, text: &str) -> Vec<(String, String)> {
        self.unrender_exact(text)
            .map(|v| v.into_iter().map(|(c, t)| (c.to_string(), t)).collect())
            .unwrap_or_default()
    }

    /// The reverse of rendering: the column values that render `text`, or `None` when `text`
    /// does not have this template's shape (so a literal-only template tells a match from a
    /// mismatch). Literals are matched left to right; a column ends where the next literal
    /// next occurs, the last column takes the rest: `MSG#{a}#{b}` reverses `MSG#1#2` into
    /// a=1, b=2. Two columns with no literal between them cannot be split (`None`), and a
    /// column used twice must capture the same text. `verify` uses it to tell which source an
    /// item belongs to and recover its primary key.
    pub fn unrender_exact(&self, text: &str) -> Option<Vec<(&str, String)>> {
        let mut out: Vec<(&str, String)> = Vec::new();
        let mut rest = text;
        let mut pieces = self.0.iter().peekable();
        while let Some(p) = pieces.next() {
            match p {
                Piece::Lit(l) => rest = rest.strip_prefix(l.as_str())?,
                Piece::Col(c) => {
                    let value = match pieces.peek() {
                        None => std::mem::take(&mut rest),
                        Some(Piece::Lit(next)) => {
                            let at = rest.find(next.as_str())?;
                            let (v, r) = rest.split_at(at);
                            rest = r;
                            v
                        }
                        Some(Piece::Col(_)) => return None,
                    };
                    match out.iter().find(|(n, _)| n == c) {
                        Some((_, seen)) if seen != value => return None,
                        Some(_) => {}
                        None => out.push((c.as_str(), value.to_string())),
                    }
                }
            }
        }
        rest.is_empty().then_some(out)
    }

    fn is_single_column(&self) -> bool {
        matches!(self.0.as_slice(), [Piece::Col(_)])
    }

    fn render(
        &self,
        mut value: impl FnMut(&str) -> Result<String, MapError>,
    ) -> Result<String, MapError> {
        if let [Piece::Col(c)] = self.0.as_slice() {
            return value(c);
        }
        let mut out = String::with_capacity(32);
        for p in &self.0 {
            match p {
                Piece::Lit(l) => out.push_str(l),
                Piece::Col(c) => out.push_str(&value(c)?),
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Column types and conversion
// ---------------------------------------------------------------------------------------------

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
fn is_canonical_number(text: &str) -> bool {
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
fn format_iso(t: &NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    if !(0..=9999).contains(&t.year()) {
        return t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    }
    let mut out = String::with_capacity(27);
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
    out
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

fn epoch_seconds(cell: &Cell) -> Result<i64, String> {
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

// ---------------------------------------------------------------------------------------------
// DynamoDB item size
// ---------------------------------------------------------------------------------------------

/// DynamoDB's item size rule: attribute name bytes + value bytes.
pub fn attribute_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => {
            let digits = n.bytes().filter(|b| b.is_ascii_digit()).count();
            digits.div_ceil(2) + 1
        }
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + attribute_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + attribute_size(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}

pub const MAX_ITEM_BYTES: usize = 400 * 1024;

fn check_item_size(w: &ItemWrite) -> Result<(), MapError> {
    let Change::Upsert { set, .. } = &w.change else {
        return Ok(());
    };
    let size: usize = w
        .key
        .iter()
        .map(|k| k.name.len() + attribute_size(&k.value))
        .chain(set.iter().map(|(n, v)| n.len() + attribute_size(v)))
        .sum::<usize>()
        + w.part.version_attribute.len()
        + 21;
    if size > MAX_ITEM_BYTES {
        return Err(MapError(format!(
            "item is {size} bytes, over DynamoDB's 400 KB limit"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::{SourcePosition, TableRef};

    fn row(cols: &[(&str, Cell)]) -> Row {
        Row(cols
            .iter()
            .map(|(c, v)| (c.to_string(), v.clone()))
            .collect())
    }
    fn n(s: &str) -> Cell {
        Cell::Number(s.into())
    }
    fn s(x: &str) -> Cell {
        Cell::Str(x.into())
    }

    fn event(table: &str, op: Op, before: Option<Row>, after: Option<Row>) -> ChangeEvent {
        ChangeEvent {
            table: TableRef {
                schema: "chat".into(),
                table: table.into(),
            },
            op,
            before,
            after,
            position: SourcePosition {
                log_file_seq: Some(3),
                log_pos: Some(1000),
                record_in_txn: Some(2),
                commit_ts_us: Some(1_600_000_000_000_000),
                ..Default::default()
            },
            kafka: None,
        }
    }

    fn message_mapping() -> Mapping {
        let t: TableConfig = toml::from_str(
            r#"
            source = "chat.message"
            target = "chat"
            primary_key = ["id"]
            partition_key = { name = "pk", template = "CONV#{conversation_id}" }
            sort_key = { name = "sk", template = "MSG#{created_at}#{id}" }
            exclude = ["secret"]
            rename = { body = "text" }
            attributes = { entity = "message", gsi1pk = "USER#{sender_id}" }
            [types]
            created_at = "datetime"
            amount = "decimal"
            meta = "json"
            tags = "set"
            blob = "binary"
            flag = "bool"
        "#,
        )
        .unwrap();
        Mapping::new(&[t], &SinkConfig::default()).unwrap()
    }

    fn get<'a>(set: &'a [(String, AttributeValue)], k: &str) -> &'a AttributeValue {
        &set.iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("{k}"))
            .1
    }

    #[test]
    fn maps_a_message_row() {
        let m = message_mapping();
        let r = row(&[
            ("id", n("7")),
            ("conversation_id", n("42")),
            ("sender_id", n("9")),
            ("created_at", s("2024-01-02T03:04:05Z")),
            ("body", s("hi")),
            ("secret", s("x")),
            ("amount", s("12345678901234567890.123456789012345678")),
            ("meta", s(r#"{"a":[1,12345678901234567890123],"b":null}"#)),
            ("tags", s("a,b,a")),
            ("blob", s("0x0aff")),
            ("flag", Cell::Bool(true)),
            ("gone", Cell::Null),
        ]);
        let Mapped::Writes(w) = m.map(&event("message", Op::Insert, None, Some(r))).unwrap() else {
            panic!()
        };
        assert_eq!(w.len(), 1);
        let w = &w[0];
        assert_eq!(w.key[0].value, AttributeValue::S("CONV#42".into()));
        assert_eq!(
            w.key[1].value,
            AttributeValue::S("MSG#2024-01-02T03:04:05.000000Z#7".into())
        );
        assert_eq!(w.version, 3 * 10u128.pow(20) + 1000 * 10u128.pow(8) + 2);
        let Change::Upsert { set, remove } = &w.change else {
            panic!()
        };
        assert_eq!(get(set, "text"), &AttributeValue::S("hi".into()));
        assert!(set.iter().all(|(n, _)| n != "secret" && n != "body"));
        assert_eq!(
            get(set, "amount"),
            &AttributeValue::N("12345678901234567890.123456789012345678".into())
        );
        let AttributeValue::M(meta) = get(set, "meta") else {
            panic!()
        };
        assert_eq!(
            meta["a"],
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::N("12345678901234567890123".into())
            ])
        );
        assert_eq!(
            get(set, "tags"),
            &AttributeValue::Ss(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            get(set, "blob"),
            &AttributeValue::B(Blob::new(vec![0x0a, 0xff]))
        );
        assert_eq!(get(set, "flag"), &AttributeValue::Bool(true));
        assert_eq!(get(set, "entity"), &AttributeValue::S("message".into()));
        assert_eq!(get(set, "gsi1pk"), &AttributeValue::S("USER#9".into()));
        assert_eq!(remove, &vec!["gone".to_string()]);
    }

    #[test]
    fn key_change_moves_the_item() {
        let m = message_mapping();
        let before = row(&[
            ("id", n("7")),
            ("conversation_id", n("1")),
            ("sender_id", n("9")),
            ("created_at", s("2024-01-02 03:04:05")),
        ]);
        let after = row(&[
            ("id", n("8")),
            ("conversation_id", n("1")),
            ("sender_id", n("9")),
            ("created_at", s("2024-01-02 03:04:05")),
        ]);
        let Mapped::Writes(w) = m
            .map(&event("message", Op::Update, Some(before), Some(after)))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(w.len(), 2);
        assert!(matches!(w[0].change, Change::Delete { .. }));
        assert!(w[0].key_id.ends_with("#7"));
        assert!(matches!(w[1].change, Change::Upsert { .. }));
        assert!(w[1].key_id.ends_with("#8"));
        assert_eq!(w[0].version, w[1].version);
    }

    #[test]
    fn bigint_in_scientific_notation_is_poison() {
        let m = message_mapping();
        let r = row(&[
            ("id", n("1.2345678901234567e+18")),
            ("conversation_id", n("1")),
            ("sender_id", n("1")),
            ("created_at", s("2024-01-02T03:04:05Z")),
        ]);
        let err = m
            .map(&event("message", Op::Insert, None, Some(r)))
            .unwrap_err();
        assert!(err.0.contains("scientific notation"), "{err}");
    }

    #[test]
    fn unmapped_and_truncate() {
        let m = message_mapping();
        assert_eq!(
            m.map(&event("other", Op::Insert, None, Some(Row::default())))
                .unwrap(),
            Mapped::Unmapped
        );
        assert!(m.map(&event("message", Op::Truncate, None, None)).is_err());
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

    #[test]
    fn templates_parse_strictly() {
        assert!(Template::parse("A#{x").is_err());
        assert!(Template::parse("A#}").is_err());
        assert!(Template::parse("{}").is_err());
        assert_eq!(
            Template::parse("{{x}}#{y}")
                .unwrap()
                .columns()
                .collect::<Vec<_>>(),
            vec!["y"]
        );
    }

    #[test]
    fn item_size_limit() {
        let m = message_mapping();
        let r = row(&[
            ("id", n("1")),
            ("conversation_id", n("1")),
            ("sender_id", n("1")),
            ("created_at", s("2024-01-02T03:04:05Z")),
            ("body", s(&"x".repeat(410 * 1024))),
        ]);
        let err = m
            .map(&event("message", Op::Insert, None, Some(r)))
            .unwrap_err();
        assert!(err.0.contains("400 KB"), "{err}");
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

        #[test]
        fn mapping_never_panics(cols in proptest::collection::vec(("[a-z_]{1,12}", ".{0,20}", 0u8..4), 0..12), op in 0u8..5) {
            let m = message_mapping();
            let r = Row(cols.into_iter().map(|(c, v, k)| (c, match k {
                0 => Cell::Str(v), 1 => Cell::Number(v), 2 => Cell::Null, _ => Cell::Json(v),
            })).collect());
            let op = [Op::Load, Op::Insert, Op::Update, Op::Delete, Op::Truncate][op as usize];
            let _ = m.map(&event("message", op, Some(r.clone()), Some(r)));
        }
    }
}
