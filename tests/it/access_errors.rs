//! Errors of the data-access layer keep their class (`cutover::error::Disposition`), with
//! errors MySQL really returns; and a repair worker stopped by a fatal error is not silent.

use std::time::Duration;

use cutover::access::repair::{self, Behind, RepairEntry};
use cutover::access::AccessError;
use cutover::error::{Classify, Disposition};
use cutover::mysql::MysqlError;
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use crate::access::{message, Harness};
use crate::common;

fn class(e: mysql_async::Error) -> (Disposition, String) {
    let text = e.to_string();
    (AccessError::from(MysqlError::from(e)).disposition(), text)
}

/// A real deadlock (1213) and a real lock wait timeout (1205) are `Retry`; a value too long
/// for its column (1406) is `Poison`; a missing table, through the layer, is `Fatal`. Failed
/// before: every MySQL error was `AccessError::Mysql(String)`, always `Retry`, so the repair
/// worker retried a missing table forever (and MySQL's own class made 1213/1205 `Fatal`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_errors_keep_their_class() {
    let h = Harness::new("accerr", &common::dynamo_endpoint(), None).await;
    let pool = h.cfg.mysql.pool().unwrap();
    let (mut a, mut b) = (
        pool.get_conn().await.unwrap(),
        pool.get_conn().await.unwrap(),
    );
    for id in [1, 2] {
        a.exec_drop(
            "INSERT INTO conversation (id, title, created_at) VALUES (?, 't', NOW())",
            (id,),
        )
        .await
        .unwrap();
    }
    // Deadlock: a locks 1, b locks 2, a waits for 2, b asks for 1.
    a.query_drop("BEGIN").await.unwrap();
    b.query_drop("BEGIN").await.unwrap();
    a.query_drop("SELECT * FROM conversation WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    b.query_drop("SELECT * FROM conversation WHERE id = 2 FOR UPDATE")
        .await
        .unwrap();
    let wait = tokio::spawn(async move {
        let r = a
            .query_drop("UPDATE conversation SET title = 'a' WHERE id = 2")
            .await;
        (a, r)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rb = b
        .query_drop("UPDATE conversation SET title = 'b' WHERE id = 1")
        .await;
    let (mut a, ra) = wait.await.unwrap();
    let e = ra
        .err()
        .or(rb.err())
        .expect("one side is the deadlock victim");
    assert!(
        matches!(&e, mysql_async::Error::Server(s) if s.code == 1213),
        "a deadlock: {e}"
    );
    let (d, text) = class(e);
    assert_eq!(d, Disposition::Retry, "deadlock: {text}");
    let _ = a.query_drop("ROLLBACK").await;
    let _ = b.query_drop("ROLLBACK").await;

    // Lock wait timeout: a holds the row, b gives up after 1 s.
    a.query_drop("BEGIN").await.unwrap();
    a.query_drop("SELECT * FROM conversation WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    b.query_drop("SET SESSION innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    let e = b
        .query_drop("UPDATE conversation SET title = 'b' WHERE id = 1")
        .await
        .expect_err("lock wait timeout");
    assert!(
        matches!(&e, mysql_async::Error::Server(s) if s.code == 1205),
        "a lock wait timeout: {e}"
    );
    let (d, text) = class(e);
    assert_eq!(d, Disposition::Retry, "lock wait timeout: {text}");
    let _ = a.query_drop("ROLLBACK").await;

    // A value MySQL refuses (strict mode): poison, through the layer.
    let mut long = message(1, "x");
    long.sender_id = 7;
    let mut row = cutover::access::to_row(&long).unwrap();
    row.insert("body".into(), serde_json::Value::String("é".repeat(70_000)));
    let e = h
        .access
        .old()
        .put(h.view(), &row)
        .await
        .expect_err("too long");
    assert_eq!(e.disposition(), Disposition::Poison, "{e}");

    // A missing table, through the layer: fatal (waiting does not create it).
    b.query_drop("DROP TABLE message").await.unwrap();
    let fresh = crate::access::build(
        &h.cfg,
        std::sync::Arc::new(cutover::mapping::Mapping::new(&h.cfg.tables, &h.cfg.sink).unwrap()),
        h.access.flags().clone(),
    )
    .await;
    let key = cutover::access::to_row(&message(1, "").key()).unwrap();
    let e = fresh.old().get(h.view(), &key).await.expect_err("no table");
    assert_eq!(e.disposition(), Disposition::Fatal, "{e}");
}

/// The repair worker meets a fatal error (the table is gone): it stops, returns the error,
/// and the layer reports it (`Access::repair_worker_failure`), instead of retrying forever
/// unnoticed. Failed before: the worker retried the entry forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_worker_stopped_by_a_fatal_error_says_so() {
    let h = Harness::new("accfatal", &common::dynamo_endpoint(), None).await;
    let pool = h.cfg.mysql.pool().unwrap();
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("DROP TABLE message").await.unwrap();
    let entry = RepairEntry {
        path: "message.write".into(),
        source: h.view().source.clone(),
        key: cutover::access::to_row(&message(1, "").key()).unwrap(),
        behind: Behind::New,
        stage: "dualwrite".into(),
        reason: "test".into(),
        at_us: 0,
        tenant: None,
    };
    h.access.repair_queue().enqueue(&entry).await.unwrap();
    assert_eq!(h.access.repair_worker_failure(), None);
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(repair::run_worker(
        h.access.clone(),
        h.cfg.kafka.clone(),
        h.cfg.access.clone(),
        cancel.clone(),
    ));
    let ended = tokio::time::timeout(Duration::from_secs(30), worker).await;
    cancel.cancel();
    let result = ended
        .expect("the worker stops on a fatal error instead of retrying it forever")
        .unwrap();
    let err = result.expect_err("the worker returns the fatal error");
    assert_eq!(err.disposition(), Disposition::Fatal, "{err}");
    let shown = h
        .access
        .repair_worker_failure()
        .expect("the layer reports the stopped worker");
    assert!(shown.contains("message"), "names the table: {shown}");
}
