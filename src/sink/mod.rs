//! The DynamoDB writer: applies [`ItemWrite`]s idempotently and in source order, under
//! at-least-once delivery, duplicates, restarts and replays.
//!
//! # The version rule (shared by every writer of a target table)
//! Each item part stores the source version of the last change applied to it
//! (`sink.version_attribute`, per part in merge mode; see `cdc::SourcePosition::version`).
//! A write of version `v` is applied only if `attribute_not_exists(#v) OR #v <= :v`:
//! - an older change never overwrites a newer one, whatever the arrival order;
//! - a duplicate of the same change re-applies identical content (idempotent);
//! - a delete leaves a tombstone `{key, #v, deleted=true, ttl}` (by default), so a late older
//!   write fails the condition instead of resurrecting the row. DynamoDB's TTL removes the
//!   tombstone after `sink.tombstone_ttl`; keep that ≥ the topic's retention.
//!
//! # Write modes (explicit in config: `sink.write_mode`)
//! - `conditional`: one conditional UpdateItem / PutItem / DeleteItem per item. Safe with any
//!   number of concurrent writers (other partitions, replays, the data-access layer).
//! - `batch`: BatchWriteItem of whole items without conditions. Only for a single writer per
//!   table in stream order where each key's changes stay in one partition, e.g. a replay into
//!   a new table of a source without primary-key changes. Partitions are written in parallel,
//!   so a key that moves across partitions can be resurrected by an older unconditional put.
//!
//! Within one call, changes to the same item part are coalesced (folded in arrival order,
//! superseded ones dropped; see [`coalesce`]), so a replay of a hot key writes once per batch
//! window. Throttling and UnprocessedItems are retried
//! with exponential backoff and full jitter; a fatal error (missing table, bad credentials) is
//! returned to the caller, which stops without committing.

pub mod config;
pub mod dynamo;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use backon::{ExponentialBuilder, Retryable};
use futures::stream::{self, StreamExt};

pub use self::config::{DeleteMode, DynamoConfig, SinkConfig, WriteMode};
use crate::error::FatalError;
use crate::mapping::{Change, ItemWrite};
pub use dynamo::{DynamoApi, SdkApi, SingleKind, SingleWrite, WriteError};

/// Every DynamoDB action `cutover run` / `replay` call on the target tables: the writes, and
/// DescribeTable for the startup check. infra/'s IAM policy grants exactly these (a test
/// checks it). `cutover tables create` needs more (CreateTable, UpdateTimeToLive) and is not
/// meant for production.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
];

/// What happened to one coalesced item write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Written.
    Applied,
    /// Not written: the item already holds this version or a newer one.
    Stale,
    /// DynamoDB refused the item for good; its records go to the dead-letter topic.
    Poison(String),
}

/// The result for one item: which input writes it covered, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// Indices (into the input) of the writes folded into this one.
    pub inputs: Vec<usize>,
    pub outcome: ItemOutcome,
}

/// Applies item writes to DynamoDB. Cheap to clone.
#[derive(Clone)]
pub struct Writer<A: DynamoApi = SdkApi> {
    api: Arc<A>,
    cfg: Arc<SinkConfig>,
}

impl<A: DynamoApi> Writer<A> {
    pub fn new(api: A, cfg: SinkConfig) -> Self {
        Writer {
            api: Arc::new(api),
            cfg: Arc::new(cfg),
        }
    }

    pub fn config(&self) -> &SinkConfig {
        &self.cfg
    }

    pub fn api(&self) -> &A {
        &self.api
    }

    /// Write everything, coalesced per item part. Returns one result per coalesced write; every
    /// input index appears in exactly one result. Only a fatal error fails the whole call.
    pub async fn write(&self, writes: Vec<ItemWrite>) -> Result<Vec<WriteResult>, FatalError> {
        let groups = coalesce(writes);
        match self.cfg.write_mode {
            WriteMode::Conditional => self.write_conditional(groups).await,
            WriteMode::Batch => self.write_batched(groups).await,
        }
    }

