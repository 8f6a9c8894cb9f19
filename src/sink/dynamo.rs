//! The DynamoDB edge: the few calls the writer makes, behind [`DynamoApi`], and the real SDK
//! client. Every SDK error is classified once, here, into a [`WriteError`] that says what to do
//! with it (retry, dead-letter, stop), so the retry loop is a single `match`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::config::DynamoConfig;

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
}

impl WriteError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, WriteError::Throttled(_) | WriteError::Transient(_))
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
}

/// Build an SDK client from `[dynamodb]` and the standard AWS credential chain.
pub async fn client(cfg: &DynamoConfig) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(
        // The SDK retries a few times itself; our writer's loop adds the long tail.
        aws_config::retry::RetryConfig::standard().with_max_attempts(3),
    );
    if let Some(region) = &cfg.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &cfg.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &cfg.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&shared);
    if shared.region().is_none() {
        builder = builder.region(aws_config::Region::new("us-east-1"));
    }
    Client::from_conf(builder.build())
}

/// The real thing.
#[derive(Clone, Debug)]
pub struct SdkApi {
    pub client: Client,
}

#[async_trait]
impl DynamoApi for SdkApi {
    async fn write_one(&self, w: SingleWrite) -> Result<bool, WriteError> {
        let names = (!w.names.is_empty()).then_some(w.names);
        let values = (!w.values.is_empty()).then_some(w.values);
        let result = match w.kind {
            SingleKind::Update { key, expression } => self
                .client
                .update_item()
                .table_name(&w.table)
                .set_key(Some(key))
                .update_expression(expression)
                .set_condition_expression(w.condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(e, &w.table)),
            SingleKind::Put { item } => self
                .client
                .put_item()
                .table_name(&w.table)
                .set_item(Some(item))
                .set_condition_expression(w.condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(e, &w.table)),
            SingleKind::Delete { key } => self
                .client
                .delete_item()
                .table_name(&w.table)
                .set_key(Some(key))
                .set_condition_expression(w.condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(e, &w.table)),
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
            .map_err(|e| match classify(e, &table) {
                Classified::Error(e) => e,
                Classified::ConditionFailed => WriteError::Poison("condition failed".into()),
            })?;
        Ok(out
            .unprocessed_items
            .and_then(|mut m| m.remove(&table))
            .unwrap_or_default())
    }
}

pub(crate) enum Classified {
    ConditionFailed,
    Error(WriteError),
}

pub(crate) fn classify<E, R>(err: SdkError<E, R>, table: &str) -> Classified
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let context = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
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
        SdkError::ConstructionFailure(_) => {
            WriteError::Fatal(format!("could not build the DynamoDB request: {context}"))
        }
        _ => WriteError::Transient(context),
    };
    Classified::Error(e)
}
