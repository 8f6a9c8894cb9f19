//! The writer's answers to faults and to time: tombstone expiry, rejected folds, throttling,
//! table creation, runs of rejections, version lineages.

use super::*;

// ----- tombstone expiry ----------------------------------------------------------------------

fn ttl_of(w: &SingleWrite) -> i64 {
    let v = match &w.kind {
        SingleKind::Put { item } => item["_ttl"].clone(),
        SingleKind::Update { .. } => w.values[":ttl"].clone(),
        SingleKind::Delete { .. } => panic!("a tombstone, not a delete"),
    };
    text(&v).parse().unwrap()
}

/// A replay of an old topic must not write tombstones that are already expired: DynamoDB
/// sweeps them, and an older re-delivered upsert then resurrects the row.
#[test]
fn a_tombstone_expires_a_ttl_after_it_is_written_not_after_the_source_commit() {
    let cfg = SinkConfig::default();
    let ttl = cfg.tombstone_ttl.as_secs() as i64;
    let now = now_micros() / 1_000_000;
    let old = delete("k", 1); // committed in 1970
    let mut merged = delete("k", 1);
    merged.part = part(true);
    for w in [
        conditional_request(&old, &cfg),
        conditional_request(&merged, &cfg),
    ] {
        let expiry = ttl_of(&w);
        assert!(
            (now + ttl..=now + ttl + 5).contains(&expiry),
            "expiry {expiry}, now {now}"
        );
    }
    let batch = batch_request(&old, &cfg);
    let expiry: i64 = text(&batch.put_request().unwrap().item()["_ttl"])
        .parse()
        .unwrap();
    assert!((now + ttl..=now + ttl + 5).contains(&expiry), "{expiry}");
}

// ----- a rejected fold -----------------------------------------------------------------------

fn has_value(w: &SingleWrite, text_: &str) -> bool {
    w.values.values().any(|v| text(v) == text_)
}

/// A delete then an upsert DynamoDB refuses, in one batch: the fold (the upsert) is rejected,
/// so the inputs are re-applied one by one; the tombstone is written and only the upsert is
/// poison.
#[tokio::test]
async fn a_rejected_fold_is_reapplied_one_by_one_and_the_tombstone_is_written() {
    let mut api = MockDynamoApi::new();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    api.expect_write_one().returning(move |w: SingleWrite| {
        log.lock().unwrap().push(w.clone());
        if has_value(&w, "huge") {
            Err(WriteError::Poison(
                "ValidationException: item too large".into(),
            ))
        } else {
            Ok(true)
        }
    });
    let w = Writer::new(api, fast_cfg(WriteMode::Conditional));
    let mut r = w
        .write(vec![
            upsert("other", 1, &[("a", Some("x"))]),
            delete("k", 2),
            upsert("k", 3, &[("a", Some("huge"))]),
        ])
        .await
        .unwrap();
    r.sort_by_key(|r| r.inputs[0]);
    let got: Vec<(Vec<usize>, bool)> = r
        .iter()
        .map(|r| {
            (
                r.inputs.clone(),
                matches!(r.outcome, ItemOutcome::Poison(_)),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(vec![0], false), (vec![1], false), (vec![2], true)]
    );
    assert_eq!(r[1].outcome, ItemOutcome::Applied);
    let tombstones = sent
        .lock()
        .unwrap()
        .iter()
        .filter(|w| matches!(&w.kind, SingleKind::Put { item } if item.contains_key("_deleted")))
        .count();
    assert_eq!(tombstones, 1, "the delete's tombstone is written");
}

#[tokio::test]
async fn a_rejected_fold_in_batch_mode_dead_letters_only_the_bad_input() {
    let mut api = MockDynamoApi::new();
    api.expect_write_batch()
        .returning(move |_, reqs: Vec<WriteRequest>| {
            let bad = reqs.iter().any(|r| {
                r.put_request()
                    .is_some_and(|p| p.item().get("a") == Some(&AttributeValue::S("huge".into())))
            });
            if bad {
                Err(WriteError::Poison("ValidationException".into()))
            } else {
                Ok(vec![])
            }
        });
    let w = Writer::new(api, fast_cfg(WriteMode::Batch));
    let mut r = w
        .write(vec![
            upsert("k", 2, &[("a", Some("ok"))]),
            upsert("k", 3, &[("a", Some("huge"))]),
            upsert("k", 1, &[("a", Some("old"))]),
        ])
        .await
        .unwrap();
    r.sort_by_key(|r| r.inputs[0]);
    let outcomes: Vec<_> = r
        .iter()
        .map(|r| (r.inputs.clone(), r.outcome.clone()))
        .collect();
    assert_eq!(outcomes[0], (vec![0], ItemOutcome::Applied));
    assert!(matches!(outcomes[1], (ref i, ItemOutcome::Poison(_)) if i == &vec![1]));
    assert_eq!(
        outcomes[2],
        (vec![2], ItemOutcome::Stale),
        "superseded stays dropped"
    );
}

// ----- throttling ----------------------------------------------------------------------------

/// Throttling outlasting `max_retries` is waited out, never fatal.
#[tokio::test]
async fn throttling_is_never_fatal() {
    let mut api = MockDynamoApi::new();
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    api.expect_write_one().returning(move |_| {
        let mut n = c.lock().unwrap();
        *n += 1;
        if *n <= 20 {
            Err(WriteError::Throttled("ThrottlingException".into()))
        } else {
            Ok(true)
        }
    });
    let w = Writer::new(api, fast_cfg(WriteMode::Conditional)); // max_retries: 3
    let stream = tokio_util::sync::CancellationToken::new();
    let r = w
        .write_until(vec![upsert("k", 1, &[])], &stream)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r[0].outcome, ItemOutcome::Applied);
    assert_eq!(*calls.lock().unwrap(), 21);
    // A caller that can't wait forever (the request path) gets the bounded policy.
    *calls.lock().unwrap() = 0;
    let err = w.write(vec![upsert("k", 1, &[])]).await.unwrap_err();
    assert!(err.to_string().contains("after 3 retries"), "{err}");
}

