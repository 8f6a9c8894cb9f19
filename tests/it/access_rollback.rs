//! Rolling a path back from `complete` with repair entries still queued: `flags set`
//! refuses it without `--force`, and when forced, the entries follow the stage at the time
//! they are applied, so no write made after the rollback is overwritten by DynamoDB's older
//! value (and then by that copy's CDC echo).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover::flags::{self, FlagContext, Stage};
use tokio_util::sync::CancellationToken;

use crate::access::{drain_repairs, message, Harness};
use crate::common;

/// Writers run in `complete` (every write journaled; no worker runs, so the entries stay
/// queued), then `message.write` goes back to `off` while they keep writing until each has
/// rewritten all of its keys in `off`. `cutover flags set message.write off` is refused while
/// the queue has a backlog, and goes through with `--force`. After the drain, MySQL and
/// DynamoDB both hold the last acknowledged write of every key. Failed before: the entries
/// were applied in their queued direction (DynamoDB → MySQL), overwriting the `off` writes in
/// MySQL with DynamoDB's older values.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forced_rollback_from_complete_to_off_with_queued_entries_loses_nothing() {
    let h = Arc::new(Harness::new("accrb", &common::dynamo_endpoint(), None).await);
    h.set_file_stage(Stage::Complete).await;
    let stop = CancellationToken::new();
    let flipped = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<HashMap<i64, Option<String>>>> = Arc::default();
    let mut counts = Vec::new();
    let mut writers = Vec::new();
    for w in 0..3i64 {
        let (h, stop, acked, flipped) = (h.clone(), stop.clone(), acked.clone(), flipped.clone());
        let count = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        counts.push(count.clone());
        writers.push(tokio::spawn(async move {
            let ctx = FlagContext::tenant(format!("t{w}"));
            let mut n = 0i64;
            while !stop.is_cancelled() {
                let id = w * 1000 + n % 25;
                let m = message(id, &format!("w{w} n{n}"));
                let delete = n % 7 == 6;
                let res = if delete {
                    h.store.delete("message.write", &ctx, &m.key()).await
                } else {
                    h.store.put("message.write", &ctx, &m).await
                };
                if res.is_ok() {
                    acked
                        .lock()
                        .unwrap()
                        .insert(id, (!delete).then(|| m.body.clone().unwrap()));
                    count[flipped.load(Ordering::SeqCst) as usize].fetch_add(1, Ordering::SeqCst);
                }
                n += 1;
            }
        }));
    }
    let enough = |phase: usize, n: u64| {
        let counts = counts.clone();
        move || {
            let counts = counts.clone();
            async move { counts.iter().all(|c| c[phase].load(Ordering::SeqCst) >= n) }
        }
    };
    // Every key written (and journaled) in complete.
    common::wait_until("writes in complete", Duration::from_secs(60), enough(0, 30)).await;
    let queued: i64 = h.access.repair_queue().queued_ends().values().sum();
    assert!(queued >= 90, "journal entries queued: {queued}");

    // Refused while the queue has a backlog.
    let out = common::cutover_cmd(&h.config_path, &["flags", "set", "message.write", "off"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(
        stderr.contains("repair queue") && stderr.contains("--force"),
        "says why and how: {stderr}"
    );
    assert_eq!(
        flags::file::load(&h.flags_file, None)
            .unwrap()
            .stage_of("message.write", None),
        Some(Stage::Complete),
        "the flag file is unchanged"
    );
    // Forced.
    common::cutover_ok(
        &h.config_path,
        &["flags", "set", "message.write", "off", "--force"],
    );
    for p in ["message.read", "message.list"] {
        flags::set_stage(&h.flags_file, p, Stage::Off, None).unwrap();
    }
    h.wait_stage(Stage::Off).await;
    flipped.store(true, Ordering::SeqCst);
    // Every key rewritten in off (25 keys per writer, twice over).
    common::wait_until("writes in off", Duration::from_secs(60), enough(1, 60)).await;
    stop.cancel();
    for w in writers {
        w.await.unwrap();
    }
    drain_repairs(&h).await;
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 75, "every key written");
    for (id, body) in acked {
        let m = message(id, "");
        assert_eq!(
            h.body_in_mysql(&m).await,
            body,
            "MySQL holds the last acknowledged write of {id}"
        );
        assert_eq!(
            h.body_in_dynamo(&m).await,
            body,
            "DynamoDB holds the last acknowledged write of {id}"
        );
    }
}
