//! `cutover verify` on keys that are hard to reverse: key values that contain the template's
//! separator (an item must never be judged extra, nor deleted, while its row lives), binary
//! primary keys (looked up by their bytes), and items that can't be checked (the run is
//! INCOMPLETE, never CLEAN).

use crate::common::source::{cutover_json, cutover_output};
use crate::verify::{counts, findings, repaired, s, setup, table};
use aws_sdk_dynamodb::types::AttributeValue;

const NOTE_MAPPING: &str = r#"
[[table]]
source = "{db}.note"
target = "{target}"
primary_key = ["id"]
partition_key = { name = "pk", template = "NOTE#{owner}#{id}" }
"#;

/// The reproduced bug: `NOTE#bob#1#2` was reversed at the first `#` (owner `bob`, id `1#2`),
/// judged extra, and `--repair` tombstoned the live rows' items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_containing_the_separator_are_never_judged_extra() {
    let setup = setup(
        "vnote",
        &["CREATE TABLE note (id INT PRIMARY KEY, owner VARCHAR(40) NOT NULL, body VARCHAR(20))"],
        NOTE_MAPPING,
        "unused",
    )
    .await;
    setup
        .sql(&[
            "INSERT INTO note VALUES (1,'ann','a'),(2,'bob#1','b'),(3,'c#d#e','c'),(12,'bob','d'),(4,'#','e'),(5,'x#','f'),(6,'#1#','g'),(7,'','h')",
        ])
        .await;
    setup.seed_items().await;
    let live = [
        "NOTE#ann#1",
        "NOTE#bob#1#2",
        "NOTE#c#d#e#3",
        "NOTE#bob#12",
        "NOTE###4",
        "NOTE#x##5",
        "NOTE##1##6",
        "NOTE##7",
    ];
    for pk in live {
        assert!(setup.get(&[("pk", pk)]).await.is_some(), "seeded {pk}");
    }
    let report = cutover_json(&setup.config, &["verify"], 0);
    let t = table(&report, ".note");
    assert_eq!(counts(t), (8, 0, 0, Some(0), 0), "{t}");
    assert_eq!(report["verdict"], "clean", "{report}");

    // Stray items whose keys split several ways; no split names a row.
    for pk in ["NOTE#c#d#9", "NOTE#bob#1#99", "NOTE#zed#abc"] {
        setup
            .put(&[
                ("pk", s(pk)),
                ("body", s("ghost")),
                ("_v", AttributeValue::N("0".into())),
            ])
            .await;
    }
    let report = cutover_json(&setup.config, &["verify"], 1);
    let t = table(&report, ".note");
    assert_eq!(counts(t), (8, 0, 0, Some(3), 0), "{t}");
    assert_eq!(
        findings(t)["extra"],
        ["NOTE#bob#1#99", "NOTE#c#d#9", "NOTE#zed#abc"]
    );

    let fixed = cutover_json(&setup.config, &["verify", "--repair"], 0);
    assert_eq!(repaired(table(&fixed, ".note")), (3, 0), "{fixed}");
    for pk in live {
        let item = setup.get(&[("pk", pk)]).await.expect("live item");
        assert_eq!(item.get("_deleted"), None, "{pk} must stay live");
    }
    for pk in ["NOTE#c#d#9", "NOTE#bob#1#99", "NOTE#zed#abc"] {
        let item = setup.get(&[("pk", pk)]).await.expect("tombstone");
        assert_eq!(
            item.get("_deleted"),
            Some(&AttributeValue::Bool(true)),
            "{pk}"
        );
    }
    let again = cutover_json(&setup.config, &["verify"], 0);
    assert_eq!(counts(table(&again, ".note")), (8, 0, 0, Some(0), 0));
    setup.cleanup().await;
}

/// A binary primary key: items are looked up by the key's bytes, so a stray item is found and
/// repaired instead of being waved through as "could not be checked" with a CLEAN verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_keys_are_looked_up_by_their_bytes() {
    let mapping = r#"
