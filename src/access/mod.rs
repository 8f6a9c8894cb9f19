//! The data-access layer (`[access]`): a service's reads and writes of one entity go through a
//! [`Store`], and every operation names a *path* (`message.read`, `message.write`, ...) whose
//! migration stage comes from [`crate::flags`]. Each path moves on its own through
//! off → dualwrite → shadow → live → rampdown → complete, with LaunchDarkly's semantics:
//!
//! | stage | reads | returned | compared | writes, in order |
//! |---|---|---|---|---|
//! | off | MySQL | MySQL | no | MySQL |
//! | dualwrite | MySQL | MySQL | no | MySQL, then DynamoDB |
//! | shadow | both, concurrently | MySQL | sampled | MySQL, then DynamoDB |
//! | live | both, concurrently | DynamoDB | sampled | DynamoDB, then MySQL |
//! | rampdown | DynamoDB | DynamoDB | no | DynamoDB, then MySQL |
//! | complete | DynamoDB | DynamoDB | no | DynamoDB (+ journal, below) |
//!
//! # Failure policy
//! - The authoritative write runs first; if it fails, the caller gets the error and the other
//!   store is not touched.
//! - If the second write fails, the caller still gets success. The failure is counted
//!   (`cutover_access_secondary_failures_total`), logged (`cutover::access` target, key and
//!   reason, never row values), and a repair entry `{path, source, key, behind}` is written to
//!   the Kafka topic `access.repair_topic` before the call returns. The [`repair`] worker
//!   copies the key's current state from the up-to-date store to the one behind, so a
//!   DynamoDB outage in dualwrite fails no request and loses nothing. Kafka is the durable
//!   place because the pipeline already depends on it, it survives the process, and it is
//!   replayable; a DynamoDB table would fail exactly when DynamoDB is the store that is down.
//! - In `complete`, MySQL is no longer written on the request path, but (with
//!   `access.journal_complete`, the default) each write is journaled as a repair entry, so a
//!   rollback from complete loses nothing; turn it off when MySQL is decommissioned.
//!
//! # Living with the CDC stream (the version rule)
//! From dualwrite to rampdown, the service and `cutover run` both write DynamoDB. Every
//! DynamoDB write of this layer carries, as its version, the MySQL binlog position read just
//! before the write (`mysql::current_position`), and goes through the pipeline's guarded
//! writer (`attribute_not_exists(#v) OR #v <= :v`). That position is ≥ the version of every
//! change committed before it, and ≤ that of the MySQL write this operation makes after it.
//! So a CDC record of an older commit never overwrites the service's write, the CDC record
//! of the service's own MySQL write (same content, higher version) is applied over it, and a
//! later commit always wins: both writers converge to MySQL's commit order, whatever the
//! interleaving (a property test checks this).
//!
//! A write the guard rejected is never acknowledged as applied when it matters:
//! - In `complete` no MySQL is asked (a process started after MySQL is gone writes, and a
//!   hanging MySQL adds nothing to a write): each item counts its own versions
//!   ([`Versioning::Counter`]). The write reads the item's version `s` and writes
//!   `max(s, COMPLETE_BASE) + 1` on the condition that the version is still `s`, re-reading
//!   and retrying on conflict, so concurrent processes serialize per item and no acknowledged
//!   write is dropped. [`COMPLETE_BASE`] is above every binlog version, so no CDC record
//!   (the echo of a journal copy into MySQL) overwrites a `complete` write.
//! - After a rollback from `complete`, the next binlog-versioned write of the layer or of
//!   the repair worker to such an item replaces it compare-and-set, which brings the item
//!   back under binlog versions. CDC records alone do not (see README's Known limits).
//! - With DynamoDB first (live, rampdown) and no binlog position (MySQL down), the write
//!   counts in place from the item's version (`Counter { floor: 0 }`) instead of failing.
//!
//! # Mismatches
//! Shadow and live reads compare both results (sampled by the flag's check ratio) after
//! normalizing MySQL's row through the mapping, so renames and type conversions are not
//! reported. A mismatch is counted per path (`cutover_access_mismatches_total`) and logged
//! as a structured `cutover::mismatch` event with the path, the key and the names of the
//! differing fields; values only with `access.show_values` (debug level).

