//! Faults at the sink on the real local stack: a table whose key schema is not the mapping's,
//! a dead letter too large for the producer.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use cutover::mapping::{Mapping, TableConfig};
use cutover::sink::SinkConfig;
use cutover::tables::{self, TablesError};

use crate::common::{dynamo, require_stack, unique};

fn mapping(target: &str) -> Mapping {
    let t: TableConfig = toml::from_str(&format!(
        r#"
        source = "shop.orders"
        target = "{target}"
        primary_key = ["id"]
        partition_key = {{ name = "pk", template = "ORDER#{{id}}" }}
        sort_key = {{ name = "sk", template = "V0" }}
        "#
    ))
    .unwrap();
    Mapping::new(&[t], &SinkConfig::default()).unwrap()
}

/// A table whose key is `pk` (N) and has no sort key, where the mapping writes `pk` (S) and
/// `sk` (S): every write would be a ValidationException. Startup refuses it, naming the table,
/// the attribute, and expected against actual.
#[tokio::test]
async fn a_key_schema_that_differs_from_the_mapping_is_fatal_at_startup() {
    require_stack();
    let client = dynamo().await;
    let wrong = unique("keys-wrong");
    client
        .create_table()
        .table_name(&wrong)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create the wrong table");
    let m = mapping(&wrong);
    let spec = &m.targets()[&wrong];
    let err = tables::check_tables(&client, [(wrong.as_str(), spec)])
        .await
        .unwrap_err();
    assert!(matches!(err, TablesError::KeySchema(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "DynamoDB table {wrong}: partition key is pk (N) but the mapping writes pk (S)"
        )),
        "{text}"
    );
    assert!(
        text.contains("sort key is none but the mapping writes sk (S)"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");

    // The table the mapping implies passes, and a missing one is named as missing.
    let right = unique("keys-right");
    assert!(tables::create(&client, spec, &right).await.unwrap());
    tables::check_tables(&client, [(right.as_str(), spec)])
        .await
        .unwrap();
    let missing = unique("keys-missing");
    let err = tables::check_tables(&client, [(missing.as_str(), spec)])
        .await
        .unwrap_err();
    assert!(matches!(err, TablesError::Missing(_)), "{err:?}");
}

/// A 2 MB record that can't be mapped (an item over 400 KB) is dead-lettered as a stub: the
/// producer's `message.max.bytes` (1 MB) would refuse it, and the stream used to stop on it
/// again after every restart.
#[tokio::test]
async fn a_dead_letter_too_large_for_the_producer_is_sent_as_a_stub() {
    use std::sync::Arc;

    use cutover::kafka::dlq::DeadLetters;
    use cutover::kafka::{KafkaConfig, Record};
    use cutover::pipeline::{Pipeline, Selection, Unmapped};
    use cutover::sink::{SdkApi, Writer};
    use rdkafka::message::Headers;
    use rdkafka::Message;

    require_stack();
    let dlq = unique("dlq-big");
    crate::common::create_topic(&dlq, 1).await;
    let kafka = KafkaConfig {
        brokers: crate::common::brokers(),
        dlq_topic: dlq.clone(),
        ..Default::default()
    };
    let sink = SinkConfig::default();
    let pipeline = Pipeline::new(
        Arc::new(mapping("orders-big")),
        Writer::new(
            SdkApi {
                client: dynamo().await,
            },
            sink,
        ),
        DeadLetters::new(&kafka).unwrap(),
        Arc::new(kafka),
        Unmapped::Skip,
        Selection::default(),
    );
    let note = "x".repeat(2 * 1024 * 1024);
    let payload = format!(
        r#"{{"data":{{"id":7,"note":"{note}"}},"metadata":{{"record-type":"data","operation":"insert","schema-name":"shop","table-name":"orders","stream-position":"mysql-bin-changelog.000009:2:0:1:1:mysql-bin-changelog.000009:2"}}}}"#
    )
    .into_bytes();
    let record = Record {
        topic: "orders-src".into(),
        partition: 3,
        offset: 42,
        key: Some(b"orders.7".to_vec()),
        payload: Some(payload.clone()),
        headers: vec![("trace".into(), b"abc".to_vec())],
        timestamp_ms: None,
    };
    let stats = pipeline
        .process(&[record])
        .await
        .expect("the stream goes on");
    assert_eq!(stats.dead_lettered, 1, "{stats:?}");

    let got = crate::common::read_topic(&dlq, 1, std::time::Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "one dead letter");
    let m = &got[0];
    let header = |k: &str| {
        m.headers()
            .and_then(|h| h.iter().find(|h| h.key == k))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(m.key(), Some(&b"orders.7"[..]));
    assert_eq!(header("trace").as_deref(), Some("abc"));
    assert_eq!(header("cutover.dlq.stub").as_deref(), Some("true"));
    assert_eq!(
        header("cutover.original.bytes"),
        Some(payload.len().to_string())
    );
    assert_eq!(header("cutover.error.stage").as_deref(), Some("map"));
    assert!(header("cutover.error.reason").is_some_and(|r| !r.is_empty()));
    assert_eq!(header("cutover.source.offset").as_deref(), Some("42"));
    let kept = m.payload().expect("a truncated payload");
    assert!(
        kept.len() < 1_000_000 && kept.len() > 500_000,
        "{}",
        kept.len()
    );
    assert_eq!(kept, &payload[..kept.len()], "a prefix of the original");
}
