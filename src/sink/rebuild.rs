//! `sink.write_mode = "rebuild"`: an exact rebuild of a new table at batch speed
//! (`cutover replay --target-table NEW --create-table --write-mode rebuild`).
//!
//! Batch mode is fast but not exact: BatchWriteItem has no condition, so a re-delivered old
//! record overwrites a newer item, and a key that two partitions write can be resurrected.
//! Rebuild mode keeps BatchWriteItem and restores the version rule with two facts a replay
//! into its own new table has:
//! - **Nobody else writes the table**, and each partition's worker writes its keys in order.
//!   So per window, a strongly consistent BatchGetItem of the stored versions (projection: key
//!   and version attribute) followed by BatchWriteItem of what is newer cannot be overtaken by
//!   another write of the same key — as long as each key is written from one partition.
//! - **Only an item-key move writes a key from a second partition** (the old key's tombstone
//!   and the new key's upsert travel in the moving row's partition). Those writes
//!   ([`ItemWrite::key_move`]) are deferred and applied with the conditional version guard
//!   after every partition has ended ([`Writer::finish_deferred`]). The guard makes their
//!   order, and their order against the batch writes, irrelevant.
//!
//! - **It need not read what it knows.** The version it last applied to a key is the stored
//!   one (nobody else writes it), and while the table was empty when the replay began
//!   ([`Writer::rebuild_into_empty_table`]) a key it never wrote is absent. So [`Known`]
//!   remembers the version of every key it writes (up to `sink.rebuild_memory_keys`), and only
//!   what it can't know is read: keys past that bound, and keys whose write failed or was split.
//!
//! Deletes must leave tombstones (`sink.delete_mode = "tombstone"`), or a re-delivered older
//! upsert of a deleted key would find no version to lose against. Merge-mode tables are not
//! supported (several sources write parts of one item): they use `conditional`.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, StreamExt};

use super::dynamo::{DynamoApi, Item, WriteError};
use super::{fold_writes, sleep_or_cancel, Folded, Halt, ItemOutcome, Until, WriteResult, Writer};
use crate::error::FatalError;
use crate::mapping::ItemWrite;

/// BatchGetItem's limit.
const READ_CHUNK: usize = 100;

/// What the deferred key-move writes came to ([`Writer::finish_deferred`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeferredSummary {
    /// Item writes deferred (after coalescing).
    pub writes: usize,
    pub applied: usize,
    pub stale: usize,
}

/// What rebuild mode knows of the stored versions without reading them (see the module).
#[derive(Default)]
pub(super) struct Known {
    /// The stored version of each key written (or read) so far.
    versions: HashMap<String, u128>,
    /// Keys whose stored version is uncertain (a write that failed, or a fold re-applied
    /// input by input): read before the next write.
    unsure: HashSet<String>,
    /// The table was empty at the start and every key written since is in one of the two
    /// sets: a key in neither is absent.
    whole: bool,
}

/// What [`Known`] says of one key's stored version.
enum Stored {
    Absent,
    Version(u128),
    Read,
}

impl Known {
    fn stored(&self, key: &str) -> Stored {
        match self.versions.get(key) {
            Some(&v) => Stored::Version(v),
            None if self.whole && !self.unsure.contains(key) => Stored::Absent,
            None => Stored::Read,
        }
    }

    fn remember(&mut self, key: &str, version: u128, limit: usize) {
        self.unsure.remove(key);
        if let Some(v) = self.versions.get_mut(key) {
            *v = version;
        } else if self.versions.len() < limit {
            self.versions.insert(key.to_string(), version);
        } else {
            // Full: from now on a key it does not hold is read, not assumed absent.
            self.whole = false;
            self.unsure.clear();
        }
    }

    fn forget(&mut self, key: &str) {
        self.versions.remove(key);
        if self.whole {
            self.unsure.insert(key.to_string());
        }
    }
}

impl<A: DynamoApi> Writer<A> {
    /// Tell rebuild mode that its table was empty when the replay began (the replay created
    /// it): keys it has not written need no read.
    pub fn rebuild_into_empty_table(&self) {
        let mut known = self.known.lock().expect("known");
        known.whole = known.versions.is_empty() && known.unsure.is_empty();
    }

