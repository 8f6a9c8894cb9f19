//! Writer logic without a server: mockall for failures real servers can't produce on demand,
//! and an in-memory evaluator of the exact requests we send, for the convergence property.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use proptest::prelude::*;

use super::dynamo::MockDynamoApi;
use super::*;
use crate::mapping::{KeyAttr, Part};

fn part(merge: bool) -> Arc<Part> {
    Arc::new(Part {
        source: "s.t".into(),
        version_attribute: "_v".into(),
        merge,
        owner: true,
        attributes: None,
        deleted_attribute: "_deleted".into(),
        ttl_attribute: "_ttl".into(),
    })
}

fn upsert(key: &str, version: u128, attrs: &[(&str, Option<&str>)]) -> ItemWrite {
    let mut set = Vec::new();
    let mut remove = Vec::new();
    for (n, v) in attrs {
        match v {
            Some(v) => set.push((n.to_string(), AttributeValue::S(v.to_string()))),
            None => remove.push(n.to_string()),
        }
    }
    write(key, version, Change::Upsert { set, remove })
}

fn delete(key: &str, version: u128) -> ItemWrite {
    write(
        key,
        version,
        Change::Delete {
            remove: vec!["a".into(), "b".into()],
        },
    )
}

fn write(key: &str, version: u128, change: Change) -> ItemWrite {
    ItemWrite {
        table: Arc::from("t"),
        key: vec![KeyAttr {
            name: Arc::from("pk"),
            value: AttributeValue::S(key.into()),
        }],
        key_id: format!("t\x1f{key}"),
        part: part(false),
        version,
        commit_ts_us: Some(1_000_000),
        change,
        key_move: false,
    }
}

fn fast_cfg(mode: WriteMode) -> SinkConfig {
    SinkConfig {
        write_mode: mode,
        retry_delay: Duration::from_millis(1),
        max_retry_delay: Duration::from_millis(2),
        max_retries: 3,
        ..SinkConfig::default()
    }
}

#[test]
fn coalescing_folds_per_key_and_drops_superseded_writes() {
    let writes = vec![
        upsert("k1", 1, &[("a", Some("1")), ("b", Some("1"))]),
        upsert("k2", 1, &[("a", Some("x"))]),
        upsert("k1", 2, &[("b", None)]),
        upsert("k1", 3, &[("a", Some("3"))]),
    ];
    let out = coalesce(writes);
    assert_eq!(out.len(), 2);
    let (w, inputs) = &out[0];
    assert_eq!(inputs, &vec![0, 2, 3]);
    assert_eq!(w.version, 3);
    assert_eq!(
        w.change,
        Change::Upsert {
            set: vec![("a".into(), AttributeValue::S("3".into()))],
            remove: vec!["b".into()],
        }
    );
}

/// The counterexample proptest found: a re-delivery starts over right after v11, so the batch
/// holds v11 then the old v2 without the delete at v5 in between. v2's attributes must not
/// ride along into v11.
#[test]
fn an_old_redelivered_change_is_not_folded_across_a_gap() {
    let out = coalesce(vec![
        upsert("k", 11, &[("a", None)]),
        upsert("k", 2, &[("a", None), ("b", Some("b"))]),
    ]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, vec![0, 1]);
    assert_eq!(out[0].0.version, 11);
    assert_eq!(
        out[0].0.change,
        Change::Upsert {
            set: vec![],
            remove: vec!["a".into()],
        }
    );
}

#[test]
fn upsert_after_delete_clears_the_old_row() {
    let out = coalesce(vec![delete("k", 1), upsert("k", 2, &[("a", Some("new"))])]);
    assert_eq!(
        out[0].0.change,
        Change::Upsert {
            set: vec![("a".into(), AttributeValue::S("new".into()))],
            remove: vec!["b".into()],
        }
    );
}

#[tokio::test]
async fn throttling_is_retried_then_succeeds() {
    let mut api = MockDynamoApi::new();
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    api.expect_write_one().times(3).returning(move |_| {
        let mut n = c.lock().unwrap();
        *n += 1;
        if *n < 3 {
            Err(WriteError::Throttled(
                "ProvisionedThroughputExceededException".into(),
            ))
        } else {
            Ok(true)
        }
    });
    let w = Writer::new(api, fast_cfg(WriteMode::Conditional));
    let r = w
        .write(vec![upsert("k", 1, &[("a", Some("1"))])])
        .await
        .unwrap();
    assert_eq!(r[0].outcome, ItemOutcome::Applied);
}