[[table]]
source = "{db}.token"
target = "{target}"
primary_key = ["id"]
partition_key = { name = "pk", template = "TOK#{id}" }
"#;
    let setup = setup(
        "vbin",
        &["CREATE TABLE token (id BINARY(16) PRIMARY KEY, name VARCHAR(20))"],
        mapping,
        "unused",
    )
    .await;
    // Bytes that look like separators, a trailing zero byte (BINARY pads with them), non-UTF-8.
    setup
        .sql(&[
            "INSERT INTO token VALUES (UNHEX('00112233445566778899AABBCCDDEEFF'),'a'),(UNHEX('23232323000000000000000000000000'),'b'),(UNHEX('FFFEFD00000000000000000000000001'),'c')",
        ])
        .await;
    setup.seed_items().await;
    let report = cutover_json(&setup.config, &["verify"], 0);
    let t = table(&report, ".token");
    assert_eq!(counts(t), (3, 0, 0, Some(0), 0), "{t}");
    assert_eq!(t["unchecked"], 0, "{t}");

    let stray = "TOK#0x0102030405060708090A0B0C0D0E0F10";
    setup
        .put(&[
            ("pk", s(stray)),
            ("name", s("ghost")),
            ("_v", AttributeValue::N("0".into())),
        ])
        .await;
    let report = cutover_json(&setup.config, &["verify"], 1);
    assert_eq!(report["clean"], false);
    assert_eq!(report["verdict"], "differences");
    let t = table(&report, ".token");
    assert_eq!(counts(t), (3, 0, 0, Some(1), 0), "{t}");
    assert_eq!(findings(t)["extra"], [stray]);

    let fixed = cutover_json(&setup.config, &["verify", "--repair"], 0);
    assert_eq!(repaired(table(&fixed, ".token")), (1, 0), "{fixed}");
    let gone = setup.get(&[("pk", stray)]).await.expect("tombstone");
    assert_eq!(gone.get("_deleted"), Some(&AttributeValue::Bool(true)));
    for pk in [
        "TOK#0x00112233445566778899AABBCCDDEEFF",
        "TOK#0x23232323000000000000000000000000",
        "TOK#0xFFFEFD00000000000000000000000001",
    ] {
        let item = setup.get(&[("pk", pk)]).await.expect("live item");
        assert_eq!(item.get("_deleted"), None, "{pk}");
    }
    cutover_json(&setup.config, &["verify"], 0);
    setup.cleanup().await;
}

/// Items that truly can't be checked (a DOUBLE key: no exact lookup by its text) make the run
/// INCOMPLETE, with its own exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchecked_items_make_the_run_incomplete_not_clean() {
    let mapping = r#"
[[table]]
source = "{db}.reading"
target = "{target}"
primary_key = ["id"]
partition_key = { name = "pk", template = "R#{id}" }
"#;
    let setup = setup(
        "vunchk",
        &["CREATE TABLE reading (id DOUBLE PRIMARY KEY, v INT)"],
        mapping,
        "unused",
    )
    .await;
    setup
        .sql(&["INSERT INTO reading VALUES (1.5, 1), (2.25, 2)"])
        .await;
    setup.seed_items().await;
    cutover_json(&setup.config, &["verify"], 0);
    setup
        .put(&[
            ("pk", s("R#9.75")),
            ("v", AttributeValue::N("9".into())),
            ("_v", AttributeValue::N("0".into())),
        ])
        .await;
    let report = cutover_json(&setup.config, &["verify"], 3);
    assert_eq!(report["clean"], false);
    assert_eq!(report["verdict"], "incomplete");
    let t = table(&report, ".reading");
    assert_eq!(t["unchecked"], 1, "{t}");
    let (code, text, _) = cutover_output(&setup.config, &["verify"]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("INCOMPLETE"), "{text}");
    assert!(!text.contains("CLEAN"), "{text}");
    setup.cleanup().await;
}
