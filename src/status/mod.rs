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
//! - The last verify (read from `verify.state_file`) counts when it is a full run, CLEAN, and
//!   younger than `status.max_verify_age`.
//! - Path stages are shown (and named in the READY line) but are not a readiness condition.
//! - When `cutover capture` feeds the stream (`capture.topic` is one of `kafka.topics`), its
//!   latest checkpoint (read from `capture.checkpoint_topic` to its end) must be younger than
//!   `status.max_capture_age`: a dead capture produces nothing, which reads as lag 0.
//! - The data-access layer's repair queue (`access.repair_topic`, when it exists) must be
//!   drained by `access.repair_group`, judged like the CDC group's partitions.
//! - READY = every partition drained, a full (not sampled), clean, recent verify that checked
//!   every item (verdict CLEAN, not INCOMPLETE), a fresh capture checkpoint (when capture is
//!   used), and an empty repair queue. Nothing here writes anything.

mod probe;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::error::KafkaError;
use serde::{Deserialize, Serialize};

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
    /// When `cutover capture` feeds the stream (`capture.topic` is one of `kafka.topics`): its
    /// latest checkpoint must be younger than this. Capture checkpoints when its position
    /// moves, so a source with no writes for this long also reads as NOT READY.
    #[serde(with = "humantime_serde")]
    pub max_capture_age: Duration,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            max_verify_age: Duration::from_secs(3600),
            probe_timeout: Duration::from_secs(5),
            max_capture_age: Duration::from_secs(300),
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
        if self.max_capture_age.is_zero() {
            issues.push(ConfigIssue::new("status.max_capture_age", "must be > 0"));
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
    /// `(capture.name, capture.checkpoint_topic)` when capture feeds the stream.
    pub capture: Option<(String, String)>,
    /// `(access.repair_topic, access.repair_group)`: the data-access layer's repair queue.
    pub repair_queue: (String, String),
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
    /// The capture's latest checkpoint; `None` when capture does not feed the stream.
    pub capture: Option<CaptureStatus>,
    /// The data-access layer's repair queue; `None` when its topic does not exist.
    pub repair_queue: Option<RepairQueueStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaptureStatus {
    pub name: String,
    pub checkpoint_topic: String,
    /// When the latest checkpoint was written; `None` when there is none.
    #[serde(with = "crate::config::rfc3339::option")]
    pub checkpoint_at: Option<DateTime<Utc>>,
    pub age_seconds: Option<i64>,
    /// The binlog position it records, as `file:pos`.
    pub position: Option<String>,
    /// The initial snapshot is still running.
    pub snapshot_running: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepairQueueStatus {
    pub topic: String,
    pub group: String,
    /// Per partition, as for the CDC group (lag, pending records past the committed offset).
    pub partitions: Vec<PartitionStatus>,
    /// Partitions with entries the repair worker has not applied.
    pub backlog: usize,
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
    /// `clean`, `differences` or `incomplete` (items that could not be checked).
    pub verdict: crate::verify::Verdict,
    /// Items the last verify could not check, over all tables.
    #[serde(default)]
    pub unchecked: u64,
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
    let partitions =
        tokio::task::spawn_blocking(move || probe::partitions(&kafka, timeout, false)).await??;
    let capture = match cfg.capture.clone() {
        None => None,
        Some((name, topic)) => {
            let kafka = cfg.kafka.clone();
            let (n, t) = (name.clone(), topic.clone());
            let latest = tokio::task::spawn_blocking(move || {
                probe::latest_checkpoint(&kafka, &t, &n, timeout)
            })
            .await??;
            Some(capture_status(name, topic, latest, checked_at))
        }
    };
    let repair_queue = {
        let mut kafka = cfg.kafka.clone();
        let (topic, group) = cfg.repair_queue.clone();
        kafka.topics = vec![topic.clone()];
        kafka.group_id = group.clone();
        let parts =
            tokio::task::spawn_blocking(move || probe::partitions(&kafka, timeout, true)).await??;
        (!parts.is_empty()).then(|| RepairQueueStatus {
            topic,
            group,
            backlog: parts.iter().filter(|p| !p.drained).count(),
            partitions: parts,
        })
    };
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
        verdict: r.verdict,
        unchecked: r.tables.iter().map(|t| t.unchecked).sum(),
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
        capture,
        repair_queue,
    };
    decide(&mut report, &cfg.status);
    Ok(report)
}

fn capture_status(
    name: String,
    checkpoint_topic: String,
    latest: Option<probe::Checkpoint>,
    now: DateTime<Utc>,
) -> CaptureStatus {
    let (at, cp) = latest.unwrap_or_default();
    let position = match (cp.get("binlog_file"), cp.get("binlog_pos")) {
        (Some(serde_json::Value::String(f)), Some(p)) => Some(format!("{f}:{p}")),
        _ => None,
    };
    CaptureStatus {
        name,
        checkpoint_topic,
        checkpoint_at: at,
        age_seconds: at.map(|t| (now - t).num_seconds().max(0)),
        position,
        snapshot_running: cp.get("snapshot").is_some_and(|s| !s.is_null()),
    }
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
pub fn decide(r: &mut StatusReport, cfg: &StatusConfig) {
    let max_verify_age = cfg.max_verify_age;
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
            if v.verdict == crate::verify::Verdict::Incomplete || (v.clean && v.unchecked > 0) {
                reasons.push(format!(
                    "last verify {age} ago is INCOMPLETE: {} item(s) could not be checked (see its notes; a report from before verdicts existed counts as incomplete: run `cutover verify` again)",
                    v.unchecked
                ));
            } else if !v.clean {
                reasons.push(format!(
                    "last verify found {} difference(s) {age} ago",
                    v.differences
                ));
            } else if let Some(sample) = &v.sample {
                reasons.push(format!(
                    "last verify was a sample ({sample}): READY needs a full `cutover verify`"
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
    if let Some(c) = &r.capture {
        match c.age_seconds {
            None => reasons.push(format!(
                "capture {}: no checkpoint in {} (is `cutover capture` running?)",
                c.name, c.checkpoint_topic
            )),
            Some(age) if age as u64 > cfg.max_capture_age.as_secs() => reasons.push(format!(
                "capture {}: last checkpoint is {} old (status.max_capture_age {}): capture is down or stuck, or the source had no writes since",
                c.name,
                human_age(age),
                humantime::format_duration(cfg.max_capture_age)
            )),
            Some(_) if c.snapshot_running => reasons.push(format!(
                "capture {}: the initial snapshot is still running",
                c.name
            )),
            Some(_) => {}
        }
    }
    if let Some(q) = r.repair_queue.as_ref().filter(|q| q.backlog > 0) {
        let lag: i64 = q.partitions.iter().filter_map(|p| p.lag).sum();
        reasons.push(format!(
            "repair queue {}: entries not yet applied by group {} ({} partition(s), lag {lag})",
            q.topic, q.group, q.backlog
        ));
    }
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
            capture: None,
            repair_queue: None,
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
            verdict: crate::verify::Verdict::Clean,
            unchecked: 0,
            sample: None,
            differences: 0,
            not_covered: Vec::new(),
        })
    }

    #[test]
    fn verdicts() {
        let hour = &StatusConfig::default();
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

        // A sample is not proof.
        let mut sampled = clean(10);
        if let Some(v) = sampled.as_mut() {
            v.sample = Some("1%".into());
        }
        let mut r = report(vec![part(0, false)], sampled);
        decide(&mut r, hour);
        assert!(!r.ready);
        assert!(r.verdict.contains("was a sample (1%)"), "{}", r.verdict);

        // A stale capture checkpoint, a missing one, a fresh one.
        let capture = |age: Option<i64>| CaptureStatus {
            name: "cap".into(),
            checkpoint_topic: "cp".into(),
            checkpoint_at: None,
            age_seconds: age,
            position: None,
            snapshot_running: false,
        };
        for (age, ready, text) in [
            (Some(3600), false, "last checkpoint is 1h0m old"),
            (None, false, "no checkpoint in cp"),
            (Some(5), true, "READY"),
        ] {
            let mut r = report(vec![part(0, false)], clean(10));
            r.capture = Some(capture(age));
            decide(&mut r, hour);
            assert_eq!(r.ready, ready, "{}", r.verdict);
            assert!(r.verdict.contains(text), "{}", r.verdict);
        }

        // A repair backlog.
        let mut r = report(vec![part(0, false)], clean(10));
        r.repair_queue = Some(RepairQueueStatus {
            topic: "rq".into(),
            group: "rg".into(),
            partitions: vec![part(3, false)],
            backlog: 1,
        });
        decide(&mut r, hour);
        assert!(!r.ready);
        assert!(r.verdict.contains("repair queue rq"), "{}", r.verdict);

        // Unchecked items: not proof.
        let mut incomplete = clean(10);
        if let Some(v) = incomplete.as_mut() {
            v.clean = false;
            v.verdict = crate::verify::Verdict::Incomplete;
            v.unchecked = 2;
        }
        let mut r = report(vec![part(0, false)], incomplete);
        decide(&mut r, hour);
        assert!(!r.ready);
        assert!(r.verdict.contains("INCOMPLETE: 2 item(s)"), "{}", r.verdict);

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
