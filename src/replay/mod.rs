//! `cutover replay`: re-read a topic from an offset or a time and rebuild a table, into the
//! configured target or a new one (`--target-table`, optionally created from the mapping).
//!
//! It assigns partitions manually under a throw-away group id and never commits, so the live
//! group's offsets are untouched. Completeness is the contract ([`read`] has the details):
//! - before anything is written, each partition's start and end offsets are resolved (the
//!   end is the high watermark at the start; `--from p:o` past it is refused, a failed time
//!   lookup is an error naming the partitions);
//! - a partition ends only at its end offset, confirmed by the end-of-partition event or by
//!   `--idle-timeout` without records *at or past* that offset (some brokers report
//!   watermarks late), or at `--until`. Idle time counts only while the partition is being
//!   fetched: a partition paused because its writer is behind is never idle;
//! - the summary gives each partition's start offset, end offset, the offset it read up to and
//!   the records read; [`ReplaySummary::complete`] is false (and the command exits non-zero)
//!   when a partition ended short.
//!
//! `--write-mode batch` (unconditional writes) goes only into a table this replay created, or
//! with `--force-batch`. Lag shown on the progress bars is best-effort.

mod read;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;

use crate::error::{Classify, Disposition, FatalError};
use crate::mapping::{TableConfig, TargetSpec};
use crate::pipeline::{BatchStats, Selection};
use crate::run::{self, RunError};
use crate::sink::{DeferredSummary, DeleteMode, WriteMode};
use crate::tables::TablesError;

pub use read::{Ended, PartitionReport};

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
    /// Allow `--write-mode batch` into a table this replay did not create.
    pub force_batch: bool,
    pub idle_timeout: Duration,
    pub progress: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplaySummary {
    #[serde(flatten)]
    pub stats: BatchStats,
    /// Partitions replayed.
    pub partitions: usize,
    /// `--write-mode rebuild`: the key-move writes applied after every partition ended.
    pub key_moves: DeferredSummary,
    /// Each partition: start offset, end offset, how far it read, records read, how it ended.
    pub per_partition: Vec<PartitionReport>,
    /// Every partition reached its end offset (or `--until`).
    pub complete: bool,
    /// Mapped source tables no record came from (checked when complete): a `[[table]] source`
    /// spelled differently from the records' `schema.table` skips a whole table.
    pub unseen_sources: Vec<String>,
}

impl ReplaySummary {
    /// The partitions that ended short of their end offset.
    pub fn short(&self) -> impl Iterator<Item = &PartitionReport> {
        self.per_partition
            .iter()
            .filter(|p| !matches!(p.ended, Ended::End | Ended::Until))
    }
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
    /// `--force-batch`: batch mode into a table this replay did not create.
    pub force_batch: bool,
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
        // Unconditional writes would overwrite newer items of a live table.
        let creates = target_table.as_ref().is_some_and(|t| t.create);
        if stream.sink.write_mode == WriteMode::Batch && !creates && !opts.force_batch {
            return refuse(format!(
                "--write-mode batch writes without version checks, so it only goes into a table this replay creates (--target-table <new> --create-table); to write {} anyway, add --force-batch",
                write_targets.join(", ")
            ));
        }
        Ok(Settings {
            stream,
            from: opts.from,
            until: opts.until,
            sources: (!opts.tables.is_empty()).then(|| opts.tables.into_iter().collect()),
            target_table,
            write_targets,
            force_batch: opts.force_batch,
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

/// Replay every topic of the stream. Kafka is read first (partitions, start and end offsets,
/// so a bad `--from` refuses before any table is created), then the target table is created
/// and checked, then the records are replayed.
pub async fn replay(
    cfg: Settings,
    shutdown: CancellationToken,
) -> Result<ReplaySummary, ReplayError> {
    let mut plans = Vec::with_capacity(cfg.stream.kafka.topics.len());
    for topic in &cfg.stream.kafka.topics {
        plans.push(read::plan(&cfg, topic).await?);
    }
    let client = crate::sink::dynamo::client(&cfg.stream.dynamodb).await;
    let mut selection = Selection {
        sources: cfg.sources.clone(),
        target_table: None,
    };
    let mut created = false;
    if let Some(t) = &cfg.target_table {
        created = t.create && crate::tables::create(&client, &t.spec, &t.name).await?;
        if created {
            tracing::info!(table = %t.name, "created target table");
        } else if cfg.stream.sink.write_mode == WriteMode::Batch && !cfg.force_batch {
            return Err(ReplayError::Refused(format!(
                "--write-mode batch: table {} already exists, and batch mode only writes into a table this replay creates (drop it, pick a new --target-table, or add --force-batch)",
                t.name
            )));
        } else if cfg.stream.sink.write_mode == WriteMode::Rebuild {
            return Err(ReplayError::Refused(format!(
                "--write-mode rebuild: table {} already exists, and rebuild mode relies on being its only writer (drop it or pick a new --target-table)",
                t.name
            )));
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
    if created {
        // Rebuild mode reads no version of a key it has not written.
        pipeline.writer().rebuild_into_empty_table();
    }
    let mut total = ReplaySummary {
        complete: true,
        ..ReplaySummary::default()
    };
    for plan in plans {
        let s = read::replay_topic(&cfg, plan, pipeline.clone(), &shutdown).await?;
        total.stats += s.stats;
        total.partitions += s.partitions;
        total.complete &= s.complete;
        total.per_partition.extend(s.per_partition);
    }
    if total.complete {
        total.unseen_sources = run::unseen_sources(&cfg.stream.mapping, cfg.sources.as_ref());
        run::warn_unseen(&total.unseen_sources, "the whole replay");
    }
    // Every partition has ended: rebuild mode's held-back key moves go last, guarded. (A
    // replay that ended short exits non-zero anyway; its table is not a rebuild.)
    if total.complete {
        total.key_moves = pipeline.writer().finish_deferred().await?;
    }
    Ok(total)
}
