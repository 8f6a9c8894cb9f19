//! A row's expected write against its item: match, missing, or different (which attributes),
//! with sets compared as sets and bookkeeping ignored.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::block::{is_tombstone, Block};
use super::Item;
use crate::mapping::{Change, ItemWrite};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    Match,
    Missing,
    /// Differing attributes, and the ones present in the item that the row does not have.
    Different {
        attributes: Vec<String>,
        unexpected: Vec<String>,
    },
}

pub(super) fn compare(
    b: &Block<'_>,
    expected: &ItemWrite,
    item: Option<&Item>,
    deleted: &str,
) -> Outcome {
    let Change::Upsert { set, remove } = &expected.change else {
        return Outcome::Missing;
    };
    // A tombstone hides the whole item. Only the owner's delete makes one in merge mode; a
    // non-owner part written onto it (a row whose owner row is gone) stays under it, as the
    // pipeline leaves it, so that part is still compared.
    let owns_item = !b.cfg.merge || b.cfg.owner;
    let Some(item) = item.filter(|i| !(owns_item && is_tombstone(i, deleted))) else {
        return Outcome::Missing;
    };
    if b.cfg.merge && !item.contains_key(&b.version_attribute) {
        return Outcome::Missing;
    }
    let mut attributes = Vec::new();
    for (n, v) in set {
        if b.bookkeeping.contains(n) {
            continue;
        }
        if !item.get(n).is_some_and(|a| av_eq(a, v)) {
            attributes.push(n.clone());
        }
    }
    for n in remove {
        if !b.bookkeeping.contains(n) && item.contains_key(n) {
            attributes.push(n.clone());
        }
    }
    let mut unexpected = Vec::new();
    for n in item.keys() {
        if b.owns(n) && !set.iter().any(|(m, _)| m == n) && !remove.contains(n) {
            unexpected.push(n.clone());
        }
    }
    attributes.extend(unexpected.iter().cloned());
    attributes.sort();
    attributes.dedup();
    if attributes.is_empty() {
        Outcome::Match
    } else {
        Outcome::Different {
            attributes,
            unexpected,
        }
    }
}

pub(super) fn values_of(
    expected: &ItemWrite,
    item: Option<&Item>,
    attributes: &[String],
) -> BTreeMap<String, serde_json::Value> {
    let set = match &expected.change {
        Change::Upsert { set, .. } => set.as_slice(),
        Change::Delete { .. } => &[],
    };
    attributes
        .iter()
        .map(|a| {
            let exp = set
                .iter()
                .find(|(n, _)| n == a)
                .map_or(serde_json::Value::Null, |(_, v)| av_json(v));
            let act = item
                .and_then(|i| i.get(a))
                .map_or(serde_json::Value::Null, av_json);
            (
                a.clone(),
                serde_json::json!({ "expected": exp, "actual": act }),
            )
        })
        .collect()
}

/// Equality of attribute values, with sets compared as sets.
pub(super) fn av_eq(a: &AttributeValue, b: &AttributeValue) -> bool {
    use AttributeValue as A;
    pub(super) fn sorted<T: Clone + Ord>(v: &[T]) -> Vec<T> {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    }
    match (a, b) {
        (A::Ss(x), A::Ss(y)) | (A::Ns(x), A::Ns(y)) => sorted(x) == sorted(y),
        (A::Bs(x), A::Bs(y)) => {
            let f = |v: &[aws_sdk_dynamodb::primitives::Blob]| {
                sorted(&v.iter().map(|b| b.as_ref().to_vec()).collect::<Vec<_>>())
            };
            f(x) == f(y)
        }
        (A::L(x), A::L(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| av_eq(p, q)),
        (A::M(x), A::M(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| av_eq(v, w)))
        }
        _ => a == b,
    }
}

/// DynamoDB JSON of a value, for `--show-values`.
pub(super) fn av_json(v: &AttributeValue) -> serde_json::Value {
    use base64::Engine as _;
    use serde_json::json;
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::B(b) => {
            json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) })
        }
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(s) => json!({ "NS": s }),
        AttributeValue::Bs(s) => json!({ "BS": s
            .iter()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
            .collect::<Vec<_>>() }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(av_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": m
            .iter()
            .map(|(k, v)| (k.clone(), av_json(v)))
            .collect::<serde_json::Map<_, _>>() }),
        _ => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sets_compare_as_sets() {
        let a = AttributeValue::Ss(vec!["x".into(), "y".into()]);
        let b = AttributeValue::Ss(vec!["y".into(), "x".into()]);
        assert!(av_eq(&a, &b));
        let m1 = AttributeValue::M(HashMap::from([("k".to_string(), a.clone())]));
        let m2 = AttributeValue::M(HashMap::from([("k".to_string(), b)]));
        assert!(av_eq(&m1, &m2));
        assert!(!av_eq(&a, &AttributeValue::S("x".into())));
    }
}
