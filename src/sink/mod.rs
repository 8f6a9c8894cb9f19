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

mod coalesce;
pub mod config;
pub mod dynamo;
mod request;
pub mod retry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::WriteRequest;
use backon::Retryable;
use futures::stream::{self, StreamExt};

pub use self::config::{DeleteMode, DynamoConfig, SinkConfig, WriteMode};
pub use coalesce::{coalesce, fold_writes, Folded};
pub use dynamo::{DynamoApi, SdkApi, SingleKind, SingleWrite, WriteError};
pub use request::{batch_request, conditional_request, GUARD};
pub use retry::RetryPolicy;

use crate::error::{Classify, FatalError};
use crate::mapping::{Change, ItemWrite};

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
        let groups = fold_writes(writes);
        match self.cfg.write_mode {
            WriteMode::Conditional => self.write_conditional(groups).await,
            WriteMode::Batch => self.write_batched(groups).await,
        }
    }

    async fn write_conditional(&self, groups: Vec<Folded>) -> Result<Vec<WriteResult>, FatalError> {
        let results: Vec<Result<Vec<WriteResult>, FatalError>> = stream::iter(groups)
            .map(|f| async move {
                match self.write_single(&f.write).await? {
                    // The fold was refused: re-apply its inputs one by one, in arrival order,
                    // so only the ones DynamoDB refuses are dead-lettered.
                    ItemOutcome::Poison(_) if !f.parts.is_empty() => {
                        let mut out = Vec::with_capacity(f.parts.len());
                        for (i, w) in f.inputs.into_iter().zip(&f.parts) {
                            let outcome = self.write_single(w).await?;
                            record_outcome(w, &outcome);
                            out.push(WriteResult {
                                inputs: vec![i],
                                outcome,
                            });
                        }
                        Ok(out)
                    }
                    outcome => {
                        record_outcome(&f.write, &outcome);
                        Ok(vec![WriteResult {
                            inputs: f.inputs,
                            outcome,
                        }])
                    }
                }
            })
            .buffer_unordered(self.cfg.concurrency)
            .collect()
            .await;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }

    /// One guarded write, retried by the policy; poison is an outcome, not an error.
    async fn write_single(&self, w: &ItemWrite) -> Result<ItemOutcome, FatalError> {
        let single = conditional_request(w, &self.cfg);
        match self
            .retry(&w.table, || self.api.write_one(single.clone()))
            .await
        {
            Ok(true) => Ok(ItemOutcome::Applied),
            Ok(false) => Ok(ItemOutcome::Stale),
            Err(WriteError::Poison(r)) => Ok(ItemOutcome::Poison(r)),
            Err(e) => Err(FatalError::from_error(e)),
        }
    }

    async fn write_batched(&self, groups: Vec<Folded>) -> Result<Vec<WriteResult>, FatalError> {
        // BatchWriteItem takes one table per call here and at most 25 distinct keys.
        let mut by_table: HashMap<Arc<str>, Vec<Folded>> = HashMap::new();
        for g in groups {
            by_table.entry(g.write.table.clone()).or_default().push(g);
        }
        let chunks: Vec<Vec<Folded>> = by_table
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

    async fn write_chunk(&self, chunk: Vec<Folded>) -> Result<Vec<WriteResult>, FatalError> {
        let table = chunk[0].write.table.clone();
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|f| batch_request(&f.write, &self.cfg))
            .collect();
        let mut delay = RetryPolicy::from(&*self.cfg).delays();
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
                    let f = chunk.into_iter().next().expect("chunk of one");
                    if f.parts.is_empty() {
                        let outcome = ItemOutcome::Poison(r);
                        record_outcome(&f.write, &outcome);
                        return Ok(vec![WriteResult {
                            inputs: f.inputs,
                            outcome,
                        }]);
                    }
                    // The fold was refused: re-apply its inputs one by one. Unconditional puts
                    // carry no guard, so the guard is applied here: an input older than one
                    // already applied is stale, as a conditional write would find it.
                    let mut out = Vec::with_capacity(f.parts.len());
                    let mut applied = None;
                    for (i, w) in f.inputs.into_iter().zip(f.parts) {
                        if applied.is_some_and(|v| w.version < v) {
                            record_outcome(&w, &ItemOutcome::Stale);
                            out.push(WriteResult {
                                inputs: vec![i],
                                outcome: ItemOutcome::Stale,
                            });
                            continue;
                        }
                        let version = w.version;
                        let single = Folded {
                            write: w,
                            inputs: vec![i],
                            parts: Vec::new(),
                        };
                        let r = Box::pin(self.write_chunk(vec![single])).await?;
                        if r.iter().all(|r| r.outcome == ItemOutcome::Applied) {
                            applied = Some(version);
                        }
                        out.extend(r);
                    }
                    return Ok(out);
                }
                Err(e) => return Err(FatalError::from_error(e)),
            }
        }
        Ok(chunk
            .into_iter()
            .map(|f| {
                record_outcome(&f.write, &ItemOutcome::Applied);
                WriteResult {
                    inputs: f.inputs,
                    outcome: ItemOutcome::Applied,
                }
            })
            .collect())
    }

    /// Retry throttled and transient failures by the one retry policy (full jitter).
    async fn retry<T, F, Fut>(&self, table: &str, call: F) -> Result<T, WriteError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, WriteError>>,
    {
        call.retry(RetryPolicy::from(&*self.cfg).delays())
        .sleep(tokio::time::sleep)
        .when(Classify::is_retryable)
        .notify(|e, d| {
            if matches!(e, WriteError::Throttled(_)) {
                metrics::counter!("cutover_dynamodb_throttles_total", "table" => table.to_string())
                    .increment(1);
            }
            tracing::debug!(table, error = %e, retry_in = ?d, "retrying DynamoDB write");
        })
        .await
        .map_err(|e| match e {
            WriteError::Throttled(message) | WriteError::Transient(message) => {
                WriteError::Exhausted {
                    table: table.to_string(),
                    retries: self.cfg.max_retries,
                    message,
                }
            }
            other => other,
        })
    }
}

fn op_label(c: &Change) -> &'static str {
    match c {
        Change::Upsert { .. } => "upsert",
        Change::Delete { .. } => "delete",
    }
}

fn record_outcome(w: &ItemWrite, outcome: &ItemOutcome) {
    let table: &str = &w.table;
    let op = op_label(&w.change);
    let commit_ts_us = w.commit_ts_us;
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

#[cfg(test)]
mod tests;
