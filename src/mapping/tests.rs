//! The mapping end to end: rows of the chat schema's message table, key moves, limits, and
//! no panic on any row.

use super::*;
use crate::cdc::{Cell, SourcePosition, TableRef};
use aws_sdk_dynamodb::primitives::Blob;

fn row(cols: &[(&str, Cell)]) -> Row {
    Row(cols
        .iter()
        .map(|(c, v)| (c.to_string(), v.clone()))
        .collect())
}
fn n(s: &str) -> Cell {
    Cell::Number(s.into())
}
fn s(x: &str) -> Cell {
    Cell::Str(x.into())
}

fn event(table: &str, op: Op, before: Option<Row>, after: Option<Row>) -> ChangeEvent {
    ChangeEvent {
        table: TableRef {
            schema: "chat".into(),
            table: table.into(),
        },
        op,
        before,
        after,
        position: SourcePosition {
            log_file_seq: Some(3),
            log_pos: Some(1000),
            record_in_txn: Some(2),
            commit_ts_us: Some(1_600_000_000_000_000),
            ..Default::default()
        },
        kafka: None,
    }
}

fn message_mapping() -> Mapping {
    let t: TableConfig = toml::from_str(
        r#"
        source = "chat.message"
        target = "chat"
        primary_key = ["id"]
        partition_key = { name = "pk", template = "CONV#{conversation_id}" }
        sort_key = { name = "sk", template = "MSG#{created_at}#{id}" }
        exclude = ["secret"]
        rename = { body = "text" }
        attributes = { entity = "message", gsi1pk = "USER#{sender_id}" }
        [types]
        created_at = "datetime"
        amount = "decimal"
        meta = "json"
        tags = "set"
        blob = "binary"
        flag = "bool"
    "#,
    )
    .unwrap();
    Mapping::new(&[t], ItemShape::default()).unwrap()
}

fn get<'a>(set: &'a [(String, AttributeValue)], k: &str) -> &'a AttributeValue {
    &set.iter()
        .find(|(n, _)| n == k)
        .unwrap_or_else(|| panic!("{k}"))
        .1
}

#[test]
fn maps_a_message_row() {
    let m = message_mapping();
    let r = row(&[
        ("id", n("7")),
        ("conversation_id", n("42")),
        ("sender_id", n("9")),
        ("created_at", s("2024-01-02T03:04:05Z")),
        ("body", s("hi")),
        ("secret", s("x")),
        ("amount", s("12345678901234567890.123456789012345678")),
        ("meta", s(r#"{"a":[1,12345678901234567890123],"b":null}"#)),
        ("tags", s("a,b,a")),
        ("blob", s("0x0aff")),
        ("flag", Cell::Bool(true)),
        ("gone", Cell::Null),
    ]);
    let Mapped::Writes(w) = m.map(&event("message", Op::Insert, None, Some(r))).unwrap() else {
        panic!()
    };
    assert_eq!(w.len(), 1);
    let w = &w[0];
    assert_eq!(w.key[0].value, AttributeValue::S("CONV#42".into()));
    assert_eq!(
        w.key[1].value,
        AttributeValue::S("MSG#2024-01-02T03:04:05.000000Z#7".into())
    );
    assert_eq!(w.version, 3 * 10u128.pow(20) + 1000 * 10u128.pow(8) + 2);
    let Change::Upsert { set, remove } = &w.change else {
        panic!()
    };
    assert_eq!(get(set, "text"), &AttributeValue::S("hi".into()));
    assert!(set.iter().all(|(n, _)| n != "secret" && n != "body"));
    assert_eq!(
        get(set, "amount"),
        &AttributeValue::N("12345678901234567890.123456789012345678".into())
    );
    let AttributeValue::M(meta) = get(set, "meta") else {
        panic!()
    };
    assert_eq!(
        meta["a"],
        AttributeValue::L(vec![
            AttributeValue::N("1".into()),
            AttributeValue::N("12345678901234567890123".into())
        ])
    );
    assert_eq!(
        get(set, "tags"),
        &AttributeValue::Ss(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        get(set, "blob"),
        &AttributeValue::B(Blob::new(vec![0x0a, 0xff]))
    );
    assert_eq!(get(set, "flag"), &AttributeValue::Bool(true));
    assert_eq!(get(set, "entity"), &AttributeValue::S("message".into()));
    assert_eq!(get(set, "gsi1pk"), &AttributeValue::S("USER#9".into()));
    assert_eq!(remove, &vec!["gone".to_string()]);
}

#[test]
fn key_change_moves_the_item() {
    let m = message_mapping();
    let before = row(&[
        ("id", n("7")),
        ("conversation_id", n("1")),
        ("sender_id", n("9")),
        ("created_at", s("2024-01-02 03:04:05")),
    ]);
    let after = row(&[
        ("id", n("8")),
        ("conversation_id", n("1")),
        ("sender_id", n("9")),
        ("created_at", s("2024-01-02 03:04:05")),
    ]);
    let Mapped::Writes(w) = m
        .map(&event("message", Op::Update, Some(before), Some(after)))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(w.len(), 2);
    assert!(matches!(w[0].change, Change::Delete { .. }));
    assert!(w[0].key_id.ends_with("#7"));
    assert!(matches!(w[1].change, Change::Upsert { .. }));
    assert!(w[1].key_id.ends_with("#8"));
    assert_eq!(w[0].version, w[1].version);
}

#[test]
fn bigint_in_scientific_notation_is_poison() {
    let m = message_mapping();
    let r = row(&[
        ("id", n("1.2345678901234567e+18")),
        ("conversation_id", n("1")),
        ("sender_id", n("1")),
        ("created_at", s("2024-01-02T03:04:05Z")),
    ]);
    let err = m
        .map(&event("message", Op::Insert, None, Some(r)))
        .unwrap_err();
    assert!(err.0.contains("scientific notation"), "{err}");
}

#[test]
fn unmapped_and_truncate() {
    let m = message_mapping();
    assert_eq!(
        m.map(&event("other", Op::Insert, None, Some(Row::default())))
            .unwrap(),
        Mapped::Unmapped
    );
    assert!(m.map(&event("message", Op::Truncate, None, None)).is_err());
}

#[test]
fn item_size_limit() {
    let m = message_mapping();
    let r = row(&[
        ("id", n("1")),
        ("conversation_id", n("1")),
        ("sender_id", n("1")),
        ("created_at", s("2024-01-02T03:04:05Z")),
        ("body", s(&"x".repeat(410 * 1024))),
    ]);
    let err = m
        .map(&event("message", Op::Insert, None, Some(r)))
        .unwrap_err();
    assert!(err.0.contains("400 KB"), "{err}");
}

proptest::proptest! {
    #[test]
    fn mapping_never_panics(cols in proptest::collection::vec(("[a-z_]{1,12}", ".{0,20}", 0u8..4), 0..12), op in 0u8..5) {
        let m = message_mapping();
        let r = Row(cols.into_iter().map(|(c, v, k)| (c, match k {
            0 => Cell::Str(v), 1 => Cell::Number(v), 2 => Cell::Null, _ => Cell::Json(v),
        })).collect());
        let op = [Op::Load, Op::Insert, Op::Update, Op::Delete, Op::Truncate][op as usize];
        let _ = m.map(&event("message", op, Some(r.clone()), Some(r)));
    }
}
