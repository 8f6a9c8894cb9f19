//! The pure checks of the `[[table]]` blocks: every problem at once, each with its key path.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::convert::ColumnType;
use super::{
    ItemShape, KeyConfig, KeyType, MissingPolicy, TableConfig, TargetSpec, Template,
    DEFAULT_TTL_ATTRIBUTE,
};
use crate::config::ConfigIssue;

pub(super) fn split_source(source: &str) -> Option<(&str, &str)> {
    let (schema, table) = source.split_once('.')?;
    (!schema.is_empty() && !table.is_empty() && !table.contains('.')).then_some((schema, table))
}

pub(super) fn target_specs(tables: &[TableConfig]) -> BTreeMap<String, TargetSpec> {
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
pub fn validate_tables(tables: &[TableConfig], sink: &ItemShape) -> Vec<ConfigIssue> {
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
        if t.merge && sink.batch_writes {
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
            for why in tpl.inseparable(|c| {
                t.types
                    .get(c)
                    .and_then(|ty| ColumnType::parse(ty).ok())
                    .unwrap_or(ColumnType::Auto)
            }) {
                out.push(ConfigIssue::new(format!("table[{i}].{path}.template"), why));
            }
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
