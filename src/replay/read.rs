//! Reading one topic to its end: the plan (partitions, start and end offsets, resolved before
//! anything is written) and the poll loop.
//!
//! A partition's end is its high watermark at the start. Brokers may report watermarks late
//! (lower than the true end), so reaching it is confirmed by reading on: the partition ends
//! at the end-of-partition event (`enable.partition.eof`) once it is at or past its end
//! offset, or after `--idle-timeout` without a record there. Before its end offset, idle time
//! never ends a partition: it warns, and only after [`stall_limit`] without any record does
//! it give up and report the partition short. Idle time runs only while the partition is
//! fetched: one paused because its writer is behind (see `consumer`) is not idle, and a
//! resumed one gets three idle timeouts to deliver its first record again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{ReplayError, ReplayFrom, ReplaySummary, ReplayUntil, Settings};
use crate::consumer::{Offer, Workers};
use crate::kafka::{EofContext, Record};
use crate::pipeline::{BatchStats, Pipeline};
use crate::run::kafka_error;
use crate::sink::SdkApi;

/// How a partition's replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// At (or past) its end offset.
    End,
    /// At the first record past `--until`.
    Until,
    /// Before its end offset: nothing came for the stall limit.
    Short,
    /// Stopped by a signal or a fatal error.
    Interrupted,
}

/// One partition in the summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionReport {
    pub topic: String,
    pub partition: i32,
    /// The first offset to replay.
    pub start: i64,
    /// The end offset (high watermark) when the replay started.
    pub end: i64,
    /// The offset after the last record read.
    pub read_to: i64,
    /// Records read (and handed to the writer).
    pub records: u64,
    pub ended: Ended,
}

/// A partition while it is read.
struct Part {
    start: i64,
    end: i64,
    next: i64,
    records: u64,
    ended: Option<Ended>,
    paused: bool,
    /// Just resumed: nothing fetched since.
    resumed: bool,
    idle_since: Instant,
    warned: Instant,
}

/// A topic ready to replay: its consumer and, per partition, where to start and end.
pub(super) struct Plan {
    topic: String,
    consumer: StreamConsumer<EofContext>,
    parts: BTreeMap<i32, Part>,
}

/// How long a partition may deliver nothing before its end offset until it is given up as
/// short: six idle timeouts, at least a minute.
fn stall_limit(idle: Duration) -> Duration {
    (idle * 6).max(Duration::from_secs(60))
}

/// Resolve `topic`'s partitions, start offsets and end offsets. Reads Kafka only.
pub(super) async fn plan(opts: &Settings, topic: &str) -> Result<Plan, ReplayError> {
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
    // A start offset the partition does not have is an error, not a silent restart.
    cc.set("auto.offset.reset", "error");
    let consumer: StreamConsumer<EofContext> = cc
        .create_with_context(EofContext)
        .map_err(kafka_error("cannot create the Kafka consumer"))?;
    let topic_owned = topic.to_string();
    let (consumer, partitions, marks) = tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(10);
        let topic = topic_owned.as_str();
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
        let mut marks = HashMap::new();
        for p in &partitions {
            let m = consumer
                .fetch_watermarks(topic, *p, timeout)
                .map_err(kafka_error(format!(
                    "cannot read the end offset of {topic}[{p}]"
                )))?;
            marks.insert(*p, m);
        }
        Ok::<_, ReplayError>((consumer, partitions, marks))
    })
    .await
    .map_err(|e| ReplayError::Topic(format!("reading the offsets of {topic}: {e}")))??;
    if partitions.is_empty() {
        return Err(ReplayError::Topic(format!(
            "topic {topic} has no partitions (does it exist?)"
        )));
    }
    let starts: Vec<(i32, i64)> = match &opts.from {
        ReplayFrom::Earliest => partitions.iter().map(|p| (*p, marks[p].0)).collect(),
        ReplayFrom::Offsets(list) => {
            let mut out = Vec::new();
            for (p, o) in list {
                let Some((_, high)) = marks.get(p) else {
                    return Err(ReplayError::Topic(format!(
                        "--from {p}:{o}: topic {topic} has no partition {p} (it has {})",
                        partitions.len()
                    )));
                };
                if o > high {
                    return Err(ReplayError::Topic(format!(
                        "--from {p}:{o}: past the end of {topic}[{p}], whose end offset is {high}"
                    )));
                }
                out.push((*p, *o));
            }
            out
        }
        ReplayFrom::Time(t) => {
            let mut q = TopicPartitionList::new();
            for p in &partitions {
                q.add_partition_offset(topic, *p, Offset::Offset(t.timestamp_millis()))?;
            }
            let found = consumer
                .offsets_for_times(q, Duration::from_secs(10))
                .map_err(kafka_error(format!("cannot look up offsets for {t}")))?;
            let mut out = Vec::new();
            let mut failed = Vec::new();
            for p in &partitions {
                let e = found.find_partition(topic, *p);
                match e.as_ref().map(|e| (e.error(), e.offset())) {
                    Some((Ok(()), Offset::Offset(o))) if o >= 0 => out.push((*p, o)),
                    // Nothing at or after that time: nothing to replay there.
                    Some((Ok(()), Offset::End | Offset::Offset(_))) => out.push((*p, marks[p].1)),
                    Some((Err(err), _)) => failed.push(format!("{p} ({err})")),
                    Some((Ok(()), other)) => failed.push(format!("{p} (offset {other:?})")),
                    None => failed.push(format!("{p} (no answer)")),
                }
            }
            if !failed.is_empty() {
                return Err(ReplayError::Topic(format!(
                    "--from {t}: the time lookup failed on {topic} partition(s) {}",
                    failed.join(", ")
                )));
            }
            out
        }
    };
    let now = Instant::now();
    let parts = starts
        .into_iter()
        .map(|(p, start)| {
            let end = marks[&p].1;
            let part = Part {
                start,
                end,
                next: start,
                records: 0,
                ended: (start >= end).then_some(Ended::End),
                paused: false,
                resumed: false,
                idle_since: now,
                warned: now,
            };
            (p, part)
        })
        .collect();
    Ok(Plan {
        topic: topic.to_string(),
        consumer,
        parts,
    })
}

