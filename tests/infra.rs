//! infra/ stays in sync with the code (no services needed):
//! - every `.tf` and `.tftest.hcl` file parses with a real HCL parser. `terraform validate` and
//!   `terraform test` run in scripts/test for the AWS-only modules when a provider mirror is
//!   present; modules/topic, modules/consumer and example/ need the kafka and kubernetes
//!   providers, which no mirror here holds, so this parse and the checks below are theirs;
//! - the DMS Kafka target's KafkaSettings are ones the decoder supports;
//! - the rendered DynamoDB tables equal what the example mapping implies;
//! - the consumer's (Kubernetes and ECS) IAM policy grants exactly the DynamoDB actions the
//!   writer calls, on tables only; the data-access layer's policy covers exactly its calls;
//! - the change topic can't be destroyed or reshaped by a plan;
//! - the example's topics and groups are the ones its cutover.toml names;
//! - the Dockerfile runs as the uid the modules pin, and builds with scripts/test's packages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression};

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/terraform")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Files under `dir` (recursively) whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_ending(&p, suffix, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(suffix))
        {
            out.push(p);
        }
    }
}

fn tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    files_ending(dir, ".tf", out);
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
    for module in [
        "access",
        "consumer",
        "dms",
        "dynamodb_tables",
        "ecs",
        "topic",
    ] {
        let dir = infra().join("modules").join(module);
        assert!(
            files.iter().any(|f| f.starts_with(&dir)),
            "modules/{module} has no .tf files"
        );
    }
    let mut tests = Vec::new();
    files_ending(&infra(), ".tftest.hcl", &mut tests);
    for module in ["access", "dms", "dynamodb_tables", "ecs"] {
        let dir = infra().join("modules").join(module).join("tests");
        assert!(
            tests.iter().any(|f| f.starts_with(&dir)),
            "modules/{module} has no tests/*.tftest.hcl (scripts/test runs them)"
        );
    }
    for f in files.iter().chain(&tests) {
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

/// The `statement` blocks of a module that grant `dynamodb:` actions: (sid, actions, the
/// `resources` expression).
fn dynamodb_statements(module_name: &str) -> Vec<(Option<String>, Vec<String>, Expression)> {
    let bodies = module(module_name);
    let mut all = Vec::new();
    for b in &bodies {
        blocks(b, &mut all);
    }
    let mut out = Vec::new();
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
            let resources = attr(b, "resources").cloned().unwrap_or_else(|| {
                panic!("modules/{module_name}: statement {sid:?} has no resources")
            });
            out.push((sid, actions, resources));
        }
    }
    out
}

/// `var.<name>`?
fn is_var(e: &Expression, name: &str) -> bool {
    matches!(e, Expression::Traversal(t)
        if matches!(&t.expr, Expression::Variable(v) if v.as_str() == "var")
            && matches!(t.operators.first(), Some(hcl::TraversalOperator::GetAttr(id)) if id.as_str() == name))
}

#[test]
fn iam_policy_grants_exactly_the_writer_actions() {
    // Kubernetes (IRSA) and ECS (task role): the same statement.
    for module_name in ["consumer", "ecs"] {
        let mut statements = dynamodb_statements(module_name);
        assert_eq!(
            statements.len(),
            1,
            "modules/{module_name}: exactly one statement grants DynamoDB actions: {statements:?}"
        );
        let (sid, mut actions, resources) = statements.remove(0);
        assert_eq!(
            sid.as_deref(),
            Some("CutoverWriter"),
            "modules/{module_name}"
        );
        actions.sort();
        assert_eq!(
            actions,
            cutover::sink::IAM_ACTIONS,
            "modules/{module_name}: the writer's actions, no more, no less"
        );
        // Writes never address an index: the tables, and no `/index/*` ARNs.
        assert!(
            is_var(&resources, "table_arns"),
            "modules/{module_name}: CutoverWriter's resources must be exactly var.table_arns, found {resources:?}"
        );
    }
}

