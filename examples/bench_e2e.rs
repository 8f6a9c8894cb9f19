//! The end-to-end bench (issue 12.5): one table, one run, every write mode, on the soak's
//! seeded hostile DMS topic (`support/workload.rs`: multi-row transactions, re-delivery of old
//! records after newer ones, primary-key moves across partitions, hostile values), written into
//! a private DynamoDB Local (`support/private_dynamo.rs`, as the soak does) and checked against
//! the generator's truth.
//!
//! Per mode (`--modes`, default all five):
//! - `run-conditional`, `run-batch`: `cutover run` draining the topic with a fresh group;
//!   records/s from its first written item to the group's commit of every partition's end;
//! - `replay-rebuild`, `replay-batch`, `replay-conditional`: `cutover replay --from earliest
//!   --target-table NEW --create-table --write-mode M`; records/s over the whole process.
//!
//! Columns:
//! - `ideal items/s`: the library's [`Writer`] in the same write mode pushing the same items,
//!   already decoded and mapped, straight into the same DynamoDB Local, one stream per
//!   partition in topic order (the parallelism of `cutover`), chunks of
//!   `sink.max_batch_records`; `÷ ideal` = the mode's records/s ÷ that;
//! - `CPU s / 100k`: user+sys of the cutover process (/proc/<pid>/stat, read before it is
//!   reaped), per 100k records;
//! - `writes/record`: DynamoDB item writes sent ÷ records: for `run`, every outcome of
//!   `cutover_items_written_total` (a conditional write that loses to a newer version is still
//!   a write); for a replay, from its `--json` summary: `applied + stale` (conditional),
//!   `applied` (batch), `applied + key_moves.writes` (rebuild: its stale items are dropped after
//!   a read, never written);
//! - `peak RSS`: VmHWM of the cutover process;
//! - `exact?`: the table equals the truth (tombstones count as absent); otherwise the counts
//!   of missing / extra / different items. Plain `batch` is inexact on this topic by design.
//!
//! With `--hotkeys-records N` (default 88000, as in issue 12.4; 0 = off), a second topic of
//! the soak's `--shape hotkeys` (10 changes per key in rounds over all keys, issue 12.4) adds
//! rows for `--hotkeys-modes` (default `replay-conditional`), for its writes/record.
//!
//!     scripts/bench-e2e                      # builds release, runs this
//!     scripts/bench-e2e --records 100000 --partitions 12 --seed 1 \
//!         --modes run-conditional,run-batch,replay-rebuild,replay-batch,replay-conditional \
//!         --hotkeys-records 88000 --hotkeys-modes replay-conditional \
//!         [--idle-timeout 60s] [--out target/bench-e2e/<stamp>]
//!
//! Logs, configs and per-table diffs go to `--out`. The exit code is 1 if a mode that must be
//! exact (every mode but plain batch) is not, or its command failed.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cutover::cdc::{self, Decoded, Format};
use cutover::mapping::{ItemWrite, Mapped, Mapping};
use cutover::sink::{SdkApi, WriteMode, Writer};
use cutover::Config;
use private_dynamo::{clock_ticks, cpu_seconds, is_zombie, signal, PrivateDynamo};
use support::{arg, committed, metric, peak_rss_mb};
use workload::{Params, Workload};

#[path = "support/private_dynamo.rs"]
mod private_dynamo;
#[path = "support/mod.rs"]
mod support;
#[path = "support/workload.rs"]
mod workload;

/// A bench mode: which command, in which write mode.
#[derive(Debug, Clone, Copy)]
struct Mode {
    name: &'static str,
    replay: bool,
    write: WriteMode,
}

const MODES: &[Mode] = &[
    Mode {
        name: "run-conditional",
        replay: false,
        write: WriteMode::Conditional,
    },
    Mode {
        name: "run-batch",
        replay: false,
        write: WriteMode::Batch,
    },
    Mode {
        name: "replay-rebuild",
        replay: true,
        write: WriteMode::Rebuild,
    },
    Mode {
        name: "replay-batch",
        replay: true,
        write: WriteMode::Batch,
    },
    Mode {
        name: "replay-conditional",
        replay: true,
        write: WriteMode::Conditional,
    },
];

fn write_mode_name(m: WriteMode) -> &'static str {
    match m {
        WriteMode::Conditional => "conditional",
        WriteMode::Batch => "batch",
        WriteMode::Rebuild => "rebuild",
    }
}

fn parse_modes(list: &str) -> anyhow::Result<Vec<Mode>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            MODES.iter().copied().find(|m| m.name == s).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown mode {s:?}: run-conditional, run-batch, replay-rebuild, replay-batch, replay-conditional"
                )
            })
        })
        .collect()
}

