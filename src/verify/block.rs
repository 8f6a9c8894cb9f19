//! One `[[table]]` block, ready to verify: its MySQL schema checked against the mapping, its
//! key templates, the attributes its part owns, and the bookkeeping never compared.

use std::collections::{BTreeMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;

use super::extras::lookup_safe;
use super::{mysql_error, Ctx, Item, VerifyError};
use crate::cdc::{ChangeEvent, Op, Row, SourcePosition, TableRef};
use crate::mapping::{
    key_text, ColumnType, ItemWrite, Mapped, TableConfig, TargetSpec, Template,
    DEFAULT_TTL_ATTRIBUTE,
};
use crate::mysql::{self, TableSchema};

/// One `[[table]]` block, ready to verify.
pub(super) struct Block<'a> {
    pub(super) cfg: &'a TableConfig,
    pub(super) schema: TableSchema,
    /// Indexes of the primary-key columns in the SELECT list (schema order).
    pub(super) pk_index: Vec<usize>,
    pub(super) spec: TargetSpec,
    /// The mapping's type of each primary-key column (`auto` when undeclared).
    pub(super) pk_types: Vec<ColumnType>,
    pub(super) version_attribute: String,
    /// Declared attributes of the part (without its TTL attribute), if declared.
    pub(super) owned: Option<HashSet<String>>,
    /// Bookkeeping attributes of the target: never compared.
    pub(super) bookkeeping: HashSet<String>,
    /// For primary-key columns no key template holds: the attribute that carries them.
    pub(super) pk_from_attribute: Vec<(String, Option<String>)>,
    /// Every primary-key column can be looked up by its key text (see [`lookup_safe`]).
    pub(super) lookup_safe: bool,
}

