//! Golden decode fixtures: `tests/fixtures/{dms,debezium}/NAME.json` is a record exactly as it
//! is on the wire; `NAME.expected.json` is the expected result, the `Decoded` value as serialized
//! by serde, or `{"error": "<reason>"}`.
//!
//! Each record is decoded twice, with the folder's explicit format and with `Format::Auto`, and
//! both must match. Where detection rightly answers differently (a record that does not look like
//! either producer), `NAME.auto.expected.json` holds the `Format::Auto` result.
//!
//! `BLESS=1 cargo test --test golden` rewrites the expected files from the decoder: review every
//! change by eye against the format spec before keeping it.

use std::fs;
use std::path::{Path, PathBuf};

use cutover::cdc::{decode, DecodeError, Decoded, Format};
use serde_json::{json, Value};

fn as_json(result: &Result<Decoded, DecodeError>) -> Value {
    match result {
        Ok(decoded) => serde_json::to_value(decoded).expect("Decoded serializes"),
        Err(e) => json!({ "error": e.reason }),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("Value serializes") + "\n"
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable dir entry").path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            name.ends_with(".json") && !name.ends_with(".expected.json")
        })
        .collect();
    cases.sort();
    cases
}

/// `dir/NAME.json` → `dir/NAME.<suffix>`.
fn sibling(case: &Path, suffix: &str) -> PathBuf {
    let stem = case
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("utf-8 file name");
    case.with_file_name(format!("{stem}.{suffix}"))
}

fn run(folder: &str, format: Format) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder);
    let bless = std::env::var_os("BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    let cases = cases(&dir);
    for case in &cases {
        let bytes = fs::read(case).expect("readable fixture");
        let explicit = as_json(&decode(Some(&bytes), format));
        let auto = as_json(&decode(Some(&bytes), Format::Auto));
        let expected_path = sibling(case, "expected.json");
        let auto_path = sibling(case, "auto.expected.json");
        if bless {
            fs::write(&expected_path, pretty(&explicit)).expect("writable fixture");
            if auto == explicit {
                let _ = fs::remove_file(&auto_path);
            } else {
                fs::write(&auto_path, pretty(&auto)).expect("writable fixture");
            }
            continue;
        }
        let read = |path: &Path| -> Option<Value> {
            let text = fs::read_to_string(path).ok()?;
            Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        };
        let Some(expected) = read(&expected_path) else {
            failures.push(format!(
                "{}: no {}",
                case.display(),
                expected_path.display()
            ));
            continue;
        };
        let expected_auto = read(&auto_path).unwrap_or_else(|| expected.clone());
        for (label, got, want) in [
            (format!("{format:?}"), &explicit, &expected),
            ("Auto".to_owned(), &auto, &expected_auto),
        ] {
            if got != want {
                failures.push(format!(
                    "{} ({label}):\n--- expected\n{}--- got\n{}",
                    case.display(),
                    pretty(want),
                    pretty(got)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {folder} fixtures differ:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn dms_fixtures() {
    let n = run("dms", Format::Dms);
    assert!(n >= 20, "only {n} DMS fixtures found");
}

#[test]
fn debezium_fixtures() {
    let n = run("debezium", Format::Debezium);
    assert!(n >= 20, "only {n} Debezium fixtures found");
}

/// The Kafka tombstone itself (no value at all) never reaches a decoder.
#[test]
fn missing_value_is_a_tombstone() {
    for format in [Format::Auto, Format::Dms, Format::Debezium] {
        assert_eq!(decode(None, format), Ok(Decoded::Tombstone));
    }
}