/// One topic with its generated records and truth.
struct Case {
    label: &'static str,
    workload: Workload,
    topic: String,
    end: Vec<i64>,
    /// The ideal writer's items/s per write mode (measured once per mode).
    ideal: HashMap<&'static str, f64>,
}

impl Case {
    fn records(&self) -> usize {
        self.workload.stats.records
    }
}

/// One row of the table.
struct Row {
    topic: &'static str,
    mode: &'static str,
    records: usize,
    rate: f64,
    ideal: f64,
    cpu: f64,
    writes: f64,
    rss: f64,
    diff: Option<workload::Diff>,
    exit: Option<i32>,
    must_be_exact: bool,
}

impl Row {
    fn exact(&self) -> bool {
        self.diff.as_ref().is_some_and(|d| d.differences() == 0)
    }

    fn failed(&self) -> bool {
        self.must_be_exact && (self.exit != Some(0) || !self.exact())
    }

    fn line(&self) -> String {
        let exact = match &self.diff {
            None => "? (not checked)".to_string(),
            Some(d) if d.differences() == 0 => "yes".to_string(),
            Some(d) => format!(
                "no: {} missing, {} extra, {} different",
                d.missing, d.extra, d.different
            ),
        };
        let exit = match self.exit {
            Some(0) => String::new(),
            Some(c) => format!(" (exit {c})"),
            None => " (no exit code)".into(),
        };
        format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.2} | {:.0} MB | {exact}{exit} |",
            self.topic,
            self.mode,
            self.records,
            self.rate,
            self.ideal,
            self.rate / self.ideal.max(f64::MIN_POSITIVE),
            self.cpu * 100_000.0 / self.records.max(1) as f64,
            self.writes / self.records.max(1) as f64,
            self.rss,
        )
    }
}

struct Bench {
    bin: PathBuf,
    out: PathBuf,
    brokers: String,
    stamp: String,
    ddb: PrivateDynamo,
    client: aws_sdk_dynamodb::Client,
    ticks: f64,
    listen_port: u16,
    idle_timeout: String,
}

