//! The new store: DynamoDB through the mapping. Writes go through the pipeline's guarded
//! [`Writer`] (conditional mode), so the service and `cutover run` share one version rule.
//! Reads are strongly consistent and skip tombstones and other entities' items.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use backon::Retryable;

use super::{AccessError, Item, RowJson};
use crate::cdc::{ChangeEvent, Op, Row, SourcePosition, TableRef};
use crate::error::Classify;
use crate::mapping::{Change, ItemWrite, Mapped, Mapping, SourceView};
use crate::sink::dynamo::{DynamoApi, DynamoRead, QueryPage, SdkApi, SingleKind, SingleWrite};
use crate::sink::{conditional_request, RetryPolicy, Writer};
use crate::sink::{DynamoConfig, SinkConfig, WriteMode};

/// The versions of `complete`-stage writes start above every binlog version
/// (`file_seq · 10^20 + …` stays below 10^37 for any real binlog file number), and still fit
/// DynamoDB's 38 digits. So no CDC record (an echo of the repair worker's copy into MySQL,
/// a late record) can overwrite a write made in `complete`.
pub const COMPLETE_BASE: u128 = 10u128.pow(37);

/// How a DynamoDB write of the layer is versioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// The binlog position read before the write (see the version rule in
    /// [`crate::access`]), under the shared guard `#v <= :v`. If the guard rejects it
    /// because the item holds a newer binlog version, a later commit is stored and wins (its
    /// own CDC record put it there). If the item holds a `complete`-stage version (the path
    /// was rolled back), the write replaces it compare-and-set, bringing the item back to
    /// binlog versions.
    Binlog(u128),
    /// A per-item counter: read the item's version `s`, write `max(s, floor) + 1` on the
    /// condition that the version is still `s`, and re-read and retry on conflict. Needs no
    /// MySQL. `complete` uses `floor = COMPLETE_BASE`.
    Counter { floor: u128 },
}

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

    fn event(view: &SourceView, op: Op, row: Row, before: Option<Row>) -> ChangeEvent {
        let (schema, table) = view.source.split_once('.').unwrap_or(("", &view.source));
        let (before, after) = match op {
            Op::Delete => (Some(row), None),
            _ => (before, Some(row)),
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

    /// The item writes of one row change (versions are set when applied).
    fn writes(
        &self,
        view: &SourceView,
        op: Op,
        row: &RowJson,
        before: Option<&RowJson>,
    ) -> Result<Vec<ItemWrite>, AccessError> {
        let before = before.map(cells).transpose()?;
        let event = Self::event(view, op, cells(row)?, before);
        match self.mapping.map(&event) {
            Ok(Mapped::Writes(ws)) => Ok(ws),
            Ok(Mapped::Unmapped) => Err(AccessError::UnknownEntity(view.source.clone())),
            Err(e) => Err(AccessError::Input(e.0)),
        }
    }

    /// Apply every item write of one row change, each under its own version (see
    /// [`Versioning`]). Returns only once every write is applied, or with the error: a write
    /// the guard rejected is never reported as done.
    async fn apply(&self, mut writes: Vec<ItemWrite>, v: Versioning) -> Result<(), AccessError> {
        // A moved item: write the new one before tombstoning the old one, so a failure in
        // between leaves both (found by verify), never neither.
        writes.sort_by_key(|w| matches!(w.change, Change::Delete { .. }));
        for w in writes {
            self.apply_one(w, v).await?;
        }
        Ok(())
    }

    async fn apply_one(&self, mut w: ItemWrite, v: Versioning) -> Result<(), AccessError> {
        if let (
            Versioning::Counter {
                floor: COMPLETE_BASE,
            },
            Change::Upsert { .. },
        ) = (v, &w.change)
        {
            // One round trip for an item that is new or already counts in `complete`: an
            // atomic increment in DynamoDB, serialized there.
            w.version = COMPLETE_BASE;
            let mut single = conditional_request(&w, self.writer.config());
            if let SingleKind::Update { expression, .. } = &mut single.kind {
                if let Some(rest) = expression.strip_prefix("SET #v = :v") {
                    *expression = format!("SET #v = if_not_exists(#v, :v) + :one{rest}");
                    single.condition = Some("attribute_not_exists(#v) OR #v >= :v".into());
                    single
                        .values
                        .insert(":one".into(), AttributeValue::N("1".into()));
                    if self.write_one(single).await? {
                        return Ok(());
                    }
                }
            }
        }
        let mut conflicts = 0u32;
        // What the item held when the last attempt was made (for the conditions below).
        let mut seen: Option<Option<u128>> = None;
        loop {
            let (version, expect) = match (v, seen) {
                // First try the shared guard: `attribute_not_exists(#v) OR #v <= :v`.
                (Versioning::Binlog(p), None) => (p, None),
                // Rejected: a newer binlog version stays (a later commit, which wins by the
                // version rule); a complete-stage version is replaced, compare-and-set.
                (Versioning::Binlog(p), Some(s)) => match s {
                    Some(s) if s >= COMPLETE_BASE => (p, Some(Some(s))),
                    _ => return Ok(()),
                },
                (Versioning::Counter { floor }, s) => {
                    let s = match s {
                        Some(s) => s,
                        None => self.item_version(&w).await?,
                    };
                    (s.unwrap_or(0).max(floor) + 1, Some(s))
                }
            };
            w.version = version;
            let mut single = conditional_request(&w, self.writer.config());
            if let Some(expect) = expect {
                match expect {
                    Some(s) => {
                        single.condition = Some("#v = :seen".into());
                        single
                            .values
                            .insert(":seen".into(), AttributeValue::N(s.to_string()));
                    }
                    None => single.condition = Some("attribute_not_exists(#v)".into()),
                }
                // A PutItem (tombstone) or DeleteItem used `:v` only in the guard replaced
                // here, and DynamoDB refuses an unused expression value.
                if matches!(
                    single.kind,
                    SingleKind::Put { .. } | SingleKind::Delete { .. }
                ) {
                    single.values.remove(":v");
                }
            }
            let applied = self.write_one(single).await?;
            if applied {
                return Ok(());
            }
            conflicts += 1;
            metrics::counter!("cutover_access_version_conflicts_total", "table" => w.table.to_string())
                .increment(1);
            seen = Some(self.item_version(&w).await?);
            // Another writer of this item got in between: wait a little (jittered) and
            // re-read. The caller's `access.timeout` bounds the whole call.
            let ms = 1 + rand::random::<u64>() % (2 + u64::from(conflicts.min(6)) * 4);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }

    /// One conditional write, retried while DynamoDB throttles or fails transiently
    /// (`[sink]`'s retry policy). `false`: the condition failed.
    async fn write_one(&self, single: SingleWrite) -> Result<bool, AccessError> {
        let api = self.writer.api();
        let call = || api.write_one(single.clone());
        call.retry(RetryPolicy::from(self.writer.config()).delays())
            .sleep(tokio::time::sleep)
            .when(Classify::is_retryable)
            .await
            .map_err(AccessError::Dynamo)
    }

    /// The version the item holds now (strongly consistent read), `None` if it has none.
    async fn item_version(&self, w: &ItemWrite) -> Result<Option<u128>, AccessError> {
        let key: Item = w
            .key
            .iter()
            .map(|k| (k.name.to_string(), k.value.clone()))
            .collect();
        let item = self.read.get_item(w.table.to_string(), key).await?;
        Ok(item.and_then(|i| version_in(&i, &w.part.version_attribute)))
    }

    /// Upsert the row's item at `version` (a binlog version; see the version rule).
    pub async fn put(
        &self,
        view: &SourceView,
        row: &RowJson,
        version: u128,
    ) -> Result<(), AccessError> {
        self.write(view, Op::Update, row, None, Versioning::Binlog(version))
            .await
    }

    /// Delete (tombstone) the key's item at `version`.
    pub async fn delete(
        &self,
        view: &SourceView,
        key: &RowJson,
        version: u128,
    ) -> Result<(), AccessError> {
        self.write(view, Op::Delete, key, None, Versioning::Binlog(version))
            .await
    }

    /// Write one row change (`Op::Update` upserts `row`, `Op::Delete` tombstones its key).
    /// `before`: the row as it was, when known, so a change of a key-template column (a
    /// sort-key move) also tombstones the old item, under the same rule.
    pub async fn write(
        &self,
        view: &SourceView,
        op: Op,
        row: &RowJson,
        before: Option<&RowJson>,
        v: Versioning,
    ) -> Result<(), AccessError> {
        let writes = self.writes(view, op, row, before)?;
        self.apply(writes, v).await
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

    /// The row as DynamoDB holds it (`None`: absent or tombstoned), and the item's version
    /// (`None`: no item).
    pub async fn get_versioned(
        &self,
        view: &SourceView,
        key: &RowJson,
    ) -> Result<(Option<RowJson>, Option<u128>), AccessError> {
        let item_key = self.item_key(view, key)?;
        let item = self
            .read
            .get_item(view.target.to_string(), item_key)
            .await?;
        let version = item
            .as_ref()
            .and_then(|i| version_in(i, &view.part.version_attribute));
        Ok((
            item.and_then(|i| self.mapping.unmap(&view.source, &i)),
            version,
        ))
    }

    /// The version the key's item holds now (`None`: no item).
    pub async fn version_of(
        &self,
        view: &SourceView,
        key: &RowJson,
    ) -> Result<Option<u128>, AccessError> {
        Ok(self.get_versioned(view, key).await?.1)
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
        let writes = self.writes(view, Op::Load, row, None).ok()?;
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

fn version_in(item: &Item, attribute: &str) -> Option<u128> {
    match item.get(attribute) {
        Some(AttributeValue::N(n)) => n.parse::<u128>().ok(),
        _ => None,
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
