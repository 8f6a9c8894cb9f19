//! The DynamoDB edge: every call cutover makes to DynamoDB goes through here. The writer's
//! calls sit behind [`DynamoApi`] and the data-access layer's reads behind [`DynamoRead`]
//! (both mocked in tests for failures a real server can't produce on demand); `verify`'s
//! BatchGetItem and Scan, and `tables`' DescribeTable and CreateTable, are methods of
//! [`SdkApi`], the real client.
//!
//! Every SDK error is classified once, here (`classify`), into a [`WriteError`] whose variant
//! is its disposition (retry, dead-letter, stop), so every loop that handles these errors is a
//! single `match` (kept on purpose: see `Classify` in [`crate::error`]).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};

mod client;

use super::retry::RetryPolicy;
use crate::error::{Classify, Disposition};
use crate::mapping::{self, TargetSpec};
pub use client::{client, for_writer};

/// An item (or a key) as the SDK carries it.
pub type Item = HashMap<String, AttributeValue>;

/// What went wrong, as data: the caller's retry decision depends only on the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Throughput exceeded: back off and retry.
    #[error("throttled: {0}")]
    Throttled(String),
    /// Timeouts, connection failures, 5xx: retry.
    #[error("transient: {0}")]
    Transient(String),
    /// This item can never be written (validation): dead-letter its records.
    #[error("rejected: {0}")]
    Poison(String),
    /// Nothing will work until an operator acts (missing table, bad credentials): stop.
    #[error("{0}")]
    Fatal(String),
    /// Throttled or transient until the retries ran out. It ends the call (and so stops a
    /// stream), but keeps its class: waiting may still fix it (the repair worker waits).
    #[error("DynamoDB table {table}: still failing after {retries} retries: {message}")]
    Exhausted {
        table: String,
        retries: usize,
        message: String,
    },
}

impl Classify for WriteError {
    fn disposition(&self) -> Disposition {
        match self {
            WriteError::Throttled(_) | WriteError::Transient(_) | WriteError::Exhausted { .. } => {
                Disposition::Retry
            }
            WriteError::Poison(_) => Disposition::Poison,
            WriteError::Fatal(_) => Disposition::Fatal,
        }
    }
}

/// One single-item write, already rendered into DynamoDB expressions.
#[derive(Debug, Clone, PartialEq)]
pub struct SingleWrite {
    pub table: String,
    pub kind: SingleKind,
    pub condition: Option<String>,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SingleKind {
    Update {
        key: HashMap<String, AttributeValue>,
        expression: String,
    },
    Put {
        item: HashMap<String, AttributeValue>,
    },
    Delete {
        key: HashMap<String, AttributeValue>,
    },
}

/// The calls the writer makes. Mocked in unit tests for failures real servers can't produce
/// on demand (throttling, timeouts, partial batches).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DynamoApi: Send + Sync + 'static {
    /// `Ok(true)`: applied. `Ok(false)`: the condition failed (a newer version is stored).
    async fn write_one(&self, write: SingleWrite) -> Result<bool, WriteError>;
    /// BatchWriteItem of at most 25 requests; returns the unprocessed ones.
    async fn write_batch(
        &self,
        table: String,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, WriteError>;
    /// One strongly consistent BatchGetItem of at most 100 keys, projected to the key and
    /// `attributes`: the items found, and the keys left unprocessed (retry them).
    /// `sink.write_mode = "rebuild"` reads the stored versions this way.
    async fn read_batch(
        &self,
        table: String,
        keys: Vec<Item>,
        attributes: Vec<String>,
    ) -> Result<(Vec<Item>, Vec<Item>), WriteError> {
        let _ = (keys, attributes);
        Err(WriteError::Fatal(format!(
            "DynamoDB table {table}: this backend cannot read versions in batches \
             (use sink.write_mode = \"conditional\")"
        )))
    }
}

/// Lets one writer type serve any backend (the data-access layer keeps its API behind this).
#[async_trait]
impl DynamoApi for std::sync::Arc<dyn DynamoApi> {
    async fn write_one(&self, write: SingleWrite) -> Result<bool, WriteError> {
        (**self).write_one(write).await
    }
    async fn write_batch(
        &self,
        table: String,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, WriteError> {
        (**self).write_batch(table, requests).await
    }
    async fn read_batch(
        &self,
        table: String,
        keys: Vec<Item>,
        attributes: Vec<String>,
    ) -> Result<(Vec<Item>, Vec<Item>), WriteError> {
        (**self).read_batch(table, keys, attributes).await
    }
}

/// One page of a Query on a partition key (and a sort-key prefix).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    pub table: String,
    pub partition_key: (String, AttributeValue),
    pub sort_prefix: Option<(String, String)>,
    pub limit: i32,
    pub start: Option<Item>,
}

/// The reads the data-access layer makes. Mocked in tests for failures a real server can't
/// produce on demand (throttling, timeouts).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DynamoRead: Send + Sync + 'static {
    async fn get_item(&self, table: String, key: Item) -> Result<Option<Item>, WriteError>;
    /// Items of one page, and the key to continue from.
    async fn query_page(&self, q: QueryPage) -> Result<(Vec<Item>, Option<Item>), WriteError>;
}