impl Bench {
    fn config_text(
        &self,
        topic: &str,
        target: &str,
        group: &str,
        mode: &str,
        listen: &str,
    ) -> String {
        format!(
            r#"
[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
dlq_topic = "{topic}.dlq"
format = "dms"
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000" }}
[dynamodb]
endpoint_url = "http://127.0.0.1:{port}"
region = "us-east-1"
[sink]
write_mode = "{mode}"
[telemetry]
listen = "{listen}"
{tables}"#,
            brokers = self.brokers,
            port = self.ddb.port,
            tables = workload::tables_toml(target),
        )
    }

    /// Write a config; returns its path and the parsed config.
    fn config(
        &self,
        name: &str,
        topic: &str,
        target: &str,
        group: &str,
        mode: &str,
        listen: &str,
    ) -> anyhow::Result<(PathBuf, Config)> {
        let text = self.config_text(topic, target, group, mode, listen);
        let cfg = Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let path = self.out.join(format!("{name}.toml"));
        std::fs::write(&path, text)?;
        Ok((path, cfg))
    }

    fn listen(&mut self) -> String {
        self.listen_port += 1;
        format!("127.0.0.1:{}", self.listen_port)
    }

    async fn create_table(&self, mapping: &Mapping, table: &str) -> anyhow::Result<()> {
        let spec = mapping
            .targets()
            .values()
            .next()
            .expect("one target")
            .clone();
        cutover::tables::create(&self.client, &spec, table).await?;
        Ok(())
    }

    async fn check(&self, case: &Case, cfg: &Config, table: &str) -> Option<workload::Diff> {
        let mapping = mapping(cfg).ok()?;
        let result = workload::check(
            &self.client,
            &mapping,
            &cfg.sink,
            table,
            &case.workload.truth,
        )
        .await;
        let _ = self.client.delete_table().table_name(table).send().await;
        match result {
            Ok(d) => {
                for e in &d.examples {
                    eprintln!("  {table}: {e}");
                }
                let _ = std::fs::write(
                    self.out.join(format!("{table}.diff.json")),
                    serde_json::to_string_pretty(&d).unwrap_or_default(),
                );
                Some(d)
            }
            Err(e) => {
                eprintln!("  cannot check {table}: {e:#}");
                None
            }
        }
    }

    /// The ideal writer: the case's items, mapped up front, written by the library's writer in
    /// `mode`, one stream per partition in topic order. Items/s (= records/s of the topic).
    async fn ideal(&self, case: &Case, mode: WriteMode) -> anyhow::Result<f64> {
        let name = write_mode_name(mode);
        let table = format!("bench-{}-{}-ideal-{name}", self.stamp, case.label);
        let (_, cfg) = self.config(
            &format!("{}-ideal-{name}", case.label),
            &case.topic,
            &table,
            "unused",
            "conditional",
            "",
        )?;
        let mut sink = cfg.sink.clone();
        sink.write_mode = mode;
        let mapping = Mapping::new(&cfg.tables, &sink).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        self.create_table(&mapping, &table).await?;
        let mut streams: BTreeMap<i32, Vec<ItemWrite>> = BTreeMap::new();
        let mut unmapped = 0usize;
        for (r, _) in case.workload.emitted() {
            let ws = match cdc::decode(Some(r.payload.as_bytes()), Format::Dms) {
                Ok(Decoded::Change(ev)) => match mapping.map(&ev) {
                    Ok(Mapped::Writes(ws)) => ws,
                    _ => {
                        unmapped += 1;
                        continue;
                    }
                },
                _ => {
                    unmapped += 1;
                    continue;
                }
            };
            streams.entry(r.partition).or_default().extend(ws);
        }
        if unmapped > 0 {
            eprintln!("  ideal {name}: {unmapped} records decode or map to no write");
        }
        let batch = sink.max_batch_records.max(1);
        let writer = Writer::new(
            SdkApi {
                client: self.client.clone(),
            },
            sink,
        );
        let t = Instant::now();
        let tasks: Vec<_> = streams
            .into_values()
            .map(|mut ws| {
                let w = writer.clone();
                tokio::spawn(async move {
                    while !ws.is_empty() {
                        let rest = ws.split_off(ws.len().min(batch));
                        w.write(std::mem::replace(&mut ws, rest)).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        writer.finish_deferred().await?;
        let rate = case.records() as f64 / t.elapsed().as_secs_f64();
        let diff = self.check(case, &cfg, &table).await;
        let exact = diff.as_ref().is_some_and(|d| d.differences() == 0);
        eprintln!(
            "  ideal {name}: {rate:.0} items/s{}",
            if exact { ", exact" } else { ", NOT exact" }
        );
        Ok(rate)
    }

    fn spawn(&self, cfg: &Path, args: &[&str], name: &str) -> anyhow::Result<std::process::Child> {
        let log = std::fs::File::create(self.out.join(format!("{name}.log")))?;
        Ok(Command::new(&self.bin)
            .arg("--config")
            .arg(cfg)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(
                self.out.join(format!("{name}.stdout")),
            )?))
            .stderr(Stdio::from(log))
            .spawn()?)
    }

    /// Whether `group` has committed the end of every partition of the case's topic.
    async fn committed_all(&self, case: &Case, group: &str) -> bool {
        let (b, g, t, n) = (
            self.brokers.clone(),
            group.to_string(),
            case.topic.clone(),
            case.end.len() as i32,
        );
        let c = tokio::task::spawn_blocking(move || committed(&b, &g, &t, n))
            .await
            .unwrap_or_default();
        case.end
            .iter()
            .enumerate()
            .all(|(p, e)| c.get(&(p as i32)).copied().unwrap_or(0) >= *e)
    }

    async fn row(&mut self, case: &mut Case, mode: Mode) -> anyhow::Result<Row> {
        let wm = write_mode_name(mode.write);
        if !case.ideal.contains_key(wm) {
            let r = self.ideal(case, mode.write).await?;
            case.ideal.insert(wm, r);
        }
        let name = format!("{}-{}", case.label, mode.name);
        let table = format!("bench-{}-{name}", self.stamp);
        let group = table.clone();
        let listen = self.listen();
        let (rate, cpu, writes, rss, exit, cfg) = if mode.replay {
            let base = format!("bench-{}-base", self.stamp);
            let (path, cfg) = self.config(&name, &case.topic, &base, &group, "conditional", "")?;
            let mut args = vec![
                "replay",
                "--from",
                "earliest",
                "--target-table",
                &table,
                "--create-table",
                "--json",
                "--write-mode",
                wm,
            ];
            if !self.idle_timeout.is_empty() {
                args.extend(["--idle-timeout", self.idle_timeout.as_str()]);
            }
            let (rate, cpu, rss, exit) = self.replay(case, &path, &args, &name).await?;
            let mut stdout = String::new();
            std::fs::File::open(self.out.join(format!("{name}.stdout")))?
                .read_to_string(&mut stdout)?;
            let s: serde_json::Value = stdout
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok())
                .unwrap_or_default();
            let n = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
            let writes = match mode.write {
                WriteMode::Conditional => n(&s["applied"]) + n(&s["stale"]),
                WriteMode::Batch => n(&s["applied"]),
                WriteMode::Rebuild => n(&s["applied"]) + n(&s["key_moves"]["writes"]),
            };
            eprintln!("  {name}: summary {s}");
            if n(&s["records"]) < case.records() as f64 {
                eprintln!(
                    "  {name}: the replay read {} of {} records (ended a partition early?)",
                    s["records"],
                    case.records()
                );
            }
            (rate, cpu, writes, rss, exit, cfg)
        } else {
            let (path, cfg) = self.config(&name, &case.topic, &table, &group, wm, &listen)?;
            self.create_table(&mapping(&cfg)?, &table).await?;
            let (rate, cpu, writes, rss, exit) =
                self.run(case, &path, &group, &listen, &name).await?;
            (rate, cpu, writes, rss, exit, cfg)
        };
        let diff = self.check(case, &cfg, &table).await;
        Ok(Row {
            topic: case.label,
            mode: mode.name,
            records: case.records(),
            rate,
            ideal: case.ideal[wm],
            cpu,
            writes,
            rss,
            diff,
            exit,
            must_be_exact: mode.write != WriteMode::Batch,
        })
    }

    /// `cutover replay`: records/s over the process, CPU, peak RSS, exit code.
    async fn replay(
        &self,
        case: &Case,
        path: &Path,
        args: &[&str],
        name: &str,
    ) -> anyhow::Result<(f64, f64, f64, Option<i32>)> {
        let started = Instant::now();
        let mut child = self.spawn(path, args, name)?;
        let pid = child.id();
        let mut rss = 0.0f64;
        // Not try_wait: that reaps it, and its CPU times go with it.
        while !is_zombie(pid) {
            rss = rss.max(peak_rss_mb(pid));
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(3600),
                "{name}: replay did not end within an hour"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid, self.ticks);
        let exit = child.wait()?.code();
        Ok((case.records() as f64 / seconds, cpu, rss, exit))
    }

    /// `cutover run` with a fresh group until it committed every partition's end: records/s
    /// from its first write, CPU, item writes, peak RSS, exit code after SIGTERM.
    async fn run(
        &self,
        case: &Case,
        path: &Path,
        group: &str,
        listen: &str,
        name: &str,
    ) -> anyhow::Result<(f64, f64, f64, f64, Option<i32>)> {
        let mut child = self.spawn(path, &["run"], name)?;
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(3600);
        let mut first = None;
        let done = loop {
            if let Some(s) = child.try_wait()? {
                anyhow::bail!("{name}: cutover run exited early ({s}; see {name}.log)");
            }
            anyhow::ensure!(Instant::now() < deadline, "{name}: did not reach the end");
            if first.is_none() && metric(listen, "cutover_items_written_total") > 0.0 {
                first = Some(Instant::now());
            }
            if first.is_some() && self.committed_all(case, group).await {
                break Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let cpu = cpu_seconds(pid, self.ticks);
        let rss = peak_rss_mb(pid);
        let writes = metric(listen, "cutover_items_written_total");
        signal(pid, "TERM");
        let exit = child.wait()?.code();
        let first = first.expect("first write");
        let rate = case.records() as f64 / done.duration_since(first).as_secs_f64();
        Ok((rate, cpu, writes, rss, exit))
    }
}

fn mapping(cfg: &Config) -> anyhow::Result<Mapping> {
    Mapping::new(&cfg.tables, &cfg.sink).map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// Generate `params`' workload and produce it to a new topic.
async fn case(bench: &Bench, label: &'static str, params: Params) -> anyhow::Result<Case> {
    let t = Instant::now();
    let partitions = params.partitions;
    let workload = workload::generate(params);
    workload.export(&bench.out.join(label))?;
    let s = &workload.stats;
    let topic = format!(
        "bench-{}-{label}-n{}-t{}",
        bench.stamp, s.records, workload.params.start_secs
    );
    support::create_topic_and_dlq(&bench.brokers, &topic, partitions).await?;
    workload::produce(&bench.brokers, &topic, &workload).await?;
    eprintln!(
        "{label}: {} records ({} re-delivered, {:?}, {} PK moves across partitions, {} keys with '#') on {partitions} partitions → {topic} in {:.1}s",
        s.records,
        s.redelivered,
        s.by_kind,
        s.cross_partition_moves,
        s.keys_with_separator,
        t.elapsed().as_secs_f64()
    );
    let end = workload.end_offsets();
    Ok(Case {
        label,
        workload,
        topic,
        end,
        ideal: HashMap::new(),
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let records: usize = arg("--records", "100000").parse()?;
    let partitions: i32 = arg("--partitions", "12").parse()?;
    let seed: u64 = arg("--seed", "1").parse()?;
    let modes = parse_modes(&arg(
        "--modes",
        "run-conditional,run-batch,replay-rebuild,replay-batch,replay-conditional",
    ))?;
    let hot_records: usize = arg("--hotkeys-records", "88000").parse()?;
    let hot_modes = parse_modes(&arg("--hotkeys-modes", "replay-conditional"))?;
    let bin = PathBuf::from(arg("--bin", "target/release/cutover"));
    let ddb_dir = PathBuf::from(arg("--ddb-dir", ""));
    let stamp = chrono::Utc::now().format("%m%d%H%M%S").to_string();
    let out = PathBuf::from(arg("--out", &format!("target/bench-e2e/{stamp}")));
    let brokers =
        std::env::var("CUTOVER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
    ] {
        if std::env::var(k).is_err() {
            std::env::set_var(k, v);
        }
    }
    anyhow::ensure!(bin.is_file(), "no cutover binary at {}", bin.display());
    std::fs::create_dir_all(&out)?;
    let ddb = PrivateDynamo::start(&ddb_dir, &out.join("dynamodb.log"))?;
    let client = cutover::sink::dynamo::client(&cutover::sink::DynamoConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(format!("http://127.0.0.1:{}", ddb.port)),
        profile: None,
    })
    .await;
    let ready_by = Instant::now() + Duration::from_secs(120);
    while client.list_tables().send().await.is_err() {
        anyhow::ensure!(
            Instant::now() < ready_by,
            "private DynamoDB Local did not start"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut bench = Bench {
        bin,
        out: out.clone(),
        brokers,
        stamp,
        ddb,
        client,
        ticks: clock_ticks(),
        listen_port: 19_900 + (std::process::id() % 90) as u16 * 10,
        idle_timeout: arg("--idle-timeout", ""),
    };
    // Commit times near now, so tombstones (commit + 7 days) do not expire during the bench.
    let start_secs = chrono::Utc::now().timestamp() / 3600 * 3600 - 3600;
    let mut cases = vec![(
        case(
            &bench,
            "hostile",
            Params {
                seed,
                records,
                partitions,
                start_secs,
                ..Params::default()
            },
        )
        .await?,
        modes,
    )];
    if hot_records > 0 && !hot_modes.is_empty() {
        let params = Params {
            start_secs,
            ..Params::hot_keys(seed, hot_records, partitions, 10)
        };
        cases.push((case(&bench, "hotkeys", params).await?, hot_modes));
    }
    let load_before = uptime();
    let mut rows = Vec::new();
    for (case, modes) in &mut cases {
        for &mode in modes.iter() {
            eprintln!("{} {} ...", case.label, mode.name);
            match bench.row(case, mode).await {
                Ok(row) => {
                    eprintln!("{}", row.line());
                    rows.push(row);
                }
                Err(e) => {
                    eprintln!("  {} {}: bench error: {e:#}", case.label, mode.name);
                    rows.push(Row {
                        topic: case.label,
                        mode: mode.name,
                        records: case.records(),
                        rate: 0.0,
                        ideal: 0.0,
                        cpu: 0.0,
                        writes: 0.0,
                        rss: 0.0,
                        diff: None,
                        exit: None,
                        must_be_exact: true,
                    });
                }
            }
        }
    }
    println!("| topic | mode | records | records/s | ideal items/s | ÷ ideal | CPU s / 100k records | writes/record | peak RSS | exact? |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("{}", r.line());
    }
    let rate = |m: &str| {
        rows.iter()
            .find(|r| r.topic == "hostile" && r.mode == m)
            .map(|r| (r.rate, r.exact()))
    };
    if let (Some((rebuild, exact)), Some((batch, _))) =
        (rate("replay-rebuild"), rate("replay-batch"))
    {
        println!(
            "\nreplay-rebuild ÷ replay-batch records/s: {:.2} (issue 12.2: ≥ 0.8, exact: {})",
            rebuild / batch,
            if exact { "yes" } else { "NO" }
        );
    }
    println!(
        "machine: {} cores; load before: {load_before}; after: {}; logs, configs, diffs: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        uptime(),
        out.display()
    );
    let failed = rows.iter().any(Row::failed);
    drop(bench); // stops the private DynamoDB Local
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// The load averages from /proc/loadavg.
fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
