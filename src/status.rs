//! `cutover status` (`[status]`): is it safe to move a path forward? One summary of the CDC
//! backlog, the last applied change per partition and table, each path's migration stage
//! (`[flags]`), the last `verify`, and a one-line verdict (exit 0 when READY, 1 otherwise).
//!
//! Rules:
//! - Lag per partition = high watermark − the committed offset of `kafka.group_id`. Some
//!   brokers report watermarks late or low (the local Tansu reports the start of the last
//!   batch, plus one), so a partition also counts as pending when a record exists at or after
//!   the committed offset: a throw-away consumer (its own random group, never committing) is
//!   assigned at `committed − 1` and reads for up to `status.probe_timeout`. A partition is
//!   drained when both say nothing is left: a watermark lag is a lower bound, never trusted as
//!   zero on its own.
//! - Last applied commit time per partition = the source commit time of the record just before
//!   the committed offset (decoded with `cdc::decode`); per table, the latest of those whose
//!   record is of that table. It shows how far behind the source the target is, not how many
//!   records of that table are pending (lag is per partition).
//! - The last verify (read from `verify.state_file`) counts when it is clean and younger than
//!   `status.max_verify_age`.
//! - Path stages are shown (and named in the READY line) but are not a readiness condition.
//! - READY = every partition drained, and a clean, recent verify. Nothing here writes anything.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone as _, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::cdc::{self, Decoded};
use crate::config::ConfigIssue;
use crate::error::{Classify, Disposition};
use crate::flags::FlagsConfig;
use crate::kafka::KafkaConfig;
use crate::verify::VerifyError;

/// `[status]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusConfig {
    /// A verify older than this does not count towards READY.
    #[serde(with = "humantime_serde")]
    pub max_verify_age: Duration,
    /// How long to read around the committed offsets (last applied record, pending records).
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            max_verify_age: Duration::from_secs(3600),
            probe_timeout: Duration::from_secs(5),
        }
    }
}

impl StatusConfig {
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.max_verify_age.is_zero() {
            issues.push(ConfigIssue::new("status.max_verify_age", "must be > 0"));
        }
        if self.probe_timeout.is_zero() {
            issues.push(ConfigIssue::new("status.probe_timeout", "must be > 0"));
        }
        issues
    }
}

/// What `status` reads: resolved by `commands::status` from the file.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub status: StatusConfig,
    /// The mapped sources (`[[table]]`), in file order.
    pub sources: Vec<String>,
    pub flags: FlagsConfig,
    /// The config file's directory (a relative flag file is resolved against it).
    pub config_dir: PathBuf,
    /// Where the last verify report is (`verify.state_file`, resolved).
    pub verify_state: PathBuf,
}

/// Why status could not look.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{what}")]
    Kafka {
        what: String,
        #[source]
        source: KafkaError,
    },
    #[error("{0}")]
    Topic(String),
    /// The last verify report can't be read.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("status task")]
    Task(#[from] tokio::task::JoinError),
}

impl Classify for StatusError {
    fn disposition(&self) -> Disposition {
        match self {
            StatusError::Kafka { .. } => Disposition::Retry,
            StatusError::Verify(e) => e.disposition(),
            StatusError::Topic(_) | StatusError::Task(_) => Disposition::Fatal,
        }
    }
}

