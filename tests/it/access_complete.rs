//! The `complete` stage on the real stack: DynamoDB is the only store on the request path, so
//! a MySQL that is gone, or hanging, changes nothing for writes and reads; and several
//! processes writing the same items never have an acknowledged write dropped by the guard.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover::access::{Access, NewStore, OldStore, RepairQueue, Store};
use cutover::flags::{FlagContext, Stage};
use cutover::mapping::Mapping;
use tokio::net::{TcpListener, TcpStream};

use crate::access::{message, Harness};
use crate::chat_service::Message;
use crate::common;

/// A TCP proxy to MariaDB that can be made to hang: while paused, open connections are cut
/// and new ones are accepted and never answered (a MySQL that hangs).
pub struct Proxy {
    pub port: u16,
    paused: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let paused = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let upstream = upstream.to_string();
        let (p, c, h) = (paused.clone(), conns.clone(), held.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if p.load(Ordering::SeqCst) {
                    h.lock().unwrap().push(client);
                    continue;
                }
                let up = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&up).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            port,
            paused,
            conns,
            held,
            accept,
        }
    }

    /// From now on MySQL "hangs" behind this proxy.
    pub fn hang(&self) {
        self.paused.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.hang();
        self.held.lock().unwrap().clear();
    }
}

/// `mysql://…@127.0.0.1:<port>/<db>` of the harness's database, on another port, over TCP
/// only. mysql_async's `prefer_socket` (on by default) reconnects a loopback connection over
/// the server's Unix socket (`@@socket`) right after the handshake, which would route every
/// connection around the [`Proxy`]: cut off, the process would still reach MySQL.
fn url_on_port(h: &Harness, port: u16) -> String {
    let db = h.view().source.split_once('.').unwrap().0.to_string();
    format!("mysql://cutover:cutover@127.0.0.1:{port}/{db}?prefer_socket=false")
}

/// Another "process": its own layer on the same flags, DynamoDB and repair topic, with its
/// MySQL at `mysql_url`.
async fn process(h: &Harness, mysql_url: &str) -> (Store<Message>, Access) {
    let mapping = Arc::new(Mapping::new(&h.cfg.tables, &h.cfg.sink).unwrap());
    let old = OldStore::new(mysql_async::Pool::new(mysql_url));
    let new = NewStore::connect(&h.cfg.dynamodb, &h.cfg.sink, mapping.clone()).await;
    let repair = RepairQueue::new(&h.cfg.kafka, &h.cfg.access).unwrap();
    let access = Access::new(
        mapping,
        h.access.flags().clone(),
        old,
        new,
        repair,
        h.cfg.access.clone(),
    );
    (access.store::<Message>(&h.view().source).unwrap(), access)
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `complete` with MySQL refused (closed port) and with MySQL hanging (accepts, never answers):
/// puts, updates, deletes, gets and queries all succeed, each well inside `access.timeout`
/// (1.5 s here), and every write is journaled. Failed before: every write needed a binlog
/// position from MySQL ("mysql binlog position timed out" / connection refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_serves_writes_and_reads_with_mysql_unreachable() {
    let h = Harness::new("acccmpdown", &common::dynamo_endpoint(), None).await;
    h.set_file_stage(Stage::Complete).await;
    let hanging = Proxy::start("127.0.0.1:1").await; // never forwards: paused at once
    hanging.hang();
    let ctx = FlagContext::default();
    for (name, url) in [
        ("refused", url_on_port(&h, closed_port())),
        ("hanging", url_on_port(&h, hanging.port)),
    ] {
        let (store, access) = process(&h, &url).await;
        let base = if name == "refused" { 100 } else { 200 };
        let mut written = Vec::new();
        for i in 0..5 {
            let m = message(base + i, &format!("{name} {i}"));
            let t = Instant::now();
            store
                .put("message.write", &ctx, &m)
                .await
                .unwrap_or_else(|e| panic!("put with MySQL {name}: {e}"));
            assert!(
                t.elapsed() < Duration::from_millis(1000),
                "a put with MySQL {name} took {:?}",
                t.elapsed()
            );
            written.push(m);
        }
        let t = Instant::now();
        let updated = store
            .update("message.write", &ctx, &written[0].key(), |m| {
                m.body = Some(format!("{name} updated"))
            })
            .await
            .unwrap()
            .expect("the row exists");
        assert!(t.elapsed() < Duration::from_millis(1000));
        store
            .delete("message.write", &ctx, &written[1].key())
            .await
            .unwrap();
        let got = store
            .get("message.read", &ctx, &written[0].key())
            .await
            .unwrap();
        assert_eq!(got.as_ref(), Some(&updated), "read back with MySQL {name}");
        assert_eq!(
            store
                .get("message.read", &ctx, &written[1].key())
                .await
                .unwrap(),
            None
        );
        let listed = store
            .query(
                "message.list",
                &ctx,
                &serde_json::json!({"conversation_id": written[2].conversation_id}),
                100,
            )
            .await
            .unwrap();
        assert!(
            listed.iter().any(|m| m.id == written[2].id),
            "query finds it"
        );
        assert_eq!(h.body_in_dynamo(&written[0]).await, updated.body);
        assert_eq!(h.body_in_dynamo(&written[4]).await, written[4].body);
        let journaled: i64 = access.repair_queue().queued_ends().values().sum();
        assert!(
            journaled >= 7,
            "every complete write is journaled: {journaled}"
        );
    }
}

