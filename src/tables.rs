//! `cutover tables create`: DynamoDB tables (key schema, GSIs, TTL) from the mapping.
//! For local use and CI; production tables come from `infra/`.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use crate::mapping::{KeyType as AttrType, TargetSpec};

fn scalar(t: AttrType) -> ScalarAttributeType {
    match t {
        AttrType::S => ScalarAttributeType::S,
        AttrType::N => ScalarAttributeType::N,
    }
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type set")
}

/// Create `spec` under `name` if it does not exist; wait until ACTIVE; enable TTL.
/// Returns false when the table already existed.
pub async fn create(client: &Client, spec: &TargetSpec, name: &str) -> anyhow::Result<bool> {
    let mut attrs: Vec<(String, AttrType)> = vec![spec.partition_key.clone()];
    attrs.extend(spec.sort_key.clone());
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(&spec.partition_key.0, KeyType::Hash));
    if let Some((sk, _)) = &spec.sort_key {
        req = req.key_schema(key(sk, KeyType::Range));
    }
    for g in &spec.gsis {
        attrs.push((g.partition_key.clone(), g.partition_key_type));
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(&g.name)
            .key_schema(key(&g.partition_key, KeyType::Hash))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            );
        if let Some(sk) = &g.sort_key {
            attrs.push((sk.clone(), g.sort_key_type));
            gsi = gsi.key_schema(key(sk, KeyType::Range));
        }
        req = req.global_secondary_indexes(gsi.build()?);
    }
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    attrs.dedup_by(|a, b| a.0 == b.0);
    for (n, t) in attrs {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(scalar(t))
                .build()?,
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("ResourceInUseException") => {
            return Ok(false)
        }
        Err(e) => {
            return Err(anyhow::anyhow!(
                "cannot create table {name}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            ))
        }
    }
    for _ in 0..120 {
        let d = client.describe_table().table_name(name).send().await?;
        if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(&spec.ttl_attribute)
                .enabled(true)
                .build()?,
        )
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot enable TTL on {name}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(true)
}

/// Fail fast, with a clear message, when a target table is missing or credentials are bad.
pub async fn check_exist<'a>(
    client: &Client,
    tables: impl IntoIterator<Item = &'a String>,
) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for t in tables {
        match client.describe_table().table_name(t).send().await {
            Ok(_) => {}
            Err(SdkError::ServiceError(e))
                if e.err().code() == Some("ResourceNotFoundException") =>
            {
                missing.push(t.clone())
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot reach DynamoDB (table {t}): {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                ))
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "DynamoDB table(s) missing: {}. Create them (`cutover tables create` locally, infra/ in AWS) or fix the mapping's targets",
            missing.join(", ")
        ))
    }
}
