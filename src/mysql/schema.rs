//! The column model of a source table, from `information_schema`: exact types (unsigned,
//! precision and scale, datetime fractions, ENUM/SET values, JSON), primary key in order.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{quote_ident, MysqlError};

/// Column model from information_schema, PK columns in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub schema: String,
    pub table: String,
    /// In ordinal order (the order of `SELECT *` and of binlog row images).
    pub columns: Vec<ColumnInfo>,
    pub primary_key: Vec<String>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
    /// Indexes of the primary-key columns in `columns`.
    pub fn pk_indexes(&self) -> Vec<usize> {
        self.primary_key
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| &c.name == k))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub kind: ColumnKind,
    pub nullable: bool,
    /// The full `COLUMN_TYPE`, e.g. `decimal(38,10) unsigned`, for messages.
    pub column_type: String,
    /// Character set of text columns (`None` for binary and non-text columns).
    pub charset: Option<String>,
}

/// What a column holds, as far as rendering cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// TINYINT..BIGINT; `bytes` is the storage width (1, 2, 3, 4, 8).
    Int {
        unsigned: bool,
        bytes: u8,
    },
    Decimal {
        precision: u32,
        scale: u32,
    },
    Float,
    Double,
    Bit {
        bits: u32,
    },
    Date,
    Time {
        fsp: u32,
    },
    DateTime {
        fsp: u32,
    },
    Timestamp {
        fsp: u32,
    },
    Year,
    /// CHAR, VARCHAR, TEXT (any non-binary character set).
    Text,
    /// BINARY(n) (`fixed = Some(n)`: the binlog drops trailing zero bytes, which are put back),
    /// VARBINARY, BLOB.
    Binary {
        fixed: Option<u32>,
    },
    /// MySQL JSON, or a MariaDB LONGTEXT with a `json_valid` check.
    Json,
    Enum {
        values: Vec<String>,
    },
    Set {
        values: Vec<String>,
    },
    /// Anything else (GEOMETRY, VECTOR, ...): rendered as binary.
    Other(String),
}

/// Column model from information_schema (exact type incl. unsigned, precision/scale,
/// datetime fsp, enum/set values, charset binary-or-not), PK columns in order.
pub async fn table_schema(
    conn: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<TableSchema, MysqlError> {
    type ColRow = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
    );
    let rows: Vec<ColRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, \
                    NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_OCTET_LENGTH \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await?;
    if rows.is_empty() {
        return Err(MysqlError::NoTable {
            schema: schema.into(),
            table: table.into(),
        });
    }
    let primary_key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await?;
    // MariaDB's JSON is LONGTEXT + CHECK (json_valid(`c`)); older servers lack the view.
    let checks: Vec<String> = conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, table),
        )
        .await
        .unwrap_or_default();
    let mut columns = Vec::with_capacity(rows.len());
    for (name, data_type, column_type, nullable, charset, prec, scale, fsp, octets) in rows {
        let is_json_check = checks
            .iter()
            .any(|c| c.trim() == format!("json_valid({})", quote_ident(&name)));
        let kind = column_kind(
            &data_type,
            &column_type,
            prec,
            scale,
            fsp,
            octets,
            is_json_check,
        )
        .map_err(|message| MysqlError::Schema {
            schema: schema.into(),
            table: table.into(),
            message: format!("column {name}: {message}"),
        })?;
        let charset = match kind {
            ColumnKind::Text
            | ColumnKind::Json
            | ColumnKind::Enum { .. }
            | ColumnKind::Set { .. } => charset,
            _ => None,
        };
        columns.push(ColumnInfo {
            name,
            kind,
            nullable: nullable.eq_ignore_ascii_case("YES"),
            column_type,
            charset,
        });
    }
    Ok(TableSchema {
        schema: schema.into(),
        table: table.into(),
        columns,
        primary_key,
    })
}

