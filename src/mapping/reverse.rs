//! The reverse of the mapping: what the data-access layer and `verify` need to read items
//! back, a source's [`SourceView`], the item key of a row, and an item back to the row it came
//! from ([`Mapping::unmap`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use super::convert::{format_iso, is_canonical_number};
use super::validate::split_source;
use super::{
    key_id, key_text, plain_number, ColumnType, KeyAttr, KeyType, MapError, Mapping, Part,
    TableMap, TimeFormat,
};
use crate::cdc::{Cell, Row};

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

/// The key-template values an item's key can be reversed into, for one source
/// ([`Mapping::key_candidates`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyCandidates {
    /// One row of key-template columns per split of the item's key (typed as the mapping
    /// reads them), each of which renders the item's exact key again.
    pub rows: Vec<Row>,
    /// Some split of the templates fits the item's key text (it has this source's shape),
    /// whether or not its values render the key again.
    pub shaped: bool,
    /// More splits than the limit: not every candidate could be listed.
    pub truncated: bool,
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

    /// The declared type of a column of `source` (`auto` when undeclared).
    pub fn column_type(&self, source: &str, column: &str) -> Option<ColumnType> {
        Some(self.table(source)?.column_type(column))
    }

    /// Every assignment of the key-template columns of `source` that renders exactly this
    /// item's key: each split of the partition and sort key texts
    /// ([`super::Template::unrender_all`]), consistent where a column appears in both, turned
    /// into cells by the column's type (epoch date-times back to date-times), and kept only if
    /// the mapping renders the item's key from it again. At most `limit` splits are tried
    /// (`truncated` says there were more). `None` when `source` is unmapped or the item lacks
    /// a key attribute.
    pub fn key_candidates(
        &self,
        source: &str,
        item: &HashMap<String, AttributeValue>,
        limit: usize,
    ) -> Option<KeyCandidates> {
        let t = self.table(source)?;
        let mut texts = Vec::with_capacity(2);
        let mut splits: Vec<Vec<(&str, String)>> = vec![Vec::new()];
        let mut out = KeyCandidates::default();
        for k in std::iter::once(&t.partition_key).chain(t.sort_key.iter()) {
            let text = key_text(item.get(&*k.name)?)?;
            texts.push(text);
            let Some(parts) = k.template.unrender_all(text, limit) else {
                out.truncated = true;
                return Some(out);
            };
            let mut next = Vec::new();
            for base in &splits {
                for p in &parts {
                    let mut merged = base.clone();
                    let consistent =
                        p.iter()
                            .all(|(c, v)| match merged.iter().find(|(n, _)| n == c) {
                                Some((_, seen)) => seen == v,
                                None => {
                                    merged.push((c, v.clone()));
                                    true
                                }
                            });
                    if consistent {
                        if next.len() >= limit {
                            out.truncated = true;
                            return Some(out);
                        }
                        next.push(merged);
                    }
                }
            }
            splits = next;
        }
        out.shaped = !splits.is_empty();
        let id = key_id(&t.target, texts);
        for split in splits {
            let cells: Option<Vec<(String, Cell)>> = split
                .into_iter()
                .map(|(c, v)| Some((c.to_string(), key_cell(&v, t.column_type(c))?)))
                .collect();
            let Some(row) = cells.map(Row) else { continue };
            if t.key(&row).is_ok_and(|(_, rendered)| rendered == id) {
                out.rows.push(row);
            }
        }
        Some(out)
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
            if let Some(text) = item.get(&*k.name).and_then(key_text) {
                for (col, v) in k.template.unrender(text) {
                    out.entry(col).or_insert_with(|| text_to_json(&v));
                }
            }
        }
        Some(out)
    }
}