impl<'a> Block<'a> {
    pub(super) async fn new(
        ctx: &Ctx<'_>,
        conn: &mut mysql_async::Conn,
        t: &'a TableConfig,
    ) -> Result<Block<'a>, VerifyError> {
        let setup = VerifyError::Setup;
        let (db, table) = t
            .source
            .split_once('.')
            .ok_or_else(|| setup(format!("{}: not schema.table", t.source)))?;
        let schema = mysql::table_schema(conn, db, table)
            .await
            .map_err(mysql_error(format!("read the schema of {}", t.source)))?;
        // Keyset pages and lookups need the real, unique key, in the order the mapping names it.
        if schema.primary_key != t.primary_key {
            return Err(setup(format!(
                "{}: the mapping's primary_key [{}] is not the table's primary key [{}]",
                t.source,
                t.primary_key.join(", "),
                schema.primary_key.join(", ")
            )));
        }
        let mut pk_index = Vec::new();
        for pk in &t.primary_key {
            let i = schema
                .columns
                .iter()
                .position(|c| &c.name == pk)
                .ok_or_else(|| {
                    setup(format!(
                        "{}: primary-key column {pk} of the mapping is not a column of the table",
                        t.source
                    ))
                })?;
            pk_index.push(i);
        }
        let mapping = &ctx.cfg.mapping;
        let spec = mapping
            .targets()
            .get(&t.target)
            .cloned()
            .ok_or_else(|| setup(format!("{}: unknown target", t.target)))?;
        let pk_tpl = Template::parse(&t.partition_key.template).map_err(setup)?;
        let sk_tpl = match &t.sort_key {
            Some(k) => Some(Template::parse(&k.template).map_err(setup)?),
            None => None,
        };
        let sink = &ctx.cfg.sink;
        // The part's version attribute, as the mapping names it (`_v`, or `_v_<table>`).
        let version_of = |source: &str| {
            mapping
                .view(source)
                .map(|v| v.part.version_attribute.clone())
        };
        let version_attribute =
            version_of(&t.source).ok_or_else(|| setup(format!("{}: not mapped", t.source)))?;
        let mut bookkeeping: HashSet<String> = [
            sink.version_attribute.clone(),
            sink.deleted_attribute.clone(),
            spec.ttl_attribute.clone(),
            DEFAULT_TTL_ATTRIBUTE.to_string(),
        ]
        .into_iter()
        .collect();
        for other in ctx.cfg.tables.iter().filter(|o| o.target == t.target) {
            if let Some(ttl) = &other.ttl {
                bookkeeping.insert(ttl.attribute.clone());
            }
            if other.merge {
                bookkeeping.extend(version_of(&other.source));
            }
        }
        let owned = t.columns.as_ref().map(|cols| {
            cols.iter()
                .filter(|c| !t.exclude.contains(c))
                .map(|c| t.rename.get(c).cloned().unwrap_or_else(|| c.clone()))
                .chain(t.attributes.keys().cloned())
                .filter(|a| !bookkeeping.contains(a))
                .collect()
        });
        let in_templates: HashSet<&str> = pk_tpl
            .columns()
            .chain(sk_tpl.iter().flat_map(|s| s.columns()))
            .collect();
        let pk_from_attribute = t
            .primary_key
            .iter()
            .filter(|c| !in_templates.contains(c.as_str()))
            .map(|c| {
                let kept = !t.exclude.contains(c)
                    && t.columns.as_ref().is_none_or(|cols| cols.contains(c));
                let attr = kept.then(|| t.rename.get(c).cloned().unwrap_or_else(|| c.clone()));
                (c.clone(), attr)
            })
            .collect();
        let pk_types: Vec<ColumnType> = t
            .primary_key
            .iter()
            .map(|c| {
                mapping
                    .column_type(&t.source, c)
                    .unwrap_or(ColumnType::Auto)
            })
            .collect();
        let lookup_safe = pk_index
            .iter()
            .zip(&pk_types)
            .all(|(&i, &ty)| lookup_safe(&schema.columns[i].kind, ty));
        Ok(Block {
            cfg: t,
            lookup_safe,
            schema,
            pk_index,
            spec,
            pk_types,
            version_attribute,
            owned,
            bookkeeping,
            pk_from_attribute,
        })
    }

    pub(super) fn table_ref(&self) -> TableRef {
        let (schema, table) = self.cfg.source.split_once('.').unwrap_or(("", ""));
        TableRef {
            schema: schema.to_string(),
            table: table.to_string(),
        }
    }

    pub(super) fn is_key(&self, name: &str) -> bool {
        self.spec.partition_key.0 == name
            || self.spec.sort_key.as_ref().is_some_and(|(k, _)| k == name)
    }

    /// Does this part own `name` (for the unexpected-attribute check)?
    pub(super) fn owns(&self, name: &str) -> bool {
        if self.bookkeeping.contains(name) || self.is_key(name) {
            return false;
        }
        match &self.owned {
            Some(set) => set.contains(name),
            None => true,
        }
    }

    pub(super) fn select_list(&self) -> String {
        mysql::select_list(&self.schema)
    }

    pub(super) fn pk_list(&self) -> String {
        self.cfg
            .primary_key
            .iter()
            .map(|c| mysql::quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) fn from(&self) -> String {
        format!(
            "{}.{}",
            mysql::quote_ident(&self.schema.schema),
            mysql::quote_ident(&self.schema.table)
        )
    }

    pub(super) fn pk_values(&self, row: &mysql_async::Row) -> Vec<mysql_async::Value> {
        self.pk_index
            .iter()
            .map(|&i| row.as_ref(i).cloned().unwrap_or(mysql_async::Value::NULL))
            .collect()
    }

    /// A row's primary key, for findings of rows that have no item key (mapping errors).
    pub(super) fn pk_display(&self, pk: &[mysql_async::Value]) -> BTreeMap<String, String> {
        self.cfg
            .primary_key
            .iter()
            .zip(pk)
            .map(|(c, v)| (c.clone(), v.as_sql(true).trim_matches('\'').to_string()))
            .collect()
    }

    /// `(pk) > (?, ..)` / `(pk) IN ((?,..),..)` building blocks.
    pub(super) fn pk_tuple(&self) -> String {
        if self.cfg.primary_key.len() == 1 {
            self.pk_list()
        } else {
            format!("({})", self.pk_list())
        }
    }

    pub(super) fn placeholders(&self) -> String {
        let p = vec!["?"; self.cfg.primary_key.len()].join(", ");
        if self.cfg.primary_key.len() == 1 {
            p
        } else {
            format!("({p})")
        }
    }

    /// Map a MySQL row as a `load` change: the upsert the pipeline would write.
    pub(super) fn expected(&self, ctx: &Ctx<'_>, row: Row) -> Result<ItemWrite, String> {
        let event = ChangeEvent {
            table: self.table_ref(),
            op: Op::Load,
            before: None,
            after: Some(row),
            position: SourcePosition::default(),
            kafka: None,
        };
        match ctx.cfg.mapping.map(&event) {
            Ok(Mapped::Writes(mut w)) => w.pop().ok_or_else(|| "no write".to_string()),
            Ok(Mapped::Unmapped) => Err("table is not mapped".into()),
            Err(e) => Err(e.0),
        }
    }

    pub(super) fn item_key(&self, item: &Item) -> Option<Item> {
        let mut key = Item::new();
        for (name, _) in std::iter::once(&self.spec.partition_key).chain(self.spec.sort_key.iter())
        {
            key.insert(name.clone(), item.get(name)?.clone());
        }
        Some(key)
    }
}

pub(super) fn key_display(key: &[crate::mapping::KeyAttr]) -> BTreeMap<String, String> {
    key.iter()
        .map(|k| {
            (
                k.name.to_string(),
                key_text(&k.value).unwrap_or("?").to_string(),
            )
        })
        .collect()
}

pub(super) fn item_key_display(spec: &TargetSpec, item: &Item) -> BTreeMap<String, String> {
    std::iter::once(&spec.partition_key)
        .chain(spec.sort_key.iter())
        .filter_map(|(n, _)| Some((n.clone(), key_text(item.get(n)?)?.to_string())))
        .collect()
}

pub(super) fn is_tombstone(item: &Item, deleted_attribute: &str) -> bool {
    matches!(
        item.get(deleted_attribute),
        Some(AttributeValue::Bool(true))
    )
}