/// `.op()` calls (an AWS SDK fluent builder: no arguments), and calls of the DynamoDB edge's
/// read methods, in the given sources, as IAM actions.
fn sdk_calls(files: &[PathBuf]) -> Vec<String> {
    const OPS: &[(&str, &str)] = &[
        ("batch_get_item", "BatchGetItem"),
        ("batch_write_item", "BatchWriteItem"),
        ("delete_item", "DeleteItem"),
        ("describe_table", "DescribeTable"),
        ("execute_statement", "PartiQLSelect"),
        ("get_item", "GetItem"),
        ("put_item", "PutItem"),
        ("query", "Query"),
        ("scan", "Scan"),
        ("transact_get_items", "GetItem"),
        ("transact_write_items", "PutItem"),
        ("update_item", "UpdateItem"),
    ];
    // The same calls through the one DynamoDB edge (`sink::dynamo`'s read methods take
    // arguments, unlike the SDK's builders).
    const EDGE_OPS: &[(&str, &str)] = &[
        ("batch_get", "BatchGetItem"),
        ("get_item", "GetItem"),
        ("query_page", "Query"),
        ("scan_page", "Scan"),
    ];
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for (op, action) in OPS {
            if text.contains(&format!(".{op}()")) {
                out.push(format!("dynamodb:{action}"));
            }
        }
        for (op, action) in EDGE_OPS {
            if text.contains(&format!(".{op}(")) {
                out.push(format!("dynamodb:{action}"));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn access_policies_cover_exactly_the_data_access_layer_calls() {
    // The layer's own DynamoDB calls (reads) live under src/…access…; its writes go through the
    // sink's Writer, forced to conditional mode (single PutItem/UpdateItem/DeleteItem, never
    // BatchWriteItem).
    let mut files = Vec::new();
    files_ending(&root().join("src"), ".rs", &mut files);
    files.retain(|f| {
        f.strip_prefix(root().join("src"))
            .unwrap()
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with("access"))
    });
    assert!(!files.is_empty(), "no data-access layer sources under src/");
    let sources: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        sources.contains("WriteMode::Conditional"),
        "the data-access layer no longer forces conditional writes: review modules/access's policy"
    );
    let mut expected = sdk_calls(&files);
    expected.extend(
        [
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        ]
        .map(String::from),
    );
    expected.sort();
    expected.dedup();

    let statements = dynamodb_statements("access");
    let by_sid: BTreeMap<_, _> = statements
        .iter()
        .map(|(sid, actions, resources)| (sid.clone().unwrap_or_default(), (actions, resources)))
        .collect();
    let (service, resources) = by_sid
        .get("CutoverAccess")
        .expect("modules/access: statement CutoverAccess");
    let mut service = (*service).clone();
    service.sort();
    assert_eq!(
        service, expected,
        "CutoverAccess must grant exactly the data-access layer's calls (found in {files:?})"
    );
    assert!(
        is_var(resources, "table_arns"),
        "CutoverAccess: tables only"
    );
    // The repair worker: the same without Query (it reads single items by key).
    let (worker, resources) = by_sid
        .get("CutoverRepair")
        .expect("modules/access: statement CutoverRepair");
    let mut worker = (*worker).clone();
    worker.sort();
    let expected_worker: Vec<String> = expected
        .iter()
        .filter(|a| *a != "dynamodb:Query")
        .cloned()
        .collect();
    assert_eq!(worker, expected_worker, "CutoverRepair");
    assert!(
        is_var(resources, "table_arns"),
        "CutoverRepair: tables only"
    );
}

/// The block `identifier "label0" "label1"` of a module.
fn find_block<'a>(bodies: &'a [Body], identifier: &str, labels: &[&str]) -> Option<&'a Block> {
    bodies.iter().flat_map(|b| b.blocks()).find(|b| {
        b.identifier.as_str() == identifier
            && b.labels.len() == labels.len()
            && b.labels
                .iter()
                .zip(labels)
                .all(|(l, want)| l.as_str() == *want)
    })
}

fn prevent_destroy(b: &Block) -> bool {
    b.body
        .blocks()
        .filter(|l| l.identifier.as_str() == "lifecycle")
        .any(|l| matches!(attr(l, "prevent_destroy"), Some(Expression::Bool(true))))
}

#[test]
fn the_change_topic_cannot_be_destroyed_or_reshaped_by_a_plan() {
    let bodies = module("topic");
    let topic = find_block(&bodies, "resource", &["kafka_topic", "changes"])
        .expect("modules/topic: resource kafka_topic.changes");
    assert!(
        prevent_destroy(topic),
        "kafka_topic.changes must have lifecycle {{ prevent_destroy = true }}"
    );
    // Its shape guard: replaced (hence refused) whenever name, partitions or replication factor
    // change, even where the provider could change them in place.
    let guard = find_block(
        &bodies,
        "resource",
        &["terraform_data", "change_topic_shape"],
    )
    .expect("modules/topic: resource terraform_data.change_topic_shape");
    assert!(
        prevent_destroy(guard),
        "change_topic_shape needs prevent_destroy"
    );
    let Some(Expression::Object(triggers)) = attr(guard, "triggers_replace") else {
        panic!("change_topic_shape: triggers_replace must be an object");
    };
    let mut keyed: Vec<String> = triggers
        .iter()
        .filter_map(|(k, v)| {
            let Expression::Traversal(t) = v else {
                return None;
            };
            let name = match t.operators.first()? {
                hcl::TraversalOperator::GetAttr(id) => id.as_str().to_string(),
                _ => return None,
            };
            let key = match k {
                hcl::ObjectKey::Identifier(id) => id.as_str().to_string(),
                hcl::ObjectKey::Expression(Expression::String(s)) => s.clone(),
                _ => return None,
            };
            (key == name.trim_start_matches("topic_")).then_some(name)
        })
        .collect();
    keyed.sort();
    assert_eq!(
        keyed,
        ["partitions", "replication_factor", "topic_name"],
        "change_topic_shape must be keyed on the topic's name, partitions and replication factor"
    );
    // The topic's own arguments come from the same variables.
    for (arg, var) in [
        ("name", "topic_name"),
        ("partitions", "partitions"),
        ("replication_factor", "replication_factor"),
    ] {
        assert!(
            attr(topic, arg).is_some_and(|e| is_var(e, var)),
            "kafka_topic.changes.{arg} must be var.{var}"
        );
    }
}

