//! `cutover tables create | render`: DynamoDB tables (key schema, GSIs, TTL) from the mapping.
//!
//! `create` is for local use and CI. Production tables come from `infra/`, which consumes
//! `render --format json` (or `--format terraform`, a `.tf.json` file), so the tables in infra
//! and the mapping `cutover run` uses cannot drift: a test renders the example mapping and
//! compares it with `infra/terraform/example/tables.json`.

use aws_sdk_dynamodb::Client;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::{Classify, Disposition};
use crate::mapping::{KeyType as AttrType, Mapping, TargetSpec};
use crate::sink::dynamo::TableKeys;
use crate::sink::{SdkApi, WriteError};

/// Why the tables are not usable.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("DynamoDB table(s) missing: {}. Create them (`cutover tables create` locally, infra/ in AWS) or fix the mapping's targets", .0.join(", "))]
    Missing(Vec<String>),
    #[error("cannot reach DynamoDB (table {table})")]
    Unreachable {
        table: String,
        #[source]
        source: WriteError,
    },
    #[error(transparent)]
    Create(WriteError),
    /// The table's key schema is not the one the mapping writes: every write would be
    /// rejected. One line per difference.
    #[error("{}", .0.join("\n"))]
    KeySchema(Vec<String>),
}

impl Classify for TablesError {
    fn disposition(&self) -> Disposition {
        match self {
            TablesError::Missing(_) | TablesError::KeySchema(_) => Disposition::Fatal,
            TablesError::Unreachable { source: e, .. } | TablesError::Create(e) => e.disposition(),
        }
    }
}

/// Create `spec` under `name` if it does not exist; wait until ACTIVE; enable TTL.
/// Returns false when the table already existed.
pub async fn create(client: &Client, spec: &TargetSpec, name: &str) -> Result<bool, TablesError> {
    SdkApi {
        client: client.clone(),
    }
    .create_table(spec, name)
    .await
    .map_err(TablesError::Create)
}

/// Fail fast, with a clear message, when a target table is missing or credentials are bad.
pub async fn check_exist<'a>(
    client: &Client,
    tables: impl IntoIterator<Item = &'a String>,
) -> Result<(), TablesError> {
    let api = SdkApi {
        client: client.clone(),
    };
    let mut missing = Vec::new();
    for t in tables {
        match api.exists(t).await {
            Ok(true) => {}
            Ok(false) => missing.push(t.clone()),
            Err(source) => {
                return Err(TablesError::Unreachable {
                    table: t.clone(),
                    source,
                })
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TablesError::Missing(missing))
    }
}

/// Fail fast, with one clear line per problem, when a target table is missing, its key schema
/// (names and types, from DescribeTable) differs from what the mapping writes, or credentials
/// are bad. `targets`: (table name, the spec it must match).
pub async fn check_tables<'a>(
    client: &Client,
    targets: impl IntoIterator<Item = (&'a str, &'a TargetSpec)>,
) -> Result<(), TablesError> {
    let api = SdkApi {
        client: client.clone(),
    };
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for (name, spec) in targets {
        match api.key_schema(name).await {
            Ok(None) => missing.push(name.to_string()),
            Ok(Some(keys)) => wrong.extend(key_differences(name, spec, &keys)),
            Err(source) => {
                return Err(TablesError::Unreachable {
                    table: name.to_string(),
                    source,
                })
            }
        }
    }
    if !missing.is_empty() {
        Err(TablesError::Missing(missing))
    } else if !wrong.is_empty() {
        Err(TablesError::KeySchema(wrong))
    } else {
        Ok(())
    }
}

/// How `table`'s keys differ from `spec`'s, one line each.
fn key_differences(table: &str, spec: &TargetSpec, keys: &TableKeys) -> Vec<String> {
    let want = |k: &Option<(String, AttrType)>| {
        k.as_ref().map(|(n, t)| (n.clone(), t.as_str().to_string()))
    };
    let show = |k: &Option<(String, String)>| match k {
        Some((n, t)) => format!("{n} ({t})"),
        None => "none".to_string(),
    };
    let mut out = Vec::new();
    for (role, expected, actual) in [
        (
            "partition key",
            want(&Some(spec.partition_key.clone())),
            &keys.partition_key,
        ),
        ("sort key", want(&spec.sort_key), &keys.sort_key),
    ] {
        if &expected != actual {
            out.push(format!(
                "DynamoDB table {table}: {role} is {} but the mapping writes {}: fix the mapping's {} or use a table with that key",
                show(actual),
                show(&expected),
                role.replace(' ', "_"),
            ));
        }
    }
    out
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