/// A table's key attributes as DynamoDB describes them: (name, type `S` | `N` | `B`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableKeys {
    pub partition_key: Option<(String, String)>,
    pub sort_key: Option<(String, String)>,
}

/// The real thing.
#[derive(Clone, Debug)]
pub struct SdkApi {
    pub client: Client,
}

/// The tail every guarded single-item request shares: the condition with its names and
/// values, send, and the one classification of the outcome.
macro_rules! send_guarded {
    ($request:expr, $w:expr, $names:expr, $values:expr) => {
        $request
            .set_condition_expression($w.condition)
            .set_expression_attribute_names($names)
            .set_expression_attribute_values($values)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, &$w.table))
    };
}

#[async_trait]
impl DynamoApi for SdkApi {
    async fn write_one(&self, w: SingleWrite) -> Result<bool, WriteError> {
        let names = (!w.names.is_empty()).then_some(w.names);
        let values = (!w.values.is_empty()).then_some(w.values);
        let c = &self.client;
        let result = match w.kind {
            SingleKind::Update { key, expression } => send_guarded!(
                c.update_item()
                    .table_name(&w.table)
                    .set_key(Some(key))
                    .update_expression(expression),
                w,
                names,
                values
            ),
            SingleKind::Put { item } => send_guarded!(
                c.put_item().table_name(&w.table).set_item(Some(item)),
                w,
                names,
                values
            ),
            SingleKind::Delete { key } => send_guarded!(
                c.delete_item().table_name(&w.table).set_key(Some(key)),
                w,
                names,
                values
            ),
        };
        match result {
            Ok(()) => Ok(true),
            Err(Classified::ConditionFailed) => Ok(false),
            Err(Classified::Error(e)) => Err(e),
        }
    }

    async fn write_batch(
        &self,
        table: String,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, WriteError> {
        let out = self
            .client
            .batch_write_item()
            .request_items(table.clone(), requests)
            .send()
            .await
            .map_err(|e| read_error(e, &table))?;
        Ok(out
            .unprocessed_items
            .and_then(|mut m| m.remove(&table))
            .unwrap_or_default())
    }

    async fn read_batch(
        &self,
        table: String,
        keys: Vec<Item>,
        attributes: Vec<String>,
    ) -> Result<(Vec<Item>, Vec<Item>), WriteError> {
        let key_names: Vec<String> = keys
            .first()
            .map(|k| k.keys().cloned().collect())
            .unwrap_or_default();
        let names: HashMap<String, String> = key_names
            .into_iter()
            .chain(attributes)
            .enumerate()
            .map(|(i, n)| (format!("#p{i}"), n))
            .collect();
        let projection = names.keys().cloned().collect::<Vec<_>>().join(", ");
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .projection_expression(projection)
            .set_expression_attribute_names(Some(names))
            .build()
            .map_err(build_error)?;
        let resp = self
            .client
            .batch_get_item()
            .request_items(table.clone(), request)
            .send()
            .await
            .map_err(|e| read_error(e, &table))?;
        let found = resp
            .responses
            .and_then(|mut r| r.remove(&table))
            .unwrap_or_default();
        let unprocessed = resp
            .unprocessed_keys
            .and_then(|mut m| m.remove(&table))
            .map(|k| k.keys)
            .unwrap_or_default();
        Ok((found, unprocessed))
    }
}

#[async_trait]
impl DynamoRead for SdkApi {
    async fn get_item(&self, table: String, key: Item) -> Result<Option<Item>, WriteError> {
        let out = self
            .client
            .get_item()
            .table_name(&table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| read_error(e, &table))?;
        Ok(out.item)
    }

