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
//! - A table whose binlog rows cannot be rendered (columns differ from `information_schema`
//!   after a DDL, an undecodable value) is logged and skipped with a metric; never a panic.
//! - Row values are never logged at info level.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Value};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use crate::app::Config;
use crate::config::ConfigIssue;
use crate::mysql::{self, quote_ident, MysqlError, TableSchema};

/// `[capture]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureConfig {
    /// Name of this capture: the key of its checkpoints. Two captures of different databases
    /// into one checkpoint topic need different names.
    pub name: String,
    /// Topic the DMS-format records are written to (create it with the partitions you want).
    pub topic: String,
    /// Topic holding the checkpoints (one partition; created, compacted, when missing).
    pub checkpoint_topic: String,
    /// Source tables as `schema.table`. Default: the sources of the `[[table]]` mappings.
    pub tables: Vec<String>,
    /// Replication server id this capture registers with; unique among the server's replicas
    /// and captures. 0 (default): derived from `name`, so captures with different names differ.
    pub server_id: u32,
    /// Rows per snapshot page (keyset pagination).
    pub snapshot_batch: usize,
    /// Most CDC records sent before waiting for their acknowledgements.
    pub max_batch_records: usize,
    /// How long a partially filled CDC batch may wait before it is sent.
    #[serde(with = "humantime_serde")]
    pub batch_window: Duration,
    /// Least time between two checkpoints.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            name: "cutover".into(),
            topic: "cutover.capture".into(),
            checkpoint_topic: "cutover.capture.checkpoints".into(),
            tables: Vec::new(),
            server_id: 0,
            snapshot_batch: 5000,
            max_batch_records: 5000,
            batch_window: Duration::from_millis(10),
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

impl CaptureConfig {
    /// Problems with the section; pure.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (key, v) in [
            ("capture.name", &self.name),
            ("capture.topic", &self.topic),
            ("capture.checkpoint_topic", &self.checkpoint_topic),
        ] {
            if v.trim().is_empty() {
                issues.push(ConfigIssue::new(key, "must not be empty"));
            }
        }
        if self.topic == self.checkpoint_topic {
            issues.push(ConfigIssue::new(
                "capture.checkpoint_topic",
                "must differ from capture.topic",
            ));
        }
        for (i, t) in self.tables.iter().enumerate() {
            if split_table(t).is_none() {
                issues.push(ConfigIssue::new(
                    format!("capture.tables[{i}]"),
                    "must be schema.table",
                ));
            }
        }
        for (key, v) in [
            ("capture.snapshot_batch", self.snapshot_batch),
            ("capture.max_batch_records", self.max_batch_records),
        ] {
            if v == 0 {
                issues.push(ConfigIssue::new(key, "must be > 0"));
            }
        }
        issues
    }

    /// The replication server id: `server_id`, or one derived from `name` (FNV-1a, in
    /// 2^20..2^31 to stay clear of the small ids servers are usually given).
    pub fn effective_server_id(&self) -> u32 {
        if self.server_id != 0 {
            return self.server_id;
        }
        let mut h: u32 = 0x811c_9dc5;
        for b in self.name.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        (1 << 20) + h % ((1 << 31) - (1 << 20))
    }

    /// The tables to capture: `tables`, or the mappings' sources, without repeats.
    pub fn table_list(&self, cfg: &Config) -> Vec<(String, String)> {
        let names: Vec<&String> = if self.tables.is_empty() {
            cfg.tables.iter().map(|t| &t.source).collect()
        } else {
            self.tables.iter().collect()
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for n in names {
            if let Some(pair) = split_table(n) {
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
        }
        out
    }
}

fn split_table(s: &str) -> Option<(String, String)> {
    let (schema, table) = s.split_once('.')?;
    (!schema.is_empty() && !table.is_empty() && !table.contains('.'))
        .then(|| (schema.to_owned(), table.to_owned()))
}

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

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

/// What a restart needs. Written only after every record before it was acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Where CDC starts (or resumes): the first snapshot's position, then the end of the last
    /// acknowledged transaction.
    pub binlog_file: String,
    pub binlog_pos: u64,
    /// Present while the snapshot is unfinished.
    pub snapshot: Option<SnapshotProgress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    /// `schema.table` of tables fully loaded.
    pub done: Vec<String>,
    /// The table being loaded and the last key acknowledged in it.
    pub current: Option<String>,
    pub last_key: Option<Vec<KeyValue>>,
}

