//! The data-access layer on real MariaDB, DynamoDB Local and the broker: per-stage routing
//! with file and LaunchDarkly flags flipped while running, rollback under traffic, a
//! DynamoDB outage in dualwrite, and failure paths that need mocks (throttling).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover::access::{repair, Access, Call, NewStore, OldStore, RepairQueue, Store};
use cutover::flags::{self, FlagContext, Flags, OpKind, Origin, Stage};
use cutover::mapping::Mapping;
use cutover::Config;
use mysql_async::prelude::Queryable;

use tokio_util::sync::CancellationToken;

use crate::chat_service::{self, Message};
use crate::common;

pub const PATHS: [&str; 3] = ["message.read", "message.write", "message.list"];

pub fn message(id: i64, body: &str) -> Message {
    Message {
        id,
        conversation_id: 1 + id % 3,
        sender_id: 7,
        body: Some(body.to_string()),
        created_at: format!("2026-01-02T03:04:{:02}.{:06}Z", id % 60, id),
        edited: id % 2 == 0,
        meta: None,
    }
}

pub fn mysql_url(db: &str) -> String {
    let base = std::env::var("CUTOVER_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://cutover:cutover@127.0.0.1:13306/cutover".into());
    let (prefix, _) = base.rsplit_once('/').expect("mysql url has a database");
    format!("{prefix}/{db}")
}

/// A fresh database with the chat schema's tables, and a DynamoDB table name for it.
pub async fn database(prefix: &str) -> (String, String) {
    let db = common::unique(prefix).replace('-', "_");
    let pool = mysql_async::Pool::new(mysql_url("cutover").as_str());
    let mut conn = pool.get_conn().await.expect("MariaDB is not reachable");
    conn.query_drop(format!("CREATE DATABASE `{db}`"))
        .await
        .unwrap();
    conn.query_drop(format!("USE `{db}`")).await.unwrap();
    for ddl in chat_service::DDL {
        conn.query_drop(ddl).await.unwrap();
    }
    drop(conn);
    pool.disconnect().await.unwrap();
    let table = common::unique("acc");
    (db, table)
}