#[tokio::test]
async fn unprocessed_items_are_waited_out_like_throttling() {
    let mut api = MockDynamoApi::new();
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    api.expect_write_batch().returning(move |_, reqs| {
        let mut n = c.lock().unwrap();
        *n += 1;
        Ok(if *n <= 10 { reqs } else { vec![] })
    });
    let w = Writer::new(api, fast_cfg(WriteMode::Batch));
    let stream = tokio_util::sync::CancellationToken::new();
    let r = w
        .write_until(vec![upsert("k", 1, &[])], &stream)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r[0].outcome, ItemOutcome::Applied);
    // Bounded for a caller without a token, and then a classified error.
    *calls.lock().unwrap() = 0;
    let err = w.write(vec![upsert("k", 1, &[])]).await.unwrap_err();
    let classified = err.downcast_ref::<WriteError>();
    assert!(
        matches!(classified, Some(WriteError::Exhausted { .. })),
        "{err:?}"
    );
}

/// While throttled, the writer answers its caller's stop (shutdown, revocation) at once.
#[tokio::test]
async fn a_throttled_write_stops_waiting_when_cancelled() {
    for mode in [WriteMode::Conditional, WriteMode::Batch] {
        let mut api = MockDynamoApi::new();
        api.expect_write_one()
            .returning(|_| Err(WriteError::Throttled("ThrottlingException".into())));
        api.expect_write_batch().returning(|_, reqs| Ok(reqs));
        let cfg = SinkConfig {
            write_mode: mode,
            retry_delay: Duration::from_millis(20),
            max_retry_delay: Duration::from_millis(50),
            max_retries: 3,
            ..SinkConfig::default()
        };
        let w = Writer::new(api, cfg);
        let cancel = tokio_util::sync::CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            stop.cancel();
        });
        let started = std::time::Instant::now();
        let r = w
            .write_until(vec![upsert("k", 1, &[])], &cancel)
            .await
            .unwrap();
        assert!(r.is_none(), "{mode:?}: cancelled, nothing to store");
        let took = started.elapsed();
        assert!(
            (Duration::from_millis(400)..Duration::from_millis(1500)).contains(&took),
            "{mode:?}: {took:?}"
        );
    }
}

// ----- table creation ------------------------------------------------------------------------

