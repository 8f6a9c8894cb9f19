//! `cutover replay`: re-read a topic from an offset or a time and rebuild a table, into the
//! configured target or a new one (`--target-table`, optionally created from the mapping).
//!
//! It assigns partitions manually under a throw-away group id and never commits, so the live
//! group's offsets are untouched. It ends by itself: at `--until <time>` (the first record
//! past it, per partition), or at the end of each partition (`--until end`: librdkafka's
//! partition-EOF event, or `--idle-timeout` without records, since some brokers report
//! watermarks late). Lag shown on the progress bars is best-effort.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::app::Config;
use crate::consumer::{WorkerSettings, Workers};
use crate::kafka::{EofContext, Record};
use crate::mapping::Mapping;
use crate::pipeline::{BatchStats, Pipeline, Selection};
use crate::sink::WriteMode;
use crate::sink::{SdkApi, Writer};

/// Where to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayFrom {
    Earliest,
    /// `partition:offset,...`; partitions not listed are not replayed.
    Offsets(Vec<(i32, i64)>),
    Time(DateTime<Utc>),
}

/// Where to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayUntil {
    End,
    Time(DateTime<Utc>),
}

impl std::str::FromStr for ReplayFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "earliest" || s == "beginning" {
            return Ok(ReplayFrom::Earliest);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(ReplayFrom::Time(t.with_timezone(&Utc)));
        }
        let mut out = Vec::new();
        for part in s.split(',') {
            let (p, o) = part.split_once(':').ok_or_else(|| {
                format!(
                    "--from {s:?}: expected earliest, an RFC 3339 time, or partition:offset,..."
                )
            })?;
            let p: i32 = p
                .trim()
                .parse()
                .map_err(|_| format!("--from: bad partition {p:?}"))?;
            let o: i64 = o
                .trim()
                .parse()
                .map_err(|_| format!("--from: bad offset {o:?}"))?;
            if p < 0 || o < 0 {
                return Err(format!("--from: negative partition or offset in {part:?}"));
            }
            out.push((p, o));
        }
        Ok(ReplayFrom::Offsets(out))
    }
}

impl std::str::FromStr for ReplayUntil {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "end" {
            return Ok(ReplayUntil::End);
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| ReplayUntil::Time(t.with_timezone(&Utc)))
            .map_err(|_| format!("--until {s:?}: expected end or an RFC 3339 time"))
    }
}

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub from: ReplayFrom,
    pub until: ReplayUntil,
    /// Source tables to replay (`schema.table`); all mapped tables when empty.
    pub tables: Vec<String>,
    pub target_table: Option<String>,
    pub create_table: bool,
    pub write_mode: Option<WriteMode>,
    pub idle_timeout: Duration,
    pub progress: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplaySummary {
    pub records: usize,
    pub changes: usize,
    pub applied: usize,
    pub stale: usize,
    pub skipped: usize,
    pub dead_lettered: usize,
    pub partitions: usize,
}

impl ReplaySummary {
    fn add(&mut self, s: &BatchStats) {
        self.records += s.records;
        self.changes += s.changes;
        self.applied += s.applied;
        self.stale += s.stale;
        self.skipped += s.skipped;
        self.dead_lettered += s.dead_lettered;
    }
}