/// The chat service's config (examples/chat_service/cutover.toml) renamed to `db` and
/// `table`, with the test's stack, short timeouts and the paths the tests use.
pub fn config_text(
    db: &str,
    table: &str,
    flags_file: &str,
    dynamo: &str,
    repair_topic: &str,
) -> String {
    chat_service::ChatConfig::named(db)
        .target(table)
        .stack(&common::brokers(), dynamo)
        .set(
            "flags.paths",
            r#"{ "message.read" = {}, "message.write" = {}, "message.list" = {} }"#,
        )
        .merge(&format!(
            r#"
[kafka.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
[sink]
max_retries = 2
retry_delay = "20ms"
max_retry_delay = "100ms"
[mysql]
url = "{mysql}"
[access]
repair_topic = "{repair_topic}"
repair_group = "{repair_topic}-g"
timeout = "1500ms"
[flags]
file = "{flags_file}"
reload = "100ms"
"#,
            mysql = mysql_url(db),
        ))
        .text()
}

pub struct Harness {
    pub cfg: Config,
    /// The same config as a file, for the `cutover` binary.
    pub config_path: PathBuf,
    pub flags_file: PathBuf,
    pub access: Access,
    pub store: Store<Message>,
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl Harness {
    /// `flags`: `None` = the config's file source; `Some` = these flags (LaunchDarkly).
    pub async fn new(prefix: &str, dynamo: &str, flags: Option<Flags>) -> Harness {
        common::require_stack();
        let (db, table) = database(prefix).await;
        let dir = std::env::temp_dir().join(common::unique("access"));
        std::fs::create_dir_all(&dir).unwrap();
        let flags_file = dir.join("flags.toml");
        std::fs::write(&flags_file, "").unwrap();
        let repair_topic = common::unique("repair");
        common::create_topic(&repair_topic, 2).await;
        let text = config_text(
            &db,
            &table,
            flags_file.to_str().unwrap(),
            dynamo,
            &repair_topic,
        );
        let cfg = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        let config_path = dir.join("cutover.toml");
        std::fs::write(&config_path, &text).unwrap();
        let mapping = Arc::new(Mapping::new(&cfg.tables, &cfg.sink).unwrap());
        let spec = &mapping.targets()[&table];
        let client = dynamo_client(dynamo).await;
        cutover::tables::create(&client, spec, &table)
            .await
            .unwrap();
        let flags = match flags {
            Some(f) => f,
            None => Flags::from_config(&cfg.flags, &dir).await.unwrap(),
        };
        let access = build(&cfg, mapping, flags).await;
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let sink = calls.clone();
        let access = access.with_observer(move |c| sink.lock().unwrap().push(c.clone()));
        let store = access.store::<Message>(&format!("{db}.message")).unwrap();
        Harness {
            cfg,
            config_path,
            flags_file,
            access,
            store,
            calls,
        }
    }

    pub fn take_calls(&self) -> Vec<(Origin, OpKind)> {
        std::mem::take(&mut *self.calls.lock().unwrap())
            .into_iter()
            .map(|c| (c.origin, c.op))
            .collect()
    }

    /// Set every path's stage in the flag file and wait until the running layer sees it.
    pub async fn set_file_stage(&self, stage: Stage) {
        for p in PATHS {
            flags::set_stage(&self.flags_file, p, stage, None).unwrap();
        }
        self.wait_stage(stage).await;
    }

    pub async fn wait_stage(&self, stage: Stage) {
        let ctx = FlagContext::default();
        common::wait_until(
            &format!("stage {stage}"),
            Duration::from_secs(10),
            || async {
                PATHS
                    .iter()
                    .all(|p| self.access.flags().decide(p, &ctx).unwrap().stage == stage)
            },
        )
        .await;
    }

    pub fn view(&self) -> &cutover::mapping::SourceView {
        self.store.view()
    }

    pub async fn in_mysql(
        &self,
        m: &Message,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let k = cutover::access::to_row(&m.key()).unwrap();
        self.access.old().get(self.view(), &k).await.unwrap()
    }

    pub async fn in_dynamo(
        &self,
        m: &Message,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let k = cutover::access::to_row(&m.key()).unwrap();
        self.access.new_store().get(self.view(), &k).await.unwrap()
    }

    pub async fn body_in_mysql(&self, m: &Message) -> Option<String> {
        self.in_mysql(m)
            .await
            .and_then(|r| r.get("body").and_then(|b| b.as_str().map(str::to_string)))
    }

    pub async fn body_in_dynamo(&self, m: &Message) -> Option<String> {
        self.in_dynamo(m)
            .await
            .and_then(|r| r.get("body").and_then(|b| b.as_str().map(str::to_string)))
    }
}

pub async fn dynamo_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    cutover::sink::dynamo::client(&cutover::sink::DynamoConfig {
        endpoint_url: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        profile: None,
    })
    .await
}

pub async fn build(cfg: &Config, mapping: Arc<Mapping>, flags: Flags) -> Access {
    let old = OldStore::new(cfg.mysql.pool().unwrap());
    let new = NewStore::connect(&cfg.dynamodb, &cfg.sink, mapping.clone()).await;
    let repair = RepairQueue::new(&cfg.kafka, &cfg.access).unwrap();
    Access::new(mapping, flags, old, new, repair, cfg.access.clone())
}

fn expected_writes(stage: Stage) -> Vec<(Origin, OpKind)> {
    use Origin::{New, Old};
    let w = |o| (o, OpKind::Write);
    match stage {
        Stage::Off => vec![w(Old)],
        Stage::DualWrite | Stage::Shadow => vec![w(Old), w(New)],
        Stage::Live | Stage::RampDown => vec![w(New), w(Old)],
        Stage::Complete => vec![w(New)],
    }
}

fn expected_reads(stage: Stage) -> Vec<Origin> {
    match stage {
        Stage::Off | Stage::DualWrite => vec![Origin::Old],
        Stage::Shadow | Stage::Live => vec![Origin::Old, Origin::New],
        Stage::RampDown | Stage::Complete => vec![Origin::New],
    }
}

/// For each stage: which store each write reaches and in what order, which store each read
/// reaches and whose result comes back, and that shadow/live compare.
async fn walk_stages(h: &Harness, set: impl AsyncFnSetter) {
    let ctx = FlagContext::default();
    for (i, stage) in Stage::ALL.iter().copied().enumerate() {
        set.set(stage).await;
        let id = 1000 + i as i64;
        // Writes.
        h.take_calls();
        let m = message(id, &format!("written in {stage}"));
        h.store.put("message.write", &ctx, &m).await.unwrap();
        assert_eq!(
            h.take_calls(),
            expected_writes(stage),
            "write order in {stage}"
        );
        let plan = cutover::access::plan(stage);
        let in_old = plan.authoritative == Origin::Old || plan.secondary_write == Some(Origin::Old);
        let in_new = plan.authoritative == Origin::New || plan.secondary_write == Some(Origin::New);
        assert_eq!(
            h.in_mysql(&m).await.is_some(),
            in_old,
            "MySQL holds the {stage} write"
        );
        assert_eq!(
            h.in_dynamo(&m).await.is_some(),
            in_new,
            "DynamoDB holds the {stage} write"
        );
        // update = read the authoritative store, change, write back through the same path.
        let updated = h
            .store
            .update("message.write", &ctx, &m.key(), |x| {
                x.body = Some(format!("updated in {stage}"))
            })
            .await
            .unwrap()
            .expect("the row exists");
        let want = updated.body.clone();
        match plan.authoritative {
            Origin::Old => assert_eq!(h.body_in_mysql(&m).await, want, "update in {stage}"),
            Origin::New => assert_eq!(h.body_in_dynamo(&m).await, want, "update in {stage}"),
        }

        // Reads: make the stores disagree, then see whose answer comes back.
        let r = message(2000 + i as i64, "x");
        let mut old_row = cutover::access::to_row(&r).unwrap();
        old_row.insert("body".into(), "from mysql".into());
        let mut new_row = old_row.clone();
        new_row.insert("body".into(), "from dynamodb".into());
        h.access.old().put(h.view(), &old_row).await.unwrap();
        h.access
            .new_store()
            .put(h.view(), &new_row, 1)
            .await
            .unwrap();
        h.take_calls();
        let got = h
            .store
            .get("message.read", &ctx, &r.key())
            .await
            .unwrap()
            .unwrap();
        let mut origins: Vec<Origin> = h.take_calls().into_iter().map(|c| c.0).collect();
        origins.sort_by_key(|o| *o == Origin::New);
        assert_eq!(origins, expected_reads(stage), "reads in {stage}");
        let want = match plan.authoritative {
            Origin::Old => "from mysql",
            Origin::New => "from dynamodb",
        };
        assert_eq!(got.body.as_deref(), Some(want), "read result in {stage}");
        let mismatches_before = h.access.mismatches();
        let list = h
            .store
            .query(
                "message.list",
                &ctx,
                &serde_json::json!({"conversation_id": r.conversation_id}),
                100,
            )
            .await
            .unwrap();
        let listed = list
            .iter()
            .find(|x| x.id == r.id)
            .expect("query finds the row");
        assert_eq!(
            listed.body.as_deref(),
            Some(want),
            "query result in {stage}"
        );
        if plan.compare {
            assert!(
                h.access.mismatches() > mismatches_before,
                "{stage} compares and reports the difference"
            );
        } else {
            assert_eq!(
                h.access.mismatches(),
                mismatches_before,
                "{stage} does not compare"
            );
        }
    }
}

pub trait AsyncFnSetter {
    fn set(&self, stage: Stage) -> impl std::future::Future<Output = ()>;
}

struct FileSetter<'a>(&'a Harness);
impl AsyncFnSetter for FileSetter<'_> {
    async fn set(&self, stage: Stage) {
        self.0.set_file_stage(stage).await
    }
}

