//! infra/observability/ stays true to the code (no services needed):
//! - every `cutover_*` metric named anywhere in the Grafana dashboard or the alert rules
//!   (expressions, legends, descriptions) is one `src/` registers with `counter!`, `gauge!` or
//!   `histogram!` (a histogram's `_bucket`, `_sum` and `_count` series included);
//! - the dashboard covers what an operator needs during a migration, and the rules raise each
//!   alert issue 13 asks for;
//! - with promtool installed (Debian's `prometheus` package, which scripts/test installs):
//!   `promtool check rules` on the rules, `promtool test rules` on their unit tests
//!   (alerts_test.yml: each alert fires on its case and stays quiet on a healthy one), and
//!   every dashboard query parses as PromQL. Without promtool those checks print one
//!   SKIPPED line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn obs(file: &str) -> PathBuf {
    root().join("infra/observability").join(file)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Metric kind by name, for every `metrics::{counter,gauge,histogram}!("cutover_…"` in src/
/// (the name may sit on the macro's next line).
fn registered() -> BTreeMap<String, &'static str> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let text = read(&f);
        for kind in ["counter", "gauge", "histogram"] {
            let pat = format!("{kind}!(");
            let mut rest = text.as_str();
            while let Some(i) = rest.find(&pat) {
                rest = &rest[i + pat.len()..];
                let arg = rest.trim_start();
                if let Some(lit) = arg.strip_prefix('"') {
                    let name: String = lit.chars().take_while(|c| *c != '"').collect();
                    if name.starts_with("cutover_") {
                        let prev = out.insert(name.clone(), kind);
                        assert!(
                            prev.is_none_or(|p| p == kind),
                            "{name} is registered both as a {} and as a {kind}",
                            prev.unwrap_or_default()
                        );
                    }
                }
            }
        }
    }
    out
}

/// Every `cutover_[a-z0-9_]+` token in `text`.
fn metric_tokens(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("cutover_") {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..len].to_string());
        }
        rest = &tail[len..];
    }
    out
}

/// The registered metric a series name belongs to (a histogram's `_bucket`/`_sum`/`_count`).
fn family<'a>(name: &'a str, reg: &BTreeMap<String, &'static str>) -> Option<&'a str> {
    if reg.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|s| {
        let base = name.strip_suffix(s)?;
        (reg.get(base) == Some(&"histogram")).then_some(base)
    })
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read(&obs("dashboard.json"))).expect("dashboard.json is JSON")
}

