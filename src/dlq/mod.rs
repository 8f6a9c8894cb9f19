//! `cutover dlq`: the dead-letter topic (`kafka.dlq_topic`) read back: `list` shows each dead
//! letter's stage, reason, source topic/partition/offset and key (row values only with
//! `--show-values`); [`redrive`] re-applies the originals through today's mapping and the
//! version-guarded writer, after a mapping fix.
//!
//! Reading never commits and never uses the live group: a throw-away group id, partitions
//! assigned from the beginning, and the end of each found by librdkafka's partition-EOF event
//! (not broker watermarks). What was re-driven is recorded in the redrive log topic
//! (`<dlq_topic>.redrive`, one record per dead letter, keyed `partition:offset`), so a second
//! redrive does not apply a letter twice; a letter that fails again is dead-lettered again,
//! as a new letter with a `cutover.redrive.of` header naming the one it came from.

mod redrive;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::kafka::{EofContext, KafkaConfig, Record};

pub use redrive::{redrive, RedriveSummary};

/// Headers cutover adds to a dead letter; the rest are the original record's.
pub const STAGE: &str = "cutover.error.stage";
pub const REASON: &str = "cutover.error.reason";
pub const SOURCE_TOPIC: &str = "cutover.source.topic";
pub const SOURCE_PARTITION: &str = "cutover.source.partition";
pub const SOURCE_OFFSET: &str = "cutover.source.offset";
/// On a record re-driven from a letter: `dlq_topic:partition:offset` of that letter.
pub const REDRIVE_OF: &str = "cutover.redrive.of";

/// Which dead letters a command looks at.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only letters written at or after this time (the letter's Kafka timestamp).
    pub since: Option<DateTime<Utc>>,
    /// Only this stage (`decode`, `map`, `write`, `unmapped`).
    pub stage: Option<String>,
    /// Only letters whose reason contains this text.
    pub reason_contains: Option<String>,
}

impl Filter {
    pub fn accepts(&self, l: &Letter) -> bool {
        self.since
            .is_none_or(|t| l.timestamp_ms.is_some_and(|ms| ms >= t.timestamp_millis()))
            && self.stage.as_deref().is_none_or(|s| l.stage == s)
            && self
                .reason_contains
                .as_deref()
                .is_none_or(|r| l.reason.contains(r))
    }
}

/// `--since`: an RFC 3339 time, or a duration before now (`2h`, `30m`, `1d`).
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = humantime::parse_duration(s)
        .map_err(|_| format!("--since {s:?}: expected an RFC 3339 time or a duration (2h, 30m)"))?;
    let d = chrono::Duration::from_std(d).map_err(|e| format!("--since {s:?}: {e}"))?;
    Ok(Utc::now() - d)
}

/// One dead letter, as read from the dead-letter topic.
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    /// Where the letter is: the dead-letter topic's partition and offset.
    pub partition: i32,
    pub offset: i64,
    /// When it was dead-lettered (RFC 3339), from the letter's Kafka timestamp.
    pub at: Option<String>,
    #[serde(skip)]
    pub timestamp_ms: Option<i64>,
    pub stage: String,
    pub reason: String,
    pub source_topic: String,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    /// The original record's key (UTF-8, lossy).
    pub key: Option<String>,
    /// Whether the redrive log has this letter.
    pub redriven: bool,
    /// The letter this one came from, when it failed again on a redrive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redrive_of: Option<String>,
    /// The original record's value: only with `--show-values`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The original record, to re-drive.
    #[serde(skip)]
    pub original: Record,
}

