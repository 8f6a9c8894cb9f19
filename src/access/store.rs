//! [`Store`]: the typed entry point, and the stage executor that decides, per call, which
//! store is read, returned, compared and written in which order (see the table in
//! [`crate::access`]).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::dynamo_store::{Versioning, COMPLETE_BASE};
use super::repair::{Behind, RepairEntry};
use super::{
    count_check, diff_fields, key_only, key_text, plan, report_mismatch, to_row, Access,
    AccessError, RowJson,
};
use crate::cdc::Op;
use crate::flags::{Decision, FlagContext, OpKind, Origin, Stage};
use crate::mapping::SourceView;

/// Typed access to one mapped source table. `T` serializes to (and deserializes from) the
/// row as an object of column → value, in the shapes DMS uses: numbers, strings, ISO
/// datetimes, JSON columns as JSON text, binary as `0x` hex.
pub struct Store<T> {
    access: Access,
    view: Arc<SourceView>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Store<T> {
    fn clone(&self) -> Self {
        Store {
            access: self.access.clone(),
            view: self.view.clone(),
            _t: PhantomData,
        }
    }
}

/// What a write does.
#[derive(Debug, Clone)]
pub(crate) enum WriteOp {
    /// The row, and the row it replaces when known (a change of a key-template column moves
    /// the item: the old one is tombstoned).
    Put(RowJson, Option<RowJson>),
    Delete(RowJson),
}

impl<T: Serialize + DeserializeOwned> Store<T> {
    pub(crate) fn new(access: Access, view: Arc<SourceView>) -> Self {
        Store {
            access,
            view,
            _t: PhantomData,
        }
    }

    pub fn view(&self) -> &SourceView {
        &self.view
    }

    /// The row with this primary key (`key` serializes to an object holding the PK columns).
    pub async fn get<K: Serialize + ?Sized>(
        &self,
        path: &str,
        ctx: &FlagContext,
        key: &K,
    ) -> Result<Option<T>, AccessError> {
        let key = key_only(&self.view, &to_row(key)?)?;
        let (old, new) = (self.access.old(), self.access.new_store());
        let view = &*self.view;
        let row = self
            .read(
                path,
                ctx,
                async { old.get(view, &key).await },
                async { new.get(view, &key).await },
                |o: &Option<RowJson>, n: &Option<RowJson>| {
                    let o = o.as_ref().and_then(|r| new.normalize(view, r));
                    if &o == n {
                        Vec::new()
                    } else {
                        let fields = match (&o, n) {
                            (Some(a), Some(b)) => diff_fields(a, b),
                            _ => vec!["<row presence>".to_string()],
                        };
                        vec![(key_text(view, &key), fields, o, n.clone())]
                    }
                },
            )
            .await?;
        row.map(from_row).transpose()
    }

    /// Rows whose partition-key columns equal `filter` (e.g. `{"conversation_id": 7}` for
    /// messages keyed `CONV#{conversation_id}`), at most `limit`. MySQL returns them in
    /// primary-key order, DynamoDB in sort-key order.
    pub async fn query<F: Serialize + ?Sized>(
        &self,
        path: &str,
        ctx: &FlagContext,
        filter: &F,
        limit: usize,
    ) -> Result<Vec<T>, AccessError> {
        let filter = to_row(filter)?;
        let want = &self.view.partition_key.1;
        if filter.len() != want.len() || !want.iter().all(|c| filter.contains_key(c)) {
            return Err(AccessError::Input(format!(
                "{}: a query names exactly the partition-key columns {want:?}",
                self.view.source
            )));
        }
        let (old, new) = (self.access.old(), self.access.new_store());
        let view = &*self.view;
        let rows = self
            .read(
                path,
                ctx,
                async { old.query(view, &filter, limit).await },
                async { new.query(view, &filter, limit).await },
                |o: &Vec<RowJson>, n: &Vec<RowJson>| {
                    let by_key = |rows: &mut dyn Iterator<Item = RowJson>| {
                        rows.map(|r| (key_text(view, &r), r))
                            .collect::<BTreeMap<_, _>>()
                    };
                    let o = by_key(&mut o.iter().filter_map(|r| new.normalize(view, r)));
                    let n = by_key(&mut n.iter().cloned());
                    let keys: std::collections::BTreeSet<&String> =
                        o.keys().chain(n.keys()).collect();
                    keys.into_iter()
                        .filter_map(|k| match (o.get(k), n.get(k)) {
                            (Some(a), Some(b)) if a == b => None,
                            (Some(a), Some(b)) => Some((
                                k.clone(),
                                diff_fields(a, b),
                                Some(a.clone()),
                                Some(b.clone()),
                            )),
                            (a, b) => Some((
                                k.clone(),
                                vec!["<row presence>".to_string()],
                                a.cloned(),
                                b.cloned(),
                            )),
                        })
                        .collect()
                },
            )
            .await?;
        rows.into_iter().map(from_row).collect()
    }

