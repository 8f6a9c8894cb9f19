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
        issues.extend(collisions(i, t, sink));
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

/// Attribute names the block would write twice, or over an attribute cutover keeps for itself
/// (the key, the version, the tombstone flag, the TTL). Each such config is a dead-letter storm
/// at run time (or silently wrong items), so `validate` refuses it, each with its key path.
fn collisions(i: usize, t: &TableConfig, sink: &ItemShape) -> Vec<ConfigIssue> {
    let at = |k: &str| format!("table[{i}].{k}");
    // Every attribute the block is known to write: (name, config key, the column it comes from).
    let mut written: Vec<(String, String, Option<&str>)> = Vec::new();
    let mut columns: Vec<&String> = t.columns.iter().flatten().collect();
    columns.extend(&t.primary_key);
    columns.extend(t.rename.keys());
    columns.extend(t.types.keys());
    columns.sort();
    columns.dedup();
    for c in columns.into_iter().filter(|c| !t.exclude.contains(c)) {
        let (name, key) = match t.rename.get(c) {
            Some(n) => (n.clone(), at(&format!("rename.{c}"))),
            None if t.columns.iter().flatten().any(|x| x == c) => (c.clone(), at("columns")),
            None if t.primary_key.contains(c) => (c.clone(), at("primary_key")),
            None => (c.clone(), at(&format!("types.{c}"))),
        };
        written.push((name, key, Some(c.as_str())));
    }
    for name in t.attributes.keys() {
        written.push((name.clone(), at(&format!("attributes.{name}")), None));
    }
    let ttl_attribute = t
        .ttl
        .as_ref()
        .map_or(DEFAULT_TTL_ATTRIBUTE, |ttl| ttl.attribute.as_str());
    let version = &sink.version_attribute;
    let mut issues = Vec::new();
    for (n, (name, key, column)) in written.iter().enumerate() {
        let what = match column {
            Some(c) if c != name => format!("attribute {name} (column {c})"),
            Some(c) => format!("column {c}"),
            None => format!("attribute {name}"),
        };
        let clash = if name == &t.partition_key.name
            || t.sort_key.as_ref().is_some_and(|k| &k.name == name)
        {
            Some("is a key attribute (its value comes from the key template)".to_string())
        } else if name == version || name.starts_with(&format!("{version}_")) {
            Some(format!(
                "collides with the version attribute {version} (sink.version_attribute; {version}_<table> in merge mode)"
            ))
        } else if name == &sink.deleted_attribute {
            Some("collides with the tombstone flag (sink.deleted_attribute)".to_string())
        } else if name == ttl_attribute {
            Some(format!(
                "collides with the table's TTL attribute {ttl_attribute} (tombstones expire by it; set by a `ttl` block only)"
            ))
        } else {
            written[..n]
                .iter()
                .find(|(other, _, c)| other == name && (c.is_none() || *c != *column))
                .map(|(_, other_key, _)| format!("is also written by {other_key}"))
        };
        if let Some(clash) = clash {
            issues.push(ConfigIssue::new(
                key.clone(),
                format!("{what} {clash}: rename or exclude it"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn block(extra: &str) -> TableConfig {
        toml::from_str(&format!(
            r#"
            source = "shop.orders"
            target = "orders"
            primary_key = ["id"]
            partition_key = {{ name = "pk", template = "ORDER#{{id}}" }}
            sort_key = {{ name = "sk", template = "V0" }}
            {extra}
            "#
        ))
        .unwrap()
    }

    fn problems(extra: &str) -> Vec<String> {
        let shape = ItemShape {
            version_attribute: "_v".into(),
            deleted_attribute: "_deleted".into(),
            batch_writes: false,
        };
        validate_tables(&[block(extra)], &shape)
            .into_iter()
            .map(|i| i.to_string())
            .collect()
    }

    #[test]
    fn a_plain_block_has_no_collision() {
        assert_eq!(
            problems(r#"columns = ["id", "total"]"#),
            Vec::<String>::new()
        );
    }

    /// Each collision is listed, with the key that causes it.
    #[test]
    fn attribute_name_collisions_are_listed_with_their_key() {
        let p = problems(
            r#"
            columns = ["id", "_v", "state", "status", "pk", "_ttl"]
            rename = { state = "status", id = "_v_orders" }
            attributes = { _deleted = "x", kind = "order", sk = "y" }
            "#,
        );
        let expect = [
            (
                "table[0].columns",
                "column _v collides with the version attribute",
            ),
            (
                "table[0].rename.id",
                "attribute _v_orders (column id) collides with the version",
            ),
            ("table[0].columns", "column pk is a key attribute"),
            (
                "table[0].columns",
                "column _ttl collides with the table's TTL attribute",
            ),
            (
                "table[0].attributes._deleted",
                "collides with the tombstone flag",
            ),
            ("table[0].attributes.sk", "is a key attribute"),
        ];
        for (key, text) in expect {
            assert!(
                p.iter().any(|l| l.contains(key) && l.contains(text)),
                "{key}: {text} not in {p:#?}"
            );
        }
        assert!(
            p.iter()
                .any(|l| l.contains("status") && l.contains("is also written by")),
            "{p:#?}"
        );
        assert_eq!(p.len(), expect.len() + 1, "{p:#?}");
    }
}
