//! The AWS SDK's own CPU per DynamoDB request, with the writer's client (`sink::dynamo::for_writer`),
//! so `cutover run`'s CPU per record can be read against the floor it stands on (issue 12.1).
//!
//!   cargo run --release --example sdk_floor -- [--endpoint $CUTOVER_DYNAMODB_ENDPOINT]
//!       [--requests 20000] [--concurrency 32] [--workers 4]
//!
//! Creates a fresh table, then times, one phase after another: conditional UpdateItem calls
//! shaped like the writer's (a version guard, ~10 attributes), and BatchWriteItem calls of 25
//! items. Prints, per phase, requests/s and the process's user+sys CPU per request and per item
//! (from /proc/self/stat). Nothing else runs in the process, so the CPU is the SDK's (request
//! building, signing, HTTP, response parsing) plus tokio's.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use futures::stream::{self, StreamExt};

#[path = "support/private_dynamo.rs"]
mod private_dynamo;
#[path = "support/mod.rs"]
mod support;

use support::arg;

/// This process's user+sys CPU seconds.
fn cpu_seconds() -> f64 {
    private_dynamo::cpu_seconds(std::process::id(), private_dynamo::clock_ticks())
}

fn item(i: usize, version: u64) -> HashMap<String, AttributeValue> {
    let mut m = HashMap::new();
    m.insert("pk".into(), AttributeValue::S(format!("MSG#{i}")));
    m.insert("_v".into(), AttributeValue::N(version.to_string()));
    for (k, v) in [
        ("conversation_id", "CONV#17"),
        ("author", "user-4711"),
        (
            "body",
            "a message body of some sixty bytes, as the chat table has",
        ),
        ("created_at", "2026-12-02T16:00:00.000000Z"),
        ("edited", "false"),
        ("kind", "text"),
        ("lang", "en"),
    ] {
        m.insert(k.into(), AttributeValue::S(v.into()));
    }
    m
}

fn main() -> anyhow::Result<()> {
    // --workers 0: a current-thread runtime; N: a multi-thread runtime of N workers.
    let workers: usize = arg("--workers", "4").parse()?;
    let rt = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?
    };
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let local = std::env::var("CUTOVER_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:18000".into());
    let endpoint = arg("--endpoint", &local);
    let n: usize = arg("--requests", "20000").parse()?;
    let conc: usize = arg("--concurrency", "32").parse()?;
    let cfg = cutover::sink::DynamoConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint),
        profile: None,
    };
    let base = cutover::sink::dynamo::client(&cfg).await;
    let client = cutover::sink::dynamo::for_writer(&base);
    let table = format!("sdk_floor_{}", std::process::id());
    base.create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .send()
        .await?;

    println!("| phase | requests | items | requests/s | CPU µs/request | CPU µs/item |");
    println!("|---|---|---|---|---|---|");
    let report = |phase: &str, requests: usize, items: usize, t: Instant, c0: f64| {
        let cpu = cpu_seconds() - c0;
        println!(
            "| {phase} | {requests} | {items} | {:.0} | {:.1} | {:.1} |",
            requests as f64 / t.elapsed().as_secs_f64(),
            cpu * 1e6 / requests as f64,
            cpu * 1e6 / items as f64
        );
    };

    // Conditional UpdateItem, shaped like the writer's guarded upsert.
    let (t, c0) = (Instant::now(), cpu_seconds());
    stream::iter(0..n)
        .map(|i| {
            let (client, table) = (client.clone(), table.clone());
            async move {
                let it = item(i % 5000, (i + 1) as u64);
                let mut names = HashMap::new();
                let mut values = HashMap::new();
                let mut sets = Vec::new();
                for (j, (k, v)) in it.into_iter().filter(|(k, _)| k != "pk").enumerate() {
                    names.insert(format!("#a{j}"), k.clone());
                    values.insert(format!(":a{j}"), v.clone());
                    sets.push(format!("#a{j} = :a{j}"));
                    if k == "_v" {
                        names.insert("#v".into(), k);
                        values.insert(":v".into(), v);
                    }
                }
                let r = client
                    .update_item()
                    .table_name(table)
                    .key("pk", AttributeValue::S(format!("MSG#{}", i % 5000)))
                    .update_expression(format!("SET {}", sets.join(", ")))
                    .condition_expression("attribute_not_exists(#v) OR #v < :v")
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .send()
                    .await;
                r.is_ok()
            }
        })
        .buffer_unordered(conc)
        .for_each(|_| async {})
        .await;
    report("conditional UpdateItem", n, n, t, c0);

    // BatchWriteItem of 25 puts.
    let batches = n / 25;
    let (t, c0) = (Instant::now(), cpu_seconds());
    stream::iter(0..batches)
        .map(|b| {
            let (client, table) = (client.clone(), table.clone());
            async move {
                let reqs: Vec<WriteRequest> = (0..25)
                    .map(|j| {
                        WriteRequest::builder()
                            .put_request(
                                PutRequest::builder()
                                    .set_item(Some(item(10_000 + b * 25 + j, 1)))
                                    .build()
                                    .expect("item set"),
                            )
                            .build()
                    })
                    .collect();
                client
                    .batch_write_item()
                    .request_items(table, reqs)
                    .send()
                    .await
                    .is_ok()
            }
        })
        .buffer_unordered(conc.div_ceil(4))
        .for_each(|_| async {})
        .await;
    report("BatchWriteItem ×25", batches, batches * 25, t, c0);
    base.delete_table().table_name(&table).send().await?;
    Ok(())
}
