//! CDC: the binlog streamed from the checkpoint's position, every row change versioned by the
//! start of its row event plus its record number in the transaction; checkpoints on
//! transaction boundaries only.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::BinlogStreamRequest;
use rdkafka::producer::FutureProducer;
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpoint, Checkpoints};
use super::record::{partition_key, record_json, send, Meta, Out, TxnMeta};
use super::{CaptureError, Settings};
use crate::mysql::{self, TableSchema};

/// A captured table as the binlog stream sees it.
pub(super) struct Captured {
    /// `information_schema`'s model now (read at start, re-read after a DDL naming the
    /// table): only for what a table map cannot say (MariaDB JSON, a missing primary key).
    schema: TableSchema,
    /// The last table map of the table and the model built from it: the columns its row
    /// events were written with.
    mapped: Option<(TableMapEvent<'static>, TableSchema)>,
}

/// The binlog coordinates being read.
pub(super) struct Cursor {
    file: String,
    file_seq: u64,
    /// Start of the current transaction (its GTID/BEGIN event), for transaction-id.
    txn_id: u64,
    record_in_txn: u64,
    prev_txn: u64,
    prev_record: u64,
    /// End of the last complete transaction: where a restart resumes.
    committed_pos: u64,
    committed_file: String,
}

pub(super) async fn cdc(
    cfg: &Settings,
    pool: &mysql_async::Pool,
    schemas: BTreeMap<String, TableSchema>,
    producer: &FutureProducer,
    checkpoints: &mut Checkpoints,
    start: Checkpoint,
    shutdown: &CancellationToken,
) -> Result<(), CaptureError> {
    let c = &cfg.capture;
    let mut tables: HashMap<String, Captured> = schemas
        .into_iter()
        .map(|(k, schema)| {
            (
                k,
                Captured {
                    schema,
                    mapped: None,
                },
            )
        })
        .collect();
    let mut names: Vec<String> = tables.keys().cloned().collect();
    names.sort();
    let mut conn = pool.get_conn().await?;
    let collations = mysql::Collations::load(&mut conn).await?;
    let stream_conn = conn;
    let request = BinlogStreamRequest::new(c.effective_server_id())
        .with_filename(start.binlog_file.as_bytes())
        .with_pos(start.binlog_pos);
    let mut stream = stream_conn.get_binlog_stream(request).await?;
    tracing::info!(file = %start.binlog_file, pos = start.binlog_pos, "binlog stream opened");
    let mut cur = Cursor {
        file_seq: file_seq(&start.binlog_file)?,
        file: start.binlog_file.clone(),
        txn_id: 0,
        record_in_txn: 0,
        prev_txn: 0,
        prev_record: 0,
        committed_pos: start.binlog_pos,
        committed_file: start.binlog_file.clone(),
    };
    let mut batch: Vec<Out> = Vec::new();
    // The commit position the batch ends at (when it ends on a boundary).
    let mut batch_commit: Option<(String, u64)> = None;
    let mut batch_started = Instant::now();
    let mut durable = (start.binlog_file.clone(), start.binlog_pos);
    let mut saved = durable.clone();
    let mut last_event_ts: u32 = 0;

    loop {
        let wait = if batch.is_empty() {
            Duration::from_secs(1)
        } else {
            c.batch_window.saturating_sub(batch_started.elapsed())
        };
        let next = tokio::select! {
            _ = shutdown.cancelled() => None,
            r = tokio::time::timeout(wait, stream.next()) => Some(r),
        };
        let event = match next {
            None => {
                send(producer, cfg, &batch).await?;
                if let Some(p) = batch_commit.take() {
                    durable = p;
                }
                batch.clear();
                if durable != saved {
                    checkpoints
                        .save(&position_checkpoint(&durable, &names))
                        .await?;
                }
                tracing::info!(file = %durable.0, pos = durable.1, "stopped; checkpoint saved");
                let _ = stream.close().await;
                return Ok(());
            }
            Some(Err(_elapsed)) => None,
            Some(Ok(None)) => {
                return Err(CaptureError::Binlog(
                    "the server closed the binlog stream".into(),
                ))
            }
            Some(Ok(Some(Err(e)))) => return Err(CaptureError::Driver(e)),
            Some(Ok(Some(Ok(ev)))) => Some(ev),
        };
        if let Some(ev) = event {
            let header = ev.header();
            let end_pos = u64::from(header.log_pos());
            let start_pos = end_pos.saturating_sub(u64::from(header.event_size()));
            if header.timestamp() != 0 {
                last_event_ts = header.timestamp();
            }
            // MariaDB's GTID event (type 162) opens a transaction; mysql_common does not
            // know it, so it is recognised by its raw type.
            const MARIADB_GTID_EVENT: u8 = 162;
            if header.event_type_raw() == MARIADB_GTID_EVENT {
                begin_txn(&mut cur, start_pos);
            }
            let data = ev.read_data().map_err(|e| {
                CaptureError::Binlog(format!(
                    "undecodable event at {}:{start_pos}: {e}",
                    cur.file
                ))
            })?;
            match data {
                Some(EventData::RotateEvent(r)) => {
                    cur.file = rotate_name(r.name_raw())?;
                    cur.file_seq = file_seq(&cur.file)?;
                    // A real rotation (not the fake one at stream start) closes the file:
                    // the next file's start is a safe resume point.
                    if header.timestamp() != 0 && cur.txn_id == 0 {
                        cur.committed_file = cur.file.clone();
                        cur.committed_pos = r.position();
                    }
                }
                Some(EventData::QueryEvent(q)) => {
                    let sql = q.query();
                    let trimmed = sql.trim();
                    if trimmed.eq_ignore_ascii_case("BEGIN") {
                        if cur.txn_id == 0 {
                            begin_txn(&mut cur, start_pos);
                        }
                    } else if trimmed.eq_ignore_ascii_case("COMMIT") {
                        end_txn(&mut cur, end_pos);
                        batch_commit = Some((cur.committed_file.clone(), cur.committed_pos));
                    } else {
                        // DDL (its own transaction): refresh the schema of every captured
                        // table it names.
                        let default_schema = q.schema().into_owned();
                        for cap in tables.values_mut() {
                            if !ddl_names_table(
                                &sql,
                                &default_schema,
                                &cap.schema.schema,
                                &cap.schema.table,
                            ) {
                                continue;
                            }
                            let (s, t) = (cap.schema.schema.clone(), cap.schema.table.clone());
                            let reloaded = match pool.get_conn().await {
                                Ok(mut conn) => mysql::table_schema(&mut conn, &s, &t).await,
                                Err(e) => Err(e.into()),
                            };
                            match reloaded {
                                Ok(fresh) => {
                                    tracing::info!(table = %format!("{s}.{t}"), "schema changed; reloaded");
                                    cap.schema = fresh;
                                }
                                Err(e) => {
                                    tracing::warn!(table = %format!("{s}.{t}"), error = %e, "schema reload failed")
                                }
                            }
                        }
                        end_txn(&mut cur, end_pos);
                        batch_commit = Some((cur.committed_file.clone(), cur.committed_pos));
                    }
                }
                Some(EventData::XidEvent(_)) => {
                    end_txn(&mut cur, end_pos);
                    batch_commit = Some((cur.committed_file.clone(), cur.committed_pos));
                }
                Some(EventData::RowsEvent(rows)) => {
                    let Some(tme) = stream.get_tme(rows.table_id()) else {
                        return Err(CaptureError::Binlog(format!(
                            "row event at {}:{start_pos} without its table map",
                            cur.file
                        )));
                    };
                    let name = format!("{}.{}", tme.database_name(), tme.table_name());
                    if let Some(cap) = tables.get_mut(&name) {
                        if cur.txn_id == 0 {
                            begin_txn(&mut cur, start_pos);
                        }
                        rows_to_records(
                            cap,
                            &collations,
                            &rows,
                            tme,
                            &mut cur,
                            start_pos,
                            header.timestamp(),
                            &mut batch,
                            &name,
                        )?;
                    }
                }
                _ => {}
            }
            metrics::gauge!("cutover_capture_binlog_file").set(cur.file_seq as f64);
            metrics::gauge!("cutover_capture_binlog_position").set(end_pos as f64);
        }
        let full = batch.len() >= c.max_batch_records;
        let window_over = !batch.is_empty() && batch_started.elapsed() >= c.batch_window;
        if full || window_over {
            send(producer, cfg, &batch).await?;
            batch.clear();
            if let Some(p) = batch_commit.take() {
                durable = p;
            }
            if last_event_ts != 0 {
                let lag = chrono::Utc::now().timestamp() - i64::from(last_event_ts);
                metrics::gauge!("cutover_capture_lag_seconds").set(lag.max(0) as f64);
            }
        }
        if batch.is_empty() {
            batch_started = Instant::now();
            // Nothing pending: the last commit is durable as soon as its batch was acked.
            if let Some(p) = batch_commit.take() {
                durable = p;
            }
        }
        if durable != saved && checkpoints.due(c.checkpoint_interval) {
            checkpoints
                .save(&position_checkpoint(&durable, &names))
                .await?;
            saved = durable.clone();
        } else if durable == saved && batch.is_empty() {
            super::checkpoint::covered_now();
        }
    }
}

/// Whether a statement names `schema.table` (or `table` with `schema` as its default database).
/// Identifiers are compared case-insensitively with their backticks removed.
pub(super) fn ddl_names_table(sql: &str, default_schema: &str, schema: &str, table: &str) -> bool {
    let text = sql.to_lowercase().replace('`', "");
    let (schema, table) = (schema.to_lowercase(), table.to_lowercase());
    let qualified = format!("{schema}.{table}");
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.'))
        .any(|tok| {
            tok == qualified || (tok == table && default_schema.eq_ignore_ascii_case(&schema))
        })
}

/// The file a ROTATE names. The artificial one that opens the stream arrives before the
/// format description, so its 4-byte checksum is still attached to the name.
pub(super) fn rotate_name(raw: &[u8]) -> Result<String, CaptureError> {
    let full = String::from_utf8_lossy(raw);
    if mysql::binlog_file_seq(&full).is_some() {
        return Ok(full.into_owned());
    }
    let cut = String::from_utf8_lossy(raw.get(..raw.len().saturating_sub(4)).unwrap_or_default());
    if mysql::binlog_file_seq(&cut).is_some() {
        return Ok(cut.into_owned());
    }
    Err(CaptureError::Binlog(format!(
        "ROTATE to a binlog file without a numeric suffix: {full:?}"
    )))
}

pub(super) fn position_checkpoint(p: &(String, u64), tables: &[String]) -> Checkpoint {
    Checkpoint {
        binlog_file: p.0.clone(),
        binlog_pos: p.1,
        snapshot: None,
        tables: Some(tables.to_vec()),
    }
}

pub(super) fn file_seq(file: &str) -> Result<u64, CaptureError> {
    mysql::binlog_file_seq(file)
        .ok_or_else(|| CaptureError::Binlog(format!("binlog file {file:?} has no numeric suffix")))
}

/// transaction-id: the position of the transaction's first event, made unique across files
/// (`file_seq · 10^12 + pos`), so it is a number like DMS's and increases with the binlog.
pub(super) fn begin_txn(cur: &mut Cursor, start_pos: u64) {
    cur.txn_id = cur.file_seq.saturating_mul(1_000_000_000_000) + start_pos;
    cur.record_in_txn = 0;
}

pub(super) fn end_txn(cur: &mut Cursor, end_pos: u64) {
    if cur.txn_id != 0 && cur.record_in_txn > 0 {
        cur.prev_txn = cur.txn_id;
        cur.prev_record = cur.record_in_txn;
    }
    cur.txn_id = 0;
    cur.record_in_txn = 0;
    cur.committed_file = cur.file.clone();
    cur.committed_pos = end_pos;
}

/// Render the rows of one row event with the columns of its own table map. A row that cannot
/// be rendered stops capture with an error naming the table, position and column (never the
/// value): nothing is skipped, and a restart resumes before it.
#[allow(clippy::too_many_arguments)]
pub(super) fn rows_to_records(
    cap: &mut Captured,
    collations: &mysql::Collations,
    rows: &RowsEventData<'_>,
    tme: &TableMapEvent<'static>,
    cur: &mut Cursor,
    start_pos: u64,
    event_ts: u32,
    batch: &mut Vec<Out>,
    name: &str,
) -> Result<(), CaptureError> {
    let op = match rows {
        RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => "insert",
        RowsEventData::UpdateRowsEvent(_)
        | RowsEventData::UpdateRowsEventV1(_)
        | RowsEventData::PartialUpdateRowsEvent(_) => "update",
        RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => "delete",
    };
    let at = format!("{}:{start_pos}", cur.file);
    let fail = |what: String| {
        metrics::counter!("cutover_capture_unrenderable_total", "table" => name.to_owned())
            .increment(1);
        CaptureError::Binlog(format!(
            "table {name}, row event at {at}: {what}; capture stopped (nothing was skipped: \
             fix the cause and restart, it resumes at its last checkpoint)"
        ))
    };
    if cap.mapped.as_ref().is_none_or(|(seen, _)| seen != tme) {
        let model = mysql::table_map_schema(tme, collations, Some(&cap.schema)).map_err(&fail)?;
        if cap
            .mapped
            .as_ref()
            .is_some_and(|(_, m)| m.columns != model.columns)
        {
            tracing::info!(table = %name, at = %at, "table map changed: rendering with its columns");
        }
        cap.mapped = Some((tme.clone(), model));
    }
    let Some((_, schema)) = cap.mapped.as_ref() else {
        return Err(fail("no table map".into()));
    };
    let commit_ts = chrono::DateTime::from_timestamp(i64::from(event_ts), 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let render = |row: Option<mysql_async::binlog::row::BinlogRow>| -> Result<Option<Vec<(String, Json)>>, String> {
        let Some(row) = row else { return Ok(None) };
        let mut out = Vec::with_capacity(row.len());
        for (i, col) in schema.columns.iter().enumerate() {
            let v = match row.as_ref(i) {
                Some(v) => mysql::from_binlog(col, v.clone()).map_err(|e| format!("column {}: {e}", col.name))?,
                None => continue,
            };
            out.push((col.name.clone(), mysql::render(col, v)));
        }
        Ok(Some(out))
    };
    for pair in rows.rows(tme) {
        let (before, after) = pair.map_err(|e| fail(format!("undecodable row image: {e}")))?;
        let (before, after) = (
            render(before).map_err(&fail)?,
            render(after).map_err(&fail)?,
        );
        let (data, before_image) = match op {
            "delete" => (before, None),
            "update" => (after, before),
            _ => (after, None),
        };
        let data = data.ok_or_else(|| fail(format!("{op} without its row image")))?;
        cur.record_in_txn += 1;
        let key = partition_key(schema, &data);
        let meta = Meta {
            operation: op,
            schema: &schema.schema,
            table: &schema.table,
            key_value: &key,
            txn: Some(TxnMeta {
                id: cur.txn_id,
                record_id: cur.record_in_txn,
                prev_id: cur.prev_txn,
                prev_record_id: cur.prev_record,
                commit_ts: &commit_ts,
            }),
            // file:pos:0:pos:txid:file:pos, like DMS; the first file:pos is the row event's
            // start, which with transaction-record-id orders every row change.
            stream_position: format!(
                "{f}:{start_pos}:0:{start_pos}:{txid}:{f}:{start_pos}",
                f = cur.file,
                txid = cur.txn_id
            ),
        };
        let value = record_json(&meta, &data, before_image.as_deref());
        batch.push(Out { key, value });
        metrics::counter!("cutover_capture_rows_total", "table" => name.to_owned(), "op" => op)
            .increment(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_table_names() {
        assert!(ddl_names_table(
            "ALTER TABLE `s`.`t` ADD c INT",
            "",
            "s",
            "t"
        ));
        assert!(ddl_names_table("alter table t add c int", "s", "s", "t"));
        assert!(!ddl_names_table(
            "alter table t add c int",
            "other",
            "s",
            "t"
        ));
        assert!(!ddl_names_table("create table s.tt (t int)", "x", "s", "t"));
        assert!(!ddl_names_table("drop table s.t2", "s", "s", "t"));
    }
}