fn column_kind(
    data_type: &str,
    column_type: &str,
    prec: Option<u64>,
    scale: Option<u64>,
    fsp: Option<u64>,
    octets: Option<u64>,
    json_check: bool,
) -> Result<ColumnKind, String> {
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    let small = |v: Option<u64>| v.map_or(0, |v| v.min(u64::from(u32::MAX)) as u32);
    Ok(match data_type.to_ascii_lowercase().as_str() {
        "tinyint" => ColumnKind::Int { unsigned, bytes: 1 },
        "smallint" => ColumnKind::Int { unsigned, bytes: 2 },
        "mediumint" => ColumnKind::Int { unsigned, bytes: 3 },
        "int" | "integer" => ColumnKind::Int { unsigned, bytes: 4 },
        "bigint" => ColumnKind::Int { unsigned, bytes: 8 },
        "decimal" | "numeric" => ColumnKind::Decimal {
            precision: small(prec),
            scale: small(scale),
        },
        "float" => ColumnKind::Float,
        "double" | "real" => ColumnKind::Double,
        "bit" => ColumnKind::Bit {
            bits: small(prec).max(1),
        },
        "date" => ColumnKind::Date,
        "time" => ColumnKind::Time { fsp: small(fsp) },
        "datetime" => ColumnKind::DateTime { fsp: small(fsp) },
        "timestamp" => ColumnKind::Timestamp { fsp: small(fsp) },
        "year" => ColumnKind::Year,
        "json" => ColumnKind::Json,
        "longtext" if json_check => ColumnKind::Json,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => ColumnKind::Text,
        "binary" => ColumnKind::Binary {
            fixed: Some(small(octets)),
        },
        "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnKind::Binary { fixed: None }
        }
        "enum" => ColumnKind::Enum {
            values: enum_values(column_type)?,
        },
        "set" => ColumnKind::Set {
            values: enum_values(column_type)?,
        },
        other => ColumnKind::Other(other.to_owned()),
    })
}

/// `enum('a','b''c')` → `["a", "b'c"]`. information_schema writes a quote inside a value as
/// two quotes.
fn enum_values(column_type: &str) -> Result<Vec<String>, String> {
    let open = column_type
        .find('(')
        .ok_or_else(|| format!("cannot read the values of {column_type}"))?;
    let mut chars = column_type[open + 1..].chars().peekable();
    let mut values = Vec::new();
    loop {
        match chars.next() {
            Some('\'') => {
                let mut v = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            v.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => v.push(c),
                        None => return Err(format!("cannot read the values of {column_type}")),
                    }
                }
                values.push(v);
            }
            Some(',') | Some(' ') => {}
            Some(')') => return Ok(values),
            _ => return Err(format!("cannot read the values of {column_type}")),
        }
    }
}

/// The foreign keys of `schema.table` whose ON UPDATE / ON DELETE action changes this table's
/// rows when the parent changes (CASCADE, SET NULL): InnoDB makes those changes itself and
/// writes no row events for them to the binlog. Each as `name (→ parent: ON DELETE CASCADE)`.
pub async fn cascading_foreign_keys(
    conn: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, MysqlError> {
    let rows: Vec<(String, String, String, String)> = conn
        .exec(
            "SELECT CONSTRAINT_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE \
             FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? ORDER BY CONSTRAINT_NAME",
            (schema, table),
        )
        .await?;
    let silent =
        |rule: &str| rule.eq_ignore_ascii_case("CASCADE") || rule.eq_ignore_ascii_case("SET NULL");
    Ok(rows
        .into_iter()
        .filter_map(|(name, parent, on_update, on_delete)| {
            let actions: Vec<String> = [("UPDATE", on_update), ("DELETE", on_delete)]
                .into_iter()
                .filter(|(_, rule)| silent(rule))
                .map(|(what, rule)| format!("ON {what} {}", rule.to_ascii_uppercase()))
                .collect();
            (!actions.is_empty()).then(|| format!("{name} (→ {parent}: {})", actions.join(", ")))
        })
        .collect())
}

/// `SELECT` list of every column in schema order, quoted.
pub fn select_list(schema: &TableSchema) -> String {
    schema
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_parse_quotes() {
        assert_eq!(
            enum_values("enum('a','b''c','d,e')").unwrap(),
            vec!["a", "b'c", "d,e"]
        );
        assert_eq!(enum_values("set('x')").unwrap(), vec!["x"]);
        assert!(enum_values("enum('a").is_err());
    }

    #[test]
    fn column_kinds() {
        let k =
            |dt: &str, ct: &str| column_kind(dt, ct, Some(38), Some(10), Some(6), Some(4), false);
        assert_eq!(
            k("bigint", "bigint(20) unsigned").unwrap(),
            ColumnKind::Int {
                unsigned: true,
                bytes: 8
            }
        );
        assert_eq!(
            k("decimal", "decimal(38,10)").unwrap(),
            ColumnKind::Decimal {
                precision: 38,
                scale: 10
            }
        );
        assert_eq!(
            k("binary", "binary(4)").unwrap(),
            ColumnKind::Binary { fixed: Some(4) }
        );
        assert_eq!(
            column_kind("longtext", "longtext", None, None, None, None, true).unwrap(),
            ColumnKind::Json
        );
        assert_eq!(
            k("datetime", "datetime(6)").unwrap(),
            ColumnKind::DateTime { fsp: 6 }
        );
    }
}
