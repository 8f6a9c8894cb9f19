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

use crate::consumer::Workers;
use crate::error::{Classify, Disposition, FatalError};
use crate::kafka::{EofContext, Record};
use crate::mapping::{TableConfig, TargetSpec};
use crate::pipeline::{BatchStats, Pipeline, Selection};
use crate::run::{self, kafka_error, RunError};
use crate::sink::{DeferredSummary, DeleteMode, SdkApi, WriteMode};
use crate::tables::TablesError;

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
    #[serde(flatten)]
    pub stats: BatchStats,
    pub partitions: usize,
    /// `--write-mode rebuild`: the key-move writes applied after every partition ended.
    pub deferred: DeferredSummary,
}

/// A table a replay writes into instead of the mapping's target (`--target-table`).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTable {
    pub name: String,
    /// The key schema, GSIs and TTL it is created with (`--create-table`).
    pub spec: TargetSpec,
    pub create: bool,
}

/// What a replay runs with. Built by [`Settings::new`], which makes every check that needs no
/// I/O, so a refused replay has touched nothing (no table created, no topic read).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The stream's sections, with `sink.write_mode` as the replay writes.
    pub stream: run::Settings,
    pub from: ReplayFrom,
    pub until: ReplayUntil,
    /// Only records of these sources; every mapped source when `None`.
    pub sources: Option<HashSet<String>>,
    pub target_table: Option<TargetTable>,
    /// Every table written, checked to exist before any record is read.
    pub write_targets: Vec<String>,
    pub idle_timeout: Duration,
    pub progress: bool,
}

impl Settings {
    /// Check `opts` against the mapping (`tables` are its blocks) and the stream; pure.
    pub fn new(
        mut stream: run::Settings,
        tables: &[TableConfig],
        opts: ReplayOptions,
    ) -> Result<Settings, ReplayError> {
        let refuse = |m: String| Err(ReplayError::Refused(m));
        for t in &opts.tables {
            if !tables.iter().any(|b| &b.source == t) {
                return refuse(format!("--table {t}: no [[table]] block maps it"));
            }
        }
        let selected: Vec<&TableConfig> = tables
            .iter()
            .filter(|t| opts.tables.is_empty() || opts.tables.contains(&t.source))
            .collect();
        if let Some(mode) = opts.write_mode {
            let name = match mode {
                WriteMode::Conditional => "conditional",
                WriteMode::Batch => "batch",
                WriteMode::Rebuild => "rebuild",
            };
            if mode != WriteMode::Conditional && selected.iter().any(|t| t.merge) {
                return refuse(format!(
                    "--write-mode {name} cannot replay merge-mode tables (use conditional)"
                ));
            }
            if mode == WriteMode::Rebuild {
                if !(opts.target_table.is_some() && opts.create_table) {
                    return refuse(
                        "--write-mode rebuild writes only into a table this replay creates: \
                         add --target-table NEW --create-table"
                            .into(),
                    );
                }
                if stream.sink.delete_mode == DeleteMode::Hard {
                    return refuse(
                        "--write-mode rebuild needs tombstones (sink.delete_mode = \"tombstone\"): \
                         a hard delete leaves no version for a re-delivered older record to lose to"
                            .into(),
                    );
                }
            }
            stream.sink.write_mode = mode;
        }
        let targets: HashSet<&str> = selected.iter().map(|t| t.target.as_str()).collect();
        let target_table = match opts.target_table {
            Some(name) => {
                let [target] = targets.iter().collect::<Vec<_>>()[..] else {
                    return refuse(format!(
                        "--target-table needs the replayed tables to share one target; they map to {targets:?} (pick with --table)"
                    ));
                };
                let spec = stream.mapping.targets()[*target].clone();
                Some(TargetTable {
                    name,
                    spec,
                    create: opts.create_table,
                })
            }
            None => None,
        };
        let write_targets = match &target_table {
            Some(t) => vec![t.name.clone()],
            None => targets.iter().map(|t| t.to_string()).collect(),
        };
        Ok(Settings {
            stream,
            from: opts.from,
            until: opts.until,
            sources: (!opts.tables.is_empty()).then(|| opts.tables.into_iter().collect()),
            target_table,
            write_targets,
            idle_timeout: opts.idle_timeout,
            progress: opts.progress,
        })
    }
}