/// A key fragment back to the cell its column's type renders it from: epoch date-times back to
/// ISO date-times, booleans to booleans, anything else as text (which every other type reads).
fn key_cell(text: &str, ty: ColumnType) -> Option<Cell> {
    Some(match ty {
        ColumnType::DateTime(f) if f != TimeFormat::Iso => {
            let n: i64 = text.parse().ok()?;
            let us = match f {
                TimeFormat::EpochSeconds => n.checked_mul(1_000_000)?,
                TimeFormat::EpochMillis => n.checked_mul(1_000)?,
                _ => n,
            };
            Cell::Str(format_iso(
                &chrono::DateTime::from_timestamp_micros(us)?.naive_utc(),
            ))
        }
        ColumnType::Bool => Cell::Bool(match text {
            "true" => true,
            "false" => false,
            _ => return None,
        }),
        _ => Cell::Str(text.to_string()),
    })
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

#[cfg(test)]
mod tests {
    use super::super::{ItemShape, TableConfig};
    use super::*;

    fn mapping(block: &str) -> Mapping {
        let t: TableConfig = toml::from_str(block).unwrap();
        Mapping::new(&[t], ItemShape::default()).unwrap()
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn texts(c: &KeyCandidates) -> Vec<Vec<(String, String)>> {
        c.rows
            .iter()
            .map(|r| {
                r.0.iter()
                    .map(|(c, v)| {
                        let v = match v {
                            Cell::Str(s) => s.clone(),
                            other => format!("{other:?}"),
                        };
                        (c.clone(), v)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn every_split_that_renders_the_key_again_is_a_candidate() {
        let m = mapping(
            r#"
source = "app.note"
target = "notes"
primary_key = ["id"]
partition_key = { name = "pk", template = "NOTE#{owner}#{id}" }
types = { id = "int" }
"#,
        );
        let c = m
            .key_candidates(
                "app.note",
                &item(&[("pk", AttributeValue::S("NOTE#c#d#3".into()))]),
                64,
            )
            .unwrap();
        assert!(c.shaped && !c.truncated);
        // `d#3` is no int: the int type refuses to render it, so only one split is left.
        assert_eq!(
            texts(&c),
            [[
                ("owner".to_string(), "c#d".to_string()),
                ("id".into(), "3".into())
            ]]
        );
        let none = m
            .key_candidates(
                "app.note",
                &item(&[("pk", AttributeValue::S("USER#1".into()))]),
                64,
            )
            .unwrap();
        assert!(!none.shaped && none.rows.is_empty());
        let many = m
            .key_candidates(
                "app.note",
                &item(&[("pk", AttributeValue::S("NOTE#a#b#c#d#1".into()))]),
                2,
            )
            .unwrap();
        assert!(many.truncated);
        assert!(m.key_candidates("app.other", &item(&[]), 64).is_none());
    }

    #[test]
    fn epoch_keys_come_back_as_date_times_and_sort_keys_must_agree() {
        let m = mapping(
            r#"
source = "app.event"
target = "events"
primary_key = ["tenant", "at"]
partition_key = { name = "pk", template = "T#{tenant}" }
sort_key = { name = "sk", template = "{at}#{tenant}", type = "S" }
types = { at = "datetime:epoch_millis" }
"#,
        );
        let c = m
            .key_candidates(
                "app.event",
                &item(&[
                    ("pk", AttributeValue::S("T#x#y".into())),
                    ("sk", AttributeValue::S("1700000000123#x#y".into())),
                ]),
                64,
            )
            .unwrap();
        assert_eq!(
            texts(&c),
            [[
                ("tenant".to_string(), "x#y".to_string()),
                ("at".into(), "2023-11-14T22:13:20.123000Z".into())
            ]]
        );
        // Not an epoch number: nothing renders it.
        let c = m
            .key_candidates(
                "app.event",
                &item(&[
                    ("pk", AttributeValue::S("T#x".into())),
                    ("sk", AttributeValue::S("soon#x".into())),
                ]),
                64,
            )
            .unwrap();
        assert!(c.shaped && c.rows.is_empty());
    }
}