struct LdSetter<'a>(&'a launchdarkly_server_sdk::TestData, &'a Harness);
impl AsyncFnSetter for LdSetter<'_> {
    async fn set(&self, stage: Stage) {
        for p in PATHS {
            let key = cutover::flags::default_flag_key(p);
            self.0.update(
                self.0
                    .flag(&key)
                    .variations(
                        Stage::ALL
                            .iter()
                            .map(|s| launchdarkly_server_sdk::FlagValue::Str(s.to_string())),
                    )
                    .value_for_all(launchdarkly_server_sdk::FlagValue::Str(stage.to_string())),
            );
        }
        self.1.wait_stage(stage).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_with_the_flag_file_flipped_while_running() {
    let h = Harness::new("accfile", &common::dynamo_endpoint(), None).await;
    walk_stages(&h, FileSetter(&h)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_with_launchdarkly_test_data_flipped_while_running() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let td = launchdarkly_server_sdk::TestData::new();
    let flags = Flags::launchdarkly_test_data(&td, PATHS.iter().map(|s| s.to_string()))
        .await
        .unwrap();
    let h = Harness::new("accld", &common::dynamo_endpoint(), Some(flags)).await;
    walk_stages(&h, LdSetter(&td, &h)).await;
}

/// Drain the repair topic with the real worker until every entry so far applied.
pub async fn drain_repairs(h: &Harness) {
    drain_until(h, h.access.repair_queue().queued_ends()).await
}

/// Run the real worker until its group committed `ends` (per partition).
pub async fn drain_until(h: &Harness, ends: HashMap<i32, i64>) {
    if ends.is_empty() {
        // Nothing queued: a worker started and cancelled mid-join would only slow the
        // group's next join.
        return;
    }
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(repair::run_worker(
        h.access.clone(),
        h.cfg.kafka.clone(),
        h.cfg.access.clone(),
        cancel.clone(),
    ));
    let group = h.cfg.access.repair_group.clone();
    let topic = h.cfg.access.repair_topic.clone();
    common::wait_until("repair queue drained", Duration::from_secs(60), || {
        let (group, topic, ends) = (group.clone(), topic.clone(), ends.clone());
        async move {
            let committed = common::committed(&group, &topic, 2);
            ends.iter()
                .all(|(p, end)| committed.get(p).copied().unwrap_or(-1) >= *end)
        }
    })
    .await;
    cancel.cancel();
    worker.await.unwrap().unwrap();
}

/// Walk off → complete → off while writers run; every acknowledged write ends in both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_from_complete_to_off_under_traffic_loses_nothing() {
    let h = Arc::new(Harness::new("accroll", &common::dynamo_endpoint(), None).await);
    h.set_file_stage(Stage::Off).await;
    let stop = CancellationToken::new();
    let acked: Arc<Mutex<HashMap<i64, Option<String>>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4i64 {
        let (h, stop, acked) = (h.clone(), stop.clone(), acked.clone());
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
                }
                n += 1;
            }
        }));
    }
    let walk = [
        Stage::DualWrite,
        Stage::Shadow,
        Stage::Live,
        Stage::RampDown,
        Stage::Complete,
        Stage::RampDown,
        Stage::Live,
        Stage::Shadow,
        Stage::DualWrite,
    ];
    let ctx = FlagContext::default();
    let mut prev = Stage::Off;
    for s in walk {
        tokio::time::sleep(Duration::from_millis(400)).await;
        if cutover::access::plan(prev).authoritative != cutover::access::plan(s).authoritative {
            // As `cutover flags set` requires: the repair queue (here: complete's journal) is
            // drained before the other store becomes authoritative.
            drain_repairs(&h).await;
        }
        h.set_file_stage(s).await;
        prev = s;
        if s == Stage::Complete {
            // Rows written only while in complete: MySQL must still get them after rollback.
            for id in 9000..9005 {
                let m = message(id, "written in complete");
                h.store.put("message.write", &ctx, &m).await.unwrap();
                acked.lock().unwrap().insert(id, m.body.clone());
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Traffic stops in dualwrite: in `off` only MySQL is written and DynamoDB catches up
    // through the CDC pipeline, which this test does not run.
    stop.cancel();
    for w in writers {
        w.await.unwrap();
    }
    h.set_file_stage(Stage::Off).await;
    drain_repairs(&h).await;
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 50, "traffic ran: {} keys", acked.len());
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

// ------------------------------------------------------------------------------------------
// Failures
// ------------------------------------------------------------------------------------------

/// A DynamoDB Local of our own (persisted in a temp dir), so it can be stopped mid-test
/// without disturbing the shared one.
struct OwnDynamo {
    port: u16,
    dir: PathBuf,
    child: Option<std::process::Child>,
}

impl OwnDynamo {
    fn start() -> OwnDynamo {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(common::unique("ddb"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = OwnDynamo {
            port,
            dir,
            child: None,
        };
        d.spawn();
        d
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let cache = std::env::var("CUTOVER_LOCALSTACK_CACHE")
            .unwrap_or_else(|_| format!("{home}/.cache/cutover-localstack"));
        let jar_dir = PathBuf::from(cache).join("amplify-dynamodb-simulator-2.9.30/emulator");
        assert!(
            jar_dir.join("DynamoDBLocal.jar").exists(),
            "DynamoDB Local jar missing in {} (run localstack/up.sh)",
            jar_dir.display()
        );
        let child = std::process::Command::new("java")
            .current_dir(&jar_dir)
            .args([
                "-Djava.library.path=./DynamoDBLocal_lib",
                "-jar",
                "DynamoDBLocal.jar",
                "-sharedDb",
                "-dbPath",
            ])
            .arg(&self.dir)
            .args(["-port", &self.port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("java");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "own DynamoDB Local did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnDynamo {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// DynamoDB stops while the path is in dualwrite: every request is still served from MySQL,
/// the failed DynamoDB writes are queued, and after DynamoDB is back the worker repairs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_outage_in_dualwrite_serves_requests_and_repairs_after_recovery() {
    let mut ddb = OwnDynamo::start();
    let h = Harness::new("accout", &ddb.endpoint(), None).await;
    h.set_file_stage(Stage::DualWrite).await;
    let ctx = FlagContext::default();
    let before: Vec<Message> = (1..=5).map(|i| message(i, "before the outage")).collect();
    for m in &before {
        h.store.put("message.write", &ctx, m).await.unwrap();
    }
    ddb.stop();
    let mut during: Vec<Message> = (6..=15).map(|i| message(i, "during the outage")).collect();
    for m in &during {
        h.store
            .put("message.write", &ctx, m)
            .await
            .expect("served from MySQL");
    }
    // Updates and deletes too, including of rows DynamoDB already had.
    h.store
        .delete("message.write", &ctx, &before[0].key())
        .await
        .unwrap();
    during[0].body = Some("changed during the outage".into());
    h.store
        .put("message.write", &ctx, &during[0])
        .await
        .unwrap();
    let got = h
        .store
        .get("message.read", &ctx, &during[0].key())
        .await
        .unwrap();
    assert_eq!(
        got.as_ref(),
        Some(&during[0]),
        "reads are served from MySQL"
    );
    let queued: i64 = h.access.repair_queue().queued_ends().values().sum();
    assert_eq!(queued, 12, "one repair entry per failed DynamoDB write");

    ddb.spawn();
    drain_repairs(&h).await;
    for m in before.iter().skip(1).chain(&during) {
        assert_eq!(h.body_in_dynamo(m).await, m.body, "{} repaired", m.id);
        assert_eq!(h.body_in_mysql(m).await, m.body);
    }
    assert_eq!(
        h.in_dynamo(&before[0]).await,
        None,
        "the delete was repaired"
    );
}

mockall::mock! {
    pub Api {}
    #[async_trait::async_trait]
    impl cutover::sink::DynamoApi for Api {
        async fn write_one(&self, write: cutover::sink::SingleWrite) -> Result<bool, cutover::sink::WriteError>;
        async fn write_batch(
            &self,
            table: String,
            requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
        ) -> Result<Vec<aws_sdk_dynamodb::types::WriteRequest>, cutover::sink::WriteError>;
    }
}

type ItemMap = HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

mockall::mock! {
    pub Read {}
    #[async_trait::async_trait]
    impl cutover::access::DynamoRead for Read {
        async fn get_item(&self, table: String, key: ItemMap) -> Result<Option<ItemMap>, cutover::sink::WriteError>;
        async fn query_page(
            &self,
            q: cutover::access::QueryPage,
        ) -> Result<(Vec<ItemMap>, Option<ItemMap>), cutover::sink::WriteError>;
    }
}

/// The same harness, with DynamoDB's SDK edge replaced by mocks.
async fn mocked(h: &Harness, api: MockApi, read: MockRead) -> (Store<Message>, Access) {
    let mapping = Arc::new(Mapping::new(&h.cfg.tables, &h.cfg.sink).unwrap());
    let old = OldStore::new(h.cfg.mysql.pool().unwrap());
    let new = NewStore::new(Arc::new(read), Arc::new(api), &h.cfg.sink, mapping.clone());
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

fn merge_ends(into: &mut HashMap<i32, i64>, from: HashMap<i32, i64>) {
    for (p, o) in from {
        let e = into.entry(p).or_insert(0);
        *e = (*e).max(o);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_timeouts_follow_the_failure_policy() {
    use cutover::sink::WriteError;
    let h = Harness::new("accmock", &common::dynamo_endpoint(), None).await;
    let ctx = FlagContext::default();

    // dualwrite: DynamoDB throttles every write → the caller succeeds, the repair is queued.
    h.set_file_stage(Stage::DualWrite).await;
    let mut api = MockApi::new();
    api.expect_write_one().returning(|_| {
        Err(WriteError::Throttled(
            "ProvisionedThroughputExceededException".into(),
        ))
    });
    let (store, a1) = mocked(&h, api, MockRead::new()).await;
    let m = message(1, "throttled in dualwrite");
    store
        .put("message.write", &ctx, &m)
        .await
        .expect("served despite throttling");
    assert_eq!(h.body_in_mysql(&m).await, m.body);
    assert_eq!(h.in_dynamo(&m).await, None);

    // dualwrite: every attempt times out (the SDK's dispatch timeout) → same policy.
    let mut api = MockApi::new();
    api.expect_write_one()
        .returning(|_| Err(WriteError::Transient("dispatch failure: timeout".into())));
    let (store, a2) = mocked(&h, api, MockRead::new()).await;
    let m2 = message(2, "timed out in dualwrite");
    let started = std::time::Instant::now();
    store
        .put("message.write", &ctx, &m2)
        .await
        .expect("served despite timeouts");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by access.timeout"
    );

    // The real worker, on the real DynamoDB, applies both entries once "DynamoDB recovers".
    let mut ends = a1.repair_queue().queued_ends();
    merge_ends(&mut ends, a2.repair_queue().queued_ends());
    assert_eq!(ends.values().sum::<i64>(), 2, "one entry per failed write");
    drain_until(&h, ends).await;
    assert_eq!(
        h.body_in_dynamo(&m).await,
        m.body,
        "repaired after throttling ended"
    );
    assert_eq!(
        h.body_in_dynamo(&m2).await,
        m2.body,
        "repaired after the timeouts"
    );

    // live: DynamoDB is authoritative; when it throttles, the caller gets the error and MySQL
    // is not touched.
    h.set_file_stage(Stage::Live).await;
    let mut api = MockApi::new();
    api.expect_write_one()
        .returning(|_| Err(WriteError::Throttled("ThrottlingException".into())));
    let (store, _) = mocked(&h, api, MockRead::new()).await;
    let m3 = message(3, "never acknowledged");
    assert!(store.put("message.write", &ctx, &m3).await.is_err());
    assert_eq!(
        h.in_mysql(&m3).await,
        None,
        "the second store is not written"
    );

    // shadow: a failing DynamoDB read does not fail the request; MySQL's answer is returned.
    h.set_file_stage(Stage::Shadow).await;
    let mut read = MockRead::new();
    read.expect_get_item()
        .returning(|_, _| Err(WriteError::Transient("connection reset".into())));
    let (store, _) = mocked(&h, MockApi::new(), read).await;
    let got = store.get("message.read", &ctx, &m.key()).await.unwrap();
    assert_eq!(got.and_then(|x| x.body), m.body);
}

// ------------------------------------------------------------------------------------------
// Living with the CDC stream
// ------------------------------------------------------------------------------------------

/// The service writes through the layer (stages dualwrite → shadow → live → rampdown) while
/// another client writes MySQL directly and `cutover capture` + `cutover run` stream every
/// commit into the same items. Whatever the interleaving, both stores end equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_writes_and_the_cdc_pipeline_converge() {
    let h = Arc::new(Harness::new("acccdc", &common::dynamo_endpoint(), None).await);
    let db = h.view().source.split_once('.').unwrap().0.to_string();
    common::create_topic(&format!("{db}.cdc"), 4).await;
    common::create_topic(&format!("{db}.dlq"), 1).await;
    h.set_file_stage(Stage::DualWrite).await;
    let capture = common::Cutover::start(&h.config_path, &["capture"]);
    let run = common::Cutover::start(&h.config_path, &["run"]);

    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for w in 0..2i64 {
        let (h, stop) = (h.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let ctx = FlagContext::default();
            let mut n = 0i64;
            while !stop.is_cancelled() {
                let m = message(n % 40, &format!("service w{w} n{n}"));
                let _ = if n % 9 == 8 {
                    h.store.delete("message.write", &ctx, &m.key()).await
                } else {
                    h.store.put("message.write", &ctx, &m).await
                };
                n += 1;
            }
        }));
    }
    {
        // Another writer of the same rows, straight into MySQL: only CDC carries these.
        let (pool, stop) = (h.cfg.mysql.pool().unwrap(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get_conn().await.unwrap();
            let mut n = 0i64;
            while !stop.is_cancelled() {
                conn.exec_drop(
                    "UPDATE message SET body = ? WHERE id = ?",
                    (format!("direct n{n}"), n % 40),
                )
                .await
                .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }));
    }
    for s in [Stage::Shadow, Stage::Live, Stage::RampDown] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        h.set_file_stage(s).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    // Converged: every row equal in both stores once the stream has caught up.
    let view = h.view().clone();
    let h2 = h.clone();
    common::wait_until(
        "DynamoDB equals MySQL",
        Duration::from_secs(90),
        move || {
            let (h, view) = (h2.clone(), view.clone());
            async move {
                for id in 0..40 {
                    let m = message(id, "");
                    let k = cutover::access::to_row(&m.key()).unwrap();
                    let old = h.access.old().get(&view, &k).await.unwrap();
                    let new = h.access.new_store().get(&view, &k).await.unwrap();
                    let old = old.and_then(|r| h.access.new_store().normalize(&view, &r));
                    if old != new {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    assert!(run.stop(), "run exits cleanly");
    assert!(capture.stop(), "capture exits cleanly");
}