    /// One window of one partition: key moves are deferred, the rest is written by
    /// BatchWriteItem unless the stored version is already as new.
    pub(super) async fn write_rebuild(
        &self,
        groups: Vec<Folded>,
        until: Until<'_>,
    ) -> Result<Vec<WriteResult>, Halt> {
        let mut out = Vec::with_capacity(groups.len());
        let mut direct = Vec::with_capacity(groups.len());
        for f in groups {
            if f.write.key_move {
                out.push(WriteResult {
                    inputs: f.inputs,
                    outcome: ItemOutcome::Deferred,
                });
                // The inputs themselves, so the final phase can re-apply them one by one if
                // DynamoDB rejects their fold.
                let mut deferred = self.deferred.lock().expect("deferred");
                if f.parts.is_empty() {
                    deferred.push(f.write);
                } else {
                    deferred.extend(f.parts);
                }
            } else {
                direct.push(f);
            }
        }
        let limit = self.cfg.rebuild_memory_keys;
        let mut stored = HashMap::with_capacity(direct.len());
        let mut unknown = Vec::new();
        {
            let known = self.known.lock().expect("known");
            for f in &direct {
                match known.stored(&f.write.key_id) {
                    Stored::Absent => {}
                    Stored::Version(v) => {
                        stored.insert(f.write.key_id.clone(), v);
                    }
                    Stored::Read => unknown.push(f),
                }
            }
        }
        if !unknown.is_empty() {
            let read = self.stored_versions(&unknown, until).await?;
            let mut known = self.known.lock().expect("known");
            for (key, &v) in &read {
                known.remember(key, v, limit);
            }
            stored.extend(read);
        }
        let mut fresh = Vec::with_capacity(direct.len());
        // (first input, key, stored form of the version, inputs) of each write sent.
        let mut sent = Vec::with_capacity(direct.len());
        for f in direct {
            // Stored versions carry `sink.version_epoch`: compare like with like.
            let incoming = super::lineage::stored_version(&self.cfg, f.write.version);
            let newer = stored.get(&f.write.key_id).is_some_and(|&v| v >= incoming);
            if newer {
                let outcome = ItemOutcome::Stale;
                self.note(&f.write, &outcome);
                out.push(WriteResult {
                    inputs: f.inputs,
                    outcome,
                });
            } else {
                sent.push((
                    f.inputs[0],
                    f.write.key_id.clone(),
                    incoming,
                    f.inputs.len(),
                ));
                fresh.push(f);
            }
        }
        let written = self.write_batched(fresh, until).await;
        {
            // A key keeps its remembered version only if its whole fold was applied.
            let mut known = self.known.lock().expect("known");
            let applied: HashMap<usize, usize> = match &written {
                Ok(results) => results
                    .iter()
                    .filter(|r| r.outcome == ItemOutcome::Applied)
                    .map(|r| (r.inputs[0], r.inputs.len()))
                    .collect(),
                Err(_) => HashMap::new(),
            };
            for (first, key, version, inputs) in sent {
                if applied.get(&first) == Some(&inputs) {
                    known.remember(&key, version, limit);
                } else {
                    known.forget(&key);
                }
            }
        }
        out.extend(written?);
        Ok(out)
    }

    /// The stored version of each write's item, by `key_id` (absent: no item).
    async fn stored_versions(
        &self,
        writes: &[&Folded],
        until: Until<'_>,
    ) -> Result<HashMap<String, u128>, Halt> {
        // Owned requests: (table, version attribute, [(key_id, key)]) per BatchGetItem.
        let mut by_table: HashMap<&str, Vec<&ItemWrite>> = HashMap::new();
        for f in writes {
            by_table.entry(&f.write.table).or_default().push(&f.write);
        }
        let mut calls = Vec::new();
        for (table, ws) in by_table {
            for chunk in ws.chunks(READ_CHUNK) {
                // The version attribute is the part's; rebuild mode has one part per item.
                let vattr = chunk[0].part.version_attribute.clone();
                let keys: Vec<(String, Item)> = chunk
                    .iter()
                    .map(|w| {
                        let key = w
                            .key
                            .iter()
                            .map(|k| (k.name.to_string(), k.value.clone()))
                            .collect();
                        (w.key_id.clone(), key)
                    })
                    .collect();
                calls.push((table.to_string(), vattr, keys));
            }
        }
        let results: Vec<Result<Vec<(String, u128)>, Halt>> = stream::iter(calls)
            .map(|(table, vattr, keys)| self.read_chunk(table, vattr, keys, until))
            .buffer_unordered(self.cfg.concurrency.div_ceil(4).max(1))
            .collect()
            .await;
        let mut versions = HashMap::with_capacity(writes.len());
        for r in results {
            versions.extend(r?);
        }
        Ok(versions)
    }

