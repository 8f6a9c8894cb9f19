//! The demo behind `scripts/demo`: the whole migration of a chat service on the local stack.
//!
//! 1. A fresh MariaDB database with the chat schema, bulk-loaded (multi-row INSERTs).
//! 2. `cutover tables create`, then `cutover capture` (snapshot + binlog → DMS records on
//!    Kafka) and `cutover run` (Kafka → DynamoDB) as child processes of the real binary.
//! 3. Live changes while the stream catches up: inserts, updates, deletes, primary-key changes.
//! 4. `cutover verify` until clean (bounded attempts).
//! 5. `message.write` and `message.read` walked off → … → complete with `cutover flags set`
//!    while traffic runs through the data-access layer (`cutover::access::Store<Message>`),
//!    rolled back to off, the repair worker drained, and `cutover verify` clean again.
//! 6. A summary with timings, and `cutover status`.
//!
//! Invariants: every name (database, topics, table, consumer groups) is unique per run, so the
//! demo never touches anyone else's data on the shared stack; the child processes are stopped
//! (SIGTERM) on every exit path; the demo fails (non-zero) unless both verifies end clean.
//!
//!     scripts/demo                        # starts the local stack, builds, runs this
//!     scripts/demo --scrape FILE          # also every 2 s: each process's /metrics → FILE
//!     cargo run --example demo -- --bin target/debug/cutover --messages 20000

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::{NaiveDate, NaiveDateTime};
use cutover::access::{Access, Store};
use cutover::flags::{FlagContext, Stage};
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use support::{arg, committed, metric};
use tokio_util::sync::CancellationToken;

#[path = "chat_service/chat.rs"]
mod chat;
#[path = "support/scrape.rs"]
mod scrape;
#[path = "support/mod.rs"]
mod support;

use chat::Message;

const PARTITIONS: i32 = 12;
const REPAIR_PARTITIONS: i32 = 2;
const PATHS: [&str; 2] = ["message.write", "message.read"];
/// Ids of rows inserted by the live writer and by the stage traffic start above every loaded
/// message id, and primary-key changes move a message up by `MOVE`.
const LIVE_IDS: i64 = 1_000_000;
const STAGE_IDS: i64 = 2_000_000;
const MOVE: i64 = 10_000_000;

/// The generated data set: every field of a loaded row is a pure function of its id, so the
/// stage traffic can address loaded rows without reading them first.
#[derive(Clone, Copy)]
struct Data {
    conversations: i64,
    messages: i64,
}

impl Data {
    fn conversation_of(&self, id: i64) -> i64 {
        1 + (id.wrapping_mul(2_654_435_761) & 0x7fff_ffff) % self.conversations
    }