/// An acknowledged write, for the last-writer check.
#[derive(Debug, Clone)]
struct Acked {
    body: String,
    start: Instant,
    end: Instant,
}

/// Two processes in `complete` write the same items, while MySQL's binlog moves on. Process
/// A saw MySQL once and then lost it (it hangs); B has it. Sequentially alternating writes
/// must each be the value stored right after their acknowledgement; concurrent ones must end
/// with a write that no later acknowledged write followed. Failed before (d1fce76^): A
/// versioned its writes by the last binlog position it had seen, B by a newer one, so A's
/// writes were rejected by the guard and acknowledged anyway: "A's acknowledged write of 0
/// (round 0) is stored", left `Some("B r0")`, right `Some("A r0")`. (This test's first
/// version passed on that code: mysql_async's `prefer_socket` moved A's connections off the
/// proxy onto MySQL's Unix socket, so A never lost MySQL and read fresh positions; see
/// [`url_on_port`] and the cut-off check below.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_in_complete_lose_no_acknowledged_write() {
    let h = Arc::new(Harness::new("acccmp2", &common::dynamo_endpoint(), None).await);
    let proxy = Proxy::start("127.0.0.1:13306").await;
    let (a, a_access) = process(&h, &url_on_port(&h, proxy.port)).await;
    let b = h.store.clone();
    let ctx = FlagContext::default();
    // A writes once while it can reach MySQL (in shadow, so it reads a binlog position).
    h.set_file_stage(Stage::Shadow).await;
    a.put("message.write", &ctx, &message(1, "A before"))
        .await
        .unwrap();
    h.set_file_stage(Stage::Complete).await;
    proxy.hang();
    // A is cut off for real: no connection of its pool reaches MySQL any more.
    let cut = tokio::time::timeout(Duration::from_millis(500), a_access.old().position()).await;
    assert!(
        !matches!(cut, Ok(Ok(_))),
        "A still reads binlog positions behind the hanging proxy: {cut:?}"
    );
    // The binlog moves on (another client's commits), as it does when the repair worker
    // copies the journal into MySQL.
    let stop = tokio_util::sync::CancellationToken::new();
    let mover = {
        let (pool, stop) = (h.cfg.mysql.pool().unwrap(), stop.clone());
        tokio::spawn(async move {
            use mysql_async::prelude::Queryable;
            let mut conn = pool.get_conn().await.unwrap();
            let mut n = 0i64;
            while !stop.is_cancelled() {
                // A new title each time: a no-op update would not reach the binlog.
                conn.exec_drop(
                    "INSERT INTO conversation (id, title, created_at) VALUES (?, ?, NOW()) \
                     ON DUPLICATE KEY UPDATE title = VALUES(title)",
                    (n % 10, format!("t{n}")),
                )
                .await
                .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Sequential: B then A on each key; A's write is the last acknowledged one.
    for round in 0..3 {
        for id in 0..10i64 {
            let mb = message(id, &format!("B r{round}"));
            b.put("message.write", &ctx, &mb).await.unwrap();
            let ma = message(id, &format!("A r{round}"));
            let t = Instant::now();
            a.put("message.write", &ctx, &ma).await.unwrap();
            let took = t.elapsed();
            assert_eq!(
                h.body_in_dynamo(&ma).await,
                ma.body,
                "A's acknowledged write of {id} (round {round}) is stored"
            );
            assert!(
                took < Duration::from_millis(1000),
                "A's write waited for its hanging MySQL: {took:?}"
            );
        }
    }
    // Concurrent: both hammer the same 10 keys.
    let acked: Arc<Mutex<HashMap<i64, Vec<Acked>>>> = Arc::default();
    let mut tasks = Vec::new();
    for (name, store) in [("A", a.clone()), ("B", b.clone())] {
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let ctx = FlagContext::default();
            for n in 0..150i64 {
                let id = n % 10;
                let m = message(id, &format!("{name} n{n}"));
                let start = Instant::now();
                let r = store.put("message.write", &ctx, &m).await;
                let end = Instant::now();
                if r.is_ok() {
                    acked.lock().unwrap().entry(id).or_default().push(Acked {
                        body: m.body.clone().unwrap(),
                        start,
                        end,
                    });
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.cancel();
    mover.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let total: usize = acked.values().map(Vec::len).sum();
    assert_eq!(total, 300, "every concurrent write was acknowledged");
    for (id, writes) in acked {
        let stored = h
            .body_in_dynamo(&message(id, ""))
            .await
            .expect("the item exists");
        let w = writes
            .iter()
            .find(|w| w.body == stored)
            .unwrap_or_else(|| panic!("{id}: stored {stored:?} is no acknowledged write"));
        let later: Vec<&Acked> = writes.iter().filter(|x| x.start > w.end).collect();
        assert!(
            later.is_empty(),
            "{id}: stored {stored:?}, but {} acknowledged writes started after it was acknowledged, e.g. {:?}",
            later.len(),
            later[0].body
        );
    }
}

/// The raw item at `m`'s key (tombstones included).
async fn raw_item(
    h: &Harness,
    m: &Message,
) -> Option<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let view = h.view();
    let key = cutover::access::to_row(&m.key()).unwrap();
    let cells = cutover::access::cells(&key).unwrap();
    let mapping = Mapping::new(&h.cfg.tables, &h.cfg.sink).unwrap();
    let (attrs, _) = mapping.key_of(&view.source, &cells).unwrap();
    let client = crate::access::dynamo_client(&common::dynamo_endpoint()).await;
    client
        .get_item()
        .table_name(view.target.to_string())
        .set_key(Some(
            attrs
                .into_iter()
                .map(|k| (k.name.to_string(), k.value))
                .collect(),
        ))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// A change of `created_at` (a column of the sort-key template `MSG#{created_at}#{id}`)
/// through the layer moves the item: the old one is tombstoned under the guard, so `query`
/// returns the row once, in `complete` (through `update`) and in the stages that write MySQL
/// (through `put` too). Failed before: the old item stayed, and `query` returned both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sort_key_change_through_the_layer_tombstones_the_old_item() {
    let h = Harness::new("accmove", &common::dynamo_endpoint(), None).await;
    let ctx = FlagContext::default();
    let deleted = h.view().part.deleted_attribute.clone();
    for (i, stage) in [Stage::Complete, Stage::Live, Stage::Shadow, Stage::RampDown]
        .into_iter()
        .enumerate()
    {
        h.set_file_stage(stage).await;
        for (j, by_put) in [false, true].into_iter().enumerate() {
            if stage == Stage::Complete && by_put {
                continue; // a put in complete knows no before-image (see README)
            }
            let id = 500 + 10 * i as i64 + j as i64;
            let m = message(id, "before the move");
            h.store.put("message.write", &ctx, &m).await.unwrap();
            let mut moved = m.clone();
            moved.created_at = "2027-05-06T07:08:09.000000Z".into();
            moved.body = Some("after the move".into());
            if by_put {
                h.store.put("message.write", &ctx, &moved).await.unwrap();
            } else {
                h.store
                    .update("message.write", &ctx, &m.key(), |x| {
                        x.created_at = moved.created_at.clone();
                        x.body = moved.body.clone();
                    })
                    .await
                    .unwrap()
                    .expect("the row exists");
            }
            let listed: Vec<Message> = h
                .store
                .query(
                    "message.list",
                    &ctx,
                    &serde_json::json!({"conversation_id": m.conversation_id}),
                    1000,
                )
                .await
                .unwrap()
                .into_iter()
                .filter(|x| x.id == id)
                .collect();
            assert_eq!(
                listed,
                vec![moved.clone()],
                "{stage} (put: {by_put}): one row"
            );
            let old = raw_item(&h, &m).await.expect("the old item is a tombstone");
            assert_eq!(
                old.get(&deleted),
                Some(&aws_sdk_dynamodb::types::AttributeValue::Bool(true)),
                "{stage} (put: {by_put}): the old item is tombstoned"
            );
            assert_eq!(h.body_in_dynamo(&moved).await, moved.body);
        }
    }
}
