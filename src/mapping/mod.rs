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

mod config;
mod convert;
mod reverse;
mod template;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::cdc::{ChangeEvent, Op, Row, Version};
use crate::config::ConfigIssue;
use crate::error::{Classify, Disposition};

pub use config::{
    GsiConfig, ItemShape, KeyConfig, KeyType, MissingPolicy, NullPolicy, TableConfig, TtlConfig,
    DEFAULT_TTL_ATTRIBUTE,
};
pub use convert::{convert, plain_number, BinaryEncoding, ColumnType, TimeFormat};
pub use reverse::{KeyCandidates, SourceView};
pub use template::Template;
pub use validate::{validate_tables, warnings};

use convert::epoch_seconds;
use validate::{split_source, target_specs};

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
    /// Part of an item-key move (the old key's delete or the new key's upsert of one change).
    /// Its key can also be written from another partition, so writers that rely on each key
    /// staying in one partition (`sink.write_mode = "rebuild"`) apply it conditionally.
    pub key_move: bool,
}

impl ItemWrite {
    /// The same write into `target` (`cutover replay --target-table`).
    pub fn retarget(&mut self, target: &Arc<str>) {
        // Everything after the table name is the key's part of the identity.
        self.key_id = format!("{target}{}", &self.key_id[self.table.len()..]);
        self.table = target.clone();
    }
}

/// Separates the parts of an item's identity ([`ItemWrite::key_id`]).
const KEY_ID_SEPARATOR: char = '\x1f';

/// The identity of an item: `table \x1f pk \x1f sk`, from the key attributes' text. The one
/// place this encoding is written: coalescing, logs and `verify`'s lookups all use it.
pub fn key_id<'a>(table: &str, key_texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut id = String::with_capacity(64);
    id.push_str(table);
    for text in key_texts {
        push_key_part(&mut id, text);
    }
    id
}

fn push_key_part(id: &mut String, text: &str) {
    id.push(KEY_ID_SEPARATOR);
    id.push_str(text);
}

/// The text of a key attribute value (`S` or `N`); `None` for any other type.
pub fn key_text(v: &AttributeValue) -> Option<&str> {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => Some(s),
        _ => None,
    }
}

/// A record that cannot be mapped. Always poison: dead-letter it and go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

impl Classify for MapError {
    /// Poison by its type: the same record maps the same way every time.
    fn disposition(&self) -> Disposition {
        Disposition::Poison
    }
}

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

impl TargetSpec {
    /// The identity ([`key_id`]) of an item of this table, from its key attributes; `None`
    /// when one is missing or not `S`/`N`.
    pub fn key_id_of(&self, item: &HashMap<String, AttributeValue>) -> Option<String> {
        let texts = std::iter::once(&self.partition_key)
            .chain(self.sort_key.iter())
            .map(|(name, _)| key_text(item.get(name)?))
            .collect::<Option<Vec<&str>>>()?;
        Some(key_id(&self.name, texts))
    }
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
    /// Validate and compile. Every problem is returned at once. `sink` is `&SinkConfig` or
    /// an [`ItemShape`].
    pub fn new(
        tables: &[TableConfig],
        sink: impl Into<ItemShape>,
    ) -> Result<Mapping, Vec<ConfigIssue>> {
        let sink: ItemShape = sink.into();
        let issues = validate_tables(tables, &sink);
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
                w.retarget(target);
            }
        }
        Ok(mapped)
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
                            let mut delete = self.delete_write(old, before, version, commit);
                            delete.key_move = true;
                            writes.push(delete);
                        }
                    }
                }
                let (set, remove) = self.attributes(row, commit)?;
                let mut write = self.write(key, version, commit, Change::Upsert { set, remove });
                write.key_move = !writes.is_empty();
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
            key_move: false,
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
        let mut id = key_id(&self.target, []);
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
            push_key_part(&mut id, &text);
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
mod tests;