#[tokio::test]
async fn timeouts_that_never_end_become_fatal() {
    let mut api = MockDynamoApi::new();
    api.expect_write_one()
        .times(4)
        .returning(|_| Err(WriteError::Transient("timeout".into())));
    let w = Writer::new(api, fast_cfg(WriteMode::Conditional));
    let err = w.write(vec![upsert("k", 1, &[])]).await.unwrap_err();
    assert!(err.to_string().contains("after 3 retries"), "{err}");
}

#[tokio::test]
async fn missing_table_is_fatal_at_once() {
    let mut api = MockDynamoApi::new();
    api.expect_write_one()
        .times(1)
        .returning(|_| Err(WriteError::Fatal("DynamoDB table t does not exist".into())));
    let w = Writer::new(api, fast_cfg(WriteMode::Conditional));
    assert!(w.write(vec![upsert("k", 1, &[])]).await.is_err());
}

#[tokio::test]
async fn stale_and_poison_are_per_item_outcomes() {
    let mut api = MockDynamoApi::new();
    api.expect_write_one().returning(|w| match &w.kind {
        SingleKind::Update { key, .. } if key["pk"] == AttributeValue::S("old".into()) => Ok(false),
        _ => Err(WriteError::Poison("ValidationException: too big".into())),
    });
    let w = Writer::new(api, fast_cfg(WriteMode::Conditional));
    let mut r = w
        .write(vec![upsert("old", 1, &[]), upsert("bad", 1, &[])])
        .await
        .unwrap();
    r.sort_by_key(|r| r.inputs[0]);
    assert_eq!(r[0].outcome, ItemOutcome::Stale);
    assert!(matches!(r[1].outcome, ItemOutcome::Poison(_)));
}

#[tokio::test]
async fn unprocessed_items_are_retried_and_a_poison_item_is_isolated() {
    let mut api = MockDynamoApi::new();
    let first = Arc::new(Mutex::new(true));
    api.expect_write_batch()
        .returning(move |_, reqs: Vec<WriteRequest>| {
            let bad = reqs.iter().any(|r| {
                r.put_request()
                    .is_some_and(|p| p.item()["pk"] == AttributeValue::S("bad".into()))
            });
            if bad {
                return Err(WriteError::Poison("ValidationException".into()));
            }
            let mut f = first.lock().unwrap();
            if *f && reqs.len() > 1 {
                *f = false;
                return Ok(reqs[1..].to_vec()); // everything but the first is unprocessed once
            }
            Ok(vec![])
        });
    let w = Writer::new(api, fast_cfg(WriteMode::Batch));
    let mut r = w
        .write(vec![
            upsert("a", 1, &[]),
            upsert("b", 1, &[]),
            upsert("bad", 1, &[]),
            upsert("c", 1, &[]),
        ])
        .await
        .unwrap();
    r.sort_by_key(|r| r.inputs[0]);
    let outcomes: Vec<_> = r
        .iter()
        .map(|r| matches!(r.outcome, ItemOutcome::Applied))
        .collect();
    assert_eq!(outcomes, vec![true, true, false, true]);
}

// ----- convergence property ------------------------------------------------------------------

type Item = BTreeMap<String, String>;

/// Evaluates the requests the writer sends with DynamoDB's semantics for our expression subset.
#[derive(Default)]
struct MemTable {
    items: Mutex<HashMap<String, Item>>,
    /// BatchGetItem calls served.
    reads: std::sync::atomic::AtomicUsize,
}

