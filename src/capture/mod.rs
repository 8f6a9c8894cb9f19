//! `cutover capture` (`[capture]`): MySQL/MariaDB → DMS-format JSON records on Kafka, for
//! users without AWS DMS. `cutover run` (and any DMS consumer) reads them like DMS output.
//!
//! Full load, then CDC:
//! 1. A consistent snapshot (`START TRANSACTION WITH CONSISTENT SNAPSHOT`; on MariaDB
//!    `binlog_snapshot_file/position` name its binlog position without locks; elsewhere a brief
//!    `FLUSH TABLES WITH READ LOCK`) is read table by table with keyset pagination and written
//!    as `load` records whose `stream-position` is the snapshot position, so their version is
//!    the snapshot's.
//! 2. The binlog is streamed from exactly that position. Every row change is versioned by the
//!    start of its row event plus its `transaction-record-id`, which is above the snapshot
//!    position and strictly increasing, so the writer's version guard orders snapshot and CDC
//!    rows, and absorbs the at-least-once duplicates around restarts.
//!
//! Invariants:
//! - A checkpoint names only positions whose records Kafka acknowledged (`kafka::send_all`
//!   returned) — at-least-once, never a gap. CDC checkpoints sit on transaction boundaries.
//! - Checkpoints go to a Kafka topic (`[capture] checkpoint_topic`, compacted where the broker
//!   compacts, keyed by capture name), not to a table in the source: capture then needs no
//!   write access to the database, adds no binlog traffic of its own, and its state lives and
//!   dies with the records it describes.
//! - A crash mid-snapshot resumes the keyset after the last checkpointed key with a FRESH
//!   snapshot, but CDC still starts from the FIRST snapshot's position: the rows loaded by
//!   the second snapshot carry its (higher) version, so replayed older changes cannot
//!   overwrite them, and changes to rows loaded before the crash are all replayed.
//! - Kafka key = `schema.table.<pk values joined by '.'>`: librdkafka's default partitioner
//!   keeps each key in one partition, so changes to one row arrive in binlog order. Parent rows
//!   before child rows then follows from binlog order for each row; across keys (and so across
//!   tables) there is no order between partitions, which the version guard does not need.
//! - Binlog rows are rendered with the columns of their own TABLE_MAP event
//!   (`binlog_row_metadata=FULL`: names, types, signedness, character sets, ENUM/SET values),
//!   not with today's schema, so a row written before a DDL and read after it (lag, restart,
//!   two quick ALTERs) is rendered as it was written. A row that still cannot be rendered
//!   stops capture with an error naming table, position and column: nothing is skipped, and
//!   the restart resumes at the last checkpoint, before it. Never a panic.
//! - The checkpoint records the table set; a table mapped after the initial load is loaded at
//!   the next start by a fresh snapshot (its rows at that snapshot's version) while CDC resumes
//!   at the checkpoint, exactly like the resume after a crash mid-snapshot.
//! - A record larger than the producer's `message.max.bytes` goes to `kafka.dlq_topic` (key,
//!   metadata and reason; no row values), counted and logged, and capture goes on.
//! - At start, capture warns once per table about foreign keys whose CASCADE / SET NULL
//!   actions change its rows without binlog row events (`verify --repair` finds and fixes them).
//! - Row values are never logged at info level.

mod binlog;
mod checkpoint;
mod config;
mod record;
mod snapshot;

use std::collections::BTreeMap;

use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

pub use self::config::CaptureConfig;
pub use checkpoint::{Checkpoint, KeyValue, SnapshotProgress};

use crate::error::{Classify, Disposition};
use crate::kafka::KafkaConfig;
use crate::mysql::{self, MysqlConfig, MysqlError};
use checkpoint::Checkpoints;

/// Why capture stopped.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The server or the tables cannot be captured as configured: every reason, each naming
    /// the setting to change. The binary exits with 2.
    #[error("capture refused:\n  - {}", .0.join("\n  - "))]
    Refused(Vec<String>),
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    #[error("mysql: {0}")]
    Driver(#[from] mysql_async::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("binlog: {0}")]
    Binlog(String),
}