/// Every panel's (title, exprs), rows' nested panels included.
fn panels(d: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    fn walk(v: &serde_json::Value, out: &mut Vec<(String, Vec<String>)>) {
        for p in v.as_array().into_iter().flatten() {
            if p["type"] == "row" {
                walk(&p["panels"], out);
                continue;
            }
            let exprs = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| t["expr"].as_str().unwrap_or_default().to_string())
                .collect();
            out.push((p["title"].as_str().unwrap_or_default().to_string(), exprs));
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

/// The rules of alerts.yml as (alert name, expr). The file keeps to a small YAML subset, read
/// here line by line: `- alert: NAME`, then `expr: ONE LINE` or `expr: |` with an indented
/// block. (promtool checks the full syntax.)
fn rules() -> Vec<(String, String)> {
    let text = read(&obs("alerts.yml"));
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim_start();
        if let Some(name) = l.strip_prefix("- alert:") {
            out.push((name.trim().to_string(), String::new()));
        } else if let Some(e) = l.strip_prefix("expr:") {
            let indent = lines[i].len() - l.len();
            let mut expr = e.trim().to_string();
            if expr == "|" || expr == ">" {
                expr.clear();
                while i + 1 < lines.len() {
                    let n = lines[i + 1];
                    let ni = n.len() - n.trim_start().len();
                    if !n.trim().is_empty() && ni <= indent {
                        break;
                    }
                    expr.push_str(n.trim());
                    expr.push(' ');
                    i += 1;
                }
            }
            let last = out.last_mut().expect("an expr before any `- alert:`");
            assert!(last.1.is_empty(), "{}: two exprs", last.0);
            last.1 = expr.trim().to_string();
        }
        i += 1;
    }
    out
}

#[test]
fn every_metric_the_dashboard_and_rules_name_is_registered() {
    let reg = registered();
    assert!(
        reg.len() > 20,
        "found only {} registered metrics in src/: {reg:?}",
        reg.len()
    );
    let mut unknown = Vec::new();
    for file in ["dashboard.json", "alerts.yml", "alerts_test.yml"] {
        for name in metric_tokens(&read(&obs(file))) {
            if family(&name, &reg).is_none() {
                unknown.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics that src/ does not register (register them, or fix the name):\n  {}\nregistered: {:?}",
        unknown.join("\n  "),
        reg.keys().collect::<Vec<_>>()
    );
}

#[test]
fn the_name_check_catches_an_unknown_metric() {
    let reg = registered();
    let toks = metric_tokens(
        r#"rate(cutover_items_written_total[1m]) + cutover_e2e_latency_seconds_bucket + cutover_no_such_thing + cutover_consumer_lag_bucket"#,
    );
    let unknown: Vec<&String> = toks.iter().filter(|t| family(t, &reg).is_none()).collect();
    assert_eq!(
        unknown,
        ["cutover_consumer_lag_bucket", "cutover_no_such_thing"]
    );
}

#[test]
fn the_dashboard_covers_the_migration() {
    let d = dashboard();
    let panels = panels(&d);
    for (title, exprs) in &panels {
        assert!(!exprs.is_empty(), "panel {title:?} has no query");
        for e in exprs {
            assert!(
                !metric_tokens(e).is_empty(),
                "panel {title:?}: query {e:?} uses no cutover metric"
            );
        }
    }
    let used: BTreeSet<String> = panels
        .iter()
        .flat_map(|(_, e)| e.iter().flat_map(|e| metric_tokens(e)))
        .collect();
    // What issue 13 asks the dashboard to show, and the metric that shows it.
    for (what, metric) in [
        ("consumer lag per partition", "cutover_consumer_lag"),
        ("end-to-end latency", "cutover_e2e_latency_seconds_bucket"),
        ("applied/stale/poison writes", "cutover_items_written_total"),
        ("DLQ rate by stage", "cutover_dlq_total"),
        ("throttles", "cutover_dynamodb_throttles_total"),
        (
            "consistency checks per path",
            "cutover_access_consistency_checks_total",
        ),
        ("mismatches per path", "cutover_access_mismatches_total"),
        (
            "secondary-write failures",
            "cutover_access_secondary_failures_total",
        ),
        (
            "repair-queue backlog",
            "cutover_access_repairs_queued_total",
        ),
        (
            "repair-queue backlog",
            "cutover_access_repairs_applied_total",
        ),
        ("each path's stage", "cutover_flags_ops_total"),
        (
            "capture checkpoint age",
            "cutover_capture_checkpoint_timestamp_seconds",
        ),
    ] {
        assert!(used.contains(metric), "no panel shows {what} ({metric})");
    }
    let lag = panels
        .iter()
        .find(|(_, e)| e.iter().any(|e| e.contains("cutover_consumer_lag")))
        .unwrap();
    assert!(
        lag.1.iter().any(|e| e.contains("partition")),
        "consumer lag is not shown per partition: {lag:?}"
    );
    let dlq = panels
        .iter()
        .find(|(_, e)| e.iter().any(|e| e.contains("cutover_dlq_total")))
        .unwrap();
    assert!(dlq.1.iter().any(|e| e.contains("stage")), "{dlq:?}");
    // Every template variable a query uses is defined.
    let vars: BTreeSet<String> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    for (title, exprs) in &panels {
        for e in exprs {
            for v in e.split('$').skip(1) {
                let name: String = v
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    name.starts_with("__") || vars.contains(&name),
                    "panel {title:?} uses ${name}, which the dashboard does not define"
                );
            }
        }
    }
}

#[test]
fn the_rules_raise_each_alert_the_runbook_needs() {
    let rules = rules();
    let by_name: BTreeMap<&str, &str> = rules
        .iter()
        .map(|(n, e)| (n.as_str(), e.as_str()))
        .collect();
    assert_eq!(by_name.len(), rules.len(), "duplicate alert names");
    for (name, expr) in &rules {
        assert!(!expr.is_empty(), "{name}: no expr read");
    }
    for (alert, metric) in [
        ("CutoverConsumerLagGrowing", "cutover_consumer_lag"),
        ("CutoverDeadLetters", "cutover_dlq_total"),
        ("CutoverStaleRatioHigh", "cutover_items_written_total"),
        ("CutoverMismatches", "cutover_access_mismatches_total"),
        (
            "CutoverRepairBacklogGrowing",
            "cutover_access_repairs_queued_total",
        ),
        (
            "CutoverCaptureCheckpointStale",
            "cutover_capture_checkpoint_timestamp_seconds",
        ),
    ] {
        let expr = by_name
            .get(alert)
            .unwrap_or_else(|| panic!("alerts.yml has no {alert}"));
        assert!(
            expr.contains(metric),
            "{alert} does not use {metric}: {expr}"
        );
    }
}

/// promtool on PATH, or None after printing why the checks that need it are skipped.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "observability: SKIPPED promtool checks: promtool is not on PATH (Debian: apt-get install prometheus)"
        );
    }
    found
}

fn run_promtool(promtool: &Path, args: &[&str], dir: &Path) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", promtool.display()));
    assert!(
        out.status.success(),
        "promtool {}: failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let Some(promtool) = promtool() else { return };
    let dir = obs("");
    run_promtool(&promtool, &["check", "rules", "alerts.yml"], &dir);
    run_promtool(&promtool, &["test", "rules", "alerts_test.yml"], &dir);
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let Some(promtool) = promtool() else { return };
    // Each query as a recording rule, Grafana's variables replaced by what they stand for.
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (title, exprs)) in panels(&dashboard()).iter().enumerate() {
        for (j, e) in exprs.iter().enumerate() {
            let e = e
                .replace("$__rate_interval", "1m")
                .replace("$topic", ".*")
                .replace("$table", ".*")
                .replace("$path", ".*");
            yaml.push_str(&format!(
                "      # {}\n      - record: dashboard:panel{i}_{j}\n        expr: {}\n",
                title.replace('\n', " "),
                serde_json::to_string(&e).unwrap()
            ));
        }
    }
    let dir = std::env::temp_dir().join(format!("cutover-obs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dashboard_rules.yml"), yaml).unwrap();
    run_promtool(&promtool, &["check", "rules", "dashboard_rules.yml"], &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
