//! The standing end-to-end soak of issue 10 (run by hand, not in `scripts/test`).
//!
//! Generates a realistic AWS DMS topic (`support/workload.rs`: ≥150k records on 12 partitions,
//! multi-row transactions, binlog rotation, before-images, primary-key moves, re-delivery,
//! hostile values), keeps the final rows as truth, and proves that each scenario ends with
//! every DynamoDB item equal to the truth (tombstones count as absent):
//!
//! - `kill`: `cutover run` SIGKILLed at ≥10 random moments (restarted after each), until the
//!   group has committed the end of every partition;
//! - `replay`: `cutover replay --from earliest --target-table <new> --create-table`;
//! - `freeze`: the same replay with DynamoDB frozen (SIGSTOP/SIGCONT) for 30 s in the middle;
//! - `replay-idle2s`: the replay with `--idle-timeout 2s` (not in the default set);
//! - `drain-conditional`, `drain-batch`: `cutover run` draining the topic with a fresh group,
//!   reporting records/s and the process's CPU (user+sys from /proc) per record; batch mode is
//!   inexact by design, so its differences are reported but do not fail the soak.
//!
//! DynamoDB is a private DynamoDB Local started here on its own port (freezing the shared one
//! would stall everyone); Kafka is the shared broker (`CUTOVER_KAFKA_BROKERS`).
//! One line per scenario; the exit code is 1 if any scenario differs from the truth or its
//! command failed.
//!
//!     scripts/soak                                    # builds release, runs this
//!     scripts/soak --records 150000 --partitions 12 --seed 1 --kills 10 --freeze 30 [--freeze-at 40] \
//!         --scenarios kill,replay,freeze [--topic <existing soak topic of the same seed/size>] \
//!         [--perf-out perf.data --perf-delay 10 --perf-seconds 20 --perf-call-graph dwarf]
//!     scripts/soak --grep '48655' ...   # print the generated records containing a text
//!     scripts/soak --shape hotkeys --changes-per-key 10 --records 88000 \
//!         --scenarios drain-conditional,replay   # issue 12.4's backlog (item writes/record)

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cutover::mapping::Mapping;
use cutover::Config;
use private_dynamo::{clock_ticks, cpu_seconds, signal, PrivateDynamo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{arg, committed, metric, peak_rss_mb};
use workload::{Params, Workload};

#[path = "support/private_dynamo.rs"]
mod private_dynamo;
#[path = "support/mod.rs"]
mod support;
#[path = "support/workload.rs"]
mod workload;

/// One scenario's result line.
struct Outcome {
    name: String,
    records: usize,
    diff: Option<workload::Diff>,
    seconds: f64,
    exit: Option<i32>,
    /// Does this scenario have to match the truth?
    must_be_exact: bool,
    /// The scenario did not happen as it says (a freeze after the replay ended): a failure.
    untested: bool,
    note: String,
}

impl Outcome {
    fn failed(&self) -> bool {
        self.untested
            || self.must_be_exact
                && (self.exit != Some(0) || self.diff.as_ref().is_none_or(|d| d.differences() > 0))
    }

    fn line(&self) -> String {
        let d = match &self.diff {
            Some(d) => format!(
                "items={} expected={} missing={} extra={} different={}",
                d.items, d.expected, d.missing, d.extra, d.different
            ),
            None => "items=? (table not readable)".into(),
        };
        format!(
            "{:<18} records={} {d} seconds={:.1} exit={} {}{}",
            self.name,
            self.records,
            self.seconds,
            self.exit.map_or("none".into(), |c| c.to_string()),
            if self.failed() {
                "FAIL"
            } else if self.must_be_exact {
                "ok"
            } else {
                "(informational)"
            },
            if self.note.is_empty() {
                String::new()
            } else {
                format!(" | {}", self.note)
            }
        )
    }
}

struct Soak {
    bin: PathBuf,
    out: PathBuf,
    brokers: String,
    topic: String,
    stamp: String,
    ddb: PrivateDynamo,
    client: aws_sdk_dynamodb::Client,
    workload: Workload,
    end: Vec<i64>,
    rng: StdRng,
    ticks: f64,
    listen_port: u16,
}

impl Soak {
    fn config_text(&self, target: &str, group: &str, mode: &str, listen: &str) -> String {
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
            topic = self.topic,
            port = self.ddb.port,
            tables = workload::tables_toml(target),
        )
    }

    /// Write the config for a scenario; returns its path and the parsed config.
    fn config(
        &self,
        name: &str,
        target: &str,
        group: &str,
        mode: &str,
        listen: &str,
    ) -> anyhow::Result<(PathBuf, Config)> {
        let text = self.config_text(target, group, mode, listen);
        let cfg = Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let path = self.out.join(format!("{name}.toml"));
        std::fs::write(&path, text)?;
        Ok((path, cfg))
    }

    fn spawn(&self, cfg: &Path, args: &[&str], name: &str) -> anyhow::Result<Child> {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.out.join(format!("{name}.log")))?;
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

    async fn create_table(&self, cfg: &Config, table: &str) -> anyhow::Result<()> {
        let mapping = mapping(cfg)?;
        let spec = mapping
            .targets()
            .values()
            .next()
            .expect("one target")
            .clone();
        cutover::tables::create(&self.client, &spec, table).await?;
        Ok(())
    }

    async fn check(&self, cfg: &Config, table: &str) -> Option<workload::Diff> {
        let mapping = mapping(cfg).ok()?;
        match workload::check(
            &self.client,
            &mapping,
            &cfg.sink,
            table,
            &self.workload.truth,
        )
        .await
        {
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

    async fn drop_table(&self, table: &str) {
        let _ = self.client.delete_table().table_name(table).send().await;
    }

    /// Whether `group` has committed the end of every partition, and the committed total.
    async fn committed(&self, group: &str) -> (bool, i64) {
        let (b, g, t, n) = (
            self.brokers.clone(),
            group.to_string(),
            self.topic.clone(),
            self.end.len() as i32,
        );
        let c = tokio::task::spawn_blocking(move || committed(&b, &g, &t, n))
            .await
            .unwrap_or_default();
        let done = self
            .end
            .iter()
            .enumerate()
            .all(|(p, e)| c.get(&(p as i32)).copied().unwrap_or(0) >= *e);
        (done, c.values().sum())
    }

    fn listen(&mut self) -> String {
        self.listen_port += 1;
        format!("127.0.0.1:{}", self.listen_port)
    }

    /// (a) `cutover run`, SIGKILLed `kills` times at random moments, then run to the end.
    async fn kill(&mut self, kills: usize) -> anyhow::Result<Outcome> {
        let name = "kill";
        let table = format!("soak-{}-kill", self.stamp);
        let group = format!("soak-{}-kill", self.stamp);
        let listen = self.listen();
        let (path, cfg) = self.config(name, &table, &group, "conditional", &listen)?;
        self.create_table(&cfg, &table).await?;
        let started = Instant::now();
        let mut progress = Vec::new();
        for k in 0..kills {
            let mut child = self.spawn(&path, &["run"], name)?;
            // A random moment while it writes: after its first write (or 60 s), 1–20 s more,
            // so the kills spread over the whole drain.
            let wait_first = Instant::now() + Duration::from_secs(60);
            while Instant::now() < wait_first
                && metric(&listen, "cutover_items_written_total") == 0.0
            {
                if child.try_wait()?.is_some() {
                    anyhow::bail!("cutover run exited by itself (see {name}.log)");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let ms = self.rng.random_range(1_000..20_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            signal(child.id(), "KILL");
            child.wait()?;
            let (_, c) = self.committed(&group).await;
            eprintln!(
                "  kill {}/{kills} after {:.1}s: {c} offsets committed",
                k + 1,
                started.elapsed().as_secs_f64()
            );
            progress.push(c);
        }
        let mut child = self.spawn(&path, &["run"], name)?;
        let deadline = Instant::now() + Duration::from_secs(2400);
        loop {
            if let Some(s) = child.try_wait()? {
                anyhow::bail!("cutover run exited early ({s}; see {name}.log)");
            }
            if self.committed(&group).await.0 {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "cutover run did not reach the end"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        signal(child.id(), "TERM");
        let exit = child.wait()?.code();
        let diff = self.check(&cfg, &table).await;
        self.drop_table(&table).await;
        Ok(Outcome {
            name: name.into(),
            records: self.workload.stats.records,
            diff,
            seconds,
            exit,
            must_be_exact: true,
            untested: false,
            note: format!(
                "{kills} SIGKILLs, committed offsets at each: {progress:?}; exit is the final run's after SIGTERM"
            ),
        })
    }

    /// (b)/(c) `cutover replay --from earliest` into a new table, optionally with DynamoDB
    /// frozen for `freeze` from `freeze_at` after the start.
    async fn replay(
        &mut self,
        name: &str,
        extra: &[&str],
        freeze: Option<(Duration, Duration)>,
    ) -> anyhow::Result<Outcome> {
        let table = format!("soak-{}-{name}", self.stamp);
        let base = format!("soak-{}-base", self.stamp);
        let group = format!("soak-{}-{name}", self.stamp);
        let (path, cfg) = self.config(name, &base, &group, "conditional", "")?;
        let mut args = vec![
            "replay",
            "--from",
            "earliest",
            "--target-table",
            table.as_str(),
            "--create-table",
            "--json",
        ];
        args.extend_from_slice(extra);
        let started = Instant::now();
        let mut child = self.spawn(&path, &args, name)?;
        let mut frozen = String::new();
        let mut untested = false;
        if let Some((at, length)) = freeze {
            let until = started + at;
            while Instant::now() < until && child.try_wait()?.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let still_running = child.try_wait()?.is_none();
            untested = !still_running;
            self.ddb.signal("STOP");
            let t = Instant::now();
            tokio::time::sleep(length).await;
            self.ddb.signal("CONT");
            frozen = format!(
                "DynamoDB frozen {:.1}s from t={:.1}s{}",
                t.elapsed().as_secs_f64(),
                at.as_secs_f64(),
                if still_running {
                    ""
                } else {
                    " (the replay had already exited: not a freeze test; use --freeze-at)"
                }
            );
        }
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(3600),
                "replay did not end within an hour"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let seconds = started.elapsed().as_secs_f64();
        let mut stdout = String::new();
        std::fs::File::open(self.out.join(format!("{name}.stdout")))?
            .read_to_string(&mut stdout)?;
        let summary: Option<serde_json::Value> = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok());
        let diff = self.check(&cfg, &table).await;
        self.drop_table(&table).await;
        let mut note = match &summary {
            Some(s) => format!(
                "summary: records {} changes {} applied {} stale {} skipped {} dead-lettered {} complete {} partitions short {}",
                s["records"],
                s["changes"],
                s["applied"],
                s["stale"],
                s["skipped"],
                s["dead_lettered"],
                s["complete"],
                s["per_partition"].as_array().map_or(0, |ps| ps
                    .iter()
                    .filter(|p| p["ended"] != "end" && p["ended"] != "until")
                    .count())
            ),
            None => "no summary on stdout".into(),
        };
        note.push_str(&format!(
            "; {:.0} records/s",
            self.workload.stats.records as f64 / seconds.max(0.001)
        ));
        if !frozen.is_empty() {
            note.push_str("; ");
            note.push_str(&frozen);
        }
        Ok(Outcome {
            name: name.into(),
            records: self.workload.stats.records,
            diff,
            seconds,
            exit: status.code(),
            // Plain batch mode is not exact on this topic by design (informational).
            must_be_exact: !extra.contains(&"batch"),
            untested,
            note,
        })
    }

    /// `cutover run` draining the topic with a fresh group: records/s from its first write to
    /// the commit of the end, CPU per record, peak RSS; optionally a perf profile.
    async fn drain(&mut self, mode: &str, perf: Option<&PerfOptions>) -> anyhow::Result<Outcome> {
        let name = format!("drain-{mode}");
        let table = format!("soak-{}-{name}", self.stamp);
        let group = format!("soak-{}-{name}", self.stamp);
        let listen = self.listen();
        let (path, cfg) = self.config(&name, &table, &group, mode, &listen)?;
        self.create_table(&cfg, &table).await?;
        let started = Instant::now();
        let mut child = self.spawn(&path, &["run"], &name)?;
        let pid = child.id();
        let mut first = None;
        let mut perf_child: Option<Child> = None;
        let deadline = Instant::now() + Duration::from_secs(2400);
        let done = loop {
            if let Some(s) = child.try_wait()? {
                anyhow::bail!("cutover run exited early ({s}; see {name}.log)");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "cutover run did not reach the end"
            );
            if first.is_none() && metric(&listen, "cutover_items_written_total") > 0.0 {
                first = Some(Instant::now());
            }
            if let (Some(f), Some(p), None) = (first, perf, &perf_child) {
                if f.elapsed() >= p.delay {
                    perf_child = Some(p.attach(pid)?);
                }
            }
            if first.is_some() && self.committed(&group).await.0 {
                break Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let cpu = cpu_seconds(pid, self.ticks);
        let rss = peak_rss_mb(pid);
        let writes = metric(&listen, "cutover_items_written_total");
        if let Some(mut p) = perf_child {
            let _ = p.wait();
        }
        signal(pid, "TERM");
        let exit = child.wait()?.code();
        let records = self.workload.stats.records;
        let first = first.expect("first write");
        let rate = records as f64 / done.duration_since(first).as_secs_f64();
        let diff = self.check(&cfg, &table).await;
        self.drop_table(&table).await;
        Ok(Outcome {
            name,
            records,
            diff,
            seconds: started.elapsed().as_secs_f64(),
            exit,
            must_be_exact: mode == "conditional",
            untested: false,
            note: format!(
                "{rate:.0} records/s (first write → end committed), CPU {cpu:.1}s = {:.1} µs/record (user+sys, whole process), {:.2} item writes/record, peak RSS {rss:.0} MB{}",
                cpu * 1e6 / records as f64,
                writes / records as f64,
                if perf.is_some() { ", under perf" } else { "" }
            ),
        })
    }
}

struct PerfOptions {
    out: PathBuf,
    delay: Duration,
    seconds: u64,
    call_graph: String,
    frequency: u32,
}

impl PerfOptions {
    fn attach(&self, pid: u32) -> anyhow::Result<Child> {
        eprintln!("  perf: recording pid {pid} for {}s", self.seconds);
        Ok(Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F"])
            .arg(self.frequency.to_string())
            .args(["--call-graph", self.call_graph.as_str(), "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&self.out)
            .args(["--", "sleep"])
            .arg(self.seconds.to_string())
            .stdout(Stdio::null())
            .spawn()?)
    }
}

fn mapping(cfg: &Config) -> anyhow::Result<Mapping> {
    Mapping::new(&cfg.tables, &cfg.sink).map_err(|e| anyhow::anyhow!("{e:?}"))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let records: usize = arg("--records", "150000").parse()?;
    let partitions: i32 = arg("--partitions", "12").parse()?;
    let seed: u64 = arg("--seed", "1").parse()?;
    let kills: usize = arg("--kills", "10").parse()?;
    let freeze_secs: u64 = arg("--freeze", "30").parse()?;
    let scenarios = arg("--scenarios", "kill,replay,freeze");
    let bin = PathBuf::from(arg("--bin", "target/release/cutover"));
    let ddb_dir = PathBuf::from(arg("--ddb-dir", ""));
    let stamp = chrono::Utc::now().format("%m%d%H%M%S").to_string();
    let out = PathBuf::from(arg("--out", &format!("target/soak/{stamp}")));
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
    let perf = match arg("--perf-out", "").as_str() {
        "" => None,
        p => Some(PerfOptions {
            out: PathBuf::from(p),
            delay: Duration::from_secs(arg("--perf-delay", "10").parse()?),
            seconds: arg("--perf-seconds", "20").parse()?,
            call_graph: arg("--perf-call-graph", "dwarf,16384"),
            frequency: arg("--perf-frequency", "499").parse()?,
        }),
    };

    // Commit times start near now, so tombstones (commit + 7 days) do not expire during the
    // soak; a reused topic carries its start in its name.
    let reuse = arg("--topic", "");
    let start_secs = match reuse.rsplit_once("-t") {
        Some((_, t)) if !reuse.is_empty() => t.parse()?,
        _ => chrono::Utc::now().timestamp() / 3600 * 3600 - 3600,
    };
    let t = Instant::now();
    let params = match arg("--shape", "realistic").as_str() {
        "realistic" => Params {
            seed,
            records,
            partitions,
            start_secs,
            ..Params::default()
        },
        "hotkeys" => Params {
            start_secs,
            ..Params::hot_keys(
                seed,
                records,
                partitions,
                arg("--changes-per-key", "10").parse()?,
            )
        },
        other => anyhow::bail!("--shape {other:?}: realistic or hotkeys"),
    };
    let workload = workload::generate(params);
    workload.export(&out)?;
    eprintln!(
        "generated {} records ({} unique, {} re-delivered in {} restarts, {} transactions, {} binlog files, {:?}, {} PK moves across partitions, {} keys with '#') → {} rows of truth, in {:.1}s",
        workload.stats.records,
        workload.stats.unique,
        workload.stats.redelivered,
        workload.stats.restarts,
        workload.stats.transactions,
        workload.stats.binlog_files,
        workload.stats.by_kind,
        workload.stats.cross_partition_moves,
        workload.stats.keys_with_separator,
        workload.stats.truth_rows,
        t.elapsed().as_secs_f64()
    );
    // Debugging a difference: print every emitted record whose payload contains the text.
    let grep = arg("--grep", "");
    if !grep.is_empty() {
        let mut offsets = vec![0i64; partitions as usize];
        for (r, redelivered) in workload.emitted() {
            let offset = offsets[r.partition as usize];
            offsets[r.partition as usize] += 1;
            if r.payload.contains(&grep) {
                println!(
                    "partition {} offset {offset} version {} {:?}{} {}",
                    r.partition,
                    r.version,
                    r.kind,
                    if redelivered { " (re-delivered)" } else { "" },
                    r.payload
                );
            }
        }
        return Ok(());
    }
    let ddb = PrivateDynamo::start(&ddb_dir, &out.join("dynamodb.log"))?;
    let topic = match reuse.as_str() {
        "" => {
            let topic = format!(
                "soak-{stamp}-{}-s{seed}-n{records}-t{start_secs}",
                arg("--shape", "realistic")
            );
            support::create_topic_and_dlq(&brokers, &topic, partitions).await?;
            let t = Instant::now();
            workload::produce(&brokers, &topic, &workload).await?;
            eprintln!(
                "produced to {topic} ({partitions} partitions) in {:.1}s",
                t.elapsed().as_secs_f64()
            );
            topic
        }
        existing => {
            eprintln!("reusing topic {existing} (must hold this seed, size and start)");
            existing.to_string()
        }
    };

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
    eprintln!("private DynamoDB Local on port {}", ddb.port);

    let end = workload.end_offsets();
    let mut soak = Soak {
        bin,
        out: out.clone(),
        brokers,
        topic,
        stamp,
        ddb,
        client,
        workload,
        end,
        rng: StdRng::seed_from_u64(seed ^ 0x5eed_50a4),
        ticks: clock_ticks(),
        listen_port: 19_600 + (std::process::id() % 300) as u16,
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut replay_seconds = None;
    for scenario in scenarios
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        eprintln!("scenario {scenario} ...");
        let outcome = match scenario {
            "kill" => soak.kill(kills).await,
            "replay" => soak.replay("replay", &[], None).await,
            "replay-idle2s" => soak.replay("replay-idle2s", &["--idle-timeout", "2s"], None).await,
            // Issue 12.2: the exact rebuild mode against plain batch, in the same run.
            "replay-rebuild" => {
                soak.replay("replay-rebuild", &["--write-mode", "rebuild"], None)
                    .await
            }
            "replay-batch" => soak.replay("replay-batch", &["--write-mode", "batch"], None).await,
            "freeze" => {
                // In the middle of a replay: `--freeze-at`, or half the plain replay's time if
                // it ran (a replay that runs faster than that one may end before it).
                let at = match arg("--freeze-at", "").as_str() {
                    "" => Duration::from_secs_f64(replay_seconds.map_or(20.0, |s: f64| s / 2.0))
                        .max(Duration::from_secs(5)),
                    secs => Duration::from_secs_f64(secs.parse()?),
                };
                soak.replay(
                    "freeze",
                    &[],
                    Some((at, Duration::from_secs(freeze_secs))),
                )
                .await
            }
            "drain-conditional" => soak.drain("conditional", perf.as_ref()).await,
            "drain-batch" => soak.drain("batch", None).await,
            other => anyhow::bail!(
                "unknown scenario {other:?}: kill, replay, freeze, replay-idle2s, replay-rebuild, replay-batch, drain-conditional, drain-batch"
            ),
        };
        let outcome = outcome.unwrap_or_else(|e| Outcome {
            name: scenario.into(),
            records: soak.workload.stats.records,
            diff: None,
            seconds: 0.0,
            exit: None,
            must_be_exact: true,
            untested: false,
            note: format!("soak error: {e:#}"),
        });
        if outcome.name == "replay" {
            replay_seconds = Some(outcome.seconds);
        }
        println!("{}", outcome.line());
        outcomes.push(outcome);
    }
    println!(
        "--- {} (logs, configs, truth: {})",
        soak.topic,
        out.display()
    );
    for o in &outcomes {
        println!("{}", o.line());
    }
    let failed = outcomes.iter().any(Outcome::failed);
    drop(soak); // stops the private DynamoDB Local
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