#[tokio::test]
async fn a_table_that_never_becomes_active_is_an_error_naming_its_status() {
    use aws_sdk_dynamodb::types::TableStatus;
    let err = dynamo::wait_until_active(
        "orders",
        Duration::from_millis(60),
        Duration::from_millis(10),
        || async { Ok(Some(TableStatus::Creating)) },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, WriteError::Fatal(_)), "{err:?}");
    assert!(
        err.to_string().contains("orders is still CREATING"),
        "{err}"
    );
    let polls = Arc::new(Mutex::new(0));
    let p = polls.clone();
    dynamo::wait_until_active(
        "orders",
        Duration::from_secs(5),
        Duration::from_millis(1),
        || {
            let p = p.clone();
            async move {
                let mut n = p.lock().unwrap();
                *n += 1;
                Ok(Some(if *n < 3 {
                    TableStatus::Creating
                } else {
                    TableStatus::Active
                }))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(*polls.lock().unwrap(), 3);
}

// ----- a run of rejections -------------------------------------------------------------------

/// Rejections of distinct items in a row, across calls, stop the stream once they reach
/// `sink.max_consecutive_rejections`; a success in between starts the count over.
#[tokio::test]
async fn a_run_of_rejections_on_distinct_items_is_fatal() {
    let mut api = MockDynamoApi::new();
    api.expect_write_one().returning(|w| {
        if has_value(&w, "ok") {
            Ok(true)
        } else {
            Err(WriteError::Poison("ValidationException: One or more parameter values were invalid: Type mismatch for key pk".into()))
        }
    });
    let cfg = SinkConfig {
        max_consecutive_rejections: 5,
        ..fast_cfg(WriteMode::Conditional)
    };
    let w = Writer::new(api, cfg);
    let stream = tokio_util::sync::CancellationToken::new();
    let bad = |keys: &[&str]| {
        keys.iter()
            .map(|k| upsert(k, 1, &[("a", Some("x"))]))
            .collect::<Vec<_>>()
    };
    // 4 rejected, then one applied: no run.
    w.write_until(bad(&["a", "b", "c", "d"]), &stream)
        .await
        .unwrap();
    w.write_until(vec![upsert("e", 1, &[("a", Some("ok"))])], &stream)
        .await
        .unwrap();
    // The same item rejected again and again is one item.
    for _ in 0..6 {
        w.write_until(bad(&["a"]), &stream).await.unwrap();
    }
    w.write_until(bad(&["b", "c"]), &stream).await.unwrap();
    let err = w
        .write_until(bad(&["d", "e"]), &stream)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rejected 5 writes in a row on distinct items"),
        "{err}"
    );
    assert!(
        err.contains("last on table t: ValidationException"),
        "{err}"
    );
    assert!(err.contains("sink.max_consecutive_rejections = 5"), "{err}");
    // The request path (no stop signal) gets each rejection back as poison instead.
    let r = w.write(bad(&["f"])).await.unwrap();
    assert!(matches!(r[0].outcome, ItemOutcome::Poison(_)));
}

// ----- version lineages ----------------------------------------------------------------------

/// After RESET MASTER the binlog starts over: its versions are below the stored ones. With
/// `sink.version_epoch` raised, the new lineage's changes win; without, they are stale.
#[tokio::test]
async fn a_raised_version_epoch_continues_on_a_new_binlog_lineage() {
    let old_lineage = upsert("k", 900 * 10u128.pow(20), &[("a", Some("old"))]);
    let new_lineage = upsert("k", 4 * 10u128.pow(20), &[("a", Some("new"))]);
    let before = Writer::new(MemTable::default(), fast_cfg(WriteMode::Conditional));
    before.write(vec![old_lineage]).await.unwrap();
    let items = std::mem::take(&mut *before.api().items.lock().unwrap());
    let stuck = Writer::new(
        MemTable {
            items: Mutex::new(items.clone()),
            ..MemTable::default()
        },
        fast_cfg(WriteMode::Conditional),
    );
    let r = stuck.write(vec![new_lineage.clone()]).await.unwrap();
    assert_eq!(
        r[0].outcome,
        ItemOutcome::Stale,
        "the lineage break, silently"
    );
    let next = Writer::new(
        MemTable {
            items: Mutex::new(items),
            ..MemTable::default()
        },
        SinkConfig {
            version_epoch: 1,
            ..fast_cfg(WriteMode::Conditional)
        },
    );
    let r = next.write(vec![new_lineage]).await.unwrap();
    assert_eq!(r[0].outcome, ItemOutcome::Applied);
    let stored = next.api().items.lock().unwrap()["k"]["_v"].clone();
    assert_eq!(
        stored,
        (lineage::EPOCH_FACTOR + 4 * 10u128.pow(20)).to_string()
    );
    assert!(stored.len() <= 38);
    let top = SinkConfig {
        version_epoch: lineage::MAX_VERSION_EPOCH,
        ..SinkConfig::default()
    };
    let max = lineage::stored_version(&top, lineage::EPOCH_FACTOR - 1);
    assert!(
        max < 10u128.pow(37),
        "every binlog version of every epoch stays below the complete stage's versions"
    );
    // The data-access layer's complete-stage counter (from 10^37) is stored as it is.
    let complete = 10u128.pow(37) + 5;
    assert_eq!(lineage::stored_version(&top, complete), complete);
    assert!(
        complete.to_string().len() <= 38,
        "within DynamoDB's 38 digits"
    );
}

/// A window of writes that are nearly all stale sets `cutover_stale_ratio{table}`.
#[test]
fn a_sustained_stale_ratio_is_measured_per_table() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let mut api = MockDynamoApi::new();
    api.expect_write_one()
        .returning(|w| Ok(has_value(&w, "fresh")));
    let w = Writer::new(api, fast_cfg(WriteMode::Conditional));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            for batch in 0..10 {
                let writes = (0..100)
                    .map(|i| {
                        let v = if i % 20 == 0 { "fresh" } else { "old" };
                        upsert(&format!("k{batch}-{i}"), 1, &[("a", Some(v))])
                    })
                    .collect();
                w.write(writes).await.unwrap();
            }
        })
    });
    let text = handle.render();
    assert!(
        text.contains("cutover_stale_ratio{table=\"t\"} 0.95"),
        "{text}"
    );
}
