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
//! - `rebuild`: BatchWriteItem after a consistent read of the stored versions; key moves are
//!   deferred to a conditional phase at the end. Exact, for a replay into a table it owns
//!   (see [`rebuild`]).
//! - `batch`: BatchWriteItem of whole items without conditions. Only for a single writer per
//!   table in stream order where each key's changes stay in one partition, e.g. a replay into
//!   a new table of a source without primary-key changes. Partitions are written in parallel,
//!   so a key that moves across partitions can be resurrected by an older unconditional put.
//!
//! Within one call, changes to the same item part are coalesced (folded in arrival order,
//! superseded ones dropped; see [`coalesce`]), so a replay of a hot key writes once per batch
//! window. Throttling and UnprocessedItems are retried with exponential backoff and full
//! jitter, for a stream ([`Writer::write_until`]) without limit (counted, logged every 30 s,
//! abandoned only when the caller's token fires: shutdown, revocation), for a caller that can't
//! wait forever ([`Writer::write`]: a service's request path) `sink.max_retries` times;
//! timeouts and 5xx always a bounded number of times. A fatal
//! error (missing table, bad credentials, retries exhausted) is returned to the caller, which
//! stops without committing. A write whose fold DynamoDB refuses is re-applied input by input,
//! so only the refused changes are dead-lettered.

mod coalesce;
pub mod config;
pub mod dynamo;
pub mod lineage;
mod rebuild;
mod request;
pub mod retry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::WriteRequest;
use futures::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

pub use self::config::{DeleteMode, DynamoConfig, SinkConfig, WriteMode};
pub use coalesce::{coalesce, fold_writes, Folded};
pub use dynamo::{DynamoApi, SdkApi, SingleKind, SingleWrite, WriteError};
pub use rebuild::DeferredSummary;
pub use request::{batch_request, conditional_request, GUARD};
pub use retry::RetryPolicy;

use crate::error::FatalError;
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
    /// Held back by `rebuild` mode (a key move) until [`Writer::finish_deferred`].
    Deferred,
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
    /// `rebuild` mode's key-move writes, applied by [`Writer::finish_deferred`].
    deferred: Arc<Mutex<Vec<ItemWrite>>>,
    /// `rebuild` mode's memory of the versions it wrote ([`rebuild`]).
    known: Arc<Mutex<rebuild::Known>>,
    throttling: Arc<Mutex<ThrottleLog>>,
    rejections: Arc<Mutex<Rejections>>,
    stale: Arc<lineage::StaleWatch>,
}

/// The current run of rejected writes (poison) on distinct items, ended by any write that
/// succeeds. A long one is a misconfiguration, not bad data: see [`SinkConfig::max_consecutive_rejections`].
#[derive(Default)]
struct Rejections {
    items: std::collections::HashSet<String>,
    last: Option<(Arc<str>, String)>,
}

/// Why a write call ended early.
enum Halt {
    /// Stops the stream (the error keeps its class).
    Error(WriteError),
    /// The caller's stop (shutdown, revocation) fired while waiting: nothing is stored.
    Cancelled,
}

/// Throttling is logged once per [`THROTTLE_LOG_EVERY`] with a count, not per retry.
#[derive(Default)]
struct ThrottleLog {
    last: Option<Instant>,
    since: u64,
}

const THROTTLE_LOG_EVERY: Duration = Duration::from_secs(30);