    /// Insert or replace the row.
    pub async fn put(&self, path: &str, ctx: &FlagContext, value: &T) -> Result<(), AccessError> {
        let row = to_row(value)?;
        key_only(&self.view, &row)?;
        self.write(path, ctx, WriteOp::Put(row, None)).await
    }

    /// Delete the row with this primary key.
    pub async fn delete<K: Serialize + ?Sized>(
        &self,
        path: &str,
        ctx: &FlagContext,
        key: &K,
    ) -> Result<(), AccessError> {
        let key = key_only(&self.view, &to_row(key)?)?;
        self.write(path, ctx, WriteOp::Delete(key)).await
    }

    /// Read the row from the authoritative store, change it, and write it back through
    /// `path` (a read-modify-write: concurrent updates of one row are last-writer-wins).
    /// Returns the new value, or `None` if there is no such row.
    pub async fn update<K: Serialize + ?Sized>(
        &self,
        path: &str,
        ctx: &FlagContext,
        key: &K,
        change: impl FnOnce(&mut T),
    ) -> Result<Option<T>, AccessError> {
        let key = key_only(&self.view, &to_row(key)?)?;
        // The read half is an authoritative-only read, measured and reported like any other.
        let mut d = self.access.decide(path, ctx)?;
        d.operation(OpKind::Read);
        let origin = plan(d.stage).authoritative;
        let (old, new, view) = (self.access.old(), self.access.new_store(), &*self.view);
        let row = self
            .call(&mut d, path, OpKind::Read, origin, async {
                match origin {
                    Origin::Old => old.get(view, &key).await,
                    Origin::New => new.get(view, &key).await,
                }
            })
            .await;
        d.finish();
        let row = row?;
        let Some(row) = row else { return Ok(None) };
        let mut value: T = from_row(row.clone())?;
        change(&mut value);
        let new_row = to_row(&value)?;
        key_only(&self.view, &new_row)?;
        // The row as read is the before-image: if `change` moved the item (a sort-key column),
        // the old item is tombstoned, in every stage.
        self.write(path, ctx, WriteOp::Put(new_row, Some(row)))
            .await?;
        Ok(Some(value))
    }