    async fn write_conditional(
        &self,
        groups: Vec<(ItemWrite, Vec<usize>)>,
    ) -> Result<Vec<WriteResult>, FatalError> {
        let results: Vec<Result<WriteResult, FatalError>> = stream::iter(groups)
            .map(|(w, inputs)| async move {
                let single = conditional_request(&w, &self.cfg);
                let table = w.table.clone();
                let op = op_label(&w.change);
                let outcome = match self
                    .retry(&table, || self.api.write_one(single.clone()))
                    .await
                {
                    Ok(true) => ItemOutcome::Applied,
                    Ok(false) => ItemOutcome::Stale,
                    Err(WriteError::Poison(r)) => ItemOutcome::Poison(r),
                    Err(e) => return Err(FatalError::from_error(e)),
                };
                record_outcome(&table, op, &outcome, w.commit_ts_us);
                Ok(WriteResult { inputs, outcome })
            })
            .buffer_unordered(self.cfg.concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn write_batched(
        &self,
        groups: Vec<(ItemWrite, Vec<usize>)>,
    ) -> Result<Vec<WriteResult>, FatalError> {
        // BatchWriteItem takes one table per call here and at most 25 distinct keys.
        let mut by_table: HashMap<Arc<str>, Vec<(ItemWrite, Vec<usize>)>> = HashMap::new();
        for g in groups {
            by_table.entry(g.0.table.clone()).or_default().push(g);
        }
        let chunks: Vec<Vec<(ItemWrite, Vec<usize>)>> = by_table
            .into_values()
            .flat_map(|mut v| {
                let mut out = Vec::new();
                while !v.is_empty() {
                    let rest = v.split_off(v.len().min(25));
                    out.push(std::mem::replace(&mut v, rest));
                }
                out
            })
            .collect();
        let results: Vec<Result<Vec<WriteResult>, FatalError>> = stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk))
            .buffer_unordered(self.cfg.concurrency.div_ceil(4).max(1))
            .collect()
            .await;
        let mut out = Vec::new();
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }

    async fn write_chunk(
        &self,
        chunk: Vec<(ItemWrite, Vec<usize>)>,
    ) -> Result<Vec<WriteResult>, FatalError> {
        let table = chunk[0].0.table.clone();
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|(w, _)| batch_request(w, &self.cfg))
            .collect();
        let mut delay = Backoff::new(&self.cfg);
        loop {
            let attempt = self
                .retry(&table, || {
                    self.api.write_batch(table.to_string(), pending.clone())
                })
                .await;
            match attempt {
                Ok(unprocessed) if unprocessed.is_empty() => break,
                Ok(unprocessed) => {
                    metrics::counter!("cutover_dynamodb_throttles_total", "table" => table.to_string())
                        .increment(1);
                    pending = unprocessed;
                    match delay.next() {
                        Some(d) => tokio::time::sleep(d).await,
                        None => {
                            return Err(FatalError::new(format!(
                            "BatchWriteItem on {table}: items still unprocessed after {} retries",
                            self.cfg.max_retries
                        )))
                        }
                    }
                }
                Err(WriteError::Poison(_)) if chunk.len() > 1 => {
                    // One bad item fails the whole batch: isolate it by writing one by one.
                    let mut out = Vec::with_capacity(chunk.len());
                    for single in chunk {
                        out.extend(Box::pin(self.write_chunk(vec![single])).await?);
                    }
                    return Ok(out);
                }
                Err(WriteError::Poison(r)) => {
                    let (w, inputs) = chunk.into_iter().next().expect("chunk of one");
                    let outcome = ItemOutcome::Poison(r);
                    record_outcome(&table, op_label(&w.change), &outcome, w.commit_ts_us);
                    return Ok(vec![WriteResult { inputs, outcome }]);
                }
                Err(e) => return Err(FatalError::from_error(e)),
            }
        }
        Ok(chunk
            .into_iter()
            .map(|(w, inputs)| {
                record_outcome(
                    &table,
                    op_label(&w.change),
                    &ItemOutcome::Applied,
                    w.commit_ts_us,
                );
                WriteResult {
                    inputs,
                    outcome: ItemOutcome::Applied,
                }
            })
            .collect())
    }

    /// Retry throttled and transient failures with exponential backoff and full jitter.
    async fn retry<T, F, Fut>(&self, table: &str, call: F) -> Result<T, WriteError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, WriteError>>,
    {
        call.retry(
            ExponentialBuilder::default()
                .with_min_delay(self.cfg.retry_delay)
                .with_max_delay(self.cfg.max_retry_delay)
                .with_max_times(self.cfg.max_retries)
                .with_jitter(),
        )
        .sleep(tokio::time::sleep)
        .when(WriteError::is_retryable)
        .notify(|e, d| {
            if matches!(e, WriteError::Throttled(_)) {
                metrics::counter!("cutover_dynamodb_throttles_total", "table" => table.to_string())
                    .increment(1);
            }
            tracing::debug!(table, error = %e, retry_in = ?d, "retrying DynamoDB write");
        })
        .await
        .map_err(|e| match e {
            WriteError::Throttled(m) | WriteError::Transient(m) => WriteError::Fatal(format!(
                "DynamoDB table {table}: still failing after {} retries: {m}",
                self.cfg.max_retries
            )),
            other => other,
        })
    }
}