#[test]
fn example_topics_and_groups_match_its_cutover_toml() {
    let example = infra().join("example");
    let cfg = cutover::Config::load(&example.join("cutover.toml"))
        .unwrap_or_else(|e| panic!("infra/terraform/example/cutover.toml: {e}"));
    let main = parse(&example.join("main.tf"));
    let locals: BTreeMap<String, String> = main
        .blocks()
        .filter(|b| b.identifier.as_str() == "locals")
        .flat_map(|b| b.body.attributes())
        .filter_map(|a| {
            Some((
                a.key.as_str().to_string(),
                literal(&a.expr, &BTreeMap::new())?,
            ))
        })
        .collect();
    let local = |k: &str| {
        locals
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("example/main.tf: local {k} must be a string literal"))
    };
    assert_eq!(cfg.kafka.topics, [local("topic_name")], "[kafka] topics");
    assert_eq!(
        cfg.kafka.dlq_topic,
        local("dlq_topic_name"),
        "[kafka] dlq_topic"
    );
    assert_eq!(cfg.kafka.group_id, local("group_id"), "[kafka] group_id");
    assert_eq!(
        cfg.access.repair_topic,
        local("repair_topic_name"),
        "[access] repair_topic"
    );
    assert_eq!(
        cfg.access.repair_group,
        local("repair_group_id"),
        "[access] repair_group"
    );
}

#[test]
fn the_image_runs_as_the_uid_the_modules_pin() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let user = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .next_back()
        .expect("Dockerfile: a USER instruction");
    assert_eq!(user.trim(), "65532:65532", "the runtime stage's USER");
    assert!(
        dockerfile.lines().any(|l| l.trim() == "FROM scratch"),
        "the runtime stage holds only the binary, its libraries and CA certificates"
    );

    // Kubernetes: pod security context; ECS: the container's user. Both by variable image.
    let consumer = module("consumer");
    let mut all = Vec::new();
    for b in &consumer {
        blocks(b, &mut all);
    }
    for key in ["run_as_user", "run_as_group", "fs_group"] {
        assert!(
            all.iter()
                .filter(|b| b.identifier.as_str() == "security_context")
                .any(|b| matches!(attr(b, key), Some(Expression::Number(n)) if n.as_u64() == Some(65532))),
            "modules/consumer: security_context {key} = 65532"
        );
    }
    let container = all
        .iter()
        .find(|b| b.identifier.as_str() == "container")
        .expect("modules/consumer: container");
    assert!(attr(container, "image").is_some_and(|e| is_var(e, "image")));
    let ecs = std::fs::read_to_string(infra().join("modules/ecs/main.tf")).unwrap();
    let has_line = |want: &[&str]| {
        ecs.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == want)
    };
    assert!(
        has_line(&["user", "=", "\"65532:65532\""]),
        "modules/ecs: the cutover container's user = \"65532:65532\""
    );
    assert!(
        has_line(&["image", "=", "var.image"]),
        "modules/ecs: image = var.image"
    );
}

#[test]
fn the_image_builds_with_the_packages_scripts_test_installs() {
    let script = std::fs::read_to_string(root().join("scripts/test")).unwrap();
    let pkgs: Vec<&str> = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("pkgs=("))
        .and_then(|l| l.strip_suffix(')'))
        .expect("scripts/test: pkgs=(...)")
        .split_whitespace()
        .collect();
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let install = dockerfile
        .split("apt-get install")
        .nth(1)
        .and_then(|rest| rest.split("&&").next())
        .expect("Dockerfile: apt-get install in the builder");
    let installed: Vec<&str> = install
        .split_whitespace()
        .filter(|w| !w.starts_with('-') && *w != "\\")
        .collect();
    for p in pkgs {
        assert!(
            installed.contains(&p),
            "Dockerfile's builder must install {p} (scripts/test installs it): {installed:?}"
        );
    }
}
