//! The full load: one consistent snapshot, read table by table with keyset pagination, written
//! as `load` records at the snapshot's binlog position, resumable from a checkpoint.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpoint, Checkpoints, KeyValue, SnapshotProgress};
use super::record::{partition_key, record_json, send, Meta, Out};
use super::{CaptureError, Settings};
use crate::mysql::{self, quote_ident, TableSchema};

/// Open a consistent snapshot on `conn` and return its binlog position.
pub(super) async fn start_snapshot(conn: &mut Conn) -> Result<(String, u64), CaptureError> {
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await?;
    let status: Vec<(String, String)> = conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
    let get = |k: &str| {
        status
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if let (Some(file), Some(pos)) = (get("binlog_snapshot_file"), get("binlog_snapshot_position"))
    {
        if let (false, Ok(pos)) = (file.is_empty(), pos.parse::<u64>()) {
            return Ok((file, pos));
        }
    }
    // MySQL: no snapshot position; hold a global read lock for the instant it takes to open
    // the snapshot and read the position.
    conn.query_drop("ROLLBACK").await?;
    conn.query_drop("FLUSH TABLES WITH READ LOCK").await?;
    let opened = async {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await?;
        mysql::current_position(conn)
            .await
            .map_err(CaptureError::from)
    }
    .await;
    conn.query_drop("UNLOCK TABLES").await?;
    let p = opened?;
    let raw = p.stream_position.unwrap_or_default();
    let (file, pos) = raw
        .rsplit_once(':')
        .and_then(|(f, p)| Some((f.to_owned(), p.parse().ok()?)))
        .ok_or_else(|| CaptureError::Binlog("no binlog position".into()))?;
    Ok((file, pos))
}

/// One keyset page: the first (no key yet) or the one after `key`.
pub(super) async fn fetch_page(
    conn: &mut Conn,
    first_sql: &str,
    next_sql: &str,
    key: Option<Vec<Value>>,
) -> Result<Vec<mysql_async::Row>, mysql_async::Error> {
    match key {
        None => conn.exec(first_sql, ()).await,
        Some(k) => {
            conn.exec(next_sql, mysql_async::Params::Positional(k))
                .await
        }
    }
}

/// Load every table not yet loaded. Returns the checkpoint CDC starts from, or `None` when
/// stopped by `shutdown`.
pub(super) async fn snapshot(
    cfg: &Settings,
    pool: &mysql_async::Pool,
    schemas: &BTreeMap<String, TableSchema>,
    producer: &FutureProducer,
    checkpoints: &mut Checkpoints,
    resume: Option<Checkpoint>,
    shutdown: &CancellationToken,
) -> Result<Option<Checkpoint>, CaptureError> {
    let c = &cfg.capture;
    let mut conn = pool.get_conn().await?;
    let (snap_file, snap_pos) = start_snapshot(&mut conn).await?;
    // CDC starts at the first snapshot's position, whatever snapshot finishes the load.
    let mut cp = resume.unwrap_or_else(|| Checkpoint {
        binlog_file: snap_file.clone(),
        binlog_pos: snap_pos,
        snapshot: Some(SnapshotProgress {
            done: Vec::new(),
            current: None,
            last_key: None,
        }),
        tables: None,
    });
    if checkpoints.last_write.is_none()
        && cp
            .snapshot
            .as_ref()
            .is_some_and(|s| s.done.is_empty() && s.current.is_none())
    {
        checkpoints.save(&cp).await?;
    }
    let stream_position = format!("{snap_file}:{snap_pos}");
    tracing::info!(snapshot = %stream_position, cdc_from = %format!("{}:{}", cp.binlog_file, cp.binlog_pos), "snapshot opened");

    // Row-count estimates for the progress display only.
    let mut estimate = 0u64;
    for ts in schemas.values() {
        let n: Option<u64> = conn
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&ts.schema, &ts.table),
            )
            .await
            .ok()
            .flatten();
        estimate += n.unwrap_or(0);
    }
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(estimate.max(1));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:40} {pos}/~{len} rows {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut last_log = Instant::now();
    let mut total = 0u64;

    for (name, ts) in schemas {
        let progress = cp.snapshot.get_or_insert_with(|| SnapshotProgress {
            done: Vec::new(),
            current: None,
            last_key: None,
        });
        if progress.done.contains(name) {
            continue;
        }
        let mut last_key: Option<Vec<Value>> = if progress.current.as_deref() == Some(name) {
            progress
                .last_key
                .as_ref()
                .map(|k| k.iter().map(KeyValue::to_value).collect())
        } else {
            None
        };
        bar.set_message(name.clone());
        let pk_idx = ts.pk_indexes();
        let cols = mysql::select_list(ts);
        let from = format!("{}.{}", quote_ident(&ts.schema), quote_ident(&ts.table));
        let order = ts
            .primary_key
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>();
        let first_sql = format!(
            "SELECT {cols} FROM {from} ORDER BY {} LIMIT {}",
            order.join(", "),
            c.snapshot_batch
        );
        let after = if order.len() == 1 {
            format!("{} > ?", order[0])
        } else {
            format!(
                "({}) > ({})",
                order.join(", "),
                vec!["?"; order.len()].join(", ")
            )
        };
        let next_sql = format!(
            "SELECT {cols} FROM {from} WHERE {after} ORDER BY {} LIMIT {}",
            order.join(", "),
            c.snapshot_batch
        );
        let mut rows = fetch_page(&mut conn, &first_sql, &next_sql, last_key.clone()).await?;
        loop {
            if rows.is_empty() {
                break;
            }
            let full_page = rows.len() >= c.snapshot_batch;
            // The next page's key, from the raw values (exactly what the server compares).
            let page_last: Vec<Value> = rows
                .last()
                .map(|r| {
                    pk_idx
                        .iter()
                        .map(|&i| r.as_ref(i).cloned().unwrap_or(Value::NULL))
                        .collect()
                })
                .unwrap_or_default();
            let mut batch = Vec::with_capacity(rows.len());
            for row in rows {
                let data = mysql::row_values(ts, row)?;
                let key = partition_key(ts, &data);
                let meta = Meta {
                    operation: "load",
                    schema: &ts.schema,
                    table: &ts.table,
                    key_value: &key,
                    txn: None,
                    stream_position: stream_position.clone(),
                };
                let value = record_json(&meta, &data, None);
                batch.push(Out { key, value });
            }
            let n = batch.len() as u64;
            // Read the next page while this one is being delivered.
            let (sent, next) = if full_page {
                let (s, r) = tokio::join!(
                    send(producer, cfg, &batch),
                    fetch_page(&mut conn, &first_sql, &next_sql, Some(page_last.clone()))
                );
                (s, Some(r))
            } else {
                (send(producer, cfg, &batch).await, None)
            };
            sent?;
            total += n;
            bar.inc(n);
            metrics::counter!("cutover_capture_rows_total", "table" => name.clone(), "op" => "load").increment(n);
            metrics::gauge!("cutover_capture_snapshot_rows", "table" => name.clone())
                .increment(n as f64);
            last_key = Some(page_last);
            if let Some(p) = cp.snapshot.as_mut() {
                p.current = Some(name.clone());
                p.last_key = last_key
                    .as_ref()
                    .map(|k| k.iter().map(KeyValue::from).collect());
            }
            if checkpoints.due(c.checkpoint_interval) {
                checkpoints.save(&cp).await?;
            }
            if bar.is_hidden() && last_log.elapsed() >= Duration::from_secs(5) {
                tracing::info!(table = %name, rows = total, estimate, "snapshot progress");
                last_log = Instant::now();
            }
            if shutdown.is_cancelled() {
                checkpoints.save(&cp).await?;
                tracing::info!(rows = total, "stopped mid-snapshot; checkpoint saved");
                return Ok(None);
            }
            match next {
                Some(r) => rows = r?,
                None => break,
            }
        }
        if let Some(p) = cp.snapshot.as_mut() {
            p.done.push(name.clone());
            p.current = None;
            p.last_key = None;
        }
        checkpoints.save(&cp).await?;
        tracing::info!(table = %name, "table loaded");
    }
    conn.query_drop("COMMIT").await?;
    bar.finish_and_clear();
    cp.snapshot = None;
    cp.tables = Some(schemas.keys().cloned().collect());
    checkpoints.save(&cp).await?;
    tracing::info!(rows = total, "full load done; streaming the binlog");
    Ok(Some(cp))
}