impl Classify for CaptureError {
    fn disposition(&self) -> Disposition {
        match self {
            CaptureError::Mysql(e) => e.disposition(),
            CaptureError::Driver(mysql_async::Error::Io(_) | mysql_async::Error::Driver(_))
            | CaptureError::Kafka(_) => Disposition::Retry,
            CaptureError::Refused(_)
            | CaptureError::Driver(_)
            | CaptureError::Checkpoint(_)
            | CaptureError::Binlog(_) => Disposition::Fatal,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

/// What capture runs with, resolved from the file (`commands::capture`) before any I/O: the
/// checks that need no server have passed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub capture: CaptureConfig,
    pub mysql: MysqlConfig,
    pub kafka: KafkaConfig,
    /// The tables to capture, `(schema, table)`, without repeats; never empty.
    pub tables: Vec<(String, String)>,
}

impl Settings {
    /// Every check that needs no I/O: a MySQL URL, something to capture (`capture.tables`,
    /// or else `sources`, the `[[table]]` blocks' sources). Refusals exit with 2.
    pub fn new<'a>(
        capture: &'a CaptureConfig,
        mysql: &MysqlConfig,
        kafka: &KafkaConfig,
        sources: impl IntoIterator<Item = &'a str>,
    ) -> Result<Settings, CaptureError> {
        mysql
            .require()
            .map_err(|i| CaptureError::Refused(vec![i.to_string()]))?;
        let tables = capture.table_list(sources);
        if tables.is_empty() {
            return Err(CaptureError::Refused(vec![
                "no tables to capture: add [[table]] mappings or set capture.tables".into(),
            ]));
        }
        Ok(Settings {
            capture: capture.clone(),
            mysql: mysql.clone(),
            kafka: kafka.clone(),
            tables,
        })
    }
}

/// Capture until `shutdown` is cancelled (flush, checkpoint, return Ok) or a fatal error.
pub async fn capture(cfg: Settings, shutdown: CancellationToken) -> Result<(), CaptureError> {
    let pool = cfg.mysql.pool()?;
    let mut conn = pool.get_conn().await?;
    mysql::check_server(&mut conn)
        .await
        .map_err(CaptureError::Refused)?;
    let tables = cfg.tables.clone();
    let mut schemas = BTreeMap::new();
    let mut refusals = Vec::new();
    for (s, t) in &tables {
        match mysql::table_schema(&mut conn, s, t).await {
            Ok(ts) if ts.primary_key.is_empty() => refusals.push(format!(
                "table {s}.{t} has no primary key: capture pages and keys records by it"
            )),
            Ok(ts) => {
                schemas.insert(format!("{s}.{t}"), ts);
            }
            Err(e) => refusals.push(e.to_string()),
        }
        // Once per table and start: changes the binlog will never show.
        match mysql::cascading_foreign_keys(&mut conn, s, t).await {
            Ok(fks) if !fks.is_empty() => tracing::warn!(
                table = %format!("{s}.{t}"),
                foreign_keys = %fks.join("; "),
                "rows changed by these foreign-key actions have no row events in the binlog, so capture cannot see those changes: run `cutover verify --repair` after a parent row they act on is updated or deleted"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(table = %format!("{s}.{t}"), error = %e, "cannot read foreign keys")
            }
        }
    }
    if !refusals.is_empty() {
        return Err(CaptureError::Refused(refusals));
    }
    drop(conn);

    let producer: FutureProducer = {
        let mut pc = crate::kafka::producer_config(&cfg.kafka);
        // Per-key order survives retries.
        if !cfg.kafka.properties.contains_key("enable.idempotence") {
            pc.set("enable.idempotence", "true");
        }
        pc.set("linger.ms", "5");
        pc.create()?
    };
    let mut checkpoints = Checkpoints::open(&cfg, producer.clone()).await?;
    let mut cp = checkpoints.load(&cfg)?;
    match &cp {
        Some(c) => {
            tracing::info!(file = %c.binlog_file, pos = c.binlog_pos, snapshot = c.snapshot.is_some(), "resuming from checkpoint")
        }
        None => tracing::info!(
            tables = schemas.len(),
            "no checkpoint: starting with a full load"
        ),
    }
    // Tables mapped after the initial load: loaded now, by a fresh snapshot whose rows carry
    // its (higher) version, while CDC still resumes at the checkpoint (as after a crash
    // mid-snapshot), so their changes in between are replayed and lose to the loaded rows.
    if let Some(c) = cp.as_mut().filter(|c| c.snapshot.is_none()) {
        if let Some(known) = &c.tables {
            let new: Vec<&String> = schemas.keys().filter(|t| !known.contains(t)).collect();
            if !new.is_empty() {
                tracing::info!(tables = ?new, "tables added to the mapping since the initial load: loading them");
                c.snapshot = Some(SnapshotProgress {
                    done: schemas
                        .keys()
                        .filter(|t| known.contains(t))
                        .cloned()
                        .collect(),
                    current: None,
                    last_key: None,
                });
            }
        }
    }
    if cp.as_ref().is_none_or(|c| c.snapshot.is_some()) {
        let done = snapshot::snapshot(
            &cfg,
            &pool,
            &schemas,
            &producer,
            &mut checkpoints,
            cp.take(),
            &shutdown,
        )
        .await?;
        match done {
            Some(c) => cp = Some(c),
            None => return Ok(()), // stopped mid-snapshot; the checkpoint says where
        }
    }
    let Some(cp) = cp else {
        return Err(CaptureError::Checkpoint(
            "no position after the snapshot".into(),
        ));
    };
    binlog::cdc(
        &cfg,
        &pool,
        schemas,
        &producer,
        &mut checkpoints,
        cp,
        &shutdown,
    )
    .await
}
