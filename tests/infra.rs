//! infra/ stays in sync with the code (no services needed):
//! - every `.tf` file parses with a real HCL parser (Terraform itself is not installable here);
//! - the DMS Kafka target's KafkaSettings are ones the decoder supports;
//! - the rendered DynamoDB tables equal what the example mapping implies;
//! - the consumer's IAM policy grants exactly the DynamoDB actions the writer calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression};

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/terraform")
}

fn tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            tf_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "tf") {
            out.push(p);
        }
    }
}

fn parse(path: &Path) -> Body {
    let text = std::fs::read_to_string(path).unwrap();
    hcl::parse(&text).unwrap_or_else(|e| panic!("{}: HCL syntax error: {e}", path.display()))
}

fn module(name: &str) -> Vec<Body> {
    let mut files = Vec::new();
    tf_files(&infra().join("modules").join(name), &mut files);
    assert!(!files.is_empty(), "module {name} has no .tf files");
    files.iter().map(|p| parse(p)).collect()
}

/// All blocks, recursively.
fn blocks<'a>(body: &'a Body, out: &mut Vec<&'a Block>) {
    for b in body.blocks() {
        out.push(b);
        blocks(&b.body, out);
    }
}

fn attr<'a>(b: &'a Block, name: &str) -> Option<&'a Expression> {
    b.body
        .attributes()
        .find(|a| a.key.as_str() == name)
        .map(|a| &a.expr)
}

/// A literal, or a `var.x` resolved to its default.
fn literal(e: &Expression, defaults: &BTreeMap<String, Expression>) -> Option<String> {
    match e {
        Expression::String(s) => Some(s.clone()),
        Expression::Bool(b) => Some(b.to_string()),
        Expression::Number(n) => Some(n.to_string()),
        Expression::Traversal(t) => {
            let Expression::Variable(v) = &t.expr else {
                return None;
            };
            if v.as_str() != "var" {
                return None;
            }
            let name = t.operators.first().and_then(|op| match op {
                hcl::TraversalOperator::GetAttr(id) => Some(id.as_str().to_string()),
                _ => None,
            })?;
            literal(defaults.get(&name)?, defaults)
        }
        _ => None,
    }
}

fn variable_defaults(bodies: &[Body]) -> BTreeMap<String, Expression> {
    let mut out = BTreeMap::new();
    for body in bodies {
        for b in body
            .blocks()
            .filter(|b| b.identifier.as_str() == "variable")
        {
            if let (Some(label), Some(default)) = (b.labels.first(), attr(b, "default")) {
                out.insert(label.as_str().to_string(), default.clone());
            }
        }
    }
    out
}

#[test]
fn every_tf_file_parses() {
    let mut files = Vec::new();
    tf_files(&infra(), &mut files);
    assert!(
        files.len() >= 10,
        "expected the infra modules, found {files:?}"
    );
    for f in &files {
        parse(f);
    }
}

#[test]
fn dms_kafka_settings_are_supported_by_the_decoder() {
    let bodies = module("dms");
    let defaults = variable_defaults(&bodies);
    let mut all = Vec::new();
    for b in &bodies {
        blocks(b, &mut all);
    }
    let settings: Vec<&Block> = all
        .iter()
        .copied()
        .filter(|b| b.identifier.as_str() == "kafka_settings")
        .collect();
    assert_eq!(
        settings.len(),
        1,
        "one Kafka target endpoint with kafka_settings"
    );
    let map: BTreeMap<String, String> = settings[0]
        .body
        .attributes()
        .filter_map(|a| Some((a.key.as_str().to_string(), literal(&a.expr, &defaults)?)))
        .collect();
    let problems = cutover::cdc::dms::check_kafka_settings(&map);
    assert!(
        problems.is_empty(),
        "unsupported KafkaSettings in infra: {problems:#?}\n{map:#?}"
    );
}

#[test]
fn rendered_tables_equal_the_mapping() {
    let example = infra().join("example");
    let cfg = cutover::Config::load(&example.join("cutover.toml"))
        .unwrap_or_else(|e| panic!("infra/terraform/example/cutover.toml: {e}"));
    let mapping = cutover::mapping::Mapping::new(&cfg.tables, &cfg.sink).unwrap();
    let rendered = cutover::tables::render_json(&mapping);
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example.join("tables.json")).unwrap())
            .unwrap();
    assert_eq!(
        committed, rendered,
        "infra/terraform/example/tables.json is stale: regenerate it with\n  cutover --config infra/terraform/example/cutover.toml tables render --format json > infra/terraform/example/tables.json"
    );
}

#[test]
fn iam_policy_grants_exactly_the_writer_actions() {
    let bodies = module("consumer");
    let mut all = Vec::new();
    for b in &bodies {
        blocks(b, &mut all);
    }
    let mut dynamo_statements = Vec::new();
    for b in all.iter().filter(|b| b.identifier.as_str() == "statement") {
        let Some(Expression::Array(actions)) = attr(b, "actions") else {
            continue;
        };
        let actions: Vec<String> = actions
            .iter()
            .filter_map(|a| match a {
                Expression::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        if actions.iter().any(|a| a.starts_with("dynamodb:")) {
            let sid = attr(b, "sid").and_then(|e| literal(e, &BTreeMap::new()));
            dynamo_statements.push((sid, actions));
        }
    }
    assert_eq!(
        dynamo_statements.len(),
        1,
        "exactly one statement grants DynamoDB actions: {dynamo_statements:?}"
    );
    let (sid, mut actions) = dynamo_statements.remove(0);
    assert_eq!(sid.as_deref(), Some("CutoverWriter"));
    actions.sort();
    assert_eq!(
        actions,
        cutover::sink::IAM_ACTIONS,
        "the writer's actions, no more, no less"
    );
}