    async fn read_chunk(
        &self,
        table: String,
        vattr: String,
        keys: Vec<(String, Item)>,
        until: Until<'_>,
    ) -> Result<Vec<(String, u128)>, Halt> {
        let table = table.as_str();
        let mut ids: HashMap<Vec<(String, String)>, String> = HashMap::with_capacity(keys.len());
        let mut pending: Vec<Item> = Vec::with_capacity(keys.len());
        for (id, key) in keys {
            ids.insert(key_fingerprint(&key), id);
            pending.push(key);
        }
        let mut found = Vec::with_capacity(ids.len());
        let mut delays = self.throttle_policy(until).delays();
        loop {
            let (items, unprocessed) = self
                .retry(table, until, || {
                    self.api
                        .read_batch(table.to_string(), pending.clone(), vec![vattr.clone()])
                })
                .await?;
            for mut item in items {
                let version = match item.remove(&vattr) {
                    Some(AttributeValue::N(n)) => n.parse::<u128>().map_err(|_| {
                        Halt::Error(WriteError::Fatal(format!(
                            "DynamoDB table {table}: attribute {vattr} holds {n:?}, not a version \
                             (is this table written by something other than this replay?)"
                        )))
                    })?,
                    _ => continue,
                };
                match ids.get(&key_fingerprint(&item)) {
                    Some(id) => found.push((id.clone(), version)),
                    // Never guess: an unmatched item could hold a newer version.
                    None => {
                        return Err(Halt::Error(WriteError::Fatal(format!(
                            "DynamoDB table {table}: BatchGetItem returned an item whose key \
                             matches none requested (key values the table normalizes \
                             differently?); replay with --write-mode conditional"
                        ))))
                    }
                }
            }
            if unprocessed.is_empty() {
                return Ok(found);
            }
            self.note_throttled(table, "BatchGetItem left keys unprocessed");
            pending = unprocessed;
            // Unprocessed keys are throttling: waited out like any throttling.
            let Some(wait) = delays.next() else {
                return Err(Halt::Error(WriteError::Exhausted {
                    table: table.to_string(),
                    retries: self.cfg.max_retries,
                    message: "BatchGetItem left keys unprocessed".into(),
                }));
            };
            sleep_or_cancel(wait, until).await?;
        }
    }

    /// Apply the key-move writes deferred by rebuild mode, each under the version guard. Call
    /// once, after every partition of the replay has ended; a no-op in the other modes.
    pub async fn finish_deferred(&self) -> Result<DeferredSummary, FatalError> {
        let writes = std::mem::take(&mut *self.deferred.lock().expect("deferred"));
        let mut summary = DeferredSummary {
            writes: writes.len(),
            ..DeferredSummary::default()
        };
        if writes.is_empty() {
            return Ok(summary);
        }
        tracing::info!(writes = writes.len(), "applying deferred key-move writes");
        // Coalesce again: a key moved several times in different windows needs one write.
        let results = match self
            .write_conditional(fold_writes(writes), Until(None))
            .await
        {
            Ok(results) => results,
            Err(Halt::Error(e)) => return Err(FatalError::from_error(e)),
            Err(Halt::Cancelled) => unreachable!("never cancelled"),
        };
        let mut rejected = Vec::new();
        for r in results {
            match r.outcome {
                ItemOutcome::Applied => summary.applied += 1,
                ItemOutcome::Stale => summary.stale += 1,
                ItemOutcome::Poison(reason) => rejected.push(reason),
                ItemOutcome::Deferred => unreachable!("conditional writes are never deferred"),
            }
        }
        if let Some(first) = rejected.first() {
            return Err(FatalError::new(format!(
                "{} deferred key-move write(s) were rejected by DynamoDB (first: {first}); \
                 the rebuilt table is incomplete: replay again with --write-mode conditional",
                rejected.len()
            )));
        }
        Ok(summary)
    }
}

/// A key as comparable text: attribute name and value, sorted by name.
fn key_fingerprint(item: &Item) -> Vec<(String, String)> {
    let mut parts: Vec<(String, String)> = item
        .iter()
        .map(|(n, v)| {
            let text = match v {
                AttributeValue::S(s) => s.clone(),
                AttributeValue::N(s) => canonical_number(s),
                AttributeValue::B(b) => format!("{:?}", b.as_ref()),
                other => format!("{other:?}"),
            };
            (n.clone(), text)
        })
        .collect();
    parts.sort();
    parts
}

/// DynamoDB stores numbers without leading zeros, trailing fraction zeros or a plus sign.
fn canonical_number(n: &str) -> String {
    let (sign, digits) = match n.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", n.strip_prefix('+').unwrap_or(n)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    if body == "0" {
        body
    } else {
        format!("{sign}{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_number;

    #[test]
    fn numbers_compare_as_dynamodb_stores_them() {
        for (given, stored) in [
            ("007", "7"),
            ("+1.50", "1.5"),
            ("-0.0", "0"),
            ("10", "10"),
            ("-3.000", "-3"),
            ("0.25", "0.25"),
        ] {
            assert_eq!(canonical_number(given), stored, "{given}");
        }
    }
}
