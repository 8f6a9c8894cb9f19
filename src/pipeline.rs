//! One batch of Kafka records → DynamoDB: decode, map, write (coalesced), dead-letter the
//! poison. Shared by `run` and `replay`; they differ only in how they consume and commit.
//!
//! Invariant: when [`Pipeline::process`] returns `Ok`, every record of the batch is either
//! durably applied (or stale: a newer version is stored), skipped by rule (control records,
//! tombstones, unmapped tables when `run.unmapped = "skip"`), or acknowledged by the
//! dead-letter topic. Only then may the caller store the batch's offsets.

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cdc::{self, ControlKind, Decoded, KafkaPos, Op};
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
        self.process_until(records, &CancellationToken::new())
            .await?
            .ok_or_else(|| FatalError::new("batch cancelled"))
    }

    /// [`Pipeline::process`] that stops waiting on DynamoDB (throttling is waited out without
    /// limit) when `cancel` fires, e.g. on shutdown or when the partition is revoked:
    /// `Ok(None)`, and the batch's offsets must not be stored (it is re-read).
    pub async fn process_until(
        &self,
        records: &[Record],
        cancel: &CancellationToken,
    ) -> Result<Option<BatchStats>, FatalError> {
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
                Ok(Decoded::Tombstone) => {
                    stats.skipped += 1;
                    continue;
                }
                Ok(Decoded::Control(c)) => {
                    stats.skipped += 1;
                    note_control(c.kind(), &c.schema, &c.table, rec);
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
            if event.op == Op::Truncate {
                // Not applied (the mapping dead-letters it with a hint); counted like DMS's.
                note_control(
                    ControlKind::Truncate,
                    &event.table.schema,
                    &event.table.table,
                    rec,
                );
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
            let Some(results) = self.writer.write_until(writes, cancel).await? else {
                return Ok(None);
            };
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
        Ok(Some(stats))
    }
}

/// A control record is never applied and never skipped silently: counted by kind, and logged
/// (at warn when it changes what the mapping reads: the items in DynamoDB do not follow it).
fn note_control(kind: ControlKind, schema: &str, table: &str, rec: &Record) {
    metrics::counter!("cutover_control_records_total", "kind" => kind.as_str()).increment(1);
    let hint = match kind {
        ControlKind::CreateTable | ControlKind::Message | ControlKind::Other => {
            tracing::info!(
                kind = kind.as_str(),
                source = %format!("{schema}.{table}"),
                topic = %rec.topic, partition = rec.partition, offset = rec.offset,
                "control record: nothing to apply"
            );
            return;
        }
        ControlKind::DropTable | ControlKind::Truncate => {
            "its items stay in DynamoDB; rebuild the target (`cutover replay`) or remove them by hand"
        }
        ControlKind::Rename => {
            "later changes arrive under the new name: map it (`[[table]] source`), or they are unmapped"
        }
        ControlKind::ColumnChange => {
            "check the mapping (`columns`, `types`, `rename`) against the new columns; `cutover validate`"
        }
    };
    tracing::warn!(
        kind = kind.as_str(),
        source = %format!("{schema}.{table}"),
        topic = %rec.topic, partition = rec.partition, offset = rec.offset,
        "source table definition changed; not applied: {hint}"
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::dynamo::MockDynamoApi;
    use crate::sink::SinkConfig;

    fn control(operation: &str, offset: i64) -> Record {
        let payload = format!(
            r#"{{"control":{{}},"metadata":{{"timestamp":"2024-01-01T00:00:00Z","record-type":"control","operation":"{operation}","partition-key-type":"task-id","schema-name":"shop","table-name":"orders"}}}}"#
        );
        Record {
            topic: "t".into(),
            offset,
            payload: Some(payload.into_bytes()),
            ..Default::default()
        }
    }

    fn debezium_truncate(offset: i64) -> Record {
        let payload = r#"{"before":null,"after":null,"op":"t","ts_ms":1,"source":{"db":"shop","table":"orders","file":"mysql-bin.000003","pos":10,"row":0,"ts_ms":1,"snapshot":"false"}}"#;
        Record {
            topic: "t".into(),
            offset,
            payload: Some(payload.as_bytes().to_vec()),
            ..Default::default()
        }
    }

    /// Control records are counted by kind (and logged), never skipped silently.
    #[test]
    fn control_records_are_counted_by_kind() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let sink = SinkConfig::default();
        let pipeline = Pipeline::new(
            Arc::new(Mapping::new(&[], &sink).unwrap()),
            Writer::new(MockDynamoApi::new(), sink.clone()),
            DeadLetters::new(&KafkaConfig::default()).unwrap(),
            Arc::new(KafkaConfig::default()),
            Unmapped::Skip,
            Selection::default(),
        );
        let records = vec![
            control("drop-table", 0),
            control("add-column", 1),
            control("column-type-change", 2),
            control("rename-table", 3),
            control("create-table", 4),
            debezium_truncate(5),
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stats = metrics::with_local_recorder(&recorder, || {
            rt.block_on(pipeline.process(&records)).unwrap()
        });
        assert_eq!(stats.skipped, 6, "{stats:?}");
        let text = handle.render();
        for (kind, n) in [
            ("drop_table", 1),
            ("column_change", 2),
            ("rename", 1),
            ("create_table", 1),
            ("truncate", 1),
        ] {
            let line = format!("cutover_control_records_total{{kind=\"{kind}\"}} {n}");
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
    }
}