/// Why a replay stopped or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The options don't fit the mapping: nothing was read or written.
    #[error("{0}")]
    Refused(String),
    /// The target tables are missing or can't be created.
    #[error(transparent)]
    Tables(#[from] TablesError),
    /// A topic, partition or time the broker can't serve.
    #[error("{0}")]
    Topic(String),
    #[error(transparent)]
    Stream(#[from] RunError),
    #[error("replay interrupted")]
    Interrupted,
}

impl Classify for ReplayError {
    fn disposition(&self) -> Disposition {
        match self {
            ReplayError::Tables(e) => e.disposition(),
            ReplayError::Stream(e) => e.disposition(),
            ReplayError::Refused(_) | ReplayError::Topic(_) | ReplayError::Interrupted => {
                Disposition::Fatal
            }
        }
    }
}

impl From<FatalError> for ReplayError {
    fn from(e: FatalError) -> Self {
        ReplayError::Stream(e.into())
    }
}

impl From<KafkaError> for ReplayError {
    fn from(source: KafkaError) -> Self {
        ReplayError::Stream(RunError::Kafka {
            what: "Kafka".into(),
            source,
        })
    }
}

pub async fn replay(
    cfg: Settings,
    shutdown: CancellationToken,
) -> Result<ReplaySummary, ReplayError> {
    let client = crate::sink::dynamo::client(&cfg.stream.dynamodb).await;
    let mut selection = Selection {
        sources: cfg.sources.clone(),
        target_table: None,
    };
    if let Some(t) = &cfg.target_table {
        if t.create && crate::tables::create(&client, &t.spec, &t.name).await? {
            tracing::info!(table = %t.name, "created target table");
        }
        selection.target_table = Some(Arc::from(t.name.as_str()));
    }
    let checks: Vec<(&str, &crate::mapping::TargetSpec)> = match &cfg.target_table {
        Some(t) => vec![(t.name.as_str(), &t.spec)],
        None => cfg
            .write_targets
            .iter()
            .filter_map(|n| Some((n.as_str(), cfg.stream.mapping.targets().get(n)?)))
            .collect(),
    };
    crate::tables::check_tables(&client, checks).await?;
    let pipeline = Arc::new(cfg.stream.pipeline(client, selection)?);
    let mut total = ReplaySummary::default();
    for topic in &cfg.stream.kafka.topics {
        let s = replay_topic(&cfg, topic, pipeline.clone(), &shutdown).await?;
        total.stats += s.stats;
        total.partitions += s.partitions;
    }
    // Every partition has ended: rebuild mode's held-back key moves go last, guarded.
    total.deferred = pipeline.writer().finish_deferred().await?;
    Ok(total)
}

async fn replay_topic(
    opts: &Settings,
    topic: &str,
    pipeline: Arc<Pipeline<SdkApi>>,
    shutdown: &CancellationToken,
) -> Result<ReplaySummary, ReplayError> {
    let cfg = &opts.stream;
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
        .map_err(kafka_error("cannot create the Kafka consumer"))?;
    let timeout = Duration::from_secs(10);
    let meta = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka_error(format!(
            "cannot read metadata of topic {topic}"
        )))?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ReplayError::Topic(format!(
            "topic {topic} has no partitions (does it exist?)"
        )));
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
                    return Err(ReplayError::Topic(format!(
                        "--from: topic {topic} has no partition {p}"
                    )));
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
                .map_err(kafka_error(format!("cannot look up offsets for {t}")))?;
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
    let totals = Arc::new(Mutex::new(BatchStats::default()));
    let (b, h, t) = (bars.clone(), high.clone(), totals.clone());
    let cancel = shutdown.child_token();
    let workers = Workers::new(
        pipeline,
        cfg.workers(),
        Arc::new(move |_topic, partition, last, stats| {
            *t.lock().expect("totals") += *stats;
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
        return Err(e.into());
    }
    if shutdown.is_cancelled() {
        return Err(ReplayError::Interrupted);
    }
    summary.stats = *totals.lock().expect("totals");
    Ok(summary)
}
