//! The old store: MySQL through mysql_async. Statements are prepared and parameterized;
//! table and column names come only from the validated mapping and information_schema.
//! Rows are read with the binary protocol and rendered exactly as capture renders them
//! ([`crate::mysql::row_data`]), so the two stores are compared in one vocabulary.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Pool, TxOpts, Value};
use serde_json::Value as Json;
use tokio::sync::RwLock;

use super::{AccessError, RowJson};
use crate::mapping::SourceView;
use crate::mysql::{self, quote_ident, ColumnKind, TableSchema};

/// MySQL as the layer sees it. Cheap to clone.
#[derive(Clone)]
pub struct OldStore {
    pool: Pool,
    /// One connection kept for binlog-position reads, which every DynamoDB write of the
    /// layer makes: a pool checkout costs more than the query itself.
    position_conn: Arc<tokio::sync::Mutex<Option<mysql_async::Conn>>>,
    schemas: Arc<RwLock<HashMap<String, Arc<TableSchema>>>>,
}

fn err(e: impl Into<mysql::MysqlError>) -> AccessError {
    AccessError::Mysql(e.into())
}

impl OldStore {
    pub fn new(pool: Pool) -> OldStore {
        OldStore {
            pool,
            position_conn: Arc::default(),
            schemas: Arc::default(),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The binlog position now, as a version (see the version rule in [`crate::access`]).
    pub async fn position(&self) -> Result<u128, AccessError> {
        let mut slot = self.position_conn.lock().await;
        if slot.is_none() {
            *slot = Some(self.pool.get_conn().await.map_err(err)?);
        }
        let Some(conn) = slot.as_mut() else {
            return Err(AccessError::Unavailable(
                "no connection for the binlog position".into(),
            ));
        };
        match mysql::current_position(conn).await {
            Ok(p) => Ok(p.version()),
            Err(e) => {
                // A broken connection is replaced on the next call.
                *slot = None;
                Err(err(e))
            }
        }
    }

    /// The table's columns, read once from information_schema.
    pub async fn schema(&self, view: &SourceView) -> Result<Arc<TableSchema>, AccessError> {
        if let Some(s) = self.schemas.read().await.get(&view.source) {
            return Ok(s.clone());
        }
        let (db, table) = view
            .source
            .split_once('.')
            .ok_or_else(|| AccessError::UnknownEntity(view.source.clone()))?;
        let mut conn = self.pool.get_conn().await.map_err(err)?;
        let schema = Arc::new(
            mysql::table_schema(&mut conn, db, table)
                .await
                .map_err(err)?,
        );
        self.schemas
            .write()
            .await
            .insert(view.source.clone(), schema.clone());
        Ok(schema)
    }

    fn where_key(view: &SourceView) -> String {
        view.primary_key
            .iter()
            .map(|c| format!("{} = ?", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn key_params(
        schema: &TableSchema,
        view: &SourceView,
        key: &RowJson,
    ) -> Result<Vec<Value>, AccessError> {
        view.primary_key
            .iter()
            .map(|c| param(schema, c, key.get(c).unwrap_or(&Json::Null)))
            .collect()
    }

    fn from(schema: &TableSchema) -> String {
        format!(
            "{}.{}",
            quote_ident(&schema.schema),
            quote_ident(&schema.table)
        )
    }

    pub async fn get(
        &self,
        view: &SourceView,
        key: &RowJson,
    ) -> Result<Option<RowJson>, AccessError> {
        let schema = self.schema(view).await?;
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            mysql::select_list(&schema),
            Self::from(&schema),
            Self::where_key(view)
        );
        let params = Self::key_params(&schema, view, key)?;
        let mut conn = self.pool.get_conn().await.map_err(err)?;
        let row: Option<mysql_async::Row> = conn.exec_first(sql, params).await.map_err(err)?;
        row.map(|r| mysql::row_data(&schema, r).map_err(err))
            .transpose()
    }

    pub async fn query(
        &self,
        view: &SourceView,
        filter: &RowJson,
        limit: usize,
    ) -> Result<Vec<RowJson>, AccessError> {
        let schema = self.schema(view).await?;
        let mut params = Vec::new();
        let mut conds = Vec::new();
        for (c, v) in filter {
            if schema.column(c).is_none() {
                return Err(AccessError::Input(format!(
                    "{}: no column {c}",
                    view.source
                )));
            }
            conds.push(format!("{} = ?", quote_ident(c)));
            params.push(param(&schema, c, v)?);
        }
        let order = view
            .primary_key
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {order} LIMIT {}",
            mysql::select_list(&schema),
            Self::from(&schema),
            conds.join(" AND "),
            limit.min(1_000_000)
        );
        let mut conn = self.pool.get_conn().await.map_err(err)?;
        let rows: Vec<mysql_async::Row> = conn.exec(sql, params).await.map_err(err)?;
        rows.into_iter()
            .map(|r| mysql::row_data(&schema, r).map_err(err))
            .collect()
    }

    fn upsert_sql(
        schema: &TableSchema,
        row: &RowJson,
    ) -> Result<(String, Vec<Value>), AccessError> {
        let mut cols = Vec::new();
        let mut params = Vec::new();
        for (c, v) in row {
            if schema.column(c).is_none() {
                return Err(AccessError::Input(format!(
                    "{}.{}: no column {c}",
                    schema.schema, schema.table
                )));
            }
            cols.push(quote_ident(c));
            params.push(param(schema, c, v)?);
        }
        let updates: Vec<String> = cols
            .iter()
            .filter(|c| !schema.primary_key.iter().any(|k| &quote_ident(k) == *c))
            .map(|c| format!("{c} = VALUES({c})"))
            .collect();
        let on_dup = match (updates.is_empty(), cols.first()) {
            // Only key columns: make the duplicate a no-op instead of an error.
            (true, Some(k)) => format!("{k} = {k}"),
            (_, None) => return Err(AccessError::Input("a row needs at least one column".into())),
            (false, _) => updates.join(", "),
        };
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON DUPLICATE KEY UPDATE {on_dup}",
            Self::from(schema),
            cols.join(", "),
            vec!["?"; cols.len()].join(", ")
        );
        Ok((sql, params))
    }

    /// Insert or replace (the columns given; others keep their values or defaults).
    pub async fn put(&self, view: &SourceView, row: &RowJson) -> Result<(), AccessError> {
        let schema = self.schema(view).await?;
        let (sql, params) = Self::upsert_sql(&schema, row)?;
        let mut conn = self.pool.get_conn().await.map_err(err)?;
        conn.exec_drop(sql, params).await.map_err(err)
    }

    pub async fn delete(&self, view: &SourceView, key: &RowJson) -> Result<(), AccessError> {
        let schema = self.schema(view).await?;
        let sql = format!(
            "DELETE FROM {} WHERE {}",
            Self::from(&schema),
            Self::where_key(view)
        );
        let params = Self::key_params(&schema, view, key)?;
        let mut conn = self.pool.get_conn().await.map_err(err)?;
        conn.exec_drop(sql, params).await.map_err(err)
    }

    /// Make the MySQL row equal `fetch()`'s row (`None` = delete) while holding the row's
    /// lock, so no DynamoDB-first writer's MySQL half can interleave; and commit only if
    /// `recheck()` still returns the version `fetch()` saw (the item is unchanged since it
    /// was read), else roll back with [`AccessError::Conflict`] (retryable).
    pub async fn copy_locked<F, Fut, R, RFut>(
        &self,
        view: &SourceView,
        key: &RowJson,
        fetch: F,
        recheck: R,
    ) -> Result<(), AccessError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Option<RowJson>, Option<u128>), AccessError>>,
        R: FnOnce() -> RFut,
        RFut: Future<Output = Result<Option<u128>, AccessError>>,
    {
        let schema = self.schema(view).await?;
        let params = Self::key_params(&schema, view, key)?;
        let mut conn = self.pool.get_conn().await.map_err(err)?;
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(err)?;
        let lock = format!(
            "SELECT 1 FROM {} WHERE {} FOR UPDATE",
            Self::from(&schema),
            Self::where_key(view)
        );
        let _: Option<u8> = tx.exec_first(lock, params.clone()).await.map_err(err)?;
        let (row, seen) = fetch().await?;
        match row {
            Some(row) => {
                let (sql, p) = Self::upsert_sql(&schema, &row)?;
                tx.exec_drop(sql, p).await.map_err(err)?;
            }
            None => {
                let sql = format!(
                    "DELETE FROM {} WHERE {}",
                    Self::from(&schema),
                    Self::where_key(view)
                );
                tx.exec_drop(sql, params).await.map_err(err)?;
            }
        }
        let now = recheck().await?;
        if now != seen {
            tx.rollback().await.map_err(err)?;
            return Err(AccessError::Conflict(format!(
                "{}: the item changed while it was copied into MySQL",
                view.source
            )));
        }
        tx.commit().await.map_err(err)
    }
}

/// A row value (in the DMS shapes) as a statement parameter for its column.
fn param(schema: &TableSchema, column: &str, v: &Json) -> Result<Value, AccessError> {
    let kind = schema
        .column(column)
        .map(|c| &c.kind)
        .ok_or_else(|| AccessError::Input(format!("no column {column}")))?;
    let bad = |what: &str| AccessError::Input(format!("column {column}: {what}"));
    Ok(match v {
        Json::Null => Value::NULL,
        Json::Bool(b) => Value::Int(*b as i64),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (_, Some(u)) => Value::UInt(u),
            _ => Value::Bytes(n.to_string().into_bytes()),
        },
        Json::String(s) => match kind {
            ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. } => {
                let t = s.strip_suffix('Z').unwrap_or(s).replacen('T', " ", 1);
                Value::Bytes(t.into_bytes())
            }
            ColumnKind::Binary { .. } | ColumnKind::Other(_) => {
                let h = s
                    .strip_prefix("0x")
                    .or_else(|| s.strip_prefix("0X"))
                    .unwrap_or(s);
                Value::Bytes(hex::decode(h).map_err(|_| bad("binary values are hex text"))?)
            }
            _ => Value::Bytes(s.clone().into_bytes()),
        },
        Json::Array(_) | Json::Object(_) => match kind {
            ColumnKind::Json => Value::Bytes(v.to_string().into_bytes()),
            _ => return Err(bad("an object or array fits only a JSON column")),
        },
    })
}
