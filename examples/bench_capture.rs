//! `cutover capture` bench on the local stack, in one run:
//! 1. Snapshot throughput. A fresh database holds one chat-message table of N rows (~200 bytes
//!    each, default 200k). (a) The ceiling: a plain keyset `SELECT` of the whole table over
//!    mysql_async's binary protocol, with the page size capture uses. (b) `cutover capture`
//!    (the release binary) loading the same table into a fresh topic, timed from its
//!    "snapshot opened" log line to its "full load done" line, which it logs only after every
//!    record was acknowledged by Kafka and the checkpoint saying "snapshot done" was written.
//!    The topic is then read back: every row must be there once as a `load` record.
//!    (c) Kafka alone: the same number of those records, produced page by page with capture's
//!    producer settings, shows how much of (b) is the broker.
//! 2. CDC lag. With the same capture process now streaming the binlog, W writer connections
//!    commit single-row autocommit INSERTs at a fixed total rate for D seconds. A consumer
//!    thread notes when each record becomes readable from the topic; the lag of a record is
//!    that instant minus the writer's own commit-acknowledged instant for its id (one
//!    process, one monotonic clock; not the binlog's one-second timestamps).
//!
//! ```text
//! scripts/bench-capture                  # builds release, starts the stack, runs this
//! cargo run --release --example bench_capture -- --rows 200000 --rate 1000 --seconds 30 \
//!     --bin target/release/cutover
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cutover::mysql::{quote_ident, MysqlConfig};
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Value};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use support::{arg, peak_rss_mb};

#[path = "support/mod.rs"]
mod support;

/// Filler the message bodies are cut from, so rows differ but stay ~200 bytes.
const FILLER: &str = "Sure, let's move the sync to Thursday afternoon; I'll bring the numbers \
    from the migration dry run and the notes on the replica lag we saw last week, plus the \
    list of open questions for the storage team. Thanks!";

/// One chat message: id, conversation_id, sender_id, body (~130 chars), created_at, edited.
fn row(id: u64) -> Vec<Value> {
    let start = (id % 40) as usize;
    let body = format!("#{id} {}", FILLER.get(start..start + 140).unwrap_or(FILLER));
    let at = chrono::DateTime::from_timestamp_millis(1_704_189_600_000 + id as i64 * 1_000)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string();
    vec![
        Value::UInt(id),
        Value::UInt(id % 1000),
        Value::UInt(id % 97),
        Value::from(body),
        Value::from(at),
        Value::Int(i64::from(id.is_multiple_of(10))),
    ]
}

const COLUMNS: &str = "id, conversation_id, sender_id, body, created_at, edited";