    async fn query_page(&self, q: QueryPage) -> Result<(Vec<Item>, Option<Item>), WriteError> {
        let mut req = self
            .client
            .query()
            .table_name(&q.table)
            .consistent_read(true)
            .limit(q.limit)
            .set_exclusive_start_key(q.start)
            .expression_attribute_names("#pk", &q.partition_key.0)
            .expression_attribute_values(":pk", q.partition_key.1);
        req = match q.sort_prefix {
            Some((name, prefix)) if !prefix.is_empty() => req
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :skp)")
                .expression_attribute_names("#sk", name)
                .expression_attribute_values(":skp", AttributeValue::S(prefix)),
            _ => req.key_condition_expression("#pk = :pk"),
        };
        let out = req.send().await.map_err(|e| read_error(e, &q.table))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }
}

impl SdkApi {
    /// Strongly consistent BatchGetItem of `keys` (deduplicated by the caller) from the table
    /// `spec` names, ≤ 100 keys per request, four requests in flight; UnprocessedKeys are
    /// retried by `retry`. Returns the items found, by their identity ([`mapping::key_id`]).
    pub async fn batch_get(
        &self,
        spec: &TargetSpec,
        keys: Vec<Item>,
        retry: RetryPolicy,
    ) -> Result<HashMap<String, Item>, WriteError> {
        let table = spec.name.as_str();
        let chunks: Vec<Vec<Item>> = keys.chunks(100).map(<[Item]>::to_vec).collect();
        let found: Vec<Vec<Item>> = stream::iter(chunks)
            .map(|chunk| self.batch_get_chunk(table, chunk, retry))
            .buffer_unordered(4)
            .try_collect()
            .await?;
        Ok(found
            .into_iter()
            .flatten()
            .filter_map(|item| Some((spec.key_id_of(&item)?, item)))
            .collect())
    }