/// A primary-key value, kept in the exact form the server returned so the keyset resumes
/// where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "snake_case")]
pub enum KeyValue {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Hex of the bytes.
    Bytes(String),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl From<&Value> for KeyValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::NULL => KeyValue::Null,
            Value::Int(i) => KeyValue::Int(*i),
            Value::UInt(u) => KeyValue::UInt(*u),
            Value::Float(f) => KeyValue::Float(*f),
            Value::Double(d) => KeyValue::Double(*d),
            Value::Bytes(b) => KeyValue::Bytes(hex::encode(b)),
            Value::Date(a, b, c, d, e, f, g) => KeyValue::Date(*a, *b, *c, *d, *e, *f, *g),
            Value::Time(a, b, c, d, e, f) => KeyValue::Time(*a, *b, *c, *d, *e, *f),
        }
    }
}

impl KeyValue {
    fn to_value(&self) -> Value {
        match self {
            KeyValue::Null => Value::NULL,
            KeyValue::Int(i) => Value::Int(*i),
            KeyValue::UInt(u) => Value::UInt(*u),
            KeyValue::Float(f) => Value::Float(*f),
            KeyValue::Double(d) => Value::Double(*d),
            KeyValue::Bytes(h) => Value::Bytes(hex::decode(h).unwrap_or_default()),
            KeyValue::Date(a, b, c, d, e, f, g) => Value::Date(*a, *b, *c, *d, *e, *f, *g),
            KeyValue::Time(a, b, c, d, e, f) => Value::Time(*a, *b, *c, *d, *e, *f),
        }
    }
}

/// Reads and writes this capture's checkpoints.
struct Checkpoints {
    producer: FutureProducer,
    topic: String,
    key: String,
    last_write: Option<Instant>,
}

impl Checkpoints {
    async fn open(cfg: &Config, producer: FutureProducer) -> Result<Self, CaptureError> {
        let c = &cfg.capture;
        ensure_checkpoint_topic(cfg).await?;
        Ok(Checkpoints {
            producer,
            topic: c.checkpoint_topic.clone(),
            key: c.name.clone(),
            last_write: None,
        })
    }

    /// The latest checkpoint of this capture: read the (single-partition) topic to its end,
    /// detected by librdkafka's partition EOF, not by broker watermarks.
    fn load(&self, cfg: &Config) -> Result<Option<Checkpoint>, CaptureError> {
        let mut cc = crate::kafka::client_config(&cfg.kafka);
        cc.set("group.id", format!("cutover-capture-{}-reader", self.key));
        cc.set("enable.auto.commit", "false");
        cc.set("enable.partition.eof", "true");
        cc.set("auto.offset.reset", "earliest");
        // Partition EOF is how the end is found: not worth librdkafka's ERROR line.
        let consumer: BaseConsumer<crate::kafka::EofContext> =
            cc.create_with_context(crate::kafka::EofContext)?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, rdkafka::Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut latest = None;
        loop {
            if Instant::now() > deadline {
                return Err(CaptureError::Checkpoint(format!(
                    "reading {} did not reach its end within 30 s",
                    self.topic
                )));
            }
            match consumer.poll(Duration::from_millis(500)) {
                None => continue,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(m)) => {
                    if m.key() == Some(self.key.as_bytes()) {
                        latest = match m.payload() {
                            None => None,
                            Some(p) => Some(serde_json::from_slice(p).map_err(|e| {
                                CaptureError::Checkpoint(format!(
                                    "unreadable checkpoint at {}[0]@{}: {e}",
                                    self.topic,
                                    m.offset()
                                ))
                            })?),
                        };
                    }
                }
            }
        }
        Ok(latest)
    }

    async fn save(&mut self, cp: &Checkpoint) -> Result<(), CaptureError> {
        let body =
            serde_json::to_string(cp).map_err(|e| CaptureError::Checkpoint(e.to_string()))?;
        let record = FutureRecord::to(&self.topic)
            .key(self.key.as_str())
            .payload(body.as_str());
        crate::kafka::send_all(&self.producer, [record]).await?;
        self.last_write = Some(Instant::now());
        tracing::debug!(file = %cp.binlog_file, pos = cp.binlog_pos, snapshot = cp.snapshot.is_some(), "checkpoint");
        Ok(())
    }

    fn due(&self, interval: Duration) -> bool {
        self.last_write.is_none_or(|t| t.elapsed() >= interval)
    }
}