/// Exponential backoff with full jitter for UnprocessedItems (the SDK call itself succeeded).
struct Backoff {
    next: Duration,
    max: Duration,
    left: usize,
}

impl Backoff {
    fn new(cfg: &SinkConfig) -> Self {
        Backoff {
            next: cfg.retry_delay,
            max: cfg.max_retry_delay,
            left: cfg.max_retries,
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        Some(
            d.mul_f64(rand::random::<f64>())
                .max(Duration::from_millis(1)),
        )
    }
}

fn op_label(c: &Change) -> &'static str {
    match c {
        Change::Upsert { .. } => "upsert",
        Change::Delete { .. } => "delete",
    }
}

fn record_outcome(table: &str, op: &'static str, outcome: &ItemOutcome, commit_ts_us: Option<i64>) {
    let label = match outcome {
        ItemOutcome::Applied => "applied",
        ItemOutcome::Stale => "stale",
        ItemOutcome::Poison(_) => "poison",
    };
    metrics::counter!("cutover_items_written_total", "table" => table.to_string(), "op" => op, "outcome" => label)
        .increment(1);
    if let (ItemOutcome::Applied, Some(ts)) = (outcome, commit_ts_us) {
        let now = now_micros();
        if now > ts {
            metrics::histogram!("cutover_e2e_latency_seconds", "table" => table.to_string())
                .record((now - ts) as f64 / 1e6);
        }
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Fold the writes of each item part in arrival order, dropping any write older than one
/// already seen for that part in this call: the version guard would reject it anyway, and
/// folding it into a newer one could carry attributes across a gap (a re-delivery that starts
/// over, e.g. after a DMS task restart, puts an old change right after a new one, without the
/// changes in between). What remains is an increasing run of one contiguous stretch of the
/// source log, whose fold equals applying it change by change. Every input index is reported.
/// Output order follows first appearance.
pub fn coalesce(writes: Vec<ItemWrite>) -> Vec<(ItemWrite, Vec<usize>)> {
    let mut index: HashMap<(String, Arc<str>), usize> = HashMap::with_capacity(writes.len());
    let mut groups: Vec<Vec<(usize, ItemWrite)>> = Vec::new();
    for (i, w) in writes.into_iter().enumerate() {
        let k = (
            w.key_id.clone(),
            Arc::from(w.part.version_attribute.as_str()),
        );
        match index.get(&k) {
            Some(&g) => groups[g].push((i, w)),
            None => {
                index.insert(k, groups.len());
                groups.push(vec![(i, w)]);
            }
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let inputs = g.iter().map(|(i, _)| *i).collect();
            let mut acc: Option<ItemWrite> = None;
            for (_, w) in g {
                acc = Some(match acc {
                    None => w,
                    Some(a) if w.version < a.version => a, // superseded: drop
                    Some(a) => fold(a, w),
                });
            }
            (acc.expect("non-empty group"), inputs)
        })
        .collect()
}

fn fold(acc: ItemWrite, next: ItemWrite) -> ItemWrite {
    let change = match (acc.change, next.change) {
        (prev, Change::Delete { remove }) => {
            let mut all = match prev {
                Change::Upsert { set, remove } => set
                    .into_iter()
                    .map(|(n, _)| n)
                    .chain(remove)
                    .collect::<Vec<_>>(),
                Change::Delete { remove } => remove,
            };
            all.extend(remove);
            dedup(&mut all);
            Change::Delete { remove: all }
        }
        (
            Change::Upsert {
                set: old,
                remove: old_rm,
            },
            Change::Upsert { set, remove },
        ) => {
            let mut merged: Vec<(String, AttributeValue)> = old
                .into_iter()
                .filter(|(n, _)| !set.iter().any(|(m, _)| m == n) && !remove.contains(n))
                .collect();
            merged.extend(set);
            let mut rm: Vec<String> = old_rm.into_iter().chain(remove).collect();
            rm.retain(|n| !merged.iter().any(|(m, _)| m == n));
            dedup(&mut rm);
            Change::Upsert {
                set: merged,
                remove: rm,
            }
        }
        (Change::Delete { remove: old_rm }, Change::Upsert { set, remove }) => {
            // Re-created after a delete: clear what the deleted row had that the new one lacks.
            let mut rm: Vec<String> = old_rm.into_iter().chain(remove).collect();
            rm.retain(|n| !set.iter().any(|(m, _)| m == n));
            dedup(&mut rm);
            Change::Upsert { set, remove: rm }
        }
    };
    ItemWrite { change, ..next }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

fn tombstone_expiry(w: &ItemWrite, cfg: &SinkConfig) -> String {
    let base = w
        .commit_ts_us
        .unwrap_or_else(now_micros)
        .div_euclid(1_000_000);
    (base + cfg.tombstone_ttl.as_secs() as i64).to_string()
}

const GUARD: &str = "attribute_not_exists(#v) OR #v <= :v";

/// The conditional request for one coalesced write.
pub fn conditional_request(w: &ItemWrite, cfg: &SinkConfig) -> SingleWrite {
    let key: HashMap<String, AttributeValue> = w
        .key
        .iter()
        .map(|k| (k.name.to_string(), k.value.clone()))
        .collect();
    let mut names = HashMap::from([("#v".to_string(), w.part.version_attribute.clone())]);
    let mut values = HashMap::from([(":v".to_string(), AttributeValue::N(w.version.to_string()))]);
    let part = &w.part;
    let mut sets: Vec<String> = vec!["#v = :v".into()];
    let mut removes: Vec<String> = Vec::new();
    let name = |n: &str, names: &mut HashMap<String, String>| {
        let p = format!("#a{}", names.len());
        names.insert(p.clone(), n.to_string());
        p
    };
    let kind = match (&w.change, part.merge, cfg.delete_mode) {
        (Change::Upsert { set, remove }, _, _) => {
            for (i, (n, v)) in set.iter().enumerate() {
                let p = name(n, &mut names);
                values.insert(format!(":s{i}"), v.clone());
                sets.push(format!("{p} = :s{i}"));
            }
            let mut rm: Vec<&str> = remove.iter().map(String::as_str).collect();
            if part.owner {
                rm.push(&part.deleted_attribute);
                rm.push(&part.ttl_attribute);
            }
            for n in rm {
                if !set.iter().any(|(m, _)| m == n) {
                    let p = name(n, &mut names);
                    removes.push(p);
                }
            }
            SingleKind::Update {
                key,
                expression: update_expression(&sets, &removes),
            }
        }
        (Change::Delete { .. }, false, DeleteMode::Tombstone) => {
            let mut item = key;
            item.insert(
                part.version_attribute.clone(),
                AttributeValue::N(w.version.to_string()),
            );
            item.insert(part.deleted_attribute.clone(), AttributeValue::Bool(true));
            item.insert(
                part.ttl_attribute.clone(),
                AttributeValue::N(tombstone_expiry(w, cfg)),
            );
            SingleKind::Put { item }
        }
        (Change::Delete { .. }, _, DeleteMode::Hard) if part.owner => {
            values.retain(|k, _| k == ":v");
            SingleKind::Delete { key }
        }
        (Change::Delete { remove }, _, _) => {
            for n in remove {
                let p = name(n, &mut names);
                removes.push(p);
            }
            if part.owner {
                let d = name(&part.deleted_attribute, &mut names);
                let t = name(&part.ttl_attribute, &mut names);
                values.insert(":del".into(), AttributeValue::Bool(true));
                values.insert(":ttl".into(), AttributeValue::N(tombstone_expiry(w, cfg)));
                sets.push(format!("{d} = :del"));
                sets.push(format!("{t} = :ttl"));
            }
            SingleKind::Update {
                key,
                expression: update_expression(&sets, &removes),
            }
        }
    };
    SingleWrite {
        table: w.table.to_string(),
        kind,
        condition: Some(GUARD.into()),
        names,
        values,
    }
}

fn update_expression(sets: &[String], removes: &[String]) -> String {
    let mut e = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        e.push_str(" REMOVE ");
        e.push_str(&removes.join(", "));
    }
    e
}

/// The unconditional whole-item request for batch mode.
pub fn batch_request(w: &ItemWrite, cfg: &SinkConfig) -> WriteRequest {
    let mut item: HashMap<String, AttributeValue> = w
        .key
        .iter()
        .map(|k| (k.name.to_string(), k.value.clone()))
        .collect();
    match (&w.change, cfg.delete_mode) {
        (Change::Delete { .. }, DeleteMode::Hard) => {
            return WriteRequest::builder()
                .delete_request(
                    DeleteRequest::builder()
                        .set_key(Some(item))
                        .build()
                        .expect("key set"),
                )
                .build()
        }
        (Change::Delete { .. }, DeleteMode::Tombstone) => {
            item.insert(w.part.deleted_attribute.clone(), AttributeValue::Bool(true));
            item.insert(
                w.part.ttl_attribute.clone(),
                AttributeValue::N(tombstone_expiry(w, cfg)),
            );
        }
        (Change::Upsert { set, .. }, _) => {
            item.extend(set.iter().cloned());
        }
    }
    item.insert(
        w.part.version_attribute.clone(),
        AttributeValue::N(w.version.to_string()),
    );
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("item set"),
        )
        .build()
}

#[cfg(test)]
mod tests;