impl<A: DynamoApi> Writer<A> {
    pub fn new(api: A, cfg: SinkConfig) -> Self {
        Writer {
            api: Arc::new(api),
            cfg: Arc::new(cfg),
            deferred: Arc::default(),
            known: Arc::default(),
            throttling: Arc::default(),
            rejections: Arc::default(),
            stale: Arc::default(),
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
    /// Throttling and timeouts are retried `sink.max_retries` times: for callers that can't
    /// wait without limit (a service's request path, verify's repair). A stream uses
    /// [`Writer::write_until`].
    pub async fn write(&self, writes: Vec<ItemWrite>) -> Result<Vec<WriteResult>, FatalError> {
        self.write_with(writes, Until(None))
            .await?
            .ok_or_else(|| FatalError::new("DynamoDB write cancelled"))
    }

    /// [`Writer::write`] that gives up waiting when `cancel` fires (shutdown, the partition
    /// revoked): `Ok(None)`, and some writes may have been applied (the records are re-read,
    /// and the version guard absorbs them). Throttling is retried until it ends or `cancel`
    /// fires; timeouts and other transient errors by the bounded policy.
    pub async fn write_until(
        &self,
        writes: Vec<ItemWrite>,
        cancel: &CancellationToken,
    ) -> Result<Option<Vec<WriteResult>>, FatalError> {
        self.write_with(writes, Until(Some(cancel))).await
    }

    async fn write_with(
        &self,
        writes: Vec<ItemWrite>,
        until: Until<'_>,
    ) -> Result<Option<Vec<WriteResult>>, FatalError> {
        let groups = fold_writes(writes);
        let done = match self.cfg.write_mode {
            WriteMode::Conditional => self.write_conditional(groups, until).await,
            WriteMode::Batch => self.write_batched(groups, until).await,
            WriteMode::Rebuild => self.write_rebuild(groups, until).await,
        };
        match done {
            Ok(results) => {
                // A stream stops on a run of rejections; a request path gets each poison back.
                if until.0.is_some() {
                    self.check_rejections()?;
                }
                Ok(Some(results))
            }
            Err(Halt::Cancelled) => Ok(None),
            Err(Halt::Error(e)) => Err(FatalError::from_error(e)),
        }
    }

    async fn write_conditional(
        &self,
        groups: Vec<Folded>,
        until: Until<'_>,
    ) -> Result<Vec<WriteResult>, Halt> {
        let results: Vec<Result<Vec<WriteResult>, Halt>> = stream::iter(groups)
            .map(|f| async move {
                match self.write_single(&f.write, until).await? {
                    // The fold was refused: re-apply its inputs one by one, in arrival order,
                    // so only the ones DynamoDB refuses are dead-lettered.
                    ItemOutcome::Poison(_) if !f.parts.is_empty() => {
                        let mut out = Vec::with_capacity(f.parts.len());
                        for (i, w) in f.inputs.into_iter().zip(&f.parts) {
                            let outcome = self.write_single(w, until).await?;
                            self.note(w, &outcome);
                            out.push(WriteResult {
                                inputs: vec![i],
                                outcome,
                            });
                        }
                        Ok(out)
                    }
                    outcome => {
                        self.note(&f.write, &outcome);
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
    async fn write_single(&self, w: &ItemWrite, until: Until<'_>) -> Result<ItemOutcome, Halt> {
        let single = conditional_request(w, &self.cfg);
        match self
            .retry(&w.table, until, || self.api.write_one(single.clone()))
            .await
        {
            Ok(true) => Ok(ItemOutcome::Applied),
            Ok(false) => Ok(ItemOutcome::Stale),
            Err(Halt::Error(WriteError::Poison(r))) => Ok(ItemOutcome::Poison(r)),
            Err(e) => Err(e),
        }
    }

    async fn write_batched(
        &self,
        groups: Vec<Folded>,
        until: Until<'_>,
    ) -> Result<Vec<WriteResult>, Halt> {
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
        let results: Vec<Result<Vec<WriteResult>, Halt>> = stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk, until))
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
        chunk: Vec<Folded>,
        until: Until<'_>,
    ) -> Result<Vec<WriteResult>, Halt> {
        let table = chunk[0].write.table.clone();
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|f| batch_request(&f.write, &self.cfg))
            .collect();
        // UnprocessedItems are DynamoDB throttling part of a batch: waited out like throttling.
        let mut delay = self.throttle_policy(until).delays();
        loop {
            let attempt = self
                .retry(&table, until, || {
                    self.api.write_batch(table.to_string(), pending.clone())
                })
                .await;
            match attempt {
                Ok(unprocessed) if unprocessed.is_empty() => break,
                Ok(unprocessed) => {
                    self.note_throttled(&table, "BatchWriteItem returned UnprocessedItems");
                    pending = unprocessed;
                    let Some(wait) = delay.next() else {
                        return Err(Halt::Error(WriteError::Exhausted {
                            table: table.to_string(),
                            retries: self.cfg.max_retries,
                            message: "BatchWriteItem: items still unprocessed".into(),
                        }));
                    };
                    sleep_or_cancel(wait, until).await?;
                }
                Err(Halt::Error(WriteError::Poison(_))) if chunk.len() > 1 => {
                    // One bad item fails the whole batch: isolate it by writing one by one.
                    let mut out = Vec::with_capacity(chunk.len());
                    for single in chunk {
                        out.extend(Box::pin(self.write_chunk(vec![single], until)).await?);
                    }
                    return Ok(out);
                }
                Err(Halt::Error(WriteError::Poison(r))) => {
                    let f = chunk.into_iter().next().expect("chunk of one");
                    if f.parts.is_empty() {
                        let outcome = ItemOutcome::Poison(r);
                        self.note(&f.write, &outcome);
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
                            self.note(&w, &ItemOutcome::Stale);
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
                        let r = Box::pin(self.write_chunk(vec![single], until)).await?;
                        if r.iter().all(|r| r.outcome == ItemOutcome::Applied) {
                            applied = Some(version);
                        }
                        out.extend(r);
                    }
                    return Ok(out);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(chunk
            .into_iter()
            .map(|f| {
                self.note(&f.write, &ItemOutcome::Applied);
                WriteResult {
                    inputs: f.inputs,
                    outcome: ItemOutcome::Applied,
                }
            })
            .collect())
    }

    /// Retry by the one retry policy (full jitter): throttling (counted, logged every 30 s)
    /// without limit when the caller can cancel, transient failures (timeouts, 5xx)
    /// `sink.max_retries` times. Waits end early when the caller's token fires.
    async fn retry<T, F, Fut>(&self, table: &str, until: Until<'_>, mut call: F) -> Result<T, Halt>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, WriteError>>,
    {
        let mut transient = RetryPolicy::from(&*self.cfg).delays();
        let mut throttled = self.throttle_policy(until).delays();
        loop {
            let wait = match call().await {
                Ok(v) => return Ok(v),
                Err(WriteError::Throttled(message)) => {
                    self.note_throttled(table, &message);
                    match throttled.next() {
                        Some(d) => d,
                        None => {
                            return Err(Halt::Error(WriteError::Exhausted {
                                table: table.to_string(),
                                retries: self.cfg.max_retries,
                                message,
                            }))
                        }
                    }
                }
                Err(WriteError::Transient(message)) => match transient.next() {
                    Some(d) => {
                        tracing::debug!(table, error = %message, retry_in = ?d, "retrying DynamoDB write");
                        d
                    }
                    None => {
                        return Err(Halt::Error(WriteError::Exhausted {
                            table: table.to_string(),
                            retries: self.cfg.max_retries,
                            message,
                        }))
                    }
                },
                Err(e) => return Err(Halt::Error(e)),
            };
            sleep_or_cancel(wait, until).await?;
        }
    }

    /// Count the outcome, and follow the run of rejections.
    fn note(&self, w: &ItemWrite, outcome: &ItemOutcome) {
        record_outcome(w, outcome);
        if self.cfg.write_mode == WriteMode::Conditional
            && matches!(outcome, ItemOutcome::Applied | ItemOutcome::Stale)
        {
            let stale = *outcome == ItemOutcome::Stale;
            self.stale.observe(&w.table, stale, self.cfg.version_epoch);
        }
        let mut r = self.rejections.lock().expect("rejections lock");
        match outcome {
            ItemOutcome::Poison(reason) => {
                r.items.insert(w.key_id.clone());
                r.last = Some((w.table.clone(), reason.clone()));
            }
            ItemOutcome::Deferred => {}
            ItemOutcome::Applied | ItemOutcome::Stale => {
                if !r.items.is_empty() {
                    r.items.clear();
                    r.last = None;
                }
            }
        }
    }

    /// A run of `sink.max_consecutive_rejections` rejected writes on distinct items stops the
    /// stream (nothing of the batch is stored or dead-lettered): it is the configuration.
    fn check_rejections(&self) -> Result<(), FatalError> {
        let max = self.cfg.max_consecutive_rejections;
        let r = self.rejections.lock().expect("rejections lock");
        if max == 0 || r.items.len() < max {
            return Ok(());
        }
        let (table, reason) = r.last.clone().unwrap_or_default();
        Err(FatalError::new(format!(
            "DynamoDB rejected {} writes in a row on distinct items (last on table {table}: {reason}). \
             This is the configuration, not the data: likely the mapping does not match the table \
             (key attribute names or types, attribute-name collisions; run `cutover validate` and \
             compare with `aws dynamodb describe-table`). Stopped without committing \
             (sink.max_consecutive_rejections = {max})",
            r.items.len()
        )))
    }

    /// Throttling's waits: the same full jitter; never running out for a caller that can
    /// cancel, `sink.max_retries` for one that can't.
    fn throttle_policy(&self, until: Until<'_>) -> RetryPolicy {
        let policy = RetryPolicy::from(&*self.cfg);
        match until.0 {
            Some(_) => RetryPolicy {
                max_retries: None,
                ..policy
            },
            None => policy,
        }
    }

    fn note_throttled(&self, table: &str, message: &str) {
        metrics::counter!("cutover_dynamodb_throttles_total", "table" => table.to_string())
            .increment(1);
        let mut log = self.throttling.lock().expect("throttle log lock");
        log.since += 1;
        if log.last.is_none_or(|t| t.elapsed() >= THROTTLE_LOG_EVERY) {
            tracing::warn!(
                table,
                throttled = log.since,
                last_error = message,
                "DynamoDB is throttling writes: backing off and retrying without limit (nothing is skipped). If it lasts, raise the table's capacity or lower sink.concurrency"
            );
            log.last = Some(Instant::now());
            log.since = 0;
        }
    }
}

/// How long a write call may wait: until its caller's token fires (throttling then waits
/// without limit), or, without one, the bounded policy.
#[derive(Clone, Copy)]
struct Until<'a>(Option<&'a CancellationToken>);

async fn sleep_or_cancel(wait: Duration, until: Until<'_>) -> Result<(), Halt> {
    match until.0 {
        None => {
            tokio::time::sleep(wait).await;
            Ok(())
        }
        Some(cancel) => tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = cancel.cancelled() => Err(Halt::Cancelled),
        },
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
        ItemOutcome::Deferred => return,
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