fn text(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        AttributeValue::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn key_text(key: &HashMap<String, AttributeValue>) -> String {
    text(&key["pk"])
}

#[async_trait::async_trait]
impl DynamoApi for MemTable {
    async fn write_one(&self, w: SingleWrite) -> Result<bool, WriteError> {
        let mut items = self.items.lock().unwrap();
        let k = match &w.kind {
            SingleKind::Update { key, .. } | SingleKind::Delete { key } => key_text(key),
            SingleKind::Put { item } => key_text(item),
        };
        let vattr = &w.names["#v"];
        let v: u128 = text(&w.values[":v"]).parse().unwrap();
        let guarded = w.condition.as_deref() == Some("attribute_not_exists(#v) OR #v <= :v");
        if let Some(cur) = items.get(&k).and_then(|i| i.get(vattr)).filter(|_| guarded) {
            if cur.parse::<u128>().unwrap() > v {
                return Ok(false);
            }
        }
        match w.kind {
            SingleKind::Put { item } => {
                items.insert(k, item.iter().map(|(n, v)| (n.clone(), text(v))).collect());
            }
            SingleKind::Delete { .. } => {
                items.remove(&k);
            }
            SingleKind::Update { key, expression } => {
                let item = items
                    .entry(k)
                    .or_insert_with(|| key.iter().map(|(n, v)| (n.clone(), text(v))).collect());
                let (set, remove) = match expression.split_once(" REMOVE ") {
                    Some((s, r)) => (s, Some(r)),
                    None => (expression.as_str(), None),
                };
                for a in set.trim_start_matches("SET ").split(", ") {
                    let (n, v) = a.split_once(" = ").unwrap();
                    item.insert(w.names[n].clone(), text(&w.values[v]));
                }
                for n in remove.into_iter().flat_map(|r| r.split(", ")) {
                    item.remove(&w.names[n]);
                }
            }
        }
        Ok(true)
    }

    async fn write_batch(
        &self,
        _: String,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, WriteError> {
        // Let another partition's writer run between this call and the one before it.
        tokio::task::yield_now().await;
        let mut items = self.items.lock().unwrap();
        for r in requests {
            if let Some(put) = r.put_request {
                let item: Item = put.item.iter().map(|(n, v)| (n.clone(), text(v))).collect();
                items.insert(key_text(&put.item), item);
            } else if let Some(delete) = r.delete_request {
                items.remove(&key_text(&delete.key));
            }
        }
        Ok(Vec::new())
    }

    async fn read_batch(
        &self,
        _: String,
        keys: Vec<HashMap<String, AttributeValue>>,
        attributes: Vec<String>,
    ) -> Result<
        (
            Vec<HashMap<String, AttributeValue>>,
            Vec<HashMap<String, AttributeValue>>,
        ),
        WriteError,
    > {
        tokio::task::yield_now().await;
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let items = self.items.lock().unwrap();
        let found = keys
            .into_iter()
            .filter_map(|key| {
                let item = items.get(&key_text(&key))?;
                let mut out = key.clone();
                for a in &attributes {
                    if let Some(v) = item.get(a) {
                        out.insert(a.clone(), AttributeValue::N(v.clone()));
                    }
                }
                Some(out)
            })
            .collect();
        Ok((found, Vec::new()))
    }
}

/// A source log over 4 keys whose rows sometimes change primary key (to a key that doesn't
/// exist at that moment), as (record, partition): a key's records stay in its home partition
/// (`key % partitions`); a move travels in the new key's partition.
/// (key, key it moves to, full image or delete).
type Step = (u8, u8, Option<[Option<u8>; 2]>);

fn moving_log(steps: &[Step], partitions: usize) -> (Vec<ItemWrite>, Vec<Vec<Vec<usize>>>) {
    let mut writes = Vec::new();
    let mut records: Vec<Vec<Vec<usize>>> = vec![Vec::new(); partitions];
    let mut exists = [false; 4];
    for (i, (k, to, change)) in steps.iter().enumerate() {
        let (k, to) = (*k as usize % 4, *to as usize % 4);
        let v = i as u128 + 1;
        let full = |c: &[Option<u8>; 2]| {
            let a = c[0].map(|x| x.to_string());
            let b = c[1].map(|x| x.to_string());
            (a, b)
        };
        let mut record = Vec::new();
        let home = match change {
            Some(c) if exists[k] && !exists[to] => {
                // UPDATE ... SET id = to: the old key's delete and the new key's upsert.
                let (a, b) = full(c);
                let mut old = delete(&format!("k{k}"), v);
                old.key_move = true;
                let mut new = upsert(
                    &format!("k{to}"),
                    v,
                    &[("a", a.as_deref()), ("b", b.as_deref())],
                );
                new.key_move = true;
                record.push(writes.len());
                writes.push(old);
                record.push(writes.len());
                writes.push(new);
                exists[k] = false;
                exists[to] = true;
                to
            }
            Some(c) => {
                let (a, b) = full(c);
                record.push(writes.len());
                writes.push(upsert(
                    &format!("k{k}"),
                    v,
                    &[("a", a.as_deref()), ("b", b.as_deref())],
                ));
                exists[k] = true;
                k
            }
            None => {
                record.push(writes.len());
                writes.push(delete(&format!("k{k}"), v));
                exists[k] = false;
                k
            }
        };
        records[home % partitions].push(record);
    }
    (writes, records)
}

/// How rebuild mode learns the stored versions in [`run_rebuild`].
#[derive(Debug, Clone, Copy)]
enum Memory {
    /// The table was empty at the start and every key fits in memory: no reads.
    Whole,
    /// Room for this many keys; the rest are read (BatchGetItem).
    Bounded(usize),
    /// Not told the table was empty: keys it has not written are read.
    NotEmpty,
}

/// Every partition's records delivered by its own worker (interleaved with the others at
/// every DynamoDB call), in windows of `cuts`, then the deferred phase.
fn run_rebuild(
    writes: &[ItemWrite],
    deliveries: &[Vec<Vec<usize>>],
    cuts: &[usize],
    memory: Memory,
) -> HashMap<String, Item> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = fast_cfg(WriteMode::Rebuild);
    if let Memory::Bounded(keys) = memory {
        cfg.rebuild_memory_keys = keys;
    }
    let writer = Writer::new(MemTable::default(), cfg);
    if !matches!(memory, Memory::NotEmpty) {
        writer.rebuild_into_empty_table();
    }
    rt.block_on(async {
        let writer = &writer;
        let workers = deliveries.iter().map(|records| async move {
            for window in cut(&(0..records.len()).collect::<Vec<_>>(), cuts) {
                let ws = window
                    .iter()
                    .flat_map(|&r| records[r].iter().map(|&i| writes[i].clone()))
                    .collect();
                writer.write(ws).await.unwrap();
            }
        });
        futures::future::join_all(workers).await;
        writer.finish_deferred().await.unwrap();
    });
    if matches!(memory, Memory::Whole) {
        assert_eq!(
            writer
                .api()
                .reads
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
    let mut items = writer.api().items.lock().unwrap().clone();
    // A tombstone's expiry follows the wall clock (see the expiry test); compare its presence.
    for item in items.values_mut() {
        if let Some(ttl) = item.get_mut("_ttl") {
            *ttl = "set".into();
        }
    }
    items
}

/// A change for one of 3 keys. Full images: every attribute is set or NULL (removed).
fn change_strategy() -> impl Strategy<Value = (u8, Option<[Option<u8>; 2]>)> {
    (
        0u8..3,
        prop::option::weighted(0.8, [prop::option::of(0u8..4), prop::option::of(0u8..4)]),
    )
}

fn to_writes(log: &[(u8, Option<[Option<u8>; 2]>)]) -> Vec<ItemWrite> {
    log.iter()
        .enumerate()
        .map(|(i, (k, change))| {
            let key = format!("k{k}");
            let v = i as u128 + 1;
            match change {
                None => delete(&key, v),
                Some([a, b]) => {
                    let a = a.map(|x| x.to_string());
                    let b = b.map(|x| x.to_string());
                    upsert(&key, v, &[("a", a.as_deref()), ("b", b.as_deref())])
                }
            }
        })
        .collect()
}

/// Cut a delivery sequence into batch windows of the given sizes (cycled).
fn cut(delivery: &[usize], sizes: &[usize]) -> Vec<Vec<usize>> {
    let mut batches = Vec::new();
    let mut rest = delivery;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (b, r) = rest.split_at((*size).min(rest.len()));
        batches.push(b.to_vec());
        rest = r;
    }
    batches
}

fn run_batches(writes: &[ItemWrite], batches: &[Vec<usize>]) -> HashMap<String, Item> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let writer = Writer::new(MemTable::default(), fast_cfg(WriteMode::Conditional));
    for b in batches {
        let ws = b.iter().map(|&i| writes[i].clone()).collect();
        rt.block_on(writer.write(ws)).unwrap();
    }
    let mut items = writer.api().items.lock().unwrap().clone();
    // A tombstone's expiry follows the wall clock (see the expiry test); compare its presence.
    for item in items.values_mut() {
        if let Some(ttl) = item.get_mut("_ttl") {
            *ttl = "set".into();
        }
    }
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any permutation of a log with duplicates, cut into any batch windows, converges to the
    /// state of applying the log once, in order.
    #[test]
    fn duplicates_and_reorderings_converge(
        log in prop::collection::vec(change_strategy(), 1..25),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..25),
        order_seed in any::<u64>(),
        cuts in prop::collection::vec(1usize..6, 1..20),
    ) {
        let writes = to_writes(&log);
        let truth = run_batches(&writes, &(0..writes.len()).map(|i| vec![i]).collect::<Vec<_>>());
        let mut delivery: Vec<usize> = (0..writes.len()).collect();
        delivery.extend(dups.iter().map(|d| d.index(writes.len())));
        // deterministic shuffle from the seed
        let mut s = order_seed | 1;
        for i in (1..delivery.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            delivery.swap(i, (s % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(run_batches(&writes, &cut(&delivery, &cuts)), truth);
    }

    /// `rebuild` mode: partitions written concurrently, each with re-deliveries (rewinds to an
    /// earlier record, and old records delivered again after newer ones, as DMS re-delivers
    /// them), duplicates and primary-key moves across partitions, converge to the state of
    /// applying the log once, in order, with the conditional writer.
    #[test]
    fn rebuild_mode_converges_with_key_moves_and_redelivery(
        steps in prop::collection::vec((0u8..4, 0u8..4, prop::option::weighted(0.8, [prop::option::of(0u8..4), prop::option::of(0u8..4)])), 1..30),
        partitions in 1usize..4,
        rewinds in prop::collection::vec((0usize..4, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..6),
        late in prop::collection::vec((0usize..4, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..6),
        cuts in prop::collection::vec(1usize..6, 1..20),
    ) {
        let (writes, records) = moving_log(&steps, partitions);
        let truth = run_batches(&writes, &(0..writes.len()).map(|i| vec![i]).collect::<Vec<_>>());
        // Per partition: in order, with jumps back to an earlier record (at-least-once).
        let deliveries: Vec<Vec<Vec<usize>>> = records.iter().enumerate().map(|(p, recs)| {
            let n = recs.len();
            let mut points: Vec<(usize, usize)> = rewinds.iter()
                .filter(|(q, _, _)| q % partitions == p)
                .map(|(_, a, b)| { let at = a.index(n + 1); (at, b.index(at + 1)) })
                .collect();
            points.sort();
            let mut order = Vec::new();
            let mut pos = 0;
            for (at, back) in points {
                if at < pos { continue; }
                order.extend(pos..at);
                pos = back.min(at);
            }
            order.extend(pos..n);
            // An old record again, later in the partition (after newer ones).
            for (_, a, b) in late.iter().filter(|(q, _, _)| q % partitions == p) {
                if order.is_empty() { break; }
                let from = a.index(order.len());
                let to = from + 1 + b.index(order.len() - from);
                order.insert(to, order[from]);
            }
            order.into_iter().map(|r| recs[r].clone()).collect()
        }).collect();
        // Remembering every key (no reads), remembering one (the rest read), and reading.
        for memory in [Memory::Whole, Memory::Bounded(1), Memory::NotEmpty] {
            prop_assert_eq!(run_rebuild(&writes, &deliveries, &cuts, memory), truth.clone(), "{:?}", memory);
        }
    }

    /// Partial updates (a column left out = keep) delivered per partition with restarts that
    /// rewind to an earlier offset (at-least-once) also converge.
    #[test]
    fn rewinds_converge_with_partial_updates(
        log in prop::collection::vec((0u8..3, prop::option::weighted(0.85, (prop::option::of(0u8..4), any::<bool>()))), 1..25),
        rewinds in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..4),
        cuts in prop::collection::vec(1usize..6, 1..20),
    ) {
        let writes: Vec<ItemWrite> = log.iter().enumerate().map(|(i, (k, c))| {
            let key = format!("k{k}");
            let v = i as u128 + 1;
            match c {
                None => delete(&key, v),
                Some((a, touch_b)) => {
                    let a = a.map(|x| x.to_string());
                    let mut attrs = vec![("a", a.as_deref())];
                    if *touch_b { attrs.push(("b", Some("b"))); }
                    let attrs: Vec<(&str, Option<&str>)> = attrs;
                    upsert(&key, v, &attrs)
                }
            }
        }).collect();
        let truth = run_batches(&writes, &(0..writes.len()).map(|i| vec![i]).collect::<Vec<_>>());
        // delivery: in order, but at some points jump back to an earlier offset
        let n = writes.len();
        let mut points: Vec<(usize, usize)> = rewinds.iter().map(|(a, b)| {
            let at = a.index(n + 1);
            (at, b.index(at + 1))
        }).collect();
        points.sort();
        let mut delivery = Vec::new();
        let mut pos = 0;
        for (at, back) in points {
            if at < pos { continue; }
            delivery.extend(pos..at);
            pos = back.min(at);
        }
        delivery.extend(pos..n);
        prop_assert_eq!(run_batches(&writes, &cut(&delivery, &cuts)), truth);
    }
}

mod faults;
