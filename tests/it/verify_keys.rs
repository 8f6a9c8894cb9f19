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

/// The repair race: a transaction in flight on a row while `verify --repair` repairs that row.
/// The repair reads the rows under shared locks before it reads the binlog position, so it
/// waits for the transaction and writes its row (at a version above it), never the older row
/// it saw before; and the re-check reads the row afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_committed_while_verify_repairs_is_not_overwritten() {
    use mysql_async::prelude::Queryable;
    let setup = setup(
        "vrace",
        &[crate::verify::MESSAGE_DDL],
        crate::verify::MESSAGE_MAPPING,
        "unused",
    )
    .await;
    crate::verify::message_rows(&setup, 5).await;
    setup.seed_items().await;
    setup
        .set_attr(&[("pk", "MSG#3")], "body", Some(s("tampered")))
        .await;
    let mut txn = setup.pool.get_conn().await.expect("connection");
    txn.query_drop(format!("USE `{}`", setup.db)).await.unwrap();
    txn.query_drop("START TRANSACTION").await.unwrap();
    txn.query_drop("UPDATE message SET body = 'newer' WHERE id = 3")
        .await
        .unwrap();
    let child =
        crate::common::cutover_cmd(&setup.config, &["verify", "--repair", "--format", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start verify --repair");
    // Let verify read the rows (the old body: the update is not committed) and reach the repair.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    txn.query_drop("COMMIT").await.unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("verify --repair");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let three = setup.get(&[("pk", "MSG#3")]).await.unwrap();
    assert_eq!(
        three.get("body"),
        Some(&s("newer")),
        "the repair wrote the row as it was before the transaction: {stdout}"
    );
    cutover_json(&setup.config, &["verify"], 0);
    drop(txn);
    setup.cleanup().await;
}

/// `--repair` rewrites DynamoDB from MySQL only while MySQL is authoritative on every path of
/// the table: past `shadow` it refuses (DynamoDB holds the newer data), and so it does when the
/// read and write paths disagree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_follows_the_paths_stages() {
    use crate::common::cutover_ok;
    let flag_file = format!("{}.flags.toml", crate::common::unique("vstage"));
    let mapping = format!(
        "[flags]\nfile = \"{flag_file}\"\n[flags.paths.\"message.read\"]\n[flags.paths.\"message.write\"]\n{}",
        crate::verify::MESSAGE_MAPPING
    );
    let setup = setup("vstage", &[crate::verify::MESSAGE_DDL], &mapping, "unused").await;
    crate::verify::message_rows(&setup, 4).await;
    setup.seed_items().await;
    setup
        .set_attr(
            &[("pk", "MSG#2")],
            "body",
            Some(s("written through DynamoDB")),
        )
        .await;
    let tampered = || async {
        setup
            .get(&[("pk", "MSG#2")])
            .await
            .unwrap()
            .get("body")
            .cloned()
    };

    cutover_ok(&setup.config, &["flags", "set", "message.read", "live"]);
    cutover_ok(&setup.config, &["flags", "set", "message.write", "live"]);
    let (code, _, err) = cutover_output(&setup.config, &["verify", "--repair"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("DynamoDB is authoritative"), "{err}");
    assert!(err.contains("message.write at live"), "{err}");
    assert_eq!(
        tampered().await,
        Some(s("written through DynamoDB")),
        "nothing written"
    );
    // Without --repair, verify still reports.
    let report = cutover_json(&setup.config, &["verify"], 1);
    assert_eq!(table(&report, ".message")["different"], 1);

    cutover_ok(&setup.config, &["flags", "set", "message.write", "shadow"]);
    let (code, _, err) = cutover_output(&setup.config, &["verify", "--repair"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("disagree"), "{err}");
    assert_eq!(tampered().await, Some(s("written through DynamoDB")));

    cutover_ok(&setup.config, &["flags", "set", "message.read", "shadow"]);
    let fixed = cutover_json(&setup.config, &["verify", "--repair"], 0);
    assert_eq!(repaired(table(&fixed, ".message")), (1, 0));
    assert_eq!(tampered().await, Some(s("hello 2")));
    setup.cleanup().await;
}

/// At size, with hostile key values (separators at either end, alone, doubled, next to
/// multi-byte characters, empty): every live item is explained, every stray item (including
/// ones whose splits name live rows' ids) is extra, and `--repair` removes exactly those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separator_keys_at_size_are_verified_and_repaired_exactly() {
    const ROWS: u64 = 10_000;
    let setup = setup(
        "vnotesz",
        &["CREATE TABLE note (id INT PRIMARY KEY, owner VARCHAR(40) NOT NULL, body VARCHAR(20))"],
        NOTE_MAPPING,
        "unused",
    )
    .await;
    let owners = ["#", "##", "a#", "#b", "a#b#c", "", "é#ü", "x", "1#2", "#1#"];
    let owner = |i: u64| {
        format!(
            "{}{}",
            owners[(i % 10) as usize],
            if i.is_multiple_of(7) { "#7" } else { "" }
        )
    };
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("({i}, '{}', 'b{i}')", owner(*i)))
            .collect();
        setup
            .sql(&[&format!("INSERT INTO note VALUES {}", values.join(","))])
            .await;
    }
    setup.seed_items().await;
    // Bigger pages than the shared setup's 7.
    let text = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace("page_size = 7", "page_size = 500");
    let config = crate::common::write_config(&crate::common::unique("vnotesz"), &text);

    let started = std::time::Instant::now();
    let report = cutover_json(&config, &["verify"], 0);
    let clean_secs = started.elapsed().as_secs_f64();
    assert_eq!(counts(table(&report, ".note")), (ROWS, 0, 0, Some(0), 0));

    // Strays: ids past the table, and keys that split into a live row's owner or id.
    let mut strays = Vec::new();
    for i in (1..=ROWS).step_by(50) {
        strays.push(format!("NOTE#{}#{}", owner(i), i + 1_000_000));
        strays.push(format!("NOTE#{}#{i}#{}", owner(i), 2_000_000 + i));
    }
    for pk in &strays {
        setup
            .put(&[
                ("pk", s(pk)),
                ("body", s("ghost")),
                ("_v", AttributeValue::N("0".into())),
            ])
            .await;
    }
    let n = strays.len() as u64;
    let report = cutover_json(&config, &["verify"], 1);
    assert_eq!(counts(table(&report, ".note")), (ROWS, 0, 0, Some(n), 0));
    let fixed = cutover_json(&config, &["verify", "--repair"], 0);
    assert_eq!(repaired(table(&fixed, ".note")), (n, 0));
    let started = std::time::Instant::now();
    let again = cutover_json(&config, &["verify"], 0);
    let after_secs = started.elapsed().as_secs_f64();
    assert_eq!(counts(table(&again, ".note")), (ROWS, 0, 0, Some(0), 0));
    eprintln!(
        "{ROWS} rows, {n} strays: verify {clean_secs:.1}s clean, {after_secs:.1}s with {n} tombstones"
    );
    setup.cleanup().await;
}