mod config;
mod dynamo_store;
mod mysql_store;
pub mod repair;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::ConfigErrors;
use crate::error::{Classify, Disposition, FatalError};
use crate::flags::{Decision, FlagContext, FlagError, Flags, FlagsConfig, OpKind, Origin, Stage};
use crate::kafka::KafkaConfig;
use crate::mapping::{Mapping, SourceView, TableConfig};
use crate::mysql::{MysqlConfig, MysqlError};
use crate::sink::dynamo::WriteError;
use crate::sink::{DynamoConfig, SinkConfig};

pub use self::config::AccessConfig;
pub use crate::sink::dynamo::{DynamoRead, QueryPage};
pub use dynamo_store::{cells, NewStore, Versioning, COMPLETE_BASE};
pub use mysql_store::OldStore;
pub use repair::{RepairEntry, RepairQueue};
pub use store::Store;

/// A row as JSON: column name → value in the shape DMS writes it (see [`crate::mysql`]).
pub type RowJson = Map<String, Value>;

/// What went wrong in a store call. Its class ([`Classify::disposition`]) is what the
/// repair worker acts on: only `Retry` is retried.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("flags: {0}")]
    Flags(#[from] FlagError),
    /// The layer can't be built from this configuration.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("{0} has no [[table]] mapping")]
    UnknownEntity(String),
    #[error("bad input: {0}")]
    Input(String),
    /// A MySQL call, with the driver's error (and so its class: a deadlock or lock wait
    /// timeout is retried, a missing table is fatal, a value MySQL refuses is poison).
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    /// A store that can't be asked right now (no binlog position while MySQL is down).
    #[error("{0}")]
    Unavailable(String),
    /// A DynamoDB call, classified at the edge.
    #[error("dynamodb: {0}")]
    Dynamo(#[from] WriteError),
    /// The guarded writer gave up (it keeps the call's error, and so its class).
    #[error("dynamodb: {0}")]
    Write(FatalError),
    #[error("{0} timed out after {1:?}")]
    Timeout(&'static str, Duration),
    #[error("repair queue: {0}")]
    Repair(String),
    /// Another writer changed the item during a conditional step; try again.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl Classify for AccessError {
    fn disposition(&self) -> Disposition {
        match self {
            AccessError::Flags(e) => e.disposition(),
            AccessError::Dynamo(e) => e.disposition(),
            // A DynamoDB outage outlasting the writer's retries is still an outage.
            AccessError::Write(e) => e
                .downcast_ref::<WriteError>()
                .map_or(Disposition::Fatal, Classify::disposition),
            // Waiting cannot map an entity that has no mapping, or fix a bad value.
            AccessError::UnknownEntity(_) | AccessError::Input(_) => Disposition::Poison,
            // A store that is down or slow, or the queue's broker.
            AccessError::Mysql(e) => e.disposition(),
            AccessError::Unavailable(_)
            | AccessError::Timeout(..)
            | AccessError::Repair(_)
            | AccessError::Conflict(_) => Disposition::Retry,
            AccessError::Config(_) => Disposition::Fatal,
        }
    }
}

/// The sections the layer is built from. `&cutover::Config` converts into it.
#[derive(Debug, Clone, Copy)]
pub struct Sections<'a> {
    pub tables: &'a [TableConfig],
    pub sink: &'a SinkConfig,
    pub flags: &'a FlagsConfig,
    pub mysql: &'a MysqlConfig,
    pub dynamodb: &'a DynamoConfig,
    pub kafka: &'a KafkaConfig,
    pub access: &'a AccessConfig,
}

/// Which store a stage reads, returns, and writes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub read_old: bool,
    pub read_new: bool,
    /// The store whose read result is returned and which is written first.
    pub authoritative: Origin,
    /// The store written second, if any.
    pub secondary_write: Option<Origin>,
    pub compare: bool,
}

