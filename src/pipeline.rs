//! One batch of Kafka records → DynamoDB: decode, map, write (coalesced), dead-letter the
//! poison. Shared by `run` and `replay`; they differ only in how they consume and commit.
//!
//! Invariant: when [`Pipeline::process`] returns `Ok`, every record of the batch is either
//! durably applied (or stale: a newer version is stored), skipped by rule (control records,
//! tombstones, unmapped tables when `run.unmapped = "skip"`), or acknowledged by the
//! dead-letter topic. Only then may the caller store the batch's offsets.

use std::collections::HashSet;
use std::sync::Arc;

use crate::cdc::{self, Decoded, KafkaPos};
use crate::error::{Classify, Disposition, FatalError};
use crate::kafka::dlq::{DeadLetters, Stage};
use crate::kafka::{KafkaConfig, Record};
use crate::mapping::{Mapped, Mapping};
use crate::sink::{DynamoApi, ItemOutcome, SdkApi, Writer};

/// What to do with records of tables that have no `[[table]]` block (`run.unmapped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmapped {
    Skip,
    Dlq,
}

/// Counts for one batch (and, summed, for a whole replay).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchStats {
    pub records: usize,
    pub changes: usize,
    pub applied: usize,
    pub stale: usize,
    pub skipped: usize,
    pub dead_lettered: usize,
    /// Held back by `rebuild` mode until the replay's end (see `ReplaySummary::deferred`).
    pub deferred: usize,
}

impl std::ops::AddAssign for BatchStats {
    fn add_assign(&mut self, s: BatchStats) {
        self.records += s.records;
        self.changes += s.changes;
        self.applied += s.applied;
        self.stale += s.stale;
        self.skipped += s.skipped;
        self.dead_lettered += s.dead_lettered;
        self.deferred += s.deferred;
    }
}

/// Which records a pipeline applies, and where.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these source tables (`schema.table`); all mapped tables when `None`.
    pub sources: Option<HashSet<String>>,
    /// Write into this table instead of the mapping's target.
    pub target_table: Option<Arc<str>>,
}

pub struct Pipeline<A: DynamoApi = SdkApi> {
    mapping: Arc<Mapping>,
    writer: Writer<A>,
    dlq: DeadLetters,
    kafka: Arc<KafkaConfig>,
    unmapped: Unmapped,
    selection: Selection,
}

impl<A: DynamoApi> Pipeline<A> {
    pub fn new(
        mapping: Arc<Mapping>,
        writer: Writer<A>,
        dlq: DeadLetters,
        kafka: Arc<KafkaConfig>,
        unmapped: Unmapped,
        selection: Selection,
    ) -> Self {
        Pipeline {
            mapping,
            writer,
            dlq,
            kafka,
            unmapped,
            selection,
        }
    }

    /// The writer (e.g. for `rebuild` mode's [`Writer::finish_deferred`] at a replay's end).
    pub fn writer(&self) -> &Writer<A> {
        &self.writer
    }

    pub async fn process(&self, records: &[Record]) -> Result<BatchStats, FatalError> {
        let mut stats = BatchStats {
            records: records.len(),
            ..Default::default()
        };
        let mut writes = Vec::with_capacity(records.len());
        let mut owners = Vec::with_capacity(records.len());
        let mut poison: Vec<(usize, Stage, String)> = Vec::new();
        for (i, rec) in records.iter().enumerate() {
            let format = self.kafka.format_for(&rec.topic);
            let mut event = match cdc::decode(rec.payload.as_deref(), format) {
                Err(e) => {
                    settle(e, i, Stage::Decode, &mut poison)?;
                    continue;
                }
                Ok(Decoded::Tombstone) | Ok(Decoded::Control(_)) => {
                    stats.skipped += 1;
                    continue;
                }
                Ok(Decoded::Change(ev)) => ev,
            };
            event.kafka = Some(KafkaPos {
                topic: rec.topic.clone(),
                partition: rec.partition,
                offset: rec.offset,
            });
            if let Some(sources) = &self.selection.sources {
                if !sources.contains(&format!("{}.{}", event.table.schema, event.table.table)) {
                    stats.skipped += 1;
                    continue;
                }
            }
            stats.changes += 1;
            metrics::counter!("cutover_records_in_total",
                "table" => format!("{}.{}", event.table.schema, event.table.table),
                "op" => event.op.as_str())
            .increment(1);
            let mapped = match &self.selection.target_table {
                Some(t) => self.mapping.map_into(&event, t),
                None => self.mapping.map(&event),
            };
            match mapped {
                Err(e) => settle(e, i, Stage::Map, &mut poison)?,
                Ok(Mapped::Unmapped) => match self.unmapped {
                    Unmapped::Skip => {
                        stats.skipped += 1;
                        metrics::counter!("cutover_records_skipped_total", "reason" => "unmapped")
                            .increment(1);
                    }
                    Unmapped::Dlq => poison.push((
                        i,
                        Stage::Unmapped,
                        format!(
                            "no [[table]] maps {}.{}",
                            event.table.schema, event.table.table
                        ),
                    )),
                },
                Ok(Mapped::Writes(ws)) => {
                    for w in ws {
                        writes.push(w);
                        owners.push(i);
                    }
                }
            }
        }
        if !writes.is_empty() {
            let results = self.writer.write(writes).await?;
            let mut seen = HashSet::new();
            for r in results {
                match r.outcome {
                    ItemOutcome::Applied => stats.applied += 1,
                    ItemOutcome::Stale => stats.stale += 1,
                    ItemOutcome::Deferred => stats.deferred += 1,
                    ItemOutcome::Poison(reason) => {
                        for input in r.inputs {
                            if seen.insert(owners[input]) {
                                poison.push((owners[input], Stage::Write, reason.clone()));
                            }
                        }
                    }
                }
            }
        }
        poison.sort_by_key(|p| p.0);
        let letters: Vec<_> = poison
            .iter()
            .map(|(i, stage, reason)| (&records[*i], *stage, reason.as_str()))
            .collect();
        self.dlq.send_all(&letters).await?;
        stats.dead_lettered = poison.len();
        Ok(stats)
    }
}

/// The one decision on a record whose step failed, by its error's class: poison is
/// dead-lettered with its reason and the stream goes on; anything else stops the stream
/// without storing the offset (retrying is the writer's job, and a record that might succeed
/// later must never be skipped). Decode and map errors are poison by their type.
fn settle(
    e: impl Classify + std::fmt::Display,
    record: usize,
    stage: Stage,
    poison: &mut Vec<(usize, Stage, String)>,
) -> Result<(), FatalError> {
    match e.disposition() {
        Disposition::Poison => {
            poison.push((record, stage, e.to_string()));
            Ok(())
        }
        Disposition::Retry | Disposition::Fatal => {
            Err(FatalError::new(format!("{}: {e}", stage.as_str())))
        }
    }
}
