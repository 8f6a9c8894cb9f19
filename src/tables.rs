//! `cutover tables create | render`: DynamoDB tables (key schema, GSIs, TTL) from the mapping.
//!
//! `create` is for local use and CI. Production tables come from `infra/`, which consumes
//! `render --format json` (or `--format terraform`, a `.tf.json` file), so the tables in infra
//! and the mapping `cutover run` uses cannot drift: a test renders the example mapping and
//! compares it with `infra/terraform/example/tables.json`.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::mapping::{KeyType as AttrType, Mapping, TargetSpec};

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

/// Every attribute in a key schema (table or index), sorted by name.
fn key_attributes(spec: &TargetSpec) -> Vec<(String, AttrType)> {
    let mut attrs: BTreeMap<String, AttrType> = BTreeMap::new();
    attrs.insert(spec.partition_key.0.clone(), spec.partition_key.1);
    if let Some((n, t)) = &spec.sort_key {
        attrs.insert(n.clone(), *t);
    }
    for g in &spec.gsis {
        attrs.insert(g.partition_key.clone(), g.partition_key_type);
        if let Some(sk) = &g.sort_key {
            attrs.insert(sk.clone(), g.sort_key_type);
        }
    }
    attrs.into_iter().collect()
}

/// `cutover tables render --format json`: the tables the mapping implies, for infra/.
pub fn render_json(mapping: &Mapping) -> Value {
    let tables: serde_json::Map<String, Value> = mapping
        .targets()
        .iter()
        .map(|(name, spec)| {
            let key = |(n, t): &(String, AttrType)| json!({ "name": n, "type": t.as_str() });
            (
                name.clone(),
                json!({
                    "name": name,
                    "hash_key": key(&spec.partition_key),
                    "range_key": spec.sort_key.as_ref().map(key),
                    "attributes": key_attributes(spec).iter().map(key).collect::<Vec<_>>(),
                    "global_secondary_indexes": spec.gsis.iter().map(|g| json!({
                        "name": g.name,
                        "hash_key": g.partition_key,
                        "range_key": g.sort_key,
                        "projection_type": "ALL",
                    })).collect::<Vec<_>>(),
                    "ttl_attribute": spec.ttl_attribute,
                    "sources": mapping.sources_of(name),
                }),
            )
        })
        .collect();
    json!({ "tables": tables })
}

/// `cutover tables render --format terraform`: Terraform JSON syntax (`*.tf.json`) with one
/// `aws_dynamodb_table` per target, on-demand billing and point-in-time recovery.
pub fn render_terraform(mapping: &Mapping) -> Value {
    let resources: serde_json::Map<String, Value> = mapping
        .targets()
        .iter()
        .map(|(name, spec)| {
            let id: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let mut table = json!({
                "name": name,
                "billing_mode": "PAY_PER_REQUEST",
                "hash_key": spec.partition_key.0,
                "attribute": key_attributes(spec).iter()
                    .map(|(n, t)| json!({ "name": n, "type": t.as_str() }))
                    .collect::<Vec<_>>(),
                "ttl": { "attribute_name": spec.ttl_attribute, "enabled": true },
                "point_in_time_recovery": { "enabled": true },
            });
            if let Some((sk, _)) = &spec.sort_key {
                table["range_key"] = json!(sk);
            }
            if !spec.gsis.is_empty() {
                table["global_secondary_index"] = spec
                    .gsis
                    .iter()
                    .map(|g| {
                        let mut i = json!({
                            "name": g.name,
                            "hash_key": g.partition_key,
                            "projection_type": "ALL",
                        });
                        if let Some(sk) = &g.sort_key {
                            i["range_key"] = json!(sk);
                        }
                        i
                    })
                    .collect();
            }
            (id, table)
        })
        .collect();
    json!({ "resource": { "aws_dynamodb_table": resources } })
}