    async fn batch_get_chunk(
        &self,
        table: &str,
        chunk: Vec<Item>,
        retry: RetryPolicy,
    ) -> Result<Vec<Item>, WriteError> {
        let mut pending = chunk;
        let mut out = Vec::new();
        let mut delays = retry.delays();
        loop {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(|e| WriteError::Fatal(format!("BatchGetItem request: {e}")))?;
            let resp = self
                .client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| read_error(e, table))?;
            if let Some(mut r) = resp.responses {
                out.extend(r.remove(table).unwrap_or_default());
            }
            match resp
                .unprocessed_keys
                .and_then(|mut m| m.remove(table))
                .map(|k| k.keys)
            {
                Some(k) if !k.is_empty() => {
                    let Some(wait) = delays.next() else {
                        return Err(WriteError::Fatal(format!(
                            "BatchGetItem on {table}: keys still unprocessed after {} retries",
                            retry.max_retries.unwrap_or_default()
                        )));
                    };
                    pending = k;
                    tokio::time::sleep(wait).await;
                }
                _ => return Ok(out),
            }
        }
    }

    /// One strongly consistent Scan page of `segment` (of `segments`): the items and the key
    /// to continue from.
    pub async fn scan_page(
        &self,
        table: &str,
        segment: i32,
        segments: i32,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), WriteError> {
        let page = self
            .client
            .scan()
            .table_name(table)
            .segment(segment)
            .total_segments(segments)
            .limit(limit)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| read_error(e, table))?;
        Ok((page.items.unwrap_or_default(), page.last_evaluated_key))
    }

    /// Whether `table` exists (DescribeTable). Any other failure (credentials, network) is an
    /// error.
    pub async fn exists(&self, table: &str) -> Result<bool, WriteError> {
        match self.client.describe_table().table_name(table).send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if e.err().code() == Some("ResourceNotFoundException") =>
            {
                Ok(false)
            }
            Err(e) => Err(read_error(e, table)),
        }
    }

    /// The key schema of `table` as DynamoDB describes it; `None` when the table does not
    /// exist. Any other failure (credentials, network) is an error.
    pub async fn key_schema(&self, table: &str) -> Result<Option<TableKeys>, WriteError> {
        let d = match self.client.describe_table().table_name(table).send().await {
            Ok(d) => d,
            Err(SdkError::ServiceError(e))
                if e.err().code() == Some("ResourceNotFoundException") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(read_error(e, table)),
        };
        let Some(t) = d.table() else {
            return Ok(None);
        };
        let type_of = |name: &str| {
            t.attribute_definitions()
                .iter()
                .find(|a| a.attribute_name() == name)
                .map_or("?".to_string(), |a| a.attribute_type().as_str().to_string())
        };
        let key = |kind: KeyType| {
            t.key_schema()
                .iter()
                .find(|k| *k.key_type() == kind)
                .map(|k| (k.attribute_name().to_string(), type_of(k.attribute_name())))
        };
        Ok(Some(TableKeys {
            partition_key: key(KeyType::Hash),
            sort_key: key(KeyType::Range),
        }))
    }

    /// Create `spec` under `name` if it does not exist (on-demand billing, GSIs projecting
    /// everything); wait until ACTIVE; enable TTL on its TTL attribute. `Ok(false)` when the
    /// table already existed.
    pub async fn create_table(&self, spec: &TargetSpec, name: &str) -> Result<bool, WriteError> {
        let mut attrs: Vec<(String, mapping::KeyType)> = vec![spec.partition_key.clone()];
        attrs.extend(spec.sort_key.clone());
        let mut req = self
            .client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key_element(&spec.partition_key.0, KeyType::Hash));
        if let Some((sk, _)) = &spec.sort_key {
            req = req.key_schema(key_element(sk, KeyType::Range));
        }
        for g in &spec.gsis {
            attrs.push((g.partition_key.clone(), g.partition_key_type));
            let mut gsi = GlobalSecondaryIndex::builder()
                .index_name(&g.name)
                .key_schema(key_element(&g.partition_key, KeyType::Hash))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                );
            if let Some(sk) = &g.sort_key {
                attrs.push((sk.clone(), g.sort_key_type));
                gsi = gsi.key_schema(key_element(sk, KeyType::Range));
            }
            req = req.global_secondary_indexes(gsi.build().map_err(build_error)?);
        }
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        attrs.dedup_by(|a, b| a.0 == b.0);
        for (n, t) in attrs {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(n)
                    .attribute_type(scalar(t))
                    .build()
                    .map_err(build_error)?,
            );
        }
        let describe = || async {
            let d = self
                .client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| read_error(e, name))?;
            Ok(d.table().and_then(|t| t.table_status()).cloned())
        };
        match req.send().await {
            Ok(_) => {}
            Err(SdkError::ServiceError(e)) if e.err().code() == Some("ResourceInUseException") => {
                // It exists, maybe still being created by someone else: usable only once ACTIVE.
                wait_until_active(name, ACTIVE_TIMEOUT, ACTIVE_POLL, describe).await?;
                return Ok(false);
            }
            Err(e) => {
                return Err(with_context(
                    read_error(e, name),
                    &format!("cannot create table {name}"),
                ))
            }
        }
        wait_until_active(name, ACTIVE_TIMEOUT, ACTIVE_POLL, describe).await?;
        self.client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&spec.ttl_attribute)
                    .enabled(true)
                    .build()
                    .map_err(build_error)?,
            )
            .send()
            .await
            .map_err(|e| {
                with_context(read_error(e, name), &format!("cannot enable TTL on {name}"))
            })?;
        Ok(true)
    }
}

const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
const ACTIVE_POLL: Duration = Duration::from_millis(250);

/// Poll `status` until the table is ACTIVE. Past `timeout`, an error naming the status it is
/// stuck in: a table that is not ACTIVE rejects writes, so carrying on would only fail later.
pub(crate) async fn wait_until_active<F, Fut>(
    table: &str,
    timeout: Duration,
    every: Duration,
    mut status: F,
) -> Result<(), WriteError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<TableStatus>, WriteError>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = status().await?;
        if now == Some(TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(WriteError::Fatal(format!(
                "DynamoDB table {table} is still {} after {}: not usable yet; check it (aws dynamodb describe-table) and retry",
                now.as_ref().map_or("without a status", |s| s.as_str()),
                humantime::format_duration(timeout),
            )));
        }
        tokio::time::sleep(every).await;
    }
}

