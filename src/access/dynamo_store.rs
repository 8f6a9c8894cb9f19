//! The new store: DynamoDB through the mapping. Writes go through the pipeline's guarded
//! [`Writer`] (conditional mode), so the service and `cutover run` share one version rule.
//! Reads are strongly consistent and skip tombstones and other entities' items.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{AccessError, Item, RowJson};
use crate::cdc::{ChangeEvent, Op, Row, SourcePosition, TableRef};
use crate::mapping::{Change, ItemWrite, Mapped, Mapping, SourceView};
use crate::sink::dynamo::{DynamoApi, DynamoRead, QueryPage, SdkApi, WriteError};
use crate::sink::{DynamoConfig, SinkConfig, WriteMode};
use crate::sink::{ItemOutcome, Writer};

/// DynamoDB as the layer sees it.
#[derive(Clone)]
pub struct NewStore {
    read: Arc<dyn DynamoRead>,
    writer: Writer<Arc<dyn DynamoApi>>,
    mapping: Arc<Mapping>,
}

impl NewStore {
    pub fn new(
        read: Arc<dyn DynamoRead>,
        write: Arc<dyn DynamoApi>,
        sink: &SinkConfig,
        mapping: Arc<Mapping>,
    ) -> NewStore {
        let mut sink = sink.clone();
        // Several writers share these items: only guarded writes are safe.
        sink.write_mode = WriteMode::Conditional;
        NewStore {
            read,
            writer: Writer::new(write, sink),
            mapping,
        }
    }

    pub async fn connect(cfg: &DynamoConfig, sink: &SinkConfig, mapping: Arc<Mapping>) -> Self {
        let api = SdkApi {
            client: crate::sink::dynamo::client(cfg).await,
        };
        let api = Arc::new(api);
        NewStore::new(api.clone(), api, sink, mapping)
    }

    fn event(view: &SourceView, op: Op, row: Row) -> ChangeEvent {
        let (schema, table) = view.source.split_once('.').unwrap_or(("", &view.source));
        let (before, after) = match op {
            Op::Delete => (Some(row), None),
            _ => (None, Some(row)),
        };
        ChangeEvent {
            table: TableRef {
                schema: schema.to_string(),
                table: table.to_string(),
            },
            op,
            before,
            after,
            position: SourcePosition {
                commit_ts_us: Some(chrono::Utc::now().timestamp_micros()),
                ..Default::default()
            },
            kafka: None,
        }
    }

    fn writes(
        &self,
        view: &SourceView,
        op: Op,
        row: &RowJson,
        version: u128,
    ) -> Result<Vec<ItemWrite>, AccessError> {
        let event = Self::event(view, op, cells(row)?);
        match self.mapping.map(&event) {
            Ok(Mapped::Writes(mut ws)) => {
                for w in &mut ws {
                    w.version = version;
                }
                Ok(ws)
            }
            Ok(Mapped::Unmapped) => Err(AccessError::UnknownEntity(view.source.clone())),
            Err(e) => Err(AccessError::Input(e.0)),
        }
    }

    async fn apply(&self, writes: Vec<ItemWrite>) -> Result<(), AccessError> {
        let results = self
            .writer
            .write(writes)
            .await
            .map_err(AccessError::Write)?;
        for r in results {
            if let ItemOutcome::Poison(reason) = r.outcome {
                return Err(AccessError::Dynamo(WriteError::Poison(reason)));
            }
            // Stale is fine: a newer version (a later commit via CDC) is already stored.
        }
        Ok(())
    }

    /// Upsert the row's item at `version`.
    pub async fn put(
        &self,
        view: &SourceView,
        row: &RowJson,
        version: u128,
    ) -> Result<(), AccessError> {
        let writes = self.writes(view, Op::Update, row, version)?;
        self.apply(writes).await
    }

    /// Delete (tombstone) the key's item at `version`.
    pub async fn delete(
        &self,
        view: &SourceView,
        key: &RowJson,
        version: u128,
    ) -> Result<(), AccessError> {
        let writes = self.writes(view, Op::Delete, key, version)?;
        self.apply(writes).await
    }

    fn item_key(&self, view: &SourceView, key: &RowJson) -> Result<Item, AccessError> {
        let (attrs, _) = self
            .mapping
            .key_of(&view.source, &cells(key)?)
            .map_err(|e| AccessError::Input(e.0))?;
        Ok(attrs
            .into_iter()
            .map(|k| (k.name.to_string(), k.value))
            .collect())
    }

    /// The row as DynamoDB holds it, or `None` (absent or tombstoned).
    pub async fn get(
        &self,
        view: &SourceView,
        key: &RowJson,
    ) -> Result<Option<RowJson>, AccessError> {
        let item_key = self.item_key(view, key)?;
        let item = self
            .read
            .get_item(view.target.to_string(), item_key)
            .await?;
        Ok(item.and_then(|i| self.mapping.unmap(&view.source, &i)))
    }

    /// Rows whose partition key is rendered from `filter` (the columns of the partition-key
    /// template), up to `limit`, in sort-key order.
    pub async fn query(
        &self,
        view: &SourceView,
        filter: &RowJson,
        limit: usize,
    ) -> Result<Vec<RowJson>, AccessError> {
        let pk = self
            .mapping
            .partition_key_of(&view.source, &cells(filter)?)
            .map_err(|e| AccessError::Input(e.0))?;
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = QueryPage {
                table: view.target.to_string(),
                partition_key: (pk.name.to_string(), pk.value.clone()),
                sort_prefix: view
                    .sort_key
                    .as_ref()
                    .map(|(n, p)| (n.to_string(), p.clone())),
                limit: (limit.saturating_sub(out.len()).clamp(1, 1000)) as i32,
                start,
            };
            let (items, next) = self.read.query_page(page).await?;
            out.extend(
                items
                    .iter()
                    .filter_map(|i| self.mapping.unmap(&view.source, i))
                    .filter(|r| matches_filter(r, filter)),
            );
            if out.len() >= limit || next.is_none() {
                out.truncate(limit);
                return Ok(out);
            }
            start = next;
        }
    }

    /// A MySQL row as it reads back after a trip through the mapping: what a faithful
    /// DynamoDB copy of it looks like. Comparisons use this, so renames, excluded columns and
    /// type normalizations are not reported as differences.
    pub fn normalize(&self, view: &SourceView, row: &RowJson) -> Option<RowJson> {
        let writes = self.writes(view, Op::Load, row, 0).ok()?;
        let w = writes.into_iter().last()?;
        let Change::Upsert { set, .. } = w.change else {
            return None;
        };
        let mut item: Item = w
            .key
            .into_iter()
            .map(|k| (k.name.to_string(), k.value))
            .collect();
        item.extend(set);
        item.insert(
            w.part.version_attribute.clone(),
            AttributeValue::N("0".into()),
        );
        self.mapping.unmap(&view.source, &item)
    }
}

fn matches_filter(row: &RowJson, filter: &RowJson) -> bool {
    filter.iter().all(|(k, v)| match row.get(k) {
        Some(x) => x == v || json_text(x) == json_text(v),
        None => true,
    })
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Row JSON → cells, through the DMS decoder (as `cutover run` would read the same row).
pub fn cells(row: &RowJson) -> Result<Row, AccessError> {
    let pairs: Vec<(String, serde_json::Value)> =
        row.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    crate::mysql::cells_of(&pairs).map_err(|e| AccessError::Input(e.to_string()))
}