fn kafka(what: impl Into<String>) -> impl FnOnce(KafkaError) -> StatusError {
    let what = what.into();
    move |source| StatusError::Kafka { what, source }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    #[serde(with = "crate::config::rfc3339")]
    pub checked_at: DateTime<Utc>,
    pub ready: bool,
    /// `READY: ...` or `NOT READY: ...`.
    pub verdict: String,
    pub reasons: Vec<String>,
    pub group_id: String,
    pub partitions: Vec<PartitionStatus>,
    pub tables: Vec<TableStatus>,
    /// Per-path migration stages (`[flags]`); `None` when no path is declared or the flags
    /// could not be read (see `flags_error`). Shown, not a readiness condition.
    pub paths: Option<Vec<PathStatus>>,
    pub flags_error: Option<String>,
    pub verify: Option<VerifyStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    /// Next offset the group will read; `None` when it has never committed.
    pub committed: Option<i64>,
    pub high_watermark: Option<i64>,
    /// high watermark − committed (≥ 0), as the broker reports it.
    pub lag: Option<i64>,
    /// A record was read at or after the committed offset.
    pub pending: bool,
    pub drained: bool,
    #[serde(with = "crate::config::rfc3339::option")]
    pub last_applied_commit: Option<DateTime<Utc>>,
    pub last_applied_table: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableStatus {
    pub source: String,
    /// Latest source commit time among the partitions' last applied records of this table.
    #[serde(with = "crate::config::rfc3339::option")]
    pub last_applied_commit: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PathStatus {
    pub path: String,
    pub stage: String,
    /// Where the stage came from (flag service, file, default).
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifyStatus {
    #[serde(with = "crate::config::rfc3339")]
    pub finished_at: DateTime<Utc>,
    pub age_seconds: i64,
    pub clean: bool,
    pub sample: Option<String>,
    /// missing + extra + different + errors, over all tables.
    pub differences: u64,
    /// Mapped source tables the last verify did not cover (`--table`).
    pub not_covered: Vec<String>,
}

/// Gather everything and decide.
pub async fn status(cfg: &Settings) -> Result<StatusReport, StatusError> {
    let checked_at = Utc::now();
    let kafka = cfg.kafka.clone();
    let timeout = cfg.status.probe_timeout;
    let partitions = tokio::task::spawn_blocking(move || partitions(&kafka, timeout)).await??;
    let mut tables: BTreeMap<String, Option<DateTime<Utc>>> =
        cfg.sources.iter().map(|s| (s.clone(), None)).collect();
    for p in &partitions {
        if let (Some(t), Some(ts)) = (&p.last_applied_table, p.last_applied_commit) {
            if let Some(slot) = tables.get_mut(t) {
                *slot = (*slot).max(Some(ts));
            }
        }
    }
    let verify = crate::verify::load(&cfg.verify_state)?.map(|r| VerifyStatus {
        finished_at: r.finished_at,
        age_seconds: (checked_at - r.finished_at).num_seconds().max(0),
        clean: r.clean,
        sample: r.sample.clone(),
        differences: r
            .tables
            .iter()
            .map(crate::verify::TableReport::differences)
            .sum::<u64>()
            + r.unrecognised.values().sum::<u64>(),
        not_covered: cfg
            .sources
            .iter()
            .filter(|s| !r.tables.iter().any(|v| &v.source == *s))
            .cloned()
            .collect(),
    });
    let (paths, flags_error) = paths(&cfg.flags, &cfg.config_dir).await;
    let mut report = StatusReport {
        checked_at,
        ready: false,
        verdict: String::new(),
        reasons: Vec::new(),
        group_id: cfg.kafka.group_id.clone(),
        partitions,
        tables: tables
            .into_iter()
            .map(|(source, last_applied_commit)| TableStatus {
                source,
                last_applied_commit,
            })
            .collect(),
        paths,
        flags_error,
        verify,
    };
    decide(&mut report, cfg.status.max_verify_age);
    Ok(report)
}

/// The stage of every declared path, as `cutover flags list` shows it (default context).
async fn paths(cfg: &FlagsConfig, dir: &Path) -> (Option<Vec<PathStatus>>, Option<String>) {
    use crate::flags::{FlagContext, Flags};
    if cfg.paths.is_empty() {
        return (None, None);
    }
    match Flags::from_config(cfg, dir).await {
        Ok(flags) => {
            let states = flags
                .list(&FlagContext::default())
                .into_iter()
                .map(|s| PathStatus {
                    path: s.path,
                    stage: s.stage.as_str().to_string(),
                    source: s.origin,
                })
                .collect();
            // Closing a LaunchDarkly client blocks.
            let _ = tokio::task::spawn_blocking(move || flags.close()).await;
            (Some(states), None)
        }
        Err(e) => (None, Some(e.to_string())),
    }
}

/// Fill in `ready`, `reasons` and `verdict`.
pub fn decide(r: &mut StatusReport, max_verify_age: Duration) {
    let mut reasons = Vec::new();
    let mut total_lag = 0;
    for p in &r.partitions {
        total_lag += p.lag.unwrap_or(0);
        if !p.drained {
            let what = match (p.committed, p.lag) {
                (None, _) => "nothing committed yet".to_string(),
                (_, Some(l)) if l > 0 => format!("lag {l}"),
                _ => "records pending after the committed offset".to_string(),
            };
            reasons.push(format!("{}/{}: {what}", p.topic, p.partition));
        }
    }
    let verify_part = match &r.verify {
        None => {
            reasons.push("no verify result (run `cutover verify`)".into());
            None
        }
        Some(v) => {
            let age = human_age(v.age_seconds);
            if !v.clean {
                reasons.push(format!(
                    "last verify found {} difference(s) {age} ago",
                    v.differences
                ));
            } else if !v.not_covered.is_empty() {
                reasons.push(format!(
                    "last verify did not cover {}",
                    v.not_covered.join(", ")
                ));
            } else if v.age_seconds as u64 > max_verify_age.as_secs() {
                reasons.push(format!(
                    "last verify is {age} old (status.max_verify_age {})",
                    humantime::format_duration(max_verify_age)
                ));
            }
            Some(format!(
                "verify clean {age} ago{}",
                v.sample
                    .as_ref()
                    .map(|s| format!(" (sample {s})"))
                    .unwrap_or_default()
            ))
        }
    };
    r.ready = reasons.is_empty();
    r.verdict = if r.ready {
        let mut parts = vec![format!("CDC drained (lag {total_lag})")];
        parts.extend(verify_part);
        if let Some(paths) = r.paths.as_ref().filter(|p| !p.is_empty()) {
            let mut stages: Vec<&str> = paths.iter().map(|p| p.stage.as_str()).collect();
            stages.sort();
            stages.dedup();
            parts.push(format!("paths at stage {}", stages.join("/")));
        }
        format!("READY: {}", parts.join(", "))
    } else {
        format!("NOT READY: {}", reasons.join("; "))
    };
    r.reasons = reasons;
}

fn human_age(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d", s / 86_400),
    }
}

/// Committed offsets, watermarks, and a read around each committed offset (blocking).
fn partitions(k: &KafkaConfig, timeout: Duration) -> Result<Vec<PartitionStatus>, StatusError> {
    // Reads the group's committed offsets only: no subscribe, no commit.
    let group: BaseConsumer<crate::kafka::EofContext> = {
        let mut c = crate::kafka::client_config(k);
        c.set("group.id", &k.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        c.create_with_context(crate::kafka::EofContext)
            .map_err(kafka("Kafka client"))?
    };
    let mut tpl = TopicPartitionList::new();
    let mut out = Vec::new();
    for topic in &k.topics {
        let md = group
            .fetch_metadata(Some(topic), timeout)
            .map_err(kafka(format!("metadata of topic {topic}")))?;
        for t in md.topics() {
            if let Some(e) = t.error() {
                return Err(StatusError::Topic(format!(
                    "topic {topic}: {:?}",
                    KafkaError::MetadataFetch(e.into())
                )));
            }
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
                let high = group
                    .fetch_watermarks(topic, p.id(), timeout)
                    .ok()
                    .map(|(_, h)| h);
                out.push(PartitionStatus {
                    topic: topic.clone(),
                    partition: p.id(),
                    committed: None,
                    high_watermark: high,
                    lag: None,
                    pending: false,
                    drained: false,
                    last_applied_commit: None,
                    last_applied_table: None,
                });
            }
        }
    }
    let committed = group
        .committed_offsets(tpl, timeout)
        .map_err(kafka("committed offsets of the group"))?;
    for e in committed.elements() {
        if let Offset::Offset(o) = e.offset() {
            if let Some(p) = out
                .iter_mut()
                .find(|p| p.topic == e.topic() && p.partition == e.partition())
            {
                p.committed = Some(o);
            }
        }
    }
    for p in &mut out {
        p.lag = match (p.high_watermark, p.committed) {
            (Some(h), Some(c)) => Some((h - c).max(0)),
            (Some(h), None) => Some(h.max(0)),
            _ => None,
        };
    }
    probe(k, &mut out, timeout)?;
    for p in &mut out {
        p.drained = !p.pending && p.lag.unwrap_or(0) == 0;
    }
    Ok(out)
}

/// Read from `committed − 1` (or the beginning): the first record is the last applied one,
/// anything at or after `committed` is pending.
fn probe(
    k: &KafkaConfig,
    parts: &mut [PartitionStatus],
    timeout: Duration,
) -> Result<(), StatusError> {
    let reader: BaseConsumer<crate::kafka::EofContext> = {
        let mut c = crate::kafka::client_config(k);
        c.set(
            "group.id",
            format!("cutover-status-{:016x}", rand::random::<u64>()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
        c.create_with_context(crate::kafka::EofContext)
            .map_err(kafka("Kafka client"))?
    };
    let mut tpl = TopicPartitionList::new();
    for p in parts.iter() {
        let start = match p.committed {
            Some(c) if c > 0 => Offset::Offset(c - 1),
            Some(c) => Offset::Offset(c),
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(&p.topic, p.partition, start)
            .map_err(kafka(format!("assign {}/{}", p.topic, p.partition)))?;
    }
    reader.assign(&tpl).map_err(kafka("assign partitions"))?;
    let index: HashMap<(String, i32), usize> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.topic.clone(), p.partition), i))
        .collect();
    let mut done = vec![false; parts.len()];
    let single_topic = k.topics.len() == 1;
    let deadline = Instant::now() + timeout;
    while done.iter().any(|d| !d) && Instant::now() < deadline {
        match reader.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                let Some(&i) = index.get(&(m.topic().to_string(), m.partition())) else {
                    continue;
                };
                let p = &mut parts[i];
                let committed = p.committed.unwrap_or(0);
                if m.offset() < committed {
                    if let Ok(Decoded::Change(ev)) =
                        cdc::decode(m.payload(), k.format_for(&p.topic))
                    {
                        p.last_applied_commit = ev
                            .position
                            .commit_ts_us
                            .and_then(|us| Utc.timestamp_micros(us).single());
                        p.last_applied_table =
                            Some(format!("{}.{}", ev.table.schema, ev.table.table));
                    }
                } else {
                    p.pending = true;
                    done[i] = true;
                }
            }
            // The EOF event names the partition, not the topic: with several topics, read
            // until the timeout instead.
            Some(Err(KafkaError::PartitionEOF(partition))) if single_topic => {
                for (i, p) in parts.iter().enumerate() {
                    if p.partition == partition {
                        done[i] = true;
                    }
                }
            }
            Some(Err(e)) => tracing::debug!(error = %e, "status probe"),
        }
    }
    Ok(())
}