/// The stage table of the module docs, as data. Kept so on purpose: the whole semantics of
/// the stages is on one screen, and the store's read and write halves follow from it rather
/// than from scattered `if`s on the stage.
pub fn plan(stage: Stage) -> Plan {
    use Origin::{New, Old};
    let p = |read_old, read_new, authoritative, secondary_write, compare| Plan {
        read_old,
        read_new,
        authoritative,
        secondary_write,
        compare,
    };
    match stage {
        Stage::Off => p(true, false, Old, None, false),
        Stage::DualWrite => p(true, false, Old, Some(New), false),
        Stage::Shadow => p(true, true, Old, Some(New), true),
        Stage::Live => p(true, true, New, Some(Old), true),
        Stage::RampDown => p(false, true, New, Some(Old), false),
        Stage::Complete => p(false, true, New, None, false),
    }
}

/// One store call, for observers (tests, tracing of a cutover rehearsal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub path: String,
    pub stage: Stage,
    pub origin: Origin,
    pub op: OpKind,
    pub ok: bool,
}

type Observer = Arc<dyn Fn(&Call) + Send + Sync>;

/// The layer: mapping, flags, both stores and the repair queue. Cheap to clone.
#[derive(Clone)]
pub struct Access {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) mapping: Arc<Mapping>,
    pub(crate) flags: Flags,
    pub(crate) old: OldStore,
    pub(crate) new: NewStore,
    pub(crate) repair: RepairQueue,
    pub(crate) cfg: AccessConfig,
    observer: std::sync::OnceLock<Observer>,
    pub(crate) mismatches: AtomicU64,
    /// Why the repair worker stopped, if it did.
    repair_failure: std::sync::Mutex<Option<String>>,
}