    /// The read half of the stage table.
    async fn read<R>(
        &self,
        path: &str,
        ctx: &FlagContext,
        old: impl std::future::Future<Output = Result<R, AccessError>>,
        new: impl std::future::Future<Output = Result<R, AccessError>>,
        compare: impl FnOnce(&R, &R) -> Vec<Mismatch>,
    ) -> Result<R, AccessError> {
        let mut d = self.access.decide(path, ctx)?;
        d.operation(OpKind::Read);
        let p = plan(d.stage);
        let result = match (p.read_old, p.read_new) {
            (true, false) => {
                self.call(&mut d, path, OpKind::Read, Origin::Old, old)
                    .await
            }
            (false, _) => {
                self.call(&mut d, path, OpKind::Read, Origin::New, new)
                    .await
            }
            (true, true) => {
                // Concurrent, as LaunchDarkly's default execution order: latency ≈ max, not sum.
                let (o, n) = tokio::join!(
                    timed(self.access.inner().cfg.timeout, "mysql", old),
                    timed(self.access.inner().cfg.timeout, "dynamodb", new)
                );
                self.record(&mut d, path, OpKind::Read, Origin::Old, &o);
                self.record(&mut d, path, OpKind::Read, Origin::New, &n);
                if let (true, Ok(ov), Ok(nv)) = (p.compare, &o.0, &n.0) {
                    let cfg = &self.access.inner().cfg;
                    d.consistent(|| {
                        let mismatches = compare(ov, nv);
                        if !mismatches.is_empty() {
                            self.access
                                .inner()
                                .mismatches
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        // One event per compared read: the first keys and every differing field.
                        if let Some((_, _, a, b)) = mismatches.first() {
                            let keys: Vec<&str> =
                                mismatches.iter().take(10).map(|m| m.0.as_str()).collect();
                            let mut fields: Vec<String> = mismatches
                                .iter()
                                .flat_map(|m| m.1.iter().cloned())
                                .collect();
                            fields.sort();
                            fields.dedup();
                            report_mismatch(
                                cfg,
                                path,
                                &keys,
                                mismatches.len(),
                                &fields,
                                Some((a, b)),
                            );
                        }
                        count_check(path, mismatches.is_empty());
                        mismatches.is_empty()
                    });
                }
                match p.authoritative {
                    Origin::Old => o.0,
                    Origin::New => n.0,
                }
            }
        };
        d.finish();
        result
    }

    /// The write half: authoritative first; the second store only after it succeeded; a
    /// failed second write is queued for repair and does not fail the caller.
    async fn write(&self, path: &str, ctx: &FlagContext, op: WriteOp) -> Result<(), AccessError> {
        let mut d = self.access.decide(path, ctx)?;
        d.operation(OpKind::Write);
        let stage = d.stage;
        let p = plan(stage);
        let touches_new = p.authoritative == Origin::New || p.secondary_write == Some(Origin::New);
        // Read before any write of this operation: see the version rule in the module docs.
        // `complete` never asks MySQL: each item counts its own versions.
        let version = if stage == Stage::Complete {
            Some(Versioning::Counter {
                floor: COMPLETE_BASE,
            })
        } else if touches_new {
            match self.access.write_version().await {
                Ok(v) => Some(Versioning::Binlog(v)),
                // DynamoDB first with no binlog position (MySQL down): count in place.
                Err(_) if p.authoritative == Origin::New => Some(Versioning::Counter { floor: 0 }),
                Err(_) => None, // MySQL is down: its own write fails just below.
            }
        } else {
            None
        };
        let op = match op {
            WriteOp::Put(row, None) if touches_new && stage != Stage::Complete => {
                let before = self.before_image(&row).await;
                WriteOp::Put(row, before)
            }
            op => op,
        };
        let first = self
            .call(
                &mut d,
                path,
                OpKind::Write,
                p.authoritative,
                self.apply(p.authoritative, &op, version),
            )
            .await;
        if let Err(e) = first {
            d.finish();
            return Err(e);
        }
        match p.secondary_write {
            Some(second) => {
                let res = self
                    .call(
                        &mut d,
                        path,
                        OpKind::Write,
                        second,
                        self.apply(second, &op, version),
                    )
                    .await;
                if let Err(e) = res {
                    let behind = match second {
                        Origin::Old => Behind::Old,
                        Origin::New => Behind::New,
                    };
                    self.secondary_failed(path, ctx, stage, &op, behind, &e.to_string())
                        .await;
                }
            }
            None if stage == Stage::Complete && self.access.inner().cfg.journal_complete => {
                self.enqueue(
                    path,
                    ctx,
                    stage,
                    &op,
                    Behind::Old,
                    "journal (complete stage)",
                )
                .await;
            }
            None => {}
        }
        d.finish();
        Ok(())
    }

    /// The row a put replaces, from MySQL (every stage but `complete` writes it), when the
    /// mapping addresses items by more than the primary key (so a put can move the item).
    /// `None` when it can't be read: then only the new item is written.
    async fn before_image(&self, row: &RowJson) -> Option<RowJson> {
        let view = &*self.view;
        if view.key_columns.len() == view.primary_key.len() {
            return None;
        }
        let timeout = self.access.inner().cfg.timeout;
        match tokio::time::timeout(timeout, self.access.old().get(view, row)).await {
            Ok(Ok(before)) => before,
            _ => None,
        }
    }

    async fn apply(
        &self,
        origin: Origin,
        op: &WriteOp,
        version: Option<Versioning>,
    ) -> Result<(), AccessError> {
        let view = &*self.view;
        match origin {
            Origin::Old => match op {
                WriteOp::Put(row, _) => self.access.old().put(view, row).await,
                WriteOp::Delete(key) => self.access.old().delete(view, key).await,
            },
            Origin::New => {
                let v = version.ok_or_else(|| {
                    AccessError::Unavailable(
                        "no binlog position to version the DynamoDB write (MySQL is down)".into(),
                    )
                })?;
                let new = self.access.new_store();
                match op {
                    WriteOp::Put(row, before) => {
                        new.write(view, Op::Update, row, before.as_ref(), v).await
                    }
                    WriteOp::Delete(key) => new.write(view, Op::Delete, key, None, v).await,
                }
            }
        }
    }

    async fn secondary_failed(
        &self,
        path: &str,
        ctx: &FlagContext,
        stage: Stage,
        op: &WriteOp,
        behind: Behind,
        reason: &str,
    ) {
        let key = key_text(&self.view, op_row(op));
        metrics::counter!(
            "cutover_access_secondary_failures_total",
            "path" => path.to_string(),
            "store" => behind.store_name()
        )
        .increment(1);
        tracing::warn!(
            target: "cutover::access",
            path,
            stage = %stage,
            source = %self.view.source,
            key,
            store = behind.store_name(),
            reason,
            "second write failed; the caller got the authoritative result and a repair is queued"
        );
        self.enqueue(path, ctx, stage, op, behind, reason).await;
    }

    async fn enqueue(
        &self,
        path: &str,
        ctx: &FlagContext,
        stage: Stage,
        op: &WriteOp,
        behind: Behind,
        reason: &str,
    ) {
        let key = match key_only(&self.view, op_row(op)) {
            Ok(k) => k,
            Err(_) => return,
        };
        let entry = RepairEntry {
            path: path.to_string(),
            source: self.view.source.clone(),
            key,
            behind,
            stage: stage.to_string(),
            reason: reason.to_string(),
            at_us: chrono::Utc::now().timestamp_micros(),
            tenant: ctx.tenant.clone(),
        };
        if let Err(e) = self.access.repair_queue().enqueue(&entry).await {
            metrics::counter!("cutover_access_repair_enqueue_failures_total", "path" => path.to_string())
                .increment(1);
            tracing::error!(
                target: "cutover::access",
                path,
                source = %self.view.source,
                key = %key_text(&self.view, &entry.key),
                store = behind.store_name(),
                error = %e,
                "could not queue a repair: run `cutover verify --repair` for this table"
            );
        }
    }

    async fn call<R>(
        &self,
        d: &mut Decision,
        path: &str,
        op: OpKind,
        origin: Origin,
        fut: impl std::future::Future<Output = Result<R, AccessError>>,
    ) -> Result<R, AccessError> {
        let name = origin_name(origin);
        let r = timed(self.access.inner().cfg.timeout, name, fut).await;
        self.record(d, path, op, origin, &r);
        r.0
    }

    fn record<R>(
        &self,
        d: &mut Decision,
        path: &str,
        op: OpKind,
        origin: Origin,
        r: &(Result<R, AccessError>, Duration),
    ) {
        d.invoked(origin);
        d.latency(origin, r.1);
        if r.0.is_err() {
            d.error(origin);
        }
        metrics::histogram!(
            "cutover_access_call_seconds",
            "path" => path.to_string(),
            "store" => origin_name(origin)
        )
        .record(r.1.as_secs_f64());
        self.access.observe(path, d.stage, origin, op, r.0.is_ok());
    }
}

/// (key text, differing fields, normalized old row, new row)
type Mismatch = (String, Vec<String>, Option<RowJson>, Option<RowJson>);

fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Old => "mysql",
        Origin::New => "dynamodb",
    }
}

fn op_row(op: &WriteOp) -> &RowJson {
    match op {
        WriteOp::Put(r, _) | WriteOp::Delete(r) => r,
    }
}

async fn timed<R>(
    timeout: Duration,
    what: &'static str,
    fut: impl std::future::Future<Output = Result<R, AccessError>>,
) -> (Result<R, AccessError>, Duration) {
    let start = Instant::now();
    let r = match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(AccessError::Timeout(what, timeout)),
    };
    (r, start.elapsed())
}

fn from_row<T: DeserializeOwned>(row: RowJson) -> Result<T, AccessError> {
    serde_json::from_value(serde_json::Value::Object(row))
        .map_err(|e| AccessError::Input(format!("row does not fit the entity type: {e}")))
}
