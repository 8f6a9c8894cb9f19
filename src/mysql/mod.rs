//! The MySQL/MariaDB edge (`[mysql]`): connection pool, server checks, binlog position, the
//! column model from `information_schema` and from a binlog table map ([`table_map_schema`]),
//! and the DMS rendering of column values.
//!
//! Invariants:
//! - One rendering: [`render`] is the DMS JSON form of a value; [`row_cells`] goes through the
//!   DMS decoder's own JSON → [`Cell`](crate::cdc::Cell) code, so `capture` → `run` and every
//!   reader of MySQL rows (verify, the data-access layer) can never disagree on a value.
//! - Exact values: DECIMAL keeps its digits (as a JSON string, because this crate's
//!   serde_json has no `arbitrary_precision`, so a `Value` number would go through `f64`);
//!   BIGINT UNSIGNED is a `u64`; nothing is rounded.
//! - JSON columns are text in one normal form ([`crate::mapping::normalize_json`]: no
//!   spaces, sorted keys, exact plain numbers) whoever reads them; MySQL's binary JSON from the
//!   binlog keeps DECIMAL digits and DATE/TIME/DATETIME values exact.
//! - Binlog text is decoded from its column's character set (`encoding_rs`; latin1 is MySQL's
//!   cp1252); bytes that are not valid in it are an error naming the column, never U+FFFD.
//! - Sessions run in UTC (`time_zone = '+00:00'`), so TIMESTAMP values read with SQL are the
//!   same instants the binlog carries.
//! - The password never appears in `Debug`/`Display` output or in errors.
//! - Identifiers in SQL come from the mapping or `information_schema` and are quoted with
//!   [`quote_ident`]; values are always bound parameters.

mod config;
mod decode;
mod render;
mod schema;
mod table_map;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

pub use self::config::{redact_url, MysqlConfig};
pub use render::{
    cells_of, data_json, from_binlog, render, row_cells, row_data, row_values, RenderedRow,
};
pub use schema::{
    cascading_foreign_keys, select_list, table_schema, ColumnInfo, ColumnKind, TableSchema,
};
pub use table_map::{table_map_schema, Collations};

pub use crate::cdc::binlog_file_seq;
use crate::cdc::SourcePosition;
use crate::error::{Classify, Disposition};

/// Why a MySQL operation failed. Never holds the password.
#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("mysql: {0}")]
    Driver(#[from] mysql_async::Error),
    #[error("binary logging is off on the server (SHOW MASTER STATUS is empty): set log_bin")]
    NoBinlog,
    #[error("table {schema}.{table} not found")]
    NoTable { schema: String, table: String },
    #[error("table {schema}.{table}: {message}")]
    Schema {
        schema: String,
        table: String,
        message: String,
    },
    #[error("column {column}: {message}")]
    Value { column: String, message: String },
}

impl Classify for MysqlError {
    fn disposition(&self) -> Disposition {
        match self {
            // A connection that failed or broke: the server may be back later.
            MysqlError::Driver(mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)) => {
                Disposition::Retry
            }
            MysqlError::Driver(mysql_async::Error::Server(e)) => server_disposition(e.code),

            // A value that can't be rendered: that row, not the database.
            MysqlError::Value { .. } => Disposition::Poison,
            _ => Disposition::Fatal,
        }
    }
}

/// The class of a MySQL server error code: what waiting can do about it.
/// - Retry: the transaction lost a race or the server is busy or going away: deadlock
///   (1213), lock wait timeout (1205), too many connections (1040), shutdown (1053),
///   connection killed (1927), read-only during a failover (1290, 1836), query interrupted
///   (1317), statement timeout (3024, 1969).
/// - Poison: this row's values can't be stored (null in NOT NULL 1048, duplicate 1062, out of
///   range 1264, truncated 1265, bad value 1292/1366, too long 1406, foreign key 1451/1452,
///   invalid JSON 3140, CHECK constraint 3819/4025): that input, not the database.
/// - Fatal: everything else (a missing table 1146, denied access 1045/1142, bad SQL).
pub fn server_disposition(code: u16) -> Disposition {
    match code {
        1213 | 1205 | 1040 | 1053 | 1927 | 1290 | 1836 | 1317 | 3024 | 1969 => Disposition::Retry,
        1048 | 1062 | 1264 | 1265 | 1292 | 1366 | 1406 | 1451 | 1452 | 3140 | 3819 | 4025 => {
            Disposition::Poison
        }
        _ => Disposition::Fatal,
    }
}