impl Access {
    /// Build from parts (tests, services that construct their own clients).
    pub fn new(
        mapping: Arc<Mapping>,
        flags: Flags,
        old: OldStore,
        new: NewStore,
        repair: RepairQueue,
        cfg: AccessConfig,
    ) -> Access {
        Access {
            inner: Arc::new(Inner {
                mapping,
                flags,
                old,
                new,
                repair,
                cfg,
                observer: std::sync::OnceLock::new(),
                mismatches: AtomicU64::new(0),
                repair_failure: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Build everything from a loaded config (`&cutover::Config` converts into [`Sections`]):
    /// MySQL pool (`[mysql]`), DynamoDB client (`[dynamodb]`), flags (`[flags]`), repair
    /// producer (`[kafka]`, `[access]`).
    pub async fn connect<'a>(
        cfg: impl Into<Sections<'a>>,
        config_dir: &std::path::Path,
    ) -> Result<Access, AccessError> {
        let cfg = cfg.into();
        let mapping = Arc::new(Mapping::new(cfg.tables, cfg.sink).map_err(ConfigErrors)?);
        let flags = Flags::from_config(cfg.flags, config_dir).await?;
        let old = OldStore::new(cfg.mysql.pool().map_err(AccessError::Mysql)?);
        let new = NewStore::connect(cfg.dynamodb, cfg.sink, mapping.clone()).await;
        let repair = RepairQueue::new(cfg.kafka, cfg.access)?;
        Ok(Access::new(
            mapping,
            flags,
            old,
            new,
            repair,
            cfg.access.clone(),
        ))
    }

    /// Record every store call (for tests and rehearsals). The first observer set stays.
    pub fn with_observer(self, f: impl Fn(&Call) + Send + Sync + 'static) -> Access {
        let _ = self.inner.observer.set(Arc::new(f));
        self
    }

    /// A typed store for one mapped source table (`schema.table`).
    pub fn store<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        source: &str,
    ) -> Result<Store<T>, AccessError> {
        let view = self
            .inner
            .mapping
            .view(source)
            .ok_or_else(|| AccessError::UnknownEntity(source.to_string()))?;
        Ok(Store::new(self.clone(), Arc::new(view)))
    }

    /// Compared reads that differed, since start (also `cutover_access_mismatches_total`).
    pub fn mismatches(&self) -> u64 {
        self.inner.mismatches.load(Ordering::Relaxed)
    }

    /// The error that stopped this layer's repair worker ([`repair::run_worker`]), if one
    /// did: repairs and the complete-stage journal wait until it is fixed and restarted.
    pub fn repair_worker_failure(&self) -> Option<String> {
        self.inner
            .repair_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_repair_failure(&self, failure: Option<String>) {
        *self
            .inner
            .repair_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = failure;
    }

    pub fn flags(&self) -> &Flags {
        &self.inner.flags
    }

    pub fn old(&self) -> &OldStore {
        &self.inner.old
    }

    pub fn new_store(&self) -> &NewStore {
        &self.inner.new
    }

    pub fn repair_queue(&self) -> &RepairQueue {
        &self.inner.repair
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The binlog version for a DynamoDB write about to happen (see the version rule), read
    /// now. There is no fallback to an older position: a write versioned below what the item
    /// holds would be rejected by the guard (callers version by the item instead, see
    /// [`Versioning::Counter`]).
    pub(crate) async fn write_version(&self) -> Result<u128, AccessError> {
        let timeout = self.inner.cfg.timeout;
        match tokio::time::timeout(timeout, self.inner.old.position()).await {
            Ok(r) => r,
            Err(_) => Err(AccessError::Timeout("mysql binlog position", timeout)),
        }
    }

    pub(crate) fn decide(&self, path: &str, ctx: &FlagContext) -> Result<Decision, AccessError> {
        self.inner
            .flags
            .decide(path, ctx)
            .map_err(AccessError::Flags)
    }

    pub(crate) fn observe(&self, path: &str, stage: Stage, origin: Origin, op: OpKind, ok: bool) {
        if let Some(f) = self.inner.observer.get() {
            f(&Call {
                path: path.to_string(),
                stage,
                origin,
                op,
                ok,
            });
        }
    }
}

/// Fields that differ between two rows (names only), sorted.
pub fn diff_fields(a: &RowJson, b: &RowJson) -> Vec<String> {
    let mut out: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The key columns of a row, as the text used in logs and repair entries (no other values).
pub fn key_text(view: &SourceView, row: &RowJson) -> String {
    let mut s = String::new();
    for (i, c) in view.primary_key.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        match row.get(c) {
            Some(Value::String(v)) => s.push_str(v),
            Some(v) => s.push_str(&v.to_string()),
            None => s.push('?'),
        }
    }
    s
}

/// The columns that address a row in both stores ([`SourceView::key_columns`]).
pub fn key_only(view: &SourceView, row: &RowJson) -> Result<RowJson, AccessError> {
    let mut key = Map::new();
    for c in &view.key_columns {
        match row.get(c) {
            Some(v) if !v.is_null() => {
                key.insert(c.clone(), v.clone());
            }
            _ => {
                return Err(AccessError::Input(format!(
                    "{}: key column {c} is missing (a key names {:?})",
                    view.source, view.key_columns
                )))
            }
        }
    }
    Ok(key)
}

/// A serializable value as a row object.
pub fn to_row<T: Serialize + ?Sized>(value: &T) -> Result<RowJson, AccessError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(AccessError::Input(
            "must serialize to an object of column → value".into(),
        )),
        Err(e) => Err(AccessError::Input(e.to_string())),
    }
}

/// Count and log one compared read that differed: which path, which keys (the first ten),
/// how many rows, which fields. Values only with `access.show_values`, at debug level.
pub(crate) fn report_mismatch(
    cfg: &AccessConfig,
    path: &str,
    keys: &[&str],
    rows: usize,
    fields: &[String],
    values: Option<(&Option<RowJson>, &Option<RowJson>)>,
) {
    metrics::counter!("cutover_access_mismatches_total", "path" => path.to_string()).increment(1);
    tracing::warn!(
        target: "cutover::mismatch",
        path,
        keys = ?keys,
        rows,
        fields = ?fields,
        "shadow comparison: MySQL and DynamoDB differ"
    );
    if cfg.show_values {
        if let Some((old, new)) = values {
            tracing::debug!(target: "cutover::mismatch", path, key = keys.first().copied().unwrap_or(""), ?old, ?new, "values of the first differing row");
        }
    }
}

/// Counts of compared reads, per path: the consistency rate is 1 − mismatches / checks.
pub(crate) fn count_check(path: &str, consistent: bool) {
    metrics::counter!(
        "cutover_access_consistency_checks_total",
        "path" => path.to_string(),
        "result" => if consistent { "consistent" } else { "inconsistent" }
    )
    .increment(1);
}

pub(crate) type Item = HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// One writer of one row, in a model of the binlog and of DynamoDB's version guard.
    #[derive(Debug, Clone)]
    enum Op {
        /// Another client commits straight to MySQL (only CDC carries it).
        Direct,
        /// The layer writes with MySQL authoritative (dualwrite, shadow).
        ServiceOldFirst,
        /// The layer writes with DynamoDB authoritative (live, rampdown).
        ServiceNewFirst,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Direct),
            Just(Op::ServiceOldFirst),
            Just(Op::ServiceNewFirst)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The version rule of the module docs: service writes versioned by the binlog position
        /// read before they write, CDC writes by their commit position, both through
        /// `attribute_not_exists(v) OR v <= :v`. Whatever order the service's DynamoDB writes
        /// and the (at-least-once, in-order) CDC records arrive in, DynamoDB ends with MySQL's
        /// last committed value.
        #[test]
        fn service_and_cdc_writers_converge(
            ops in proptest::collection::vec(op(), 1..12),
            schedule in proptest::collection::vec(any::<u8>(), 64),
            dup in any::<u8>(),
        ) {
            let mut pos: u128 = 10;
            let mut mysql = None;
            let mut cdc: Vec<(u128, u32)> = Vec::new();
            let mut service: Vec<(u128, u32)> = Vec::new();
            for (i, op) in ops.iter().enumerate() {
                let value = i as u32;
                let before = pos; // SHOW MASTER STATUS before writing
                match op {
                    Op::Direct => {}
                    Op::ServiceOldFirst | Op::ServiceNewFirst => service.push((before, value)),
                }
                pos += 1 + (value as u128 % 3); // the commit's events start after `before`
                mysql = Some(value);
                cdc.push((pos, value));
            }
            // At-least-once: a rewind re-delivers a suffix of the CDC stream.
            let rewind = dup as usize % (cdc.len() + 1);
            let mut cdc_stream = cdc.clone();
            cdc_stream.extend_from_slice(&cdc[rewind..]);
            // Interleave the in-order CDC stream with the service writes in any order.
            let mut stored: Option<(u128, u32)> = None;
            let apply = |stored: &mut Option<(u128, u32)>, (v, x): (u128, u32)| {
                if stored.is_none_or(|(sv, _)| sv <= v) {
                    *stored = Some((v, x));
                }
            };
            let (mut c, mut pending) = (0, service.clone());
            for s in schedule {
                if s % 2 == 0 && c < cdc_stream.len() {
                    apply(&mut stored, cdc_stream[c]);
                    c += 1;
                } else if !pending.is_empty() {
                    let w = pending.remove(s as usize % pending.len());
                    apply(&mut stored, w);
                }
            }
            for w in pending {
                apply(&mut stored, w);
            }
            for e in &cdc_stream[c..] {
                apply(&mut stored, *e);
            }
            prop_assert_eq!(stored.map(|(_, x)| x), mysql);
        }
    }

    #[test]
    fn the_stage_table() {
        use super::plan;
        use crate::flags::{Origin, Stage};
        let rows: Vec<_> = Stage::ALL
            .iter()
            .map(|s| {
                let p = plan(*s);
                (
                    p.read_old,
                    p.read_new,
                    p.authoritative,
                    p.secondary_write,
                    p.compare,
                )
            })
            .collect();
        use Origin::{New, Old};
        assert_eq!(
            rows,
            vec![
                (true, false, Old, None, false),
                (true, false, Old, Some(New), false),
                (true, true, Old, Some(New), true),
                (true, true, New, Some(Old), true),
                (false, true, New, Some(Old), false),
                (false, true, New, None, false),
            ]
        );
    }
}
