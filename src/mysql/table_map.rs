//! The column model a binlog row event was written under, read from its TABLE_MAP event's
//! optional metadata (`binlog_row_metadata=FULL`): names, types, signedness, character sets,
//! ENUM/SET values, nullability, primary key. Capture renders every row change with it, so a
//! row written before a DDL is rendered with the columns it had then, however late it is read.

use std::collections::HashMap;

use mysql_async::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{ColumnInfo, ColumnKind, MysqlError, TableSchema};

/// The character set of every collation id the server knows (a table map names collations).
#[derive(Debug, Clone, Default)]
pub struct Collations(HashMap<u16, String>);

/// The `binary` pseudo character set: BINARY, VARBINARY, BLOB.
const BINARY_COLLATION: u16 = 63;

impl Collations {
    /// Read from `information_schema` (MariaDB ≥ 10.10 also lists the ids of its
    /// charset-qualified collations in COLLATION_CHARACTER_SET_APPLICABILITY).
    pub async fn load(conn: &mut Conn) -> Result<Collations, MysqlError> {
        let mut map = HashMap::new();
        // MariaDB ≥ 10.10 lists collations shared by several character sets with NULL id
        // and character set here, and each pairing below.
        let rows: Vec<(Option<u64>, Option<String>)> = conn
            .query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS")
            .await?;
        for (id, cs) in rows {
            if let (Some(id), Some(cs)) = (id.and_then(|i| u16::try_from(i).ok()), cs) {
                map.insert(id, cs);
            }
        }
        let extra: Result<Vec<(Option<u64>, Option<String>)>, _> = conn
            .query(
                "SELECT ID, CHARACTER_SET_NAME \
                 FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY",
            )
            .await;
        for (id, cs) in extra.unwrap_or_default() {
            if let (Some(id), Some(cs)) = (id.and_then(|i| u16::try_from(i).ok()), cs) {
                map.entry(id).or_insert(cs);
            }
        }
        Ok(Collations(map))
    }

    /// A fixed table, for tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (u16, &'a str)>) -> Collations {
        Collations(pairs.into_iter().map(|(i, c)| (i, c.to_owned())).collect())
    }

    fn charset(&self, id: u16) -> Option<&str> {
        self.0.get(&id).map(String::as_str)
    }
}