pub async fn replay(
    cfg: Config,
    opts: ReplayOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<ReplaySummary> {
    let mapping = Arc::new(
        Mapping::new(&cfg.tables, &cfg.sink)
            .map_err(|e| anyhow::anyhow!(crate::config::ConfigErrors(e)))?,
    );
    let mapped_sources: HashSet<String> = cfg.tables.iter().map(|t| t.source.clone()).collect();
    for t in &opts.tables {
        if !mapped_sources.contains(t) {
            anyhow::bail!("--table {t}: no [[table]] block maps it");
        }
    }
    let selected: Vec<&crate::mapping::TableConfig> = cfg
        .tables
        .iter()
        .filter(|t| opts.tables.is_empty() || opts.tables.contains(&t.source))
        .collect();
    let client = crate::sink::dynamo::client(&cfg.dynamodb).await;
    let mut selection = Selection {
        sources: (!opts.tables.is_empty()).then(|| opts.tables.iter().cloned().collect()),
        target_table: None,
    };
    let targets: HashSet<&str> = selected.iter().map(|t| t.target.as_str()).collect();
    let write_targets: Vec<String> = match &opts.target_table {
        Some(new) => {
            if targets.len() != 1 {
                anyhow::bail!(
                    "--target-table needs the replayed tables to share one target; they map to {targets:?} (pick with --table)"
                );
            }
            let spec = &mapping.targets()[*targets.iter().next().expect("one")];
            if opts.create_table && crate::tables::create(&client, spec, new).await? {
                tracing::info!(table = %new, "created target table");
            }
            selection.target_table = Some(Arc::from(new.as_str()));
            vec![new.clone()]
        }
        None => targets.iter().map(|t| t.to_string()).collect(),
    };
    crate::tables::check_exist(&client, write_targets.iter()).await?;
    let mut sink = cfg.sink.clone();
    if let Some(mode) = opts.write_mode {
        sink.write_mode = mode;
        if mode == WriteMode::Batch && selected.iter().any(|t| t.merge) {
            anyhow::bail!("--write-mode batch cannot replay merge-mode tables");
        }
    }
    let pipeline = Arc::new(Pipeline::new(
        mapping,
        Writer::new(SdkApi { client }, sink.clone()),
        crate::kafka::dlq::DeadLetters::new(&cfg.kafka)?,
        Arc::new(cfg.kafka.clone()),
        cfg.run.unmapped,
        selection,
    ));
    let mut total = ReplaySummary::default();
    for topic in &cfg.kafka.topics {
        let s = replay_topic(&cfg, &opts, topic, pipeline.clone(), &shutdown).await?;
        total.records += s.records;
        total.changes += s.changes;
        total.applied += s.applied;
        total.stale += s.stale;
        total.skipped += s.skipped;
        total.dead_lettered += s.dead_lettered;
        total.partitions += s.partitions;
    }
    Ok(total)
}

async fn replay_topic(
    cfg: &Config,
    opts: &ReplayOptions,
    topic: &str,
    pipeline: Arc<Pipeline<SdkApi>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<ReplaySummary> {
    let group = format!(
        "{}-replay-{}-{}",
        cfg.kafka.group_id,
        std::process::id(),
        Utc::now().timestamp_millis()
    );
    let mut cc = crate::kafka::consumer_config(&cfg.kafka, &group);
    cc.set("enable.auto.commit", "false");
    cc.set("enable.partition.eof", "true");
    let consumer: StreamConsumer<EofContext> = cc
        .create_with_context(EofContext)
        .map_err(|e| anyhow::anyhow!("cannot create the Kafka consumer: {e}"))?;
    let timeout = Duration::from_secs(10);
    let meta = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| anyhow::anyhow!("cannot read metadata of topic {topic}: {e}"))?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        anyhow::bail!("topic {topic} has no partitions (does it exist?)");
    }
    let mut tpl = TopicPartitionList::new();
    match &opts.from {
        ReplayFrom::Earliest => {
            for p in &partitions {
                tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
            }
        }
        ReplayFrom::Offsets(list) => {
            for (p, o) in list {
                if !partitions.contains(p) {
                    anyhow::bail!("--from: topic {topic} has no partition {p}");
                }
                tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
            }
        }
        ReplayFrom::Time(t) => {
            let mut q = TopicPartitionList::new();
            for p in &partitions {
                q.add_partition_offset(topic, *p, Offset::Offset(t.timestamp_millis()))?;
            }
            let found = consumer
                .offsets_for_times(q, timeout)
                .map_err(|e| anyhow::anyhow!("cannot look up offsets for {t}: {e}"))?;
            for e in found.elements() {
                // End (-1): nothing at or after that time in this partition.
                if let Offset::Offset(o) = e.offset() {
                    if o >= 0 {
                        tpl.add_partition_offset(topic, e.partition(), Offset::Offset(o))?;
                    }
                }
            }
        }
    }
    let assigned: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    let mut summary = ReplaySummary {
        partitions: assigned.len(),
        ..Default::default()
    };
    if assigned.is_empty() {
        tracing::info!(topic, "nothing to replay");
        return Ok(summary);
    }
    consumer.assign(&tpl)?;

    let multi = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{prefix:>12} {spinner} {pos:>9} records {msg}")
        .expect("static template");
    let mut bars = HashMap::new();
    let mut high = HashMap::new();
    for p in &assigned {
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(style.clone());
        bar.set_prefix(format!("{topic}[{p}]"));
        bars.insert(*p, bar);
        if let Ok((_, h)) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(5)) {
            high.insert(*p, h);
        }
    }
    let bars = Arc::new(bars);
    let high = Arc::new(high);
    let totals = Arc::new(Mutex::new(ReplaySummary::default()));
    let (b, h, t) = (bars.clone(), high.clone(), totals.clone());
    let cancel = shutdown.child_token();
    let workers = Workers::new(
        pipeline,
        WorkerSettings {
            queue: cfg.run.queue_per_partition,
            max_batch: cfg.sink.max_batch_records,
            window: cfg.sink.batch_window,
        },
        Arc::new(move |_topic, partition, last, stats| {
            t.lock().expect("totals").add(stats);
            if let Some(bar) = b.get(&partition) {
                bar.inc(stats.records as u64);
                if let Some(hw) = h.get(&partition) {
                    bar.set_message(format!("lag ~{}", (hw - last - 1).max(0)));
                }
            }
        }),
        cancel.clone(),
    );

    let mut done: HashSet<i32> = HashSet::new();
    let mut last_seen: HashMap<i32, Instant> =
        assigned.iter().map(|p| (*p, Instant::now())).collect();
    let until_ms = match &opts.until {
        ReplayUntil::Time(t) => Some(t.timestamp_millis()),
        ReplayUntil::End => None,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while done.len() < assigned.len() {
        let mut end_partition = None;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                for p in &assigned {
                    if !done.contains(p) && last_seen[p].elapsed() >= opts.idle_timeout {
                        tracing::debug!(topic, partition = p, "idle: treating as the end");
                        end_partition = Some(*p);
                        break;
                    }
                }
            }
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    let p = rdkafka::Message::partition(&m);
                    if done.contains(&p) {
                        continue;
                    }
                    last_seen.insert(p, Instant::now());
                    let ts = rdkafka::Message::timestamp(&m).to_millis();
                    if let (Some(until), Some(ts)) = (until_ms, ts) {
                        if ts > until {
                            end_partition = Some(p);
                        }
                    }
                    if end_partition.is_none() {
                        let rec = Record::from_message(&m);
                        drop(m);
                        workers.dispatch(rec).await;
                    }
                }
                Err(KafkaError::PartitionEOF(p)) => end_partition = Some(p),
                Err(e) => tracing::warn!(error = %e, "Kafka consumer error"),
            },
        }
        if let Some(p) = end_partition {
            if done.insert(p) {
                workers.close(|_, wp| wp == p);
                if let Some(bar) = bars.get(&p) {
                    bar.finish_with_message("done");
                }
            }
        }
    }
    workers.close(|_, _| true);
    workers.wait_all().await;
    if let Some(e) = workers.fatal() {
        return Err(anyhow::anyhow!(e));
    }
    if shutdown.is_cancelled() {
        anyhow::bail!("replay interrupted");
    }
    let t = totals.lock().expect("totals").clone();
    summary.records = t.records;
    summary.changes = t.changes;
    summary.applied = t.applied;
    summary.stale = t.stale;
    summary.skipped = t.skipped;
    summary.dead_lettered = t.dead_lettered;
    Ok(summary)
}