/// Replay one topic to the end of each of its partitions (or `--until`).
pub(super) async fn replay_topic(
    opts: &Settings,
    plan: Plan,
    pipeline: Arc<Pipeline<SdkApi>>,
    shutdown: &CancellationToken,
) -> Result<ReplaySummary, ReplayError> {
    let Plan {
        topic,
        consumer,
        mut parts,
    } = plan;
    let topic = topic.as_str();
    let mut tpl = TopicPartitionList::new();
    for (p, part) in parts.iter().filter(|(_, part)| part.ended.is_none()) {
        let start = match opts.from {
            ReplayFrom::Earliest => Offset::Beginning,
            _ => Offset::Offset(part.start),
        };
        tpl.add_partition_offset(topic, *p, start)?;
    }
    if tpl.count() == 0 {
        tracing::info!(topic, "nothing to replay");
        return Ok(summary(topic, &parts, BatchStats::default()));
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
    let mut end = HashMap::new();
    for (p, part) in &parts {
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(style.clone());
        bar.set_prefix(format!("{topic}[{p}]"));
        bars.insert(*p, bar);
        end.insert(*p, part.end);
    }
    let bars = Arc::new(bars);
    let totals = Arc::new(Mutex::new(BatchStats::default()));
    let (b, t) = (bars.clone(), totals.clone());
    let cancel = shutdown.child_token();
    let workers = Workers::new(
        pipeline,
        opts.stream.workers(),
        Arc::new(move |_topic, partition, last, stats| {
            *t.lock().expect("totals") += *stats;
            if let Some(bar) = b.get(&partition) {
                bar.inc(stats.records as u64);
                if let Some(e) = end.get(&partition) {
                    bar.set_message(format!("lag ~{}", (e - last - 1).max(0)));
                }
            }
        }),
        cancel.clone(),
    );

    let until_ms = match &opts.until {
        ReplayUntil::Time(t) => Some(t.timestamp_millis()),
        ReplayUntil::End => None,
    };
    let idle = opts.idle_timeout;
    let pause = |p: i32, on: bool| {
        let mut l = TopicPartitionList::new();
        l.add_partition(topic, p);
        let r = if on {
            consumer.pause(&l)
        } else {
            consumer.resume(&l)
        };
        if let Err(e) = r {
            tracing::warn!(topic, partition = p, error = %e, "cannot pause/resume");
        }
    };
    let finish = |p: i32, part: &mut Part, how: Ended| {
        part.ended = Some(how);
        workers.close(|_, wp| wp == p);
        pause(p, true);
        if let Some(bar) = bars.get(&p) {
            bar.finish_with_message(format!("{how:?}"));
        }
        tracing::debug!(
            topic,
            partition = p,
            read_to = part.next,
            end = part.end,
            ?how,
            "partition done"
        );
    };
    let mut failure = None;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while parts.values().any(|p| p.ended.is_none()) {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                for (_, p) in workers.refill() {
                    if let Some(part) = parts.get_mut(&p) {
                        if part.paused && part.ended.is_none() {
                            pause(p, false);
                            part.paused = false;
                            part.resumed = true;
                            part.idle_since = Instant::now();
                        }
                    }
                }
                for (p, part) in parts.iter_mut() {
                    if part.ended.is_some() || part.paused {
                        continue;
                    }
                    let quiet = part.idle_since.elapsed();
                    let enough = if part.resumed { idle * 3 } else { idle };
                    if part.next >= part.end && quiet >= enough {
                        finish(*p, part, Ended::End);
                    } else if part.next < part.end && quiet >= stall_limit(idle) {
                        tracing::error!(topic, partition = p, read_to = part.next, end = part.end,
                            "nothing read for {:?} before the end offset: giving up on this partition", quiet);
                        finish(*p, part, Ended::Short);
                    } else if part.next < part.end && quiet >= idle && part.warned.elapsed() >= idle {
                        part.warned = Instant::now();
                        tracing::warn!(topic, partition = p, read_to = part.next, end = part.end,
                            "nothing read for {:.0?} before the end offset; still waiting", quiet);
                    }
                }
            }
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    let p = rdkafka::Message::partition(&m);
                    let Some(part) = parts.get_mut(&p) else { continue };
                    if part.ended.is_some() {
                        continue;
                    }
                    part.idle_since = Instant::now();
                    part.resumed = false;
                    let offset = rdkafka::Message::offset(&m);
                    if offset < part.next {
                        continue; // fetched again after a resume
                    }
                    let ts = rdkafka::Message::timestamp(&m).to_millis();
                    if let (Some(until), Some(ts)) = (until_ms, ts) {
                        if ts > until {
                            finish(p, part, Ended::Until);
                            continue;
                        }
                    }
                    let rec = Record::from_message(&m);
                    drop(m);
                    part.next = offset + 1;
                    part.records += 1;
                    match workers.offer(rec) {
                        Offer::Queued | Offer::Held => {}
                        Offer::Duplicate => part.records -= 1,
                        Offer::Full => {
                            if !part.paused {
                                pause(p, true);
                                part.paused = true;
                            }
                        }
                    }
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    if let Some(part) = parts.get_mut(&p) {
                        part.idle_since = Instant::now();
                        part.resumed = false;
                        if part.ended.is_none() && part.next >= part.end {
                            finish(p, part, Ended::End);
                        }
                    }
                }
                Err(KafkaError::MessageConsumption(
                    code @ (RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange),
                )) => {
                    failure = Some(ReplayError::Topic(format!(
                        "{topic}: a start offset is out of range ({code}); check --from against the partitions' offsets"
                    )));
                    cancel.cancel();
                }
                Err(e) => tracing::warn!(topic, error = %e, "Kafka consumer error"),
            },
        }
    }
    for part in parts.values_mut().filter(|p| p.ended.is_none()) {
        part.ended = Some(Ended::Interrupted);
    }
    workers.close(|_, _| true);
    workers.wait_all().await;
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(e) = workers.fatal() {
        return Err(e.into());
    }
    if shutdown.is_cancelled() {
        return Err(ReplayError::Interrupted);
    }
    let stats = *totals.lock().expect("totals");
    Ok(summary(topic, &parts, stats))
}

fn summary(topic: &str, parts: &BTreeMap<i32, Part>, stats: BatchStats) -> ReplaySummary {
    let per_partition: Vec<PartitionReport> = parts
        .iter()
        .map(|(p, part)| PartitionReport {
            topic: topic.to_string(),
            partition: *p,
            start: part.start,
            end: part.end,
            read_to: part.next,
            records: part.records,
            ended: part.ended.unwrap_or(Ended::Interrupted),
        })
        .collect();
    let complete = per_partition
        .iter()
        .all(|p| matches!(p.ended, Ended::End | Ended::Until));
    ReplaySummary {
        stats,
        partitions: per_partition.len(),
        per_partition,
        complete,
        unseen_sources: Vec::new(),
        key_moves: Default::default(),
    }
}