fn scalar(t: mapping::KeyType) -> ScalarAttributeType {
    match t {
        mapping::KeyType::S => ScalarAttributeType::S,
        mapping::KeyType::N => ScalarAttributeType::N,
    }
}

fn key_element(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type set")
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> WriteError {
    WriteError::Fatal(format!("could not build the DynamoDB request: {e}"))
}

/// `what: ` before the error's message, keeping its class.
fn with_context(e: WriteError, what: &str) -> WriteError {
    match e {
        WriteError::Throttled(m) => WriteError::Throttled(format!("{what}: {m}")),
        WriteError::Transient(m) => WriteError::Transient(format!("{what}: {m}")),
        WriteError::Poison(m) => WriteError::Poison(format!("{what}: {m}")),
        WriteError::Fatal(m) => WriteError::Fatal(format!("{what}: {m}")),
        e @ WriteError::Exhausted { .. } => e,
    }
}

/// A call without a condition: a condition failure can only be a surprise.
fn read_error<E, R>(e: SdkError<E, R>, table: &str) -> WriteError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match classify(e, table) {
        Classified::Error(e) => e,
        Classified::ConditionFailed => WriteError::Poison("condition failed".into()),
    }
}

enum Classified {
    ConditionFailed,
    Error(WriteError),
}

fn classify<E, R>(err: SdkError<E, R>, table: &str) -> Classified
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    // The Debug form (thousands of characters) only at debug level; messages carry Display.
    tracing::debug!(table, error = ?err, "DynamoDB call failed");
    let context = display_chain(&err);
    let e = match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            let msg = se.err().message().unwrap_or("");
            match code {
                "ConditionalCheckFailedException" => return Classified::ConditionFailed,
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "LimitExceededException" => WriteError::Throttled(format!("{code}: {msg}")),
                "ResourceNotFoundException" => WriteError::Fatal(format!(
                    "DynamoDB table {table} does not exist: create it (`cutover tables create`) or fix the mapping's target"
                )),
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "AccessDeniedException"
                | "MissingAuthenticationTokenException"
                | "ExpiredTokenException"
                | "IncompleteSignatureException" => WriteError::Fatal(format!(
                    "DynamoDB rejected the credentials or permissions ({code}) for table {table}: {msg}"
                )),
                "ValidationException" | "ItemCollectionSizeLimitExceededException" => {
                    WriteError::Poison(format!("{code}: {msg}"))
                }
                "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
                | "TransactionInProgressException" => {
                    WriteError::Transient(format!("{code}: {msg}"))
                }
                _ => WriteError::Transient(format!("{code}: {msg}")),
            }
        }
        // No provider of the chain is configured: nothing to wait for. A provider that
        // failed (a metadata endpoint's hiccup) may succeed on the next try.
        SdkError::DispatchFailure(_)
            if context.contains("credential provider was not enabled")
                || context.contains("credentials provider was not properly configured") =>
        {
            WriteError::Fatal(no_credentials(table, None))
        }
        SdkError::DispatchFailure(_) if context.contains("loading credentials") => {
            WriteError::Transient(no_credentials(table, Some(&context)))
        }
        SdkError::ConstructionFailure(_) => {
            WriteError::Fatal(format!("could not build the DynamoDB request: {context}"))
        }
        _ => WriteError::Transient(context),
    };
    Classified::Error(e)
}

/// An error and its sources, Display only, without repeating a source its parent already
/// printed.
fn display_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The credential chain found nothing (or its last provider failed with `cause`): which chain
/// ran, and what to set.
fn no_credentials(table: &str, cause: Option<&str>) -> String {
    let cause = cause.map(|c| format!(" (last: {c})")).unwrap_or_default();
    format!(
        "no AWS credentials for DynamoDB (table {table}): tried AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
         the profile files (AWS_PROFILE, ~/.aws), and, without dynamodb.endpoint_url, web identity, ECS and EC2 instance metadata{cause}\n\
         hint: set AWS credentials; against DynamoDB Local (dynamodb.endpoint_url) any values work: \
         AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local"
    )
}
