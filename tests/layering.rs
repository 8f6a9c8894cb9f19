//! The layering of `src/lib.rs`'s map, kept true: every reference from one top-level module to
//! another (`use crate::x…`, `crate::x::…`, `use crate::{x, …}`; `cutover::x` in `main.rs`)
//! goes to a lower layer. So there is no import loop between top-level modules, and the
//! bottom (`error`, `config`, `cdc`, `mapping`) imports no command or feature module.
//!
//! Comments and string literals are skipped: a doc link is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first, as `src/lib.rs` states them. Modules of one layer never import
/// each other. A new top-level module must be placed here (the test fails until it is).
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["config"],
    &["cdc"],
    &["mapping"],
    &["kafka", "mysql", "flags", "telemetry", "sink"],
    &["pipeline", "tables"],
    &["consumer"],
    &["run", "verify", "capture", "access"],
    &["replay", "status", "dlq"],
    &["app", "cli"],
    &["commands"],
    &["main"],
];

/// The bottom of the crate: these import nothing above themselves (issue 9's acceptance),
/// whatever the layers above look like.
const FOUNDATION: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("config", &["error"]),
    ("cdc", &["error", "config"]),
    ("mapping", &["error", "config", "cdc"]),
];

#[test]
fn every_reference_goes_down_the_layers() {
    let edges = edges();
    let rank: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, layer)| layer.iter().map(move |m| (*m, i)))
        .collect();
    let mut problems = Vec::new();
    for (module, uses) in &edges {
        let Some(&r) = rank.get(module.as_str()) else {
            problems.push(format!(
                "module `{module}` is in no layer: place it in LAYERS and in src/lib.rs's map"
            ));
            continue;
        };
        for (target, at) in uses {
            match rank.get(target.as_str()) {
                None => problems.push(format!("{at}: `{target}` is in no layer")),
                Some(&t) if t >= r => problems.push(format!(
                    "{at}: `{module}` (layer {r}) uses `{target}` (layer {t}): references must go to a lower layer"
                )),
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_foundation_imports_no_command_or_feature_module() {
    let edges = edges();
    let mut problems = Vec::new();
    for (module, allowed) in FOUNDATION {
        for (target, at) in edges.get(*module).into_iter().flatten() {
            if !allowed.contains(&target.as_str()) {
                problems.push(format!("{at}: `{module}` uses `{target}`"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_loop_between_top_level_modules() {
    let edges = edges();
    let graph: BTreeMap<&str, BTreeSet<&str>> = edges
        .iter()
        .map(|(m, uses)| (m.as_str(), uses.keys().map(String::as_str).collect()))
        .collect();
    // Depth-first search; a grey node reached again closes a loop.
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        state: &mut BTreeMap<&'a str, bool>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        match state.get(node) {
            Some(true) => return None,
            Some(false) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node);
                return Some(cycle);
            }
            None => {}
        }
        state.insert(node, false);
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(node, true);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut state, &mut Vec::new()) {
            panic!("import loop: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_scanner_sees_imports_and_skips_comments_and_strings() {
    let code = r##"
        //! [`crate::app::Config`] in a doc comment
        use crate::{cdc::Row, config::{self, ConfigIssue}};
        use crate::error::FatalError; // crate::run in a comment
        /* crate::status in a block comment */
        fn f() { let _ = "crate::verify"; let _ = r#"crate::access"#; let c = '"'; crate::sink::x(); }
        fn g<'a>(x: &'a str) -> &'a str { crate::tables::y(x) }
    "##;
    let found: BTreeSet<String> = references(&strip(code), "crate").into_iter().collect();
    let want: BTreeSet<String> = ["cdc", "config", "error", "sink", "tables"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, want);
}

/// module → (module it references → where, for the message).
fn edges() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a path");
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue; // the map itself: declares every module
        }
        // main.rs is the binary: it reaches the library as `cutover::`.
        let root = if module == "main" { "cutover" } else { "crate" };
        let text = std::fs::read_to_string(&file).expect("read source");
        let uses = edges.entry(module.clone()).or_default();
        for mut target in references(&strip(&text), root) {
            // The crate root re-exports `Config` from `app`.
            if target == "Config" {
                target = "app".into();
            }
            if target != module {
                uses.entry(target)
                    .or_insert_with(|| format!("src/{}", rel.display()));
            }
        }
    }
    edges
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules `root::` paths in `code` name, including each head of a
/// `root::{a, b::c}` group.
fn references(code: &str, root: &str) -> Vec<String> {
    let pattern = format!("{root}::");
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find(&pattern) {
        let at = from + i;
        from = at + pattern.len();
        // `crate` must be a whole word (not `mycrate::`, not `$crate::`).
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || matches!(bytes[at - 1], b'_' | b'$'))
        {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.extend(head(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.extend(head(&item));
        } else {
            out.extend(head(rest));
        }
    }
    out
}

/// The first identifier of a path.
fn head(path: &str) -> Option<String> {
    let ident: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty() && ident != "self").then_some(ident)
}

/// `code` without comments and without the contents of string and char literals.
fn strip(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('#') | Some('"')) && raw_string_start(&chars, i) {
            // r"…", r#"…"#, r##"…"##: skip to the matching closing quote and hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            j += 1; // the opening quote
            while j < chars.len() {
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\''), or a lifetime ('a), which is kept.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `r` at `i` starts a raw string (not the end of an identifier like `for`).
fn raw_string_start(chars: &[char], i: usize) -> bool {
    let starts_word = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    let mut j = i + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    starts_word && chars.get(j) == Some(&'"')
}