/// `a``b` for `a`b`: a MySQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Binlog position right now (SHOW MASTER STATUS): a SourcePosition with log_file_seq/log_pos
/// set (record_in_txn 0), raw stream_position "file:pos".
///
/// Its version() is ≤ the version of any change committed after this call and ≥ that of any
/// change committed before it — the rule every non-CDC writer (verify --repair, the
/// data-access layer) uses for its DynamoDB writes. (Capture versions a row change by the
/// START of its row event: a change committed before this call starts below `pos`, one
/// committed after starts above it.)
pub async fn current_position(conn: &mut Conn) -> Result<SourcePosition, MysqlError> {
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        // MySQL 8.4 removed SHOW MASTER STATUS.
        Err(mysql_async::Error::Server(_)) => conn.query_first("SHOW BINARY LOG STATUS").await?,
        Err(e) => return Err(e.into()),
    };
    let row = row.ok_or(MysqlError::NoBinlog)?;
    let file: Option<String> = row.get(0);
    let pos: Option<u64> = row.get(1);
    match (file, pos) {
        (Some(file), Some(pos)) => position_of(&file, pos),
        _ => Err(MysqlError::NoBinlog),
    }
}

/// A binlog coordinate as a [`SourcePosition`].
pub fn position_of(file: &str, pos: u64) -> Result<SourcePosition, MysqlError> {
    let seq = binlog_file_seq(file).ok_or_else(|| {
        MysqlError::Config(format!(
            "binlog file name {file:?} has no numeric suffix: cannot order positions"
        ))
    })?;
    Ok(SourcePosition {
        log_file_seq: Some(seq),
        log_pos: Some(pos),
        record_in_txn: Some(0),
        stream_position: Some(format!("{file}:{pos}")),
        ..SourcePosition::default()
    })
}

/// Refusals: every unusable server setting at once, each message naming the setting and the
/// value it needs (log_bin=ON, binlog_format=ROW, binlog_row_image=FULL,
/// binlog_row_metadata=FULL), plus missing REPLICATION SLAVE/CLIENT privileges when the
/// grants show them missing.
pub async fn check_server(conn: &mut Conn) -> Result<(), Vec<String>> {
    let vars: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
             ('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata')",
        )
        .await
        .map_err(|e| vec![format!("cannot read the server settings: {e}")])?;
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_uppercase())
    };
    let mut problems = Vec::new();
    for (name, want) in [
        ("log_bin", "ON"),
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
        ("binlog_row_metadata", "FULL"),
    ] {
        match get(name) {
            Some(v) if v == want || (name == "log_bin" && v == "1") => {}
            Some(v) => problems.push(format!(
                "{name} is {v}: capture needs {name}={want} (set it in the server configuration{})",
                if name == "log_bin" { " and restart" } else { "; SET GLOBAL works for new sessions" }
            )),
            None => problems.push(format!(
                "{name} is not supported by this server: capture needs {name}={want} (MariaDB ≥ 10.5 or MySQL ≥ 8.0.1)"
            )),
        }
    }
    problems.extend(missing_privileges(conn).await);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Privileges the binlog stream needs, judged from SHOW GRANTS. Grants that arrive through
/// roles are not expanded, so when a role is granted nothing is reported (the stream itself
/// then fails with the server's message if something is missing).
async fn missing_privileges(conn: &mut Conn) -> Vec<String> {
    // The grant lines hold the password hash: they are inspected, never logged.
    let Ok(grants) = conn.query::<String, _>("SHOW GRANTS").await else {
        return Vec::new();
    };
    let global: Vec<String> = grants
        .iter()
        .map(|g| g.to_ascii_uppercase())
        .filter(|g| g.contains(" ON *.* "))
        .collect();
    let has_role = grants
        .iter()
        .any(|g| !g.to_ascii_uppercase().contains(" ON "));
    if has_role || global.iter().any(|g| g.contains("ALL PRIVILEGES")) {
        return Vec::new();
    }
    let any = |names: &[&str]| global.iter().any(|g| names.iter().any(|n| g.contains(n)));
    let mut out = Vec::new();
    if !any(&["REPLICATION SLAVE", "REPLICATION REPLICA"]) {
        out.push("privilege REPLICATION SLAVE is missing: GRANT REPLICATION SLAVE ON *.* TO the capture user".into());
    }
    if !any(&["REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"]) {
        out.push("privilege REPLICATION CLIENT (MariaDB: BINLOG MONITOR) is missing: GRANT REPLICATION CLIENT ON *.* TO the capture user".into());
    }
    out
}
