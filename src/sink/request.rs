//! The requests the writer sends: every conditional write carries the version guard
//! ([`GUARD`]), the one rule every writer of a target table shares (see the module docs of
//! [`crate::sink`]); batch mode's whole-item puts carry the version without a condition.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};

use super::dynamo::{SingleKind, SingleWrite};
use super::{now_micros, DeleteMode, SinkConfig};
use crate::mapping::{Change, ItemWrite};

/// When a tombstone may go: `sink.tombstone_ttl` after it is *written*, not after the source
/// commit. A replay of an old topic otherwise writes tombstones that are already expired; once
/// DynamoDB sweeps them, an older re-delivered upsert of the key resurrects the row.
fn tombstone_expiry(cfg: &SinkConfig) -> String {
    (now_micros().div_euclid(1_000_000) + cfg.tombstone_ttl.as_secs() as i64).to_string()
}

/// The version guard: a write of version `:v` applies only over an older (or no) version.
pub const GUARD: &str = "attribute_not_exists(#v) OR #v <= :v";

/// The conditional request for one coalesced write.
pub fn conditional_request(w: &ItemWrite, cfg: &SinkConfig) -> SingleWrite {
    let key: HashMap<String, AttributeValue> = w
        .key
        .iter()
        .map(|k| (k.name.to_string(), k.value.clone()))
        .collect();
    let mut names = HashMap::from([("#v".to_string(), w.part.version_attribute.clone())]);
    let mut values = HashMap::from([(":v".to_string(), AttributeValue::N(w.version.to_string()))]);
    let part = &w.part;
    let mut sets: Vec<String> = vec!["#v = :v".into()];
    let mut removes: Vec<String> = Vec::new();
    let name = |n: &str, names: &mut HashMap<String, String>| {
        let p = format!("#a{}", names.len());
        names.insert(p.clone(), n.to_string());
        p
    };
    let kind = match (&w.change, part.merge, cfg.delete_mode) {
        (Change::Upsert { set, remove }, _, _) => {
            for (i, (n, v)) in set.iter().enumerate() {
                let p = name(n, &mut names);
                values.insert(format!(":s{i}"), v.clone());
                sets.push(format!("{p} = :s{i}"));
            }
            let mut rm: Vec<&str> = remove.iter().map(String::as_str).collect();
            if part.owner {
                rm.push(&part.deleted_attribute);
                rm.push(&part.ttl_attribute);
            }
            for n in rm {
                if !set.iter().any(|(m, _)| m == n) {
                    let p = name(n, &mut names);
                    removes.push(p);
                }
            }
            SingleKind::Update {
                key,
                expression: update_expression(&sets, &removes),
            }
        }
        (Change::Delete { .. }, false, DeleteMode::Tombstone) => {
            let mut item = key;
            item.insert(
                part.version_attribute.clone(),
                AttributeValue::N(w.version.to_string()),
            );
            item.insert(part.deleted_attribute.clone(), AttributeValue::Bool(true));
            item.insert(
                part.ttl_attribute.clone(),
                AttributeValue::N(tombstone_expiry(cfg)),
            );
            SingleKind::Put { item }
        }
        (Change::Delete { .. }, _, DeleteMode::Hard) if part.owner => {
            values.retain(|k, _| k == ":v");
            SingleKind::Delete { key }
        }
        (Change::Delete { remove }, _, _) => {
            for n in remove {
                let p = name(n, &mut names);
                removes.push(p);
            }
            if part.owner {
                let d = name(&part.deleted_attribute, &mut names);
                let t = name(&part.ttl_attribute, &mut names);
                values.insert(":del".into(), AttributeValue::Bool(true));
                values.insert(":ttl".into(), AttributeValue::N(tombstone_expiry(cfg)));
                sets.push(format!("{d} = :del"));
                sets.push(format!("{t} = :ttl"));
            }
            SingleKind::Update {
                key,
                expression: update_expression(&sets, &removes),
            }
        }
    };
    SingleWrite {
        table: w.table.to_string(),
        kind,
        condition: Some(GUARD.into()),
        names,
        values,
    }
}

fn update_expression(sets: &[String], removes: &[String]) -> String {
    let mut e = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        e.push_str(" REMOVE ");
        e.push_str(&removes.join(", "));
    }
    e
}

/// The unconditional whole-item request for batch mode.
pub fn batch_request(w: &ItemWrite, cfg: &SinkConfig) -> WriteRequest {
    let mut item: HashMap<String, AttributeValue> = w
        .key
        .iter()
        .map(|k| (k.name.to_string(), k.value.clone()))
        .collect();
    match (&w.change, cfg.delete_mode) {
        (Change::Delete { .. }, DeleteMode::Hard) => {
            return WriteRequest::builder()
                .delete_request(
                    DeleteRequest::builder()
                        .set_key(Some(item))
                        .build()
                        .expect("key set"),
                )
                .build()
        }
        (Change::Delete { .. }, DeleteMode::Tombstone) => {
            item.insert(w.part.deleted_attribute.clone(), AttributeValue::Bool(true));
            item.insert(
                w.part.ttl_attribute.clone(),
                AttributeValue::N(tombstone_expiry(cfg)),
            );
        }
        (Change::Upsert { set, .. }, _) => {
            item.extend(set.iter().cloned());
        }
    }
    item.insert(
        w.part.version_attribute.clone(),
        AttributeValue::N(w.version.to_string()),
    );
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("item set"),
        )
        .build()
}