/// The human summary.
pub fn render_text(r: &StatusReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "consumer group {}", r.group_id);
    let _ = writeln!(
        out,
        "  {:<30} {:>5} {:>12} {:>12} {:>8}  {:<8} last applied commit",
        "topic", "part", "committed", "high", "lag", "state"
    );
    for p in &r.partitions {
        let opt = |v: Option<i64>| v.map_or("-".to_string(), |x| x.to_string());
        let _ = writeln!(
            out,
            "  {:<30} {:>5} {:>12} {:>12} {:>8}  {:<8} {}",
            p.topic,
            p.partition,
            opt(p.committed),
            opt(p.high_watermark),
            opt(p.lag),
            if p.drained { "drained" } else { "pending" },
            p.last_applied_commit
                .map(|t| format!(
                    "{} ({})",
                    t.to_rfc3339(),
                    p.last_applied_table.as_deref().unwrap_or("?")
                ))
                .unwrap_or_else(|| "-".into())
        );
    }
    let _ = writeln!(out, "tables");
    for t in &r.tables {
        let _ = writeln!(
            out,
            "  {:<40} last applied commit {}",
            t.source,
            t.last_applied_commit
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "-".into())
        );
    }
    match &r.paths {
        Some(paths) => {
            let _ = writeln!(out, "paths");
            for p in paths {
                let _ = writeln!(out, "  {:<40} {:<16} ({})", p.path, p.stage, p.source);
            }
        }
        None => {
            if let Some(e) = &r.flags_error {
                let _ = writeln!(out, "paths: flags unavailable: {e}");
            }
        }
    }
    match &r.verify {
        Some(v) => {
            let _ = writeln!(
                out,
                "last verify: {} ({} ago), {}{}",
                v.finished_at.to_rfc3339(),
                human_age(v.age_seconds),
                if v.clean {
                    "clean".to_string()
                } else {
                    format!("{} difference(s)", v.differences)
                },
                v.sample
                    .as_ref()
                    .map(|s| format!(", sample {s}"))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(out, "last verify: none");
        }
    }
    let _ = writeln!(out, "{}", r.verdict);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(partitions: Vec<PartitionStatus>, verify: Option<VerifyStatus>) -> StatusReport {
        StatusReport {
            checked_at: Utc::now(),
            ready: false,
            verdict: String::new(),
            reasons: Vec::new(),
            group_id: "g".into(),
            partitions,
            tables: Vec::new(),
            paths: None,
            flags_error: None,
            verify,
        }
    }

    fn part(lag: i64, pending: bool) -> PartitionStatus {
        PartitionStatus {
            topic: "t".into(),
            partition: 0,
            committed: Some(10),
            high_watermark: Some(10 + lag),
            lag: Some(lag),
            pending,
            drained: lag == 0 && !pending,
            last_applied_commit: None,
            last_applied_table: None,
        }
    }

    fn clean(age: i64) -> Option<VerifyStatus> {
        Some(VerifyStatus {
            finished_at: Utc::now(),
            age_seconds: age,
            clean: true,
            sample: None,
            differences: 0,
            not_covered: Vec::new(),
        })
    }

    #[test]
    fn verdicts() {
        let hour = Duration::from_secs(3600);
        let mut r = report(vec![part(0, false)], clean(180));
        decide(&mut r, hour);
        assert!(r.ready, "{}", r.verdict);
        assert_eq!(r.verdict, "READY: CDC drained (lag 0), verify clean 3m ago");

        let mut r = report(vec![part(5, false)], clean(180));
        decide(&mut r, hour);
        assert!(!r.ready);
        assert!(
            r.verdict.starts_with("NOT READY: t/0: lag 5"),
            "{}",
            r.verdict
        );

        // A watermark of zero lag does not hide a record read past the committed offset.
        let mut r = report(vec![part(0, true)], clean(10));
        decide(&mut r, hour);
        assert!(!r.ready, "{}", r.verdict);

        let mut r = report(vec![part(0, false)], clean(7200));
        decide(&mut r, hour);
        assert!(r.verdict.contains("2h0m old"), "{}", r.verdict);

        let mut r = report(vec![part(0, false)], None);
        decide(&mut r, hour);
        assert!(r.verdict.contains("no verify result"), "{}", r.verdict);

        let mut partial = clean(10);
        if let Some(v) = partial.as_mut() {
            v.not_covered = vec!["chat.message".into()];
        }
        let mut r = report(vec![part(0, false)], partial);
        decide(&mut r, hour);
        assert!(!r.ready);
        assert!(
            r.verdict.contains("did not cover chat.message"),
            "{}",
            r.verdict
        );
    }
}
