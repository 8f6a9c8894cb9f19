//! Shared setup for the integration tests: the real local stack (localstack/up.sh), unique
//! names per test, the `cutover` binary as a child process, and exact item snapshots.
//! A service that can't be reached fails the test loudly; nothing is skipped.

#![allow(dead_code)]

pub mod source;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use base64::Engine as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

pub fn brokers() -> String {
    std::env::var("CUTOVER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

pub fn dynamo_endpoint() -> String {
    std::env::var("CUTOVER_DYNAMODB_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:18000".into())
}

/// Panics with a clear message when a service of the local stack is down.
pub fn require_stack() {
    let dynamo = dynamo_endpoint();
    let dynamo_addr = dynamo
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    for (what, addr) in [
        ("Kafka broker", brokers()),
        ("DynamoDB Local", dynamo_addr.to_string()),
    ] {
        let first = addr.split(',').next().unwrap_or_default().to_string();
        let sock = first
            .parse()
            .unwrap_or_else(|_| panic!("{what}: cannot parse address {first}"));
        if TcpStream::connect_timeout(&sock, Duration::from_secs(2)).is_err() {
            panic!("{what} is not reachable at {first}: start the local stack with `localstack/up.sh` (scripts/test does it)");
        }
    }
    // Credentials for DynamoDB Local (any value works).
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        std::env::set_var("AWS_ACCESS_KEY_ID", "local");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "local");
    }
    if std::env::var("AWS_REGION").is_err() {
        std::env::set_var("AWS_REGION", "us-east-1");
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test run: `prefix-<pid>-<n>-<millis>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_millis() % 1_000_000
    )
}

pub async fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let res = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topic");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

/// Produce keyed records in order; returns (partition, offset) of each.
pub async fn produce(topic: &str, records: &[(String, Option<String>)]) -> Vec<(i32, i64)> {
    let p = producer();
    let recs = records.iter().map(|(key, payload)| {
        let r: FutureRecord<'_, str, str> = FutureRecord::to(topic).key(key.as_str());
        match payload {
            Some(v) => r.payload(v.as_str()),
            None => r,
        }
    });
    cutover::kafka::send_all(&p, recs)
        .await
        .unwrap_or_else(|e| panic!("produce to {topic}: {e}"))
}

pub async fn dynamo() -> Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(dynamo_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    Client::new(&conf)
}

/// An attribute value as exact JSON: S → string, N → {"N": "digits"}, BOOL → bool,
/// NULL → null, B → {"B": base64}, SS → {"SS": [..]}, L → array, M → object.
pub fn av_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!(s),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!(b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::B(b) => {
            json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) })
        }
        AttributeValue::Ss(s) => {
            let mut s = s.clone();
            s.sort();
            json!({ "SS": s })
        }
        AttributeValue::L(l) => Value::Array(l.iter().map(av_json).collect()),
        AttributeValue::M(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), av_json(v))).collect())
        }
        other => json!(format!("{other:?}")),
    }
}

pub fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    let sorted: BTreeMap<&String, Value> = item.iter().map(|(k, v)| (k, av_json(v))).collect();
    serde_json::to_value(sorted).expect("json")
}

/// Every item of `table`, keyed by "pk|sk", as exact JSON.
pub async fn scan(client: &Client, table: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "scan {table}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                )
            });
        for item in page.items() {
            let pk = item.get("pk").map(av_json).unwrap_or(Value::Null);
            let sk = item.get("sk").map(av_json).unwrap_or(Value::Null);
            let key = format!(
                "{}|{}",
                pk.as_str().unwrap_or(&pk.to_string()),
                sk.as_str().unwrap_or("")
            );
            out.insert(key, item_json(item));
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    out
}

/// Items without the bookkeeping attributes whose values depend on the clock
/// (`_ttl` on tombstones), for comparing runs.
pub fn without(items: &BTreeMap<String, Value>, attrs: &[&str]) -> BTreeMap<String, Value> {
    items
        .iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            if let Value::Object(m) = &mut v {
                for a in attrs {
                    m.remove(*a);
                }
            }
            (k.clone(), v)
        })
        .collect()
}

pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A wait that fails on a lack of progress, not on a wall-clock deadline: a loaded machine
/// makes the work slower, not wrong. Progress is any change of an observed value (items,
/// a log's length); the wait is stalled once it has not changed for `stall`, or once
/// `STALL_CAP` stalls' worth of time has passed in all (work that never ends).
pub struct Progress<T> {
    stall: Duration,
    start: Instant,
    last: Option<T>,
    changed: Instant,
}

/// The overall bound of a [`Progress`] wait, in multiples of its stall time.
pub const STALL_CAP: u32 = 10;

impl<T: PartialEq> Progress<T> {
    pub fn new(stall: Duration) -> Progress<T> {
        let now = Instant::now();
        Progress {
            stall,
            start: now,
            last: None,
            changed: now,
        }
    }

    /// Record the value observed now; `Some(why)` when the wait has stalled.
    pub fn observe(&mut self, now: T) -> Option<String> {
        if self.last.as_ref() != Some(&now) {
            self.last = Some(now);
            self.changed = Instant::now();
        }
        if self.changed.elapsed() > self.stall {
            Some(format!("no progress for {:?}", self.stall))
        } else if self.start.elapsed() > self.stall * STALL_CAP {
            Some(format!(
                "still changing after {:?} (the cap)",
                self.stall * STALL_CAP
            ))
        } else {
            None
        }
    }
}

/// Wait until `check` holds; fail only when `progress` (an observed value) has not changed
/// for `stall` (see [`Progress`]).
pub async fn wait_progressing<T, F, Fut, P>(what: &str, stall: Duration, mut check: F, progress: P)
where
    T: PartialEq,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
    P: Fn() -> T,
{
    let mut p = Progress::new(stall);
    loop {
        if check().await {
            return;
        }
        if let Some(why) = p.observe(progress()) {
            panic!("waiting for {what}: {why}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A `cutover` child process with its config file and log.
pub struct Cutover {
    pub child: Child,
    pub log: PathBuf,
}

pub fn write_config(name: &str, toml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("cutover-it");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).expect("write config");
    path
}

pub fn cutover_cmd(config: &PathBuf, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cutover"));
    c.arg("--config").arg(config).args(args);
    c.env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    c.env("CUTOVER_DYNAMODB__ENDPOINT_URL", dynamo_endpoint());
    c
}

impl Cutover {
    pub fn start(config: &PathBuf, args: &[&str]) -> Cutover {
        let log = config.with_extension(format!("{}.log", COUNTER.fetch_add(1, Ordering::SeqCst)));
        let file = std::fs::File::create(&log).expect("log file");
        let child = cutover_cmd(config, args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn cutover");
        Cutover { child, log }
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// SIGTERM and wait; returns the exit status success.
    pub fn stop(mut self) -> bool {
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.success();
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!(
                    "cutover did not stop within 60s after SIGTERM; log: {}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn assert_running(&mut self) {
        if let Some(s) = self.child.try_wait().expect("wait") {
            panic!("cutover exited early ({s}); log:\n{}", self.log_text());
        }
    }
}

impl Drop for Cutover {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `cutover` to completion; panics with its log on failure. Returns stdout.
pub fn cutover_ok(config: &PathBuf, args: &[&str]) -> String {
    cutover_ok_env(config, args, &[])
}

pub fn cutover_ok_env(config: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = cutover_cmd(config, args);
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run cutover");
    if !out.status.success() {
        panic!(
            "cutover {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Read up to `n` records of `topic` from the beginning (or until `timeout`).
pub async fn read_topic(
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while out.len() < n && Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), c.recv()).await {
            out.push(m.detach());
        }
    }
    out.sort_by_key(|m| (m.partition(), m.offset()));
    out
}

/// The committed offsets of `group` on `topic`, per partition.
pub fn committed(group: &str, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The next offset after the last produced record, per partition.
pub fn ends(delivered: &[(i32, i64)]) -> HashMap<i32, i64> {
    let mut out: HashMap<i32, i64> = HashMap::new();
    for (p, o) in delivered {
        let e = out.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    out
}

/// Wait until `group` has committed everything produced.
pub async fn wait_committed(
    group: &str,
    topic: &str,
    partitions: i32,
    ends: &HashMap<i32, i64>,
    timeout: Duration,
) {
    let (g, t, e) = (group.to_string(), topic.to_string(), ends.clone());
    wait_until(
        &format!("group {group} to commit {ends:?}"),
        timeout,
        move || {
            let (g, t, e) = (g.clone(), t.clone(), e.clone());
            async move {
                let c = tokio::task::spawn_blocking(move || committed(&g, &t, partitions))
                    .await
                    .unwrap();
                e.iter().all(|(p, end)| c.get(p).is_some_and(|o| o >= end))
            }
        },
    )
    .await;
}

/// Assert two item snapshots are equal, printing only the keys that differ.
pub fn assert_same_items(actual: &Value, expected: &Value, what: &str) {
    if actual == expected {
        return;
    }
    let empty = serde_json::Map::new();
    let a = actual.as_object().unwrap_or(&empty);
    let e = expected.as_object().unwrap_or(&empty);
    let mut diffs = Vec::new();
    for (k, v) in e {
        match a.get(k) {
            None => diffs.push(format!("missing {k}: {v}")),
            Some(x) if x != v => {
                diffs.push(format!("differs {k}:\n    actual   {x}\n    expected {v}"))
            }
            _ => {}
        }
    }
    for (k, v) in a {
        if !e.contains_key(k) {
            diffs.push(format!("extra {k}: {v}"));
        }
    }
    let n = diffs.len();
    diffs.truncate(12);
    panic!(
        "{what}: {n} item(s) differ (first 12):\n{}",
        diffs.join("\n")
    );
}