async fn ensure_checkpoint_topic(cfg: &Config) -> Result<(), CaptureError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        crate::kafka::client_config(&cfg.kafka).create()?;
    let topic = NewTopic::new(
        &cfg.capture.checkpoint_topic,
        1,
        TopicReplication::Fixed(-1),
    )
    .set("cleanup.policy", "compact");
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(CaptureError::Checkpoint(format!(
                    "cannot create checkpoint topic {t}: {code}"
                )))
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// DMS records
// ---------------------------------------------------------------------------------------------

/// The envelope metadata of one record (IncludeTransactionDetails style).
struct Meta<'a> {
    operation: &'a str,
    schema: &'a str,
    table: &'a str,
    key_value: &'a str,
    /// Row changes only.
    txn: Option<TxnMeta<'a>>,
    stream_position: String,
}

struct TxnMeta<'a> {
    id: u64,
    record_id: u64,
    prev_id: u64,
    prev_record_id: u64,
    commit_ts: &'a str,
}

/// `{"data":{..},"before-image":{..}?,"metadata":{..}}`, keys in DMS order.
fn record_json(meta: &Meta, data: &[(String, Json)], before: Option<&[(String, Json)]>) -> String {
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    // Built by hand: serde_json::Map would sort the keys, and DMS writes them in this order.
    let mut fields: Vec<(&str, Json)> = vec![
        ("timestamp", Json::String(now)),
        ("record-type", Json::String("data".into())),
        ("operation", Json::String(meta.operation.into())),
        ("partition-key-type", Json::String("primary-key".into())),
        ("partition-key-value", Json::String(meta.key_value.into())),
        ("schema-name", Json::String(meta.schema.into())),
        ("table-name", Json::String(meta.table.into())),
    ];
    if let Some(t) = &meta.txn {
        fields.push(("transaction-id", Json::from(t.id)));
        fields.push(("transaction-record-id", Json::from(t.record_id)));
        fields.push(("prev-transaction-id", Json::from(t.prev_id)));
        fields.push(("prev-transaction-record-id", Json::from(t.prev_record_id)));
        fields.push(("commit-timestamp", Json::String(t.commit_ts.into())));
    }
    fields.push((
        "stream-position",
        Json::String(meta.stream_position.clone()),
    ));
    let mut out = String::with_capacity(256 + data.len() * 24);
    out.push_str("{\"data\":");
    out.push_str(&mysql::data_json(data));
    if let Some(b) = before {
        out.push_str(",\"before-image\":");
        out.push_str(&mysql::data_json(b));
    }
    out.push_str(",\"metadata\":{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(k);
        out.push_str("\":");
        out.push_str(&v.to_string());
    }
    out.push_str("}}");
    out
}

/// `schema.table.<pk values joined by '.'>`: strings as they are, numbers as their text.
fn partition_key(schema: &TableSchema, data: &[(String, Json)]) -> String {
    let mut key = format!("{}.{}", schema.schema, schema.table);
    for pk in &schema.primary_key {
        key.push('.');
        match data.iter().find(|(c, _)| c == pk).map(|(_, v)| v) {
            Some(Json::String(s)) => key.push_str(s),
            Some(v) => key.push_str(&v.to_string()),
            None => {}
        }
    }
    key
}