/// The table a row event belongs to, as its table map describes it. `current` (the table's
/// `information_schema` model now, when known) only fills in what a table map cannot say:
/// that a MariaDB LONGTEXT is JSON (a `json_valid` check), and the primary key when the map
/// carries none. Errors say what is missing and the setting that provides it.
pub fn table_map_schema(
    tme: &TableMapEvent<'_>,
    collations: &Collations,
    current: Option<&TableSchema>,
) -> Result<TableSchema, String> {
    let (schema, table) = (
        tme.database_name().into_owned(),
        tme.table_name().into_owned(),
    );
    let n = tme.columns_count() as usize;
    let bad = |e: std::io::Error| format!("unreadable table map metadata: {e}");
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta()).map_err(bad)?;
    let names: Vec<String> = meta
        .iter_column_name()
        .map(|c| c.map(|c| c.name().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(bad)?;
    if names.len() != n {
        return Err(format!(
            "the table map carries {} column names for {n} columns: capture needs \
             binlog_row_metadata=FULL (events logged before it was set cannot be rendered)",
            names.len()
        ));
    }
    let (mut enums, mut sets) = (Vec::new(), Vec::new());
    for field in tme.iter_optional_meta() {
        match field.map_err(bad)? {
            OptionalMetadataField::EnumStrValue(v) => {
                for values in v.iter_values() {
                    let values = values.map_err(bad)?;
                    enums.push(
                        values
                            .values()
                            .iter()
                            .map(|x| x.value_raw().to_vec())
                            .collect::<Vec<_>>(),
                    );
                }
            }
            OptionalMetadataField::SetStrValue(v) => {
                for values in v.iter_values() {
                    let values = values.map_err(bad)?;
                    sets.push(
                        values
                            .values()
                            .iter()
                            .map(|x| x.value_raw().to_vec())
                            .collect::<Vec<_>>(),
                    );
                }
            }
            _ => {}
        }
    }
    let (mut enums, mut sets) = (enums.into_iter(), sets.into_iter());
    let mut signedness = meta.iter_signedness();
    let mut charsets = meta.iter_charset();
    let mut enum_set_charsets = meta.iter_enum_and_set_charset();
    let nulls = tme.null_bitmask();
    let mut columns = Vec::with_capacity(n);
    for (i, name) in names.into_iter().enumerate() {
        let ty = match tme.get_column_type(i) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(format!("column {name}: no type in the table map")),
            Err(e) => return Err(format!("column {name}: {e}")),
        };
        let md = tme.get_column_metadata(i).unwrap_or(&[]);
        let unsigned = ty.is_numeric_type() && signedness.next().unwrap_or(false);
        let collation = if ty.is_character_type() {
            charsets.next().transpose().map_err(bad)?
        } else if ty.is_enum_or_set_type() {
            enum_set_charsets.next().transpose().map_err(bad)?
        } else {
            None
        };
        let was = current.and_then(|c| c.column(&name));
        let charset = match collation {
            None | Some(BINARY_COLLATION) => None,
            Some(id) => match collations.charset(id) {
                Some(cs) => Some(cs.to_owned()),
                None => match was.and_then(|c| c.charset.clone()) {
                    Some(cs) => Some(cs),
                    None => {
                        return Err(format!(
                            "column {name}: collation id {id} is unknown to the server's information_schema"
                        ))
                    }
                },
            },
        };
        let byte = |k: usize| u32::from(md.get(k).copied().unwrap_or(0));
        let text_values = |raw: Vec<Vec<u8>>| -> Result<Vec<String>, String> {
            raw.into_iter()
                .map(|b| super::decode::decode_text(charset.as_deref(), b))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("column {name}: values: {e}"))
        };
        use ColumnType as T;
        let kind = match ty {
            T::MYSQL_TYPE_TINY => ColumnKind::Int { unsigned, bytes: 1 },
            T::MYSQL_TYPE_SHORT => ColumnKind::Int { unsigned, bytes: 2 },
            T::MYSQL_TYPE_INT24 => ColumnKind::Int { unsigned, bytes: 3 },
            T::MYSQL_TYPE_LONG => ColumnKind::Int { unsigned, bytes: 4 },
            T::MYSQL_TYPE_LONGLONG => ColumnKind::Int { unsigned, bytes: 8 },
            T::MYSQL_TYPE_NEWDECIMAL => ColumnKind::Decimal {
                precision: byte(0),
                scale: byte(1),
            },
            T::MYSQL_TYPE_FLOAT => ColumnKind::Float,
            T::MYSQL_TYPE_DOUBLE => ColumnKind::Double,
            // Metadata: bits mod 8, then whole bytes.
            T::MYSQL_TYPE_BIT => ColumnKind::Bit {
                bits: (byte(1) * 8 + byte(0)).max(1),
            },
            T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE => ColumnKind::Date,
            T::MYSQL_TYPE_TIME => ColumnKind::Time { fsp: 0 },
            T::MYSQL_TYPE_TIME2 => ColumnKind::Time { fsp: byte(0) },
            T::MYSQL_TYPE_DATETIME => ColumnKind::DateTime { fsp: 0 },
            T::MYSQL_TYPE_DATETIME2 => ColumnKind::DateTime { fsp: byte(0) },
            T::MYSQL_TYPE_TIMESTAMP => ColumnKind::Timestamp { fsp: 0 },
            T::MYSQL_TYPE_TIMESTAMP2 => ColumnKind::Timestamp { fsp: byte(0) },
            T::MYSQL_TYPE_YEAR => ColumnKind::Year,
            T::MYSQL_TYPE_JSON => ColumnKind::Json,
            T::MYSQL_TYPE_ENUM => ColumnKind::Enum {
                values: text_values(enums.next().ok_or_else(|| {
                    format!("column {name}: the table map has no ENUM values for it")
                })?)?,
            },
            T::MYSQL_TYPE_SET => ColumnKind::Set {
                values: text_values(sets.next().ok_or_else(|| {
                    format!("column {name}: the table map has no SET values for it")
                })?)?,
            },
            T::MYSQL_TYPE_STRING if charset.is_none() => ColumnKind::Binary {
                fixed: Some(string_length(md)),
            },
            T::MYSQL_TYPE_VARCHAR
            | T::MYSQL_TYPE_VAR_STRING
            | T::MYSQL_TYPE_STRING
            | T::MYSQL_TYPE_BLOB
            | T::MYSQL_TYPE_TINY_BLOB
            | T::MYSQL_TYPE_MEDIUM_BLOB
            | T::MYSQL_TYPE_LONG_BLOB => match (&charset, was.map(|c| &c.kind)) {
                (None, _) => ColumnKind::Binary { fixed: None },
                // MariaDB's JSON is LONGTEXT with a json_valid check: only the schema knows.
                (Some(_), Some(ColumnKind::Json)) => ColumnKind::Json,
                (Some(_), _) => ColumnKind::Text,
            },
            other => ColumnKind::Other(format!("{other:?}").to_ascii_lowercase()),
        };
        columns.push(ColumnInfo {
            column_type: format!("{ty:?}").to_ascii_lowercase(),
            nullable: nulls.get(i).is_some_and(|b| *b),
            name,
            kind,
            charset,
        });
    }
    let mut primary_key: Vec<String> = Vec::new();
    for idx in meta.iter_primary_key() {
        let idx = idx.map_err(bad)? as usize;
        let col = columns
            .get(idx)
            .ok_or_else(|| format!("primary key column #{idx} is not in the table map"))?;
        primary_key.push(col.name.clone());
    }
    if primary_key.is_empty() {
        primary_key = current.map(|c| c.primary_key.clone()).unwrap_or_default();
    }
    if primary_key.is_empty() {
        return Err("the table map names no primary key and the table has none".into());
    }
    Ok(TableSchema {
        schema,
        table,
        columns,
        primary_key,
    })
}

/// The declared length of a CHAR/BINARY column from its STRING metadata (as the row decoder
/// reads it: a long CHAR keeps two length bits in the type byte).
fn string_length(md: &[u8]) -> u32 {
    let (b0, b1) = (
        u32::from(md.first().copied().unwrap_or(0)),
        u32::from(md.get(1).copied().unwrap_or(0)),
    );
    if b0 & 0x30 != 0x30 {
        b1 | (((b0 & 0x30) ^ 0x30) << 4)
    } else {
        b1
    }
}
