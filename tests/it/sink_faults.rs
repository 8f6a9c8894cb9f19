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