/// One record ready to send.
struct Out {
    key: String,
    value: String,
}

async fn send(producer: &FutureProducer, topic: &str, batch: &[Out]) -> Result<(), CaptureError> {
    if batch.is_empty() {
        return Ok(());
    }
    let records = batch.iter().map(|o| {
        FutureRecord::to(topic)
            .key(o.key.as_str())
            .payload(o.value.as_str())
    });
    crate::kafka::send_all(producer, records).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

/// Capture until `shutdown` is cancelled (flush, checkpoint, return Ok) or a fatal error.
pub async fn capture(cfg: Config, shutdown: CancellationToken) -> Result<(), CaptureError> {
    cfg.mysql
        .require()
        .map_err(|i| CaptureError::Refused(vec![i.to_string()]))?;
    let pool = cfg.mysql.pool()?;
    let mut conn = pool.get_conn().await?;
    mysql::check_server(&mut conn)
        .await
        .map_err(CaptureError::Refused)?;
    let tables = cfg.capture.table_list(&cfg);
    if tables.is_empty() {
        return Err(CaptureError::Refused(vec![
            "no tables to capture: add [[table]] mappings or set capture.tables".into(),
        ]));
    }
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
    if cp.as_ref().is_none_or(|c| c.snapshot.is_some()) {
        let done = snapshot(
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
    cdc(
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

// ---------------------------------------------------------------------------------------------
// Snapshot
// ---------------------------------------------------------------------------------------------

/// Open a consistent snapshot on `conn` and return its binlog position.
async fn start_snapshot(conn: &mut Conn) -> Result<(String, u64), CaptureError> {
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
async fn fetch_page(
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
async fn snapshot(
    cfg: &Config,
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
                    send(producer, &c.topic, &batch),
                    fetch_page(&mut conn, &first_sql, &next_sql, Some(page_last.clone()))
                );
                (s, Some(r))
            } else {
                (send(producer, &c.topic, &batch).await, None)
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
    checkpoints.save(&cp).await?;
    tracing::info!(rows = total, "full load done; streaming the binlog");
    Ok(Some(cp))
}

// ---------------------------------------------------------------------------------------------
// CDC
// ---------------------------------------------------------------------------------------------

/// A captured table as the binlog stream sees it.
struct Captured {
    schema: TableSchema,
    /// Binlog column names, once checked against `schema`; `false` = skip its rows.
    usable: Option<bool>,
}

/// The binlog coordinates being read.
struct Cursor {
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

async fn cdc(
    cfg: &Config,
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
                    usable: None,
                },
            )
        })
        .collect();
    let conn = pool.get_conn().await?;
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
                send(producer, &c.topic, &batch).await?;
                if let Some(p) = batch_commit.take() {
                    durable = p;
                }
                batch.clear();
                if durable != saved {
                    checkpoints.save(&position_checkpoint(&durable)).await?;
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
                            cap.usable = None;
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
                            &rows,
                            tme,
                            &mut cur,
                            start_pos,
                            header.timestamp(),
                            &mut batch,
                            &name,
                        );
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
            send(producer, &c.topic, &batch).await?;
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
            checkpoints.save(&position_checkpoint(&durable)).await?;
            saved = durable.clone();
        }
    }
}

/// Whether a statement names `schema.table` (or `table` with `schema` as its default database).
/// Identifiers are compared case-insensitively with their backticks removed.
fn ddl_names_table(sql: &str, default_schema: &str, schema: &str, table: &str) -> bool {
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
fn rotate_name(raw: &[u8]) -> Result<String, CaptureError> {
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

fn position_checkpoint(p: &(String, u64)) -> Checkpoint {
    Checkpoint {
        binlog_file: p.0.clone(),
        binlog_pos: p.1,
        snapshot: None,
    }
}

fn file_seq(file: &str) -> Result<u64, CaptureError> {
    mysql::binlog_file_seq(file)
        .ok_or_else(|| CaptureError::Binlog(format!("binlog file {file:?} has no numeric suffix")))
}

/// transaction-id: the position of the transaction's first event, made unique across files
/// (`file_seq · 10^12 + pos`), so it is a number like DMS's and increases with the binlog.
fn begin_txn(cur: &mut Cursor, start_pos: u64) {
    cur.txn_id = cur.file_seq.saturating_mul(1_000_000_000_000) + start_pos;
    cur.record_in_txn = 0;
}

fn end_txn(cur: &mut Cursor, end_pos: u64) {
    if cur.txn_id != 0 && cur.record_in_txn > 0 {
        cur.prev_txn = cur.txn_id;
        cur.prev_record = cur.record_in_txn;
    }
    cur.txn_id = 0;
    cur.record_in_txn = 0;
    cur.committed_file = cur.file.clone();
    cur.committed_pos = end_pos;
}

/// Render the rows of one row event. Problems skip the table's rows (logged, counted).
#[allow(clippy::too_many_arguments)]
fn rows_to_records(
    cap: &mut Captured,
    rows: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
    cur: &mut Cursor,
    start_pos: u64,
    event_ts: u32,
    batch: &mut Vec<Out>,
    name: &str,
) {
    let op = match rows {
        RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => "insert",
        RowsEventData::UpdateRowsEvent(_)
        | RowsEventData::UpdateRowsEventV1(_)
        | RowsEventData::PartialUpdateRowsEvent(_) => "update",
        RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => "delete",
    };
    let skip = |reason: &str| {
        metrics::counter!("cutover_capture_skipped_total", "table" => name.to_owned(), "reason" => reason.to_owned()).increment(1);
    };
    if cap.usable.is_none() {
        let names: Vec<String> = (0..tme.columns_count() as usize)
            .map(|i| i.to_string())
            .collect();
        let binlog_names = binlog_column_names(tme);
        let ok = match &binlog_names {
            Some(b) => {
                b.len() == cap.schema.columns.len()
                    && b.iter().zip(&cap.schema.columns).all(|(a, c)| *a == c.name)
            }
            None => names.len() == cap.schema.columns.len(),
        };
        if !ok {
            tracing::error!(table = %name, binlog = ?binlog_names, "binlog columns differ from information_schema: skipping this table's rows until its next DDL");
        }
        cap.usable = Some(ok);
    }
    if cap.usable != Some(true) {
        skip("schema_mismatch");
        return;
    }
    let commit_ts = chrono::DateTime::from_timestamp(i64::from(event_ts), 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    for pair in rows.rows(tme) {
        let (before, after) = match pair {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(table = %name, at = %format!("{}:{start_pos}", cur.file), error = %e, "undecodable row image: skipped");
                skip("undecodable");
                continue;
            }
        };
        let render = |row: Option<mysql_async::binlog::row::BinlogRow>| -> Result<Option<Vec<(String, Json)>>, String> {
            let Some(row) = row else { return Ok(None) };
            let mut out = Vec::with_capacity(row.len());
            for (i, col) in cap.schema.columns.iter().enumerate() {
                let v = match row.as_ref(i) {
                    Some(v) => mysql::from_binlog(col, v.clone()).map_err(|e| format!("column {}: {e}", col.name))?,
                    None => continue,
                };
                out.push((col.name.clone(), mysql::render(col, v)));
            }
            Ok(Some(out))
        };
        let (before, after) = match (render(before), render(after)) {
            (Ok(b), Ok(a)) => (b, a),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(table = %name, at = %format!("{}:{start_pos}", cur.file), error = %e, "unrenderable row: skipped");
                skip("unrenderable");
                continue;
            }
        };
        let (data, before_image) = match op {
            "delete" => (before, None),
            "update" => (after, before),
            _ => (after, None),
        };
        let Some(data) = data else {
            skip("empty_image");
            continue;
        };
        cur.record_in_txn += 1;
        let key = partition_key(&cap.schema, &data);
        let meta = Meta {
            operation: op,
            schema: &cap.schema.schema,
            table: &cap.schema.table,
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
}

/// Column names from the table map's FULL metadata, if present.
fn binlog_column_names(tme: &TableMapEvent<'_>) -> Option<Vec<String>> {
    use mysql_async::binlog::events::OptionalMetadataField;
    for field in tme.iter_optional_meta() {
        if let Ok(OptionalMetadataField::ColumnName(names)) = field {
            return Some(
                names
                    .iter_names()
                    .filter_map(|n| n.ok().map(|n| n.name().into_owned()))
                    .collect(),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::{Decoded, Op};

    fn schema() -> TableSchema {
        TableSchema {
            schema: "s".into(),
            table: "t".into(),
            columns: vec![],
            primary_key: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn records_decode_as_dms_with_versions() {
        let data = vec![
            ("a".to_string(), Json::from(1)),
            ("b".to_string(), Json::String("x".into())),
            ("d".to_string(), Json::String("1.50".into())),
        ];
        let key = partition_key(&schema(), &data);
        assert_eq!(key, "s.t.1.x");
        let meta = Meta {
            operation: "update",
            schema: "s",
            table: "t",
            key_value: &key,
            txn: Some(TxnMeta {
                id: 3_000_000_000_100,
                record_id: 2,
                prev_id: 0,
                prev_record_id: 0,
                commit_ts: "2024-01-01T00:00:00.000000Z",
            }),
            stream_position: "mysql-bin.000003:150:0:150:3000000000100:mysql-bin.000003:150".into(),
        };
        let text = record_json(&meta, &data, Some(&data[..1]));
        let Decoded::Change(ev) = crate::cdc::dms::decode(text.as_bytes()).unwrap() else {
            panic!("not a change")
        };
        assert_eq!(ev.op, Op::Update);
        assert_eq!(
            ev.position.version(),
            3 * 10u128.pow(20) + 150 * 10u128.pow(8) + 2
        );
        assert_eq!(ev.before.unwrap().len(), 1);
        assert_eq!(
            ev.after.unwrap().columns().collect::<Vec<_>>(),
            vec!["a", "b", "d"]
        );

        let load = Meta {
            operation: "load",
            schema: "s",
            table: "t",
            key_value: &key,
            txn: None,
            stream_position: "mysql-bin.000003:120".into(),
        };
        let Decoded::Change(ev) =
            crate::cdc::dms::decode(record_json(&load, &data, None).as_bytes()).unwrap()
        else {
            panic!("not a change")
        };
        assert_eq!(ev.op, Op::Load);
        assert_eq!(
            ev.position.version(),
            3 * 10u128.pow(20) + 120 * 10u128.pow(8)
        );
    }

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

    #[test]
    fn key_values_round_trip() {
        for v in [
            Value::Int(-3),
            Value::UInt(u64::MAX),
            Value::Bytes(vec![0, 255, 7]),
            Value::Date(2024, 1, 2, 3, 4, 5, 6),
            Value::Time(true, 1, 2, 3, 4, 5),
        ] {
            let k = KeyValue::from(&v);
            let back: KeyValue = serde_json::from_str(&serde_json::to_string(&k).unwrap()).unwrap();
            assert_eq!(back.to_value(), v);
        }
    }

    #[test]
    fn config_checks() {
        let c = CaptureConfig {
            topic: "x".into(),
            checkpoint_topic: "x".into(),
            tables: vec!["nodot".into()],
            ..Default::default()
        };
        let keys: Vec<String> = c.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, vec!["capture.checkpoint_topic", "capture.tables[0]"]);
        let id = |name: &str| {
            CaptureConfig {
                name: name.into(),
                ..Default::default()
            }
            .effective_server_id()
        };
        assert_ne!(id("a"), id("b"));
        assert!(id("a") >= 1 << 20);
        assert!(CaptureConfig::default().validate().is_empty());
    }
}