impl Letter {
    fn from_record(r: Record) -> Letter {
        let header = |k: &str| {
            r.headers
                .iter()
                .rev()
                .find(|(h, _)| h == k)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let source_topic = header(SOURCE_TOPIC).unwrap_or_default();
        let source_partition = header(SOURCE_PARTITION).and_then(|p| p.parse().ok());
        let source_offset = header(SOURCE_OFFSET).and_then(|o| o.parse().ok());
        let original = Record {
            topic: source_topic.clone(),
            partition: source_partition.unwrap_or(-1),
            offset: source_offset.unwrap_or(-1),
            key: r.key.clone(),
            payload: r.payload.clone(),
            headers: r
                .headers
                .iter()
                .filter(|(k, _)| !is_ours(k))
                .cloned()
                .collect(),
            timestamp_ms: None,
        };
        Letter {
            partition: r.partition,
            offset: r.offset,
            at: r
                .timestamp_ms
                .and_then(DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            timestamp_ms: r.timestamp_ms,
            stage: header(STAGE).unwrap_or_default(),
            reason: header(REASON).unwrap_or_default(),
            source_topic,
            source_partition,
            source_offset,
            key: r
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            redriven: false,
            redrive_of: header(REDRIVE_OF),
            value: None,
            original,
        }
    }
}

/// cutover's own headers: not part of the original record (a re-driven record gets fresh ones).
fn is_ours(key: &str) -> bool {
    key.starts_with("cutover.error.") || key.starts_with("cutover.source.") || key == REDRIVE_OF
}

/// Why the dead-letter topic could not be read (or the redrive log written).
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("{what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: KafkaError,
    },
    #[error("{0}")]
    Other(String),
}

fn kafka(what: impl Into<String>) -> impl FnOnce(KafkaError) -> DlqError {
    let what = what.into();
    move |source| DlqError::Kafka { what, source }
}

/// The redrive log topic of a dead-letter topic.
pub fn redrive_log_topic(k: &KafkaConfig) -> String {
    format!("{}.redrive", k.dlq_topic)
}

/// Every record of `topic`, read to the end of each partition (blocking). `Ok(None)` when the
/// topic does not exist.
fn read_topic(
    k: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Option<Vec<Record>>, DlqError> {
    let mut cc = crate::kafka::client_config(k);
    cc.set(
        "group.id",
        format!("cutover-dlq-{:016x}", rand::random::<u64>()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.auto.offset.store", "false")
    .set("enable.partition.eof", "true")
    .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<EofContext> = cc
        .create_with_context(EofContext)
        .map_err(kafka("cannot create the Kafka consumer"))?;
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka(format!("metadata of topic {topic}")))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    let mut open: HashSet<i32> = HashSet::new();
    for p in t.partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .map_err(kafka(format!("assign {topic}[{}]", p.id())))?;
        open.insert(p.id());
    }
    consumer
        .assign(&tpl)
        .map_err(kafka(format!("assign {topic}")))?;
    let mut out = Vec::new();
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        if last_progress.elapsed() > timeout {
            let mut left: Vec<_> = open.into_iter().collect();
            left.sort_unstable();
            return Err(DlqError::Other(format!(
                "reading {topic}: partitions {left:?} did not reach their end within {timeout:?}; \
                 nothing was changed (is the broker reachable?)"
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
                last_progress = Instant::now();
            }
            Some(Err(e)) => return Err(kafka(format!("reading {topic}"))(e)),
            Some(Ok(m)) => {
                out.push(Record::from_message(&m));
                last_progress = Instant::now();
            }
        }
    }
    Ok(Some(out))
}

/// The (partition, offset) of every letter the redrive log has.
fn redriven(k: &KafkaConfig, timeout: Duration) -> Result<HashSet<(i32, i64)>, DlqError> {
    let log = redrive_log_topic(k);
    let records = read_topic(k, &log, timeout)?.unwrap_or_default();
    Ok(records
        .iter()
        .filter_map(|r| {
            let key = String::from_utf8_lossy(r.key.as_deref()?).into_owned();
            let (p, o) = key.split_once(':')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect())
}

/// The dead letters `filter` accepts, oldest first per partition, marked `redriven` from the
/// redrive log; values kept only when `show_values` (blocking).
pub fn list(
    k: &KafkaConfig,
    filter: &Filter,
    show_values: bool,
    timeout: Duration,
) -> Result<Vec<Letter>, DlqError> {
    let Some(records) = read_topic(k, &k.dlq_topic, timeout)? else {
        return Err(DlqError::Other(format!(
            "dead-letter topic {} (kafka.dlq_topic) does not exist",
            k.dlq_topic
        )));
    };
    let done = redriven(k, timeout)?;
    let mut letters: Vec<Letter> = records
        .into_iter()
        .map(Letter::from_record)
        .filter(|l| filter.accepts(l))
        .map(|mut l| {
            l.redriven = done.contains(&(l.partition, l.offset));
            if show_values {
                l.value = l
                    .original
                    .payload
                    .as_deref()
                    .map(|v| String::from_utf8_lossy(v).into_owned());
            }
            l
        })
        .collect();
    letters.sort_by_key(|l| (l.partition, l.offset));
    Ok(letters)
}

/// `dlq list`'s text form: one line per letter, then a count per stage.
pub fn render_text(letters: &[Letter]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut stages: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in letters {
        *stages.entry(l.stage.as_str()).or_default() += 1;
        let _ = writeln!(
            out,
            "[{}]@{}  {}  {:<8}  {}[{}]@{}  key={}  {}{}",
            l.partition,
            l.offset,
            l.at.as_deref().unwrap_or("-"),
            l.stage,
            l.source_topic,
            l.source_partition.map_or("?".into(), |p| p.to_string()),
            l.source_offset.map_or("?".into(), |o| o.to_string()),
            l.key.as_deref().unwrap_or("-"),
            l.reason,
            if l.redriven { "  (redriven)" } else { "" }
        );
        if let Some(v) = &l.value {
            let _ = writeln!(out, "    value: {v}");
        }
    }
    let per_stage: Vec<String> = stages.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let _ = writeln!(
        out,
        "{} dead letter(s){}{}",
        letters.len(),
        if per_stage.is_empty() { "" } else { ": " },
        per_stage.join(", ")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(headers: &[(&str, &str)]) -> Letter {
        Letter::from_record(Record {
            topic: "t.dlq".into(),
            partition: 0,
            offset: 7,
            key: Some(b"app.note.1".to_vec()),
            payload: Some(b"{\"data\":{\"secret\":1}}".to_vec()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            timestamp_ms: Some(1_700_000_000_000),
        })
    }

    #[test]
    fn a_letter_gives_back_its_original_record() {
        let l = letter(&[
            ("trace", "x"),
            (STAGE, "map"),
            (REASON, "no column owner_id"),
            (SOURCE_TOPIC, "t"),
            (SOURCE_PARTITION, "3"),
            (SOURCE_OFFSET, "42"),
        ]);
        assert_eq!(
            (l.stage.as_str(), l.reason.as_str()),
            ("map", "no column owner_id")
        );
        assert_eq!(
            (
                l.original.topic.as_str(),
                l.original.partition,
                l.original.offset
            ),
            ("t", 3, 42)
        );
        assert_eq!(l.original.headers, vec![("trace".into(), b"x".to_vec())]);
        assert!(l.value.is_none(), "values only on request");
        let text = render_text(std::slice::from_ref(&l));
        assert!(!text.contains("secret"), "{text}");
        assert!(
            text.contains("t[3]@42") && text.contains("key=app.note.1"),
            "{text}"
        );
    }

    #[test]
    fn filters_by_stage_reason_and_time() {
        let l = letter(&[(STAGE, "map"), (REASON, "no column owner_id")]);
        let f = |stage: Option<&str>, reason: Option<&str>, since: Option<i64>| Filter {
            stage: stage.map(Into::into),
            reason_contains: reason.map(Into::into),
            since: since.and_then(DateTime::from_timestamp_millis),
        };
        assert!(f(None, None, None).accepts(&l));
        assert!(f(Some("map"), Some("owner_id"), Some(1_600_000_000_000)).accepts(&l));
        assert!(!f(Some("decode"), None, None).accepts(&l));
        assert!(!f(None, Some("throttled"), None).accepts(&l));
        assert!(!f(None, None, Some(1_800_000_000_000)).accepts(&l));
        assert!(parse_since("2h").is_ok() && parse_since("2024-01-01T00:00:00Z").is_ok());
        assert!(parse_since("yesterday").is_err());
    }
}