fn config_text(db: &str, topic: &str, url: &str, page: usize) -> String {
    let brokers =
        std::env::var("CUTOVER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    format!(
        r#"
[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{topic}-unused"
dlq_topic = "{topic}.dlq"
[mysql]
url = "{url}"
[capture]
name = "{topic}"
topic = "{topic}"
checkpoint_topic = "{topic}.cp"
snapshot_batch = {page}
[telemetry]
listen = ""
[[table]]
source = "{db}.message"
target = "unused"
primary_key = ["id"]
partition_key = {{ name = "pk", template = "CONV#{{conversation_id}}" }}
sort_key = {{ name = "sk", template = "MSG#{{created_at}}#{{id}}" }}
"#
    )
}

/// The capture process, its log lines and the instants of the lines the bench waits for.
/// Killed on drop, so an error in the bench never leaves it running.
struct Capture {
    child: Child,
    log: Arc<CaptureLog>,
}

#[derive(Default)]
struct CaptureLog {
    lines: Mutex<Vec<String>>,
    opened: OnceLock<Instant>,
    loaded: OnceLock<Instant>,
    streaming: OnceLock<Instant>,
}

impl Capture {
    fn start(bin: &str, config: &std::path::Path) -> anyhow::Result<Capture> {
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("capture")
            .env("RUST_LOG", "info,rdkafka=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("start {bin}: {e}"))?;
        let log = Arc::new(CaptureLog::default());
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
        let l = log.clone();
        // Drained for the whole run: a full pipe would block the capture's logging.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let now = Instant::now();
                for (marker, at) in [
                    ("snapshot opened", &l.opened),
                    ("full load done", &l.loaded),
                    ("binlog stream opened", &l.streaming),
                ] {
                    if line.contains(marker) {
                        let _ = at.set(now);
                    }
                }
                if let Ok(mut lines) = l.lines.lock() {
                    lines.push(line);
                }
            }
        });
        Ok(Capture { child, log })
    }

    /// Wait until `at` is set; fail with the log's tail if the process exits or time runs out.
    async fn wait_for(
        &mut self,
        what: &str,
        at: fn(&CaptureLog) -> &OnceLock<Instant>,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = at(&self.log).get() {
                return Ok(*t);
            }
            if let Some(s) = self.child.try_wait()? {
                anyhow::bail!(
                    "cutover capture exited ({s}) before {what}:\n{}",
                    self.tail()
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!("no {what} within {timeout:?}:\n{}", self.tail());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn tail(&self) -> String {
        let lines = self.log.lines.lock().map(|l| l.clone()).unwrap_or_default();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then wait (up to 30 s); true when it exited 0.
    fn stop(&mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the consumer thread saw on the capture topic.
#[derive(Default)]
struct Seen {
    /// Distinct snapshot (`load`) ids, and the bytes of their records.
    loads: AtomicU64,
    load_bytes: AtomicU64,
    /// The first `page` load records (key, payload), for the Kafka-alone run.
    sample: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    /// When each CDC record (id > rows) became readable.
    cdc: Mutex<Vec<(u64, Instant)>>,
    stop: AtomicBool,
    error: Mutex<Option<String>>,
}

/// Read `topic` from the beginning until `seen.stop`: loads are counted (each id once), CDC
/// records timestamped on arrival.
fn consume(
    brokers: String,
    topic: String,
    partitions: i32,
    rows: u64,
    page: usize,
    seen: Arc<Seen>,
) {
    let fail = |e: String| {
        if let Ok(mut slot) = seen.error.lock() {
            *slot = Some(e);
        }
    };
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{topic}-bench"))
        .set("enable.auto.commit", "false")
        // Readability, not the consumer's batching: don't let the broker hold a fetch long.
        .set("fetch.wait.max.ms", "10")
        .create()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("consumer: {e}")),
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        if let Err(e) = tpl.add_partition_offset(&topic, p, Offset::Beginning) {
            return fail(format!("assign: {e}"));
        }
    }
    if let Err(e) = consumer.assign(&tpl) {
        return fail(format!("assign: {e}"));
    }
    let mut loaded = vec![false; rows as usize + 1];
    while !seen.stop.load(Ordering::Relaxed) {
        let Some(msg) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let now = Instant::now();
        let msg = match msg {
            Ok(m) => m,
            // librdkafka retries on its own; a lasting problem shows as the wait timing out.
            Err(e) => {
                eprintln!("consumer: {e}");
                continue;
            }
        };
        let Some(payload) = msg.payload() else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return fail("a record that is not JSON".into());
        };
        let Some(id) = v.pointer("/data/id").and_then(serde_json::Value::as_u64) else {
            continue;
        };
        let op = v.pointer("/metadata/operation").and_then(|o| o.as_str());
        if op == Some("load") {
            if let Some(slot) = loaded.get_mut(id as usize) {
                if !*slot {
                    *slot = true;
                    seen.loads.fetch_add(1, Ordering::Relaxed);
                    seen.load_bytes
                        .fetch_add(payload.len() as u64, Ordering::Relaxed);
                    if let Ok(mut sample) = seen.sample.lock() {
                        if sample.len() < page {
                            let key = msg.key().unwrap_or_default().to_vec();
                            sample.push((key, payload.to_vec()));
                        }
                    }
                }
            }
        } else if id > rows {
            if let Ok(mut cdc) = seen.cdc.lock() {
                cdc.push((id, now));
            }
        }
    }
}

/// One writer's commits: (id, sent, acknowledged).
type Commits = Vec<(u64, Instant, Instant)>;

/// Writer `k` of `writers`: single-row autocommit INSERTs of ids rows+1+i for its share of the
/// global schedule i = k, k+writers, ..., the i-th due at `t0 + i/rate`, until `seconds`.
#[allow(clippy::too_many_arguments)]
async fn write_load(
    pool: mysql_async::Pool,
    db: String,
    rows: u64,
    k: u64,
    writers: u64,
    rate: f64,
    seconds: f64,
    t0: tokio::time::Instant,
) -> anyhow::Result<Commits> {
    let mut conn = pool.get_conn().await?;
    let sql = format!(
        "INSERT INTO {}.message ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        quote_ident(&db)
    );
    let mut out = Vec::new();
    let mut i = k;
    loop {
        let due = i as f64 / rate;
        if due >= seconds {
            break;
        }
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(due)).await;
        let id = rows + 1 + i;
        let sent = Instant::now();
        conn.exec_drop(sql.as_str(), row(id)).await?;
        out.push((id, sent, Instant::now()));
        i += writers;
    }
    Ok(out)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rows: u64 = arg("--rows", "200000").parse()?;
    let page: usize = arg("--page", "5000").parse()?;
    let partitions: i32 = arg("--partitions", "12").parse()?;
    let rate: f64 = arg("--rate", "1000").parse()?;
    let seconds: f64 = arg("--seconds", "30").parse()?;
    let writers: u64 = arg("--writers", "4").parse()?;
    let bin = arg("--bin", "target/release/cutover");
    anyhow::ensure!(
        page > 0 && writers > 0 && rate > 0.0,
        "page, writers, rate must be > 0"
    );
    let brokers =
        std::env::var("CUTOVER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let url = std::env::var("CUTOVER_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://cutover:cutover@127.0.0.1:13306/cutover".into());
    let pool = MysqlConfig {
        url: url.clone(),
        pool_max: writers as usize + 2,
    }
    .pool()?;
    let stamp = chrono::Utc::now().timestamp();
    let db = format!("bench_capture_{stamp}");
    let mut conn = pool.get_conn().await?;
    conn.query_drop(format!("CREATE DATABASE {}", quote_ident(&db)))
        .await?;
    drop(conn);
    let result = bench(
        &pool, &db, &url, &brokers, &bin, rows, page, partitions, rate, seconds, writers, stamp,
    )
    .await;
    if let Ok(mut conn) = pool.get_conn().await {
        let _ = conn
            .query_drop(format!("DROP DATABASE {}", quote_ident(&db)))
            .await;
    }
    pool.disconnect().await?;
    result
}

#[allow(clippy::too_many_arguments)]
async fn bench(
    pool: &mysql_async::Pool,
    db: &str,
    url: &str,
    brokers: &str,
    bin: &str,
    rows: u64,
    page: usize,
    partitions: i32,
    rate: f64,
    seconds: f64,
    writers: u64,
    stamp: i64,
) -> anyhow::Result<()> {
    let table = format!("{}.message", quote_ident(db));
    let mut conn = pool.get_conn().await?;
    conn.query_drop(format!(
        "CREATE TABLE {table} (id BIGINT UNSIGNED PRIMARY KEY, conversation_id BIGINT UNSIGNED \
         NOT NULL, sender_id BIGINT UNSIGNED NOT NULL, body VARCHAR(500) NOT NULL, created_at \
         DATETIME(3) NOT NULL, edited TINYINT(1) NOT NULL, KEY (conversation_id, created_at)) \
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    ))
    .await?;

    // Fill: multi-row parameterized INSERTs of 500 rows.
    let t = Instant::now();
    let chunk = 500u64;
    let mut next = 1u64;
    while next <= rows {
        let last = (next + chunk - 1).min(rows);
        let n = (last - next + 1) as usize;
        let sql = format!(
            "INSERT INTO {table} ({COLUMNS}) VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?)"; n].join(", ")
        );
        let params: Vec<Value> = (next..=last).flat_map(row).collect();
        conn.exec_drop(sql, Params::Positional(params)).await?;
        next = last + 1;
    }
    conn.query_drop(format!("ANALYZE LOCAL TABLE {table}"))
        .await?;
    let (avg_row, data_len): (u64, u64) = conn
        .exec_first(
            "SELECT AVG_ROW_LENGTH, DATA_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'message'",
            (db,),
        )
        .await?
        .unwrap_or((0, 0));
    let data_mb = data_len as f64 / 1048576.0;
    eprintln!(
        "filled {table}: {rows} rows (avg_row_length {avg_row} B, {data_mb:.1} MB) in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // (a) The ceiling: keyset pages over the binary protocol, rows decoded into Values.
    let first_sql = format!("SELECT {COLUMNS} FROM {table} ORDER BY id LIMIT {page}");
    let next_sql = format!("SELECT {COLUMNS} FROM {table} WHERE id > ? ORDER BY id LIMIT {page}");
    let t = Instant::now();
    let mut read = 0u64;
    let mut after: Option<u64> = None;
    loop {
        let rows_page: Vec<mysql_async::Row> = match after {
            None => conn.exec(first_sql.as_str(), ()).await?,
            Some(k) => conn.exec(next_sql.as_str(), (k,)).await?,
        };
        read += rows_page.len() as u64;
        let full = rows_page.len() >= page;
        after = rows_page.last().and_then(|r| r.get::<u64, _>(0));
        if !full || after.is_none() {
            break;
        }
    }
    let scan_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(read == rows, "the scan read {read} rows, expected {rows}");
    let scan_rate = rows as f64 / scan_s;
    eprintln!("(a) keyset SELECT: {rows} rows in {scan_s:.2}s");
    drop(conn);

    // (b) cutover capture's snapshot into a fresh topic.
    let topic = format!("bench-capture-{stamp}");
    support::create_topic_and_dlq(brokers, &topic, partitions).await?;
    let path = std::env::temp_dir().join(format!("bench-capture-{stamp}.toml"));
    std::fs::write(&path, config_text(db, &topic, url, page))?;
    let started = Instant::now();
    let mut capture = Capture::start(bin, &path)?;
    let opened = capture
        .wait_for("snapshot", |l| &l.opened, Duration::from_secs(120))
        .await?;
    let loaded = capture
        .wait_for("full load", |l| &l.loaded, Duration::from_secs(3600))
        .await?;
    let snap_s = loaded.duration_since(opened).as_secs_f64();
    let snap_rate = rows as f64 / snap_s;
    eprintln!(
        "(b) capture snapshot: {rows} rows in {snap_s:.2}s ({:.2}s from process start)",
        loaded.duration_since(started).as_secs_f64()
    );
    capture
        .wait_for("binlog stream", |l| &l.streaming, Duration::from_secs(60))
        .await?;

    // Read the topic back: every row once as a load record, before the CDC load starts.
    let seen = Arc::new(Seen::default());
    let consumer = {
        let (b, t, s) = (brokers.to_owned(), topic.clone(), seen.clone());
        std::thread::spawn(move || consume(b, t, partitions, rows, page, s))
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.loads.load(Ordering::Relaxed) < rows {
        if let Some(e) = seen.error.lock().ok().and_then(|e| e.clone()) {
            anyhow::bail!("{e}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the topic holds {} of {rows} snapshot rows",
            seen.loads.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record_bytes = seen.load_bytes.load(Ordering::Relaxed) as f64 / rows as f64;
    eprintln!("read back {rows} load records ({record_bytes:.0} B each)");

    // (c) Kafka alone: as many of the same records (cycled from a sample, one key per row),
    // sent page by page with capture's producer settings, into another fresh topic.
    let kafka_only = format!("{topic}-kafka-only");
    support::create_topic_and_dlq(brokers, &kafka_only, partitions).await?;
    let cfg = cutover::Config::from_toml(&config_text(db, &topic, url, page))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let producer: FutureProducer = cutover::kafka::producer_config(&cfg.kafka)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()?;
    let sample = seen.sample.lock().map(|s| s.clone()).unwrap_or_default();
    anyhow::ensure!(!sample.is_empty(), "no sample records");
    let t = Instant::now();
    let mut start = 0usize;
    while start < rows as usize {
        let end = (start + page).min(rows as usize);
        let keys: Vec<String> = (start..end).map(|i| format!("{db}.message.{i}")).collect();
        cutover::kafka::send_all(
            &producer,
            keys.iter().enumerate().map(|(j, k)| {
                FutureRecord::to(&kafka_only)
                    .key(k.as_str())
                    .payload(sample[(start + j) % sample.len()].1.as_slice())
            }),
        )
        .await?;
        start = end;
    }
    let kafka_rate = rows as f64 / t.elapsed().as_secs_f64();
    eprintln!("(c) Kafka alone: {rows} records at {kafka_rate:.0}/s");
    drop(producer);

    // 2. CDC lag under a steady write load.
    let t0 = tokio::time::Instant::now() + Duration::from_millis(200);
    let tasks: Vec<_> = (0..writers)
        .map(|k| {
            tokio::spawn(write_load(
                pool.clone(),
                db.to_owned(),
                rows,
                k,
                writers,
                rate,
                seconds,
                t0,
            ))
        })
        .collect();
    let mut commits: Commits = Vec::new();
    for t in tasks {
        commits.extend(t.await??);
    }
    let t0 = t0.into_std();
    let last_ack = commits.iter().map(|c| c.2).max().unwrap_or(t0);
    let achieved = commits.len() as f64 / last_ack.duration_since(t0).as_secs_f64();
    eprintln!(
        "wrote {} rows with {writers} connections at {achieved:.0}/s",
        commits.len()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = seen.cdc.lock().map(|c| c.len()).unwrap_or(0);
        if got >= commits.len() {
            break;
        }
        if let Some(e) = seen.error.lock().ok().and_then(|e| e.clone()) {
            anyhow::bail!("{e}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {got} of {} CDC records arrived",
            commits.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.stop.store(true, Ordering::Relaxed);
    let _ = consumer.join();
    let rss = peak_rss_mb(capture.child.id());
    let stopped = capture.stop();

    let arrived: std::collections::HashMap<u64, Instant> = seen
        .cdc
        .lock()
        .map(|c| c.iter().copied().collect())
        .unwrap_or_default();
    let (mut from_ack, mut from_send) = (Vec::new(), Vec::new());
    for (id, sent, acked) in &commits {
        let at = arrived
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("id {id} missing from the topic"))?;
        // Capture can read the binlog before the OK reaches the writer: clamp at 0.
        from_ack.push(at.saturating_duration_since(*acked).as_secs_f64() * 1e3);
        from_send.push(at.saturating_duration_since(*sent).as_secs_f64() * 1e3);
    }
    from_ack.sort_by(f64::total_cmp);
    from_send.sort_by(f64::total_cmp);
    let mut commit_ms: Vec<f64> = commits
        .iter()
        .map(|(_, s, a)| a.duration_since(*s).as_secs_f64() * 1e3)
        .collect();
    commit_ms.sort_by(f64::total_cmp);
    let pct = |v: &[f64]| {
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        )
    };

    println!("| capture bench (one run) | result |");
    println!("|---|---|");
    println!(
        "| table | {} rows, avg_row_length {avg_row} B, {partitions}-partition topic, {} B per DMS record |",
        thousands(rows as f64),
        record_bytes.round()
    );
    println!(
        "| (a) keyset `SELECT`, binary protocol, {page}-row pages | {} rows/s |",
        thousands(scan_rate)
    );
    println!(
        "| (b) `cutover capture` snapshot, until acked + checkpointed | {} rows/s |",
        thousands(snap_rate)
    );
    println!("| (b)/(a) | {:.2} |", snap_rate / scan_rate);
    println!(
        "| (c) Kafka alone: the same records, capture's producer settings, page by page | {} records/s |",
        thousands(kafka_rate)
    );
    println!("| (b)/(c) | {:.2} |", snap_rate / kafka_rate);
    println!(
        "| CDC write load: single-row autocommit INSERTs, {writers} connections | target {}/s for {seconds:.0} s, achieved {}/s ({} rows) |",
        thousands(rate),
        thousands(achieved),
        thousands(commits.len() as f64)
    );
    println!(
        "| CDC lag, commit acknowledged → readable, p50 / p99 / max | {} |",
        pct(&from_ack)
    );
    println!(
        "| CDC lag, INSERT sent → readable, p50 / p99 / max | {} |",
        pct(&from_send)
    );
    println!(
        "| writer's commit latency, p50 / p99 / max | {} |",
        pct(&commit_ms)
    );
    println!("| peak RSS of `cutover capture` | {rss:.0} MB |");
    let _ = std::fs::remove_file(&path);
    anyhow::ensure!(stopped, "cutover capture did not exit 0 on SIGTERM");
    Ok(())
}