    fn created_at(id: i64) -> NaiveDateTime {
        let base = NaiveDate::from_ymd_opt(2024, 3, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        base + chrono::Duration::seconds(id)
            + chrono::Duration::microseconds(1 + id * 7919 % 999_999)
    }

    fn message(&self, id: i64) -> Message {
        Message {
            id,
            conversation_id: self.conversation_of(id),
            sender_id: self.conversation_of(id) * 10 + id % 3,
            body: Some(format!("message {id}")),
            created_at: iso(Self::created_at(id)),
            edited: false,
            meta: (id % 10 == 0).then(|| r#"{"client": "web", "reactions": 2}"#.to_string()),
        }
    }

    /// A loaded message the live writer never touches (it works on the lower half).
    fn stable_id(&self, r: u64) -> i64 {
        self.messages / 2 + 1 + (r % (self.messages as u64 / 2).max(1)) as i64
    }

    /// A loaded message the live writer may change, delete or move.
    fn churn_id(&self, r: u64) -> i64 {
        1 + (r % (self.messages as u64 / 2).max(1)) as i64
    }
}

fn iso(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn sql_time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// xorshift64: reproducible choices without a seeded-RNG dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Names {
    db: String,
    topic: String,
    table: String,
    group: String,
    repair_topic: String,
}

/// The chat service's config (examples/chat_service/cutover.toml: the chat schema in one
/// DynamoDB table, single-table design), renamed for this run, on the demo's stack.
fn config(n: &Names, brokers: &str, endpoint: &str, mysql: &str) -> String {
    let Names {
        db,
        topic,
        table,
        group,
        repair_topic,
    } = n;
    chat::ChatConfig::named(db)
        .target(table)
        .stack(brokers, endpoint)
        .stream(topic, group, &format!("{topic}.dlq"), "dms")
        .set(
            "flags.paths",
            r#"{ "message.write" = {}, "message.read" = {} }"#,
        )
        .merge(&format!(
            r#"
[mysql]
url = "{mysql}"

[capture]
name = "{topic}"
topic = "{topic}"
checkpoint_topic = "{topic}.checkpoints"

[access]
repair_topic = "{repair_topic}"
repair_group = "{repair_topic}-worker"

[status]
probe_timeout = "2s"

[flags]
reload = "100ms"
"#
        ))
        .text()
}

/// `mysql://user:pass@host:port/<db>` from the stack's URL.
fn with_database(url: &str, db: &str) -> anyhow::Result<String> {
    let (prefix, _) = url
        .rsplit_once('/')
        .context("CUTOVER_MYSQL_URL has no database part")?;
    Ok(format!("{prefix}/{db}"))
}

/// A child `cutover` process, stopped with SIGTERM (then killed) when dropped.
struct Child {
    name: &'static str,
    child: std::process::Child,
    log: PathBuf,
    metrics: String,
}

impl Child {
    fn spawn(bin: &Path, config: &Path, name: &'static str, dir: &Path) -> anyhow::Result<Child> {
        let metrics = free_addr()?;
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg(name)
            .env("RUST_LOG", "info")
            .env("CUTOVER_TELEMETRY__LISTEN", &metrics)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        Ok(Child {
            name,
            child,
            log,
            metrics,
        })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.child.try_wait()? {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            bail!(
                "cutover {} exited ({s}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    fn metric(&self, name: &str) -> f64 {
        metric(&self.metrics, name)
    }

    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(s)) = self.child.try_wait() {
            return Some(s);
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_addr() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

/// Runs the real binary with the demo's config.
struct Cli {
    bin: PathBuf,
    config: PathBuf,
}

impl Cli {
    /// Exit status and stdout; stderr goes to the demo's log file for that command.
    fn run(&self, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
        let out = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .with_context(|| format!("start {}", self.bin.display()))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
            String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
        ))
    }

    fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let (ok, out, err) = self.run(args)?;
        if !ok {
            bail!("cutover {}: failed:\n{err}", args.join(" "));
        }
        Ok(out)
    }
}

/// Multi-row, parameterized INSERTs of `rows` into `db.table`, `chunk` rows per statement.
async fn insert(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
    columns: &[&str],
    rows: impl IntoIterator<Item = Vec<Value>>,
    chunk: usize,
) -> anyhow::Result<u64> {
    let quoted: Vec<String> = columns
        .iter()
        .map(|c| cutover::mysql::quote_ident(c))
        .collect();
    let head = format!(
        "INSERT INTO {}.{} ({}) VALUES ",
        cutover::mysql::quote_ident(db),
        cutover::mysql::quote_ident(table),
        quoted.join(",")
    );
    let one = format!("({})", vec!["?"; columns.len()].join(","));
    let mut n = 0;
    let mut params: Vec<Value> = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut count = 0;
        for row in rows.by_ref().take(chunk) {
            params.extend(row);
            count += 1;
        }
        let sql = format!("{head}{}", vec![one.as_str(); count].join(","));
        conn.exec_drop(sql, std::mem::take(&mut params))
            .await
            .with_context(|| format!("insert into {table}"))?;
        n += count as u64;
    }
    Ok(n)
}

#[derive(Default)]
struct Loaded {
    conversations: u64,
    members: u64,
    messages: u64,
    reads: u64,
}

impl Loaded {
    fn total(&self) -> u64 {
        self.conversations + self.members + self.messages + self.reads
    }
}

async fn load(conn: &mut mysql_async::Conn, db: &str, data: Data) -> anyhow::Result<Loaded> {
    let t0 = sql_time(Data::created_at(0));
    let convs = 1..=data.conversations;
    let conversations = insert(
        conn,
        db,
        "conversation",
        &["id", "title", "tenant_id", "created_at"],
        convs.clone().map(|c| {
            vec![
                c.into(),
                format!("Team {c}").into(),
                (c % 10).into(),
                t0.clone().into(),
            ]
        }),
        1000,
    )
    .await?;
    let members = insert(
        conn,
        db,
        "conversation_member",
        &["conversation_id", "user_id", "role", "joined_at"],
        convs.clone().flat_map(|c| {
            let t0 = t0.clone();
            (0..3).map(move |u| {
                let role = if u == 0 { "owner" } else { "member" };
                vec![
                    c.into(),
                    (c * 10 + u).into(),
                    role.into(),
                    t0.clone().into(),
                ]
            })
        }),
        1000,
    )
    .await?;
    let reads = insert(
        conn,
        db,
        "conversation_read",
        &[
            "conversation_id",
            "user_id",
            "last_read_message_id",
            "updated_at",
        ],
        convs.clone().flat_map(|c| {
            let t0 = t0.clone();
            (1..3).map(move |u| vec![c.into(), (c * 10 + u).into(), 0.into(), t0.clone().into()])
        }),
        1000,
    )
    .await?;
    let messages = insert(
        conn,
        db,
        "message",
        &[
            "id",
            "conversation_id",
            "sender_id",
            "body",
            "created_at",
            "edited",
            "meta",
        ],
        (1..=data.messages).map(|id| {
            let m = data.message(id);
            vec![
                m.id.into(),
                m.conversation_id.into(),
                m.sender_id.into(),
                m.body.into(),
                sql_time(Data::created_at(id)).into(),
                0.into(),
                m.meta.into(),
            ]
        }),
        1000,
    )
    .await?;
    Ok(Loaded {
        conversations,
        members,
        messages,
        reads,
    })
}

#[derive(Default, Debug)]
struct Live {
    inserts: u64,
    updates: u64,
    deletes: u64,
    moves: u64,
}

/// Changes as a service would make them, until `stop`: new messages, edits, read markers,
/// renamed conversations, deletes and primary-key changes (UPDATE ... SET id = ...).
async fn live_changes(
    pool: mysql_async::Pool,
    db: String,
    data: Data,
    stop: CancellationToken,
) -> anyhow::Result<Live> {
    let mut conn = pool.get_conn().await?;
    let q = |t: &str| {
        format!(
            "{}.{}",
            cutover::mysql::quote_ident(&db),
            cutover::mysql::quote_ident(t)
        )
    };
    let (message, read, conv) = (q("message"), q("conversation_read"), q("conversation"));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut live = Live::default();
    let mut next_id = LIVE_IDS;
    while !stop.is_cancelled() {
        // Five new messages in one statement.
        let mut params: Vec<Value> = Vec::new();
        for _ in 0..5 {
            next_id += 1;
            let m = data.message(next_id);
            params.extend([
                m.id.into(),
                m.conversation_id.into(),
                m.sender_id.into(),
                m.body.into(),
                sql_time(Data::created_at(next_id)).into(),
            ]);
        }
        let sql = format!(
            "INSERT INTO {message} (id, conversation_id, sender_id, body, created_at) VALUES {}",
            ["(?,?,?,?,?)"; 5].join(",")
        );
        conn.exec_drop(sql, params).await?;
        live.inserts += conn.affected_rows();
        // Two edits, one read marker, one renamed conversation.
        for _ in 0..2 {
            let id = data.churn_id(rng.next());
            conn.exec_drop(
                format!("UPDATE {message} SET body = CONCAT(body, ' (edited)'), edited = 1 WHERE id = ?"),
                (id,),
            )
            .await?;
            live.updates += conn.affected_rows();
        }
        let c = 1 + (rng.next() % data.conversations as u64) as i64;
        conn.exec_drop(
            format!("UPDATE {read} SET last_read_message_id = ?, updated_at = UTC_TIMESTAMP(6) WHERE conversation_id = ? AND user_id = ?"),
            (next_id, c, c * 10 + 1),
        )
        .await?;
        live.updates += conn.affected_rows();
        let c = 1 + (rng.next() % data.conversations as u64) as i64;
        conn.exec_drop(
            format!(
                "UPDATE {conv} SET title = CONCAT('Team ', id, ' (renamed ', ?, ')') WHERE id = ?"
            ),
            (next_id, c),
        )
        .await?;
        live.updates += conn.affected_rows();
        // A delete, and every other round a primary-key change.
        conn.exec_drop(
            format!("DELETE FROM {message} WHERE id = ?"),
            (data.churn_id(rng.next()),),
        )
        .await?;
        live.deletes += conn.affected_rows();
        if next_id % 10 == 0 {
            conn.exec_drop(
                format!("UPDATE {message} SET id = id + ? WHERE id = ?"),
                (MOVE, data.churn_id(rng.next())),
            )
            .await?;
            live.moves += conn.affected_rows();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(live)
}

/// Wait until capture has read the binlog past `position` and `run` has committed every
/// record capture produced: DynamoDB then reflects every change made before `position`.
async fn catch_up(
    capture: &mut Child,
    run: &mut Child,
    position: u128,
    brokers: &str,
    names: &Names,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        capture.check_alive()?;
        run.check_alive()?;
        let file = capture.metric("cutover_capture_binlog_file");
        let pos = capture.metric("cutover_capture_binlog_position");
        let read = cutover::cdc::SourcePosition {
            log_file_seq: Some(file as u64),
            log_pos: Some(pos as u64),
            ..Default::default()
        }
        .version();
        if read >= position {
            let produced = capture.metric("cutover_capture_rows_total");
            let (b, g, tp) = (
                brokers.to_string(),
                names.group.clone(),
                names.topic.clone(),
            );
            let done: i64 = tokio::task::spawn_blocking(move || committed(&b, &g, &tp, PARTITIONS))
                .await?
                .values()
                .sum();
            if produced > 0.0 && done as f64 >= produced {
                return Ok(t.elapsed());
            }
        }
        if t.elapsed() > timeout {
            bail!("the stream did not catch up within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn binlog_position(pool: &mysql_async::Pool) -> anyhow::Result<u128> {
    let mut conn = pool.get_conn().await?;
    Ok(cutover::mysql::current_position(&mut conn).await?.version())
}

/// `cutover verify` until it reports clean, at most `attempts` times; prints each attempt.
fn verify_until_clean(cli: &Cli, label: &str, attempts: u32) -> anyhow::Result<(u32, u64, f64)> {
    for attempt in 1..=attempts {
        let t = Instant::now();
        let (_, out, err) = cli.run(&["verify", "--format", "json"])?;
        let report: cutover::verify::VerifyReport = serde_json::from_str(&out)
            .with_context(|| format!("cutover verify printed no report:\n{err}"))?;
        let sum = |f: fn(&cutover::verify::TableReport) -> u64| -> u64 {
            report.tables.iter().map(f).sum()
        };
        let rows = sum(|t| t.rows);
        println!(
            "   {label} attempt {attempt}: {rows} rows, {} matching, {} missing, {} extra, {} different, {} errors ({:.1}s){}",
            sum(|t| t.matching),
            sum(|t| t.missing),
            sum(|t| t.extra.unwrap_or(0)),
            sum(|t| t.different),
            sum(|t| t.errors),
            t.elapsed().as_secs_f64(),
            if report.clean { ": verify clean" } else { "" }
        );
        if report.clean {
            return Ok((attempt, rows, t.elapsed().as_secs_f64()));
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    bail!("{label}: verify still reports differences after {attempts} attempts")
}

struct StageLine {
    stage: String,
    writes: usize,
    reads: usize,
    mismatches: u64,
    errors: usize,
    p50_write: f64,
    p50_read: f64,
    secs: f64,
}

impl std::fmt::Display for StageLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<16} {} writes, {} reads, {} mismatches, {} errors, p50 write {:.1} ms, p50 read {:.1} ms ({:.1}s)",
            format!("{}:", self.stage),
            self.writes,
            self.reads,
            self.mismatches,
            self.errors,
            self.p50_write,
            self.p50_read,
            self.secs
        )
    }
}

fn p50(mut v: Vec<Duration>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

/// Flip both paths with the real CLI, and wait until the running layer decides the new stage.
async fn set_stage(cli: &Cli, access: &Access, stage: Stage) -> anyhow::Result<()> {
    for p in PATHS {
        cli.ok(&["flags", "set", p, &stage.to_string()])?;
    }
    let ctx = FlagContext::default();
    let t = Instant::now();
    loop {
        let seen = PATHS
            .iter()
            .map(|p| access.flags().decide(p, &ctx).map(|d| d.stage == stage))
            .collect::<Result<Vec<bool>, _>>()?;
        if seen.iter().all(|s| *s) {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(10) {
            bail!("the flag file change to {stage} was not picked up within 10s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` writes (new messages, edits of loaded ones, deletes) and `n` reads (of this round's
/// writes and of loaded messages) through the data-access layer, one request at a time.
async fn traffic(
    store: &Store<Message>,
    access: &Access,
    data: Data,
    label: &str,
    round: i64,
    n: usize,
) -> StageLine {
    let ctx = FlagContext::default();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ round as u64);
    let (mut wl, mut rl, mut errors) = (Vec::new(), Vec::new(), 0);
    let mismatches = access.mismatches();
    let t = Instant::now();
    let mut written: Vec<Message> = Vec::new();
    for i in 0..n as i64 {
        let w = Instant::now();
        let res = if i % 10 == 9 && written.len() > 2 {
            let m = written.swap_remove(0);
            store.delete("message.write", &ctx, &m.key()).await
        } else if i % 4 == 3 {
            let m = data.message(data.stable_id(rng.next()));
            store
                .update("message.write", &ctx, &m.key(), |m| {
                    m.body = Some(format!("edited in {label}"));
                    m.edited = true;
                })
                .await
                .map(|_| ())
        } else {
            let id = STAGE_IDS + round * 10_000 + i;
            let mut m = data.message(id);
            m.body = Some(format!("written in {label}"));
            let r = store.put("message.write", &ctx, &m).await;
            written.push(m);
            r
        };
        wl.push(w.elapsed());
        errors += usize::from(res.is_err());
        let target = match written.get(i as usize % written.len().max(1)) {
            Some(m) if i % 2 == 0 => m.clone(),
            _ => data.message(data.stable_id(rng.next())),
        };
        let r = Instant::now();
        let res = store.get("message.read", &ctx, &target.key()).await;
        rl.push(r.elapsed());
        errors += usize::from(res.is_err());
    }
    StageLine {
        stage: label.to_string(),
        writes: wl.len(),
        reads: rl.len(),
        mismatches: access.mismatches() - mismatches,
        errors,
        p50_write: p50(wl),
        p50_read: p50(rl),
        secs: t.elapsed().as_secs_f64(),
    }
}

/// Run the repair worker until its group has committed everything queued so far.
async fn drain_repairs(
    access: &Access,
    cfg: &cutover::Config,
    brokers: &str,
) -> anyhow::Result<(i64, Duration)> {
    let t = Instant::now();
    let ends: HashMap<i32, i64> = access.repair_queue().queued_ends();
    let entries: i64 = ends.values().sum();
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(cutover::access::repair::run_worker(
        access.clone(),
        cfg.kafka.clone(),
        cfg.access.clone(),
        cancel.clone(),
    ));
    let (group, topic) = (
        cfg.access.repair_group.clone(),
        cfg.access.repair_topic.clone(),
    );
    loop {
        let (b, g, tp) = (brokers.to_string(), group.clone(), topic.clone());
        let done =
            tokio::task::spawn_blocking(move || committed(&b, &g, &tp, REPAIR_PARTITIONS)).await?;
        if ends
            .iter()
            .all(|(p, end)| done.get(p).copied().unwrap_or(0) >= *end)
        {
            break;
        }
        if worker.is_finished() || t.elapsed() > Duration::from_secs(120) {
            cancel.cancel();
            worker.await??;
            bail!("the repair worker did not drain the repair topic");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cancel.cancel();
    worker.await??;
    Ok((entries, t.elapsed()))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let bin = PathBuf::from(arg("--bin", "target/debug/cutover"));
    let data = Data {
        conversations: arg("--conversations", "1000").parse()?,
        messages: arg("--messages", "100000").parse()?,
    };
    if data.conversations < 1 || !(10..LIVE_IDS).contains(&data.messages) {
        bail!("--conversations must be ≥ 1 and --messages in 10..{LIVE_IDS}");
    }
    let live_secs: u64 = arg("--live-seconds", "15").parse()?;
    let stage_ops: usize = arg("--stage-ops", "200").parse()?;
    let brokers =
        std::env::var("CUTOVER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let endpoint = std::env::var("CUTOVER_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:18000".into());
    let base_url = std::env::var("CUTOVER_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://cutover:cutover@127.0.0.1:13306/cutover".into());
    let stamp = chrono::Utc::now().format("%m%d%H%M%S").to_string();
    let names = Names {
        db: format!("demo_chat_{stamp}"),
        topic: format!("demo.chat.{stamp}"),
        table: format!("demo-chat-{stamp}"),
        group: format!("demo-{stamp}"),
        repair_topic: format!("demo.repair.{stamp}"),
    };
    let dir = std::env::temp_dir().join(format!("cutover-demo-{stamp}"));
    std::fs::create_dir_all(&dir)?;
    let cfg_path = dir.join("cutover.toml");
    let mysql_url = with_database(&base_url, &names.db)?;
    std::fs::write(&cfg_path, config(&names, &brokers, &endpoint, &mysql_url))?;
    std::fs::write(
        dir.join("flags.toml"),
        "# The demo's migration flags (cutover flags set edits this file).\ndefault_check_ratio = 1.0\n",
    )?;
    let cli = Cli {
        bin: bin.clone(),
        config: cfg_path.clone(),
    };
    // `--scrape FILE`: the demo's own metrics (the data-access layer) and its children's,
    // every 2 s, with phase marks (scripts/migration-picture plots them).
    let scraper = match arg("--scrape", "") {
        f if f.is_empty() => None,
        f => {
            let s = scrape::Scraper::start(Path::new(&f), Duration::from_secs(2))?;
            let addr = cutover::telemetry::serve(
                "127.0.0.1:0".parse()?,
                cutover::telemetry::Health::default(),
            )
            .await?;
            s.add("demo", &addr.to_string());
            Some(s)
        }
    };
    let mark = |text: &str| {
        if let Some(s) = &scraper {
            s.mark(text);
        }
    };
    let t_all = Instant::now();
    println!("== cutover demo: a live chat service moved from MariaDB to DynamoDB");
    println!("   config and logs: {}", dir.display());
    println!("1. validate: {}", cli.ok(&["validate"])?);

    // 2. The source database.
    let pool = mysql_async::Pool::new(
        mysql_async::Opts::from_url(&with_database(&base_url, "cutover")?)
            .context("CUTOVER_MYSQL_URL")?,
    );
    let mut conn = pool.get_conn().await.context("MariaDB is not reachable")?;
    conn.query_drop(format!(
        "CREATE DATABASE {}",
        cutover::mysql::quote_ident(&names.db)
    ))
    .await?;
    conn.query_drop(format!("USE {}", cutover::mysql::quote_ident(&names.db)))
        .await?;
    for ddl in chat::DDL {
        conn.query_drop(ddl).await?;
    }
    let t = Instant::now();
    let loaded = load(&mut conn, &names.db, data).await?;
    drop(conn);
    let load_secs = t.elapsed().as_secs_f64();
    println!(
        "2. MariaDB {}: loaded {} rows ({} conversations, {} members, {} messages, {} read markers) in {load_secs:.1}s",
        names.db,
        loaded.total(),
        loaded.conversations,
        loaded.members,
        loaded.messages,
        loaded.reads
    );

    // 3. Target table, topics, capture and run.
    support::create_topic_and_dlq(&brokers, &names.topic, PARTITIONS).await?;
    support::create_topics(&brokers, &[(&names.repair_topic, REPAIR_PARTITIONS)]).await?;
    println!(
        "3. tables create: {}",
        cli.ok(&["tables", "create"])?.replace('\n', ", ")
    );
    let t_stream = Instant::now();
    let mut capture = Child::spawn(&bin, &cfg_path, "capture", &dir)?;
    let mut run = Child::spawn(&bin, &cfg_path, "run", &dir)?;
    if let Some(s) = &scraper {
        s.add("capture", &capture.metrics);
        s.add("run", &run.metrics);
    }
    mark("capture + run start (snapshot)");
    println!(
        "   started cutover capture (pid {}) and cutover run (pid {})",
        capture.child.id(),
        run.child.id()
    );

    // 4. Live changes while the snapshot loads and the stream catches up.
    let stop = CancellationToken::new();
    let writer = tokio::spawn(live_changes(
        pool.clone(),
        names.db.clone(),
        data,
        stop.clone(),
    ));
    let mut snapshot_secs = None;
    let live_started = Instant::now();
    while live_started.elapsed() < Duration::from_secs(live_secs) || snapshot_secs.is_none() {
        capture.check_alive()?;
        run.check_alive()?;
        if snapshot_secs.is_none() && capture.log_text().contains("full load done") {
            snapshot_secs = Some(t_stream.elapsed().as_secs_f64());
            mark("snapshot sent; binlog");
            println!(
                "4. capture: snapshot of {} rows read and sent in {:.1}s; now streaming the binlog",
                loaded.total(),
                t_stream.elapsed().as_secs_f64()
            );
        }
        if writer.is_finished() {
            break;
        }
        if live_started.elapsed() > Duration::from_secs(600) {
            bail!("the snapshot did not finish within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.cancel();
    let live = writer.await??;
    mark("live changes end");
    let live_total_secs = live_started.elapsed().as_secs_f64();
    let end_of_changes = binlog_position(&pool).await?;
    println!(
        "   live changes for {live_total_secs:.1}s: {} inserts, {} updates, {} deletes, {} primary-key changes",
        live.inserts, live.updates, live.deletes, live.moves
    );
    let caught = catch_up(
        &mut capture,
        &mut run,
        end_of_changes,
        &brokers,
        &names,
        Duration::from_secs(600),
    )
    .await?;
    let stream_secs = t_stream.elapsed().as_secs_f64();
    let records = capture.metric("cutover_capture_rows_total");
    let written = run.metric("cutover_items_written_total");
    println!(
        "   caught up {:.1}s after the last change: {records:.0} records captured, {written:.0} item writes, {:.0} records/s overall",
        caught.as_secs_f64(),
        records / stream_secs
    );

    // 5. Verify.
    mark("caught up; verify");
    println!("5. cutover verify:");
    let (attempts, verify_rows, verify_secs) = verify_until_clean(&cli, "verify", 5)?;

    // 6. The data-access layer walked through every stage by the flag file.
    println!("6. message.write + message.read through the data-access layer, flipped with `cutover flags set`:");
    let cfg = cutover::Config::load(&cfg_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let access = Access::connect(&cfg, &dir).await?;
    let store: Store<Message> = access.store(&format!("{}.message", names.db))?;
    let mut lines = Vec::new();
    for (round, stage) in Stage::ALL.iter().copied().enumerate() {
        set_stage(&cli, &access, stage).await?;
        mark(&format!("stage {stage}"));
        let line = traffic(
            &store,
            &access,
            data,
            &stage.to_string(),
            round as i64,
            stage_ops,
        )
        .await;
        println!("   {line}");
        lines.push(line);
    }
    // `flags set` refuses to make MySQL authoritative again while the journal has entries:
    // drain it first (still in complete, so it is copied into MySQL), then roll back.
    mark("drain the journal, then roll back to off");
    let (repairs, repair_time) = drain_repairs(&access, &cfg, &brokers).await?;
    set_stage(&cli, &access, Stage::Off).await?;
    println!(
        "   repair worker applied {repairs} queued entries (the complete-stage journal) to MySQL in {:.1}s, then rolled back complete → off",
        repair_time.as_secs_f64()
    );
    let line = traffic(
        &store,
        &access,
        data,
        "off (rollback)",
        Stage::ALL.len() as i64,
        stage_ops,
    )
    .await;
    println!("   {line}");
    lines.push(line);
    let position = binlog_position(&pool).await?;
    let caught2 = catch_up(
        &mut capture,
        &mut run,
        position,
        &brokers,
        &names,
        Duration::from_secs(300),
    )
    .await?;
    println!("   stream caught up in {:.1}s", caught2.as_secs_f64());
    let (attempts2, _, verify2_secs) = verify_until_clean(&cli, "verify after rollback", 5)?;

    // 7. Summary and status.
    if let Some(s) = &scraper {
        s.mark("end");
        s.scrape_once();
    }
    let (ok_status, status, status_err) = cli.run(&["status"])?;
    let capture_status = capture.stop();
    let run_status = run.stop();
    pool.disconnect().await?;
    let errors: usize = lines.iter().map(|l| l.errors).sum();
    let mismatches: u64 = lines.iter().map(|l| l.mismatches).sum();
    println!();
    println!("== summary");
    println!(
        "rows loaded        {} in {load_secs:.1}s ({} messages in {} conversations, {} members, {} read markers)",
        loaded.total(),
        loaded.messages,
        loaded.conversations,
        loaded.members,
        loaded.reads
    );
    println!(
        "snapshot           {:.1}s (cutover capture, consistent snapshot → Kafka)",
        snapshot_secs.unwrap_or(0.0)
    );
    println!(
        "live changes       {live_total_secs:.1}s: {} inserts, {} updates, {} deletes, {} primary-key changes",
        live.inserts, live.updates, live.deletes, live.moves
    );
    println!(
        "catch-up           {:.1}s after the last change ({:.1}s from capture start to DynamoDB in step)",
        caught.as_secs_f64(),
        stream_secs
    );
    println!(
        "verify             clean on attempt {attempts} ({verify_rows} rows, {verify_secs:.1}s)"
    );
    println!("stages");
    for l in &lines {
        println!("  {l}");
    }
    println!(
        "rollback           {repairs} repair entries applied in {:.1}s; verify clean on attempt {attempts2} ({verify2_secs:.1}s)",
        repair_time.as_secs_f64()
    );
    println!("total              {:.1}s", t_all.elapsed().as_secs_f64());
    println!();
    println!("== cutover status");
    println!("{status}");
    if !status_err.is_empty() && !ok_status {
        println!("{status_err}");
    }
    println!(
        "(capture and run stopped on SIGTERM: {}, {})",
        capture_status.map_or("?".into(), |s| s.to_string()),
        run_status.map_or("?".into(), |s| s.to_string())
    );
    if errors > 0 || mismatches > 0 {
        bail!("{errors} request errors and {mismatches} mismatches in the stage walk");
    }
    Ok(())
}
