//! The local flag file: per-path stages, per-tenant overrides and consistency-check sampling,
//! for people without LaunchDarkly (its Rust SDK has no file data source).
//!
//! ```toml
//! default_check_ratio = 1.0
//! [paths."message.read"]
//! stage = "shadow"
//! check_ratio = 0.1
//! tenants = { acme = "live", globex = "off" }
//! ```
//!
//! Invariants:
//! - A file is accepted whole or not at all: every problem (unknown stage, undeclared path,
//!   unknown key, ratio outside 0..=1) is reported with its key, e.g.
//!   `paths."message.read".tenants.acme`.
//! - Hot reload: the directory is watched (so editors' write-temp-then-rename is seen) and the
//!   file is polled every `reload` as a fallback. A rejected edit (invalid, empty, unreadable)
//!   keeps the last good state serving, logs an error with the keys (no values beyond stage
//!   strings) and bumps `cutover_flags_reload_errors_total`; the next good edit recovers.
//! - Readers take an `Arc` of the current state under a read lock held only for the clone.
//! - [`set_stage`] edits under an exclusive lock file and replaces the file by write-temp +
//!   fsync + rename, so readers see the old or the new file, never a partial one. Values and
//!   keys are kept; comments other than the file's leading comment block are not (the file is
//!   re-serialized: no format-preserving TOML editor is a dependency).

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::{
    key_segment, Decision, FlagContext, FlagError, FlagSource, PathSpec, PathState, RulesConfig,
    Stage,
};
use crate::config::ConfigIssue;

/// One path's entry, with the origin strings precomputed so deciding only clones them.
#[derive(Debug, Default)]
struct PathEntry {
    stage: Option<(Stage, String)>,
    check_ratio: Option<f64>,
    tenants: HashMap<String, (Stage, String)>,
}

/// A parsed, validated flag file.
#[derive(Debug)]
pub struct FileState {
    default_check_ratio: f64,
    paths: HashMap<String, PathEntry>,
}

impl FileState {
    /// The tenants the path's entry overrides.
    pub fn tenants_of(&self, path: &str) -> Vec<&str> {
        self.paths
            .get(path)
            .map(|e| e.tenants.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Keep the stage of every path that `previous` had and this state lost (an entry or its
    /// `stage` deleted): a deleted entry must not silently send a path to the default stage.
    /// Returns the paths kept so.
    fn keep_removed_stages(&mut self, previous: &FileState) -> Vec<String> {
        let mut kept = Vec::new();
        for (path, old) in &previous.paths {
            let Some((stage, _)) = &old.stage else {
                continue;
            };
            let entry = self.paths.entry(path.clone()).or_default();
            if entry.stage.is_none() {
                entry.stage = Some((
                    *stage,
                    format!(
                        "last known stage (paths.{}.stage was removed from the flag file)",
                        key_segment(path)
                    ),
                ));
                kept.push(path.clone());
            }
        }
        kept
    }

    /// The stage a path's entry gives `tenant` (tenant override, then path stage), if any.
    pub fn stage_of(&self, path: &str, tenant: Option<&str>) -> Option<Stage> {
        let e = self.paths.get(path)?;
        tenant
            .and_then(|t| e.tenants.get(t))
            .or(e.stage.as_ref())
            .map(|(s, _)| *s)
    }
}

fn is_json(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

fn to_value(text: &str, json: bool) -> Result<Value, ConfigIssue> {
    if json {
        serde_json::from_str(text).map_err(|e| ConfigIssue::new("file", e.to_string()))
    } else {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigIssue::new("file", e.to_string()))?;
        serde_json::to_value(table).map_err(|e| ConfigIssue::new("file", e.to_string()))
    }
}

fn ratio(v: &Value, key: &str, issues: &mut Vec<ConfigIssue>) -> Option<f64> {
    match v.as_f64() {
        Some(r) if (0.0..=1.0).contains(&r) => Some(r),
        _ => {
            issues.push(ConfigIssue::new(key, "must be a number from 0.0 to 1.0"));
            None
        }
    }
}

fn stage(v: &Value, key: &str, issues: &mut Vec<ConfigIssue>) -> Option<Stage> {
    let parsed = v.as_str().map(str::parse::<Stage>);
    match parsed {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            issues.push(ConfigIssue::new(key, e.to_string()));
            None
        }
        None => {
            issues.push(ConfigIssue::new(
                key,
                "must be a stage string: off, dualwrite, shadow, live, rampdown or complete",
            ));
            None
        }
    }
}

/// Parse and validate a flag file's text. `declared`: the paths of `[flags.paths]` (None: do
/// not check, as when `set_stage` validates its own output).
pub fn parse(
    text: &str,
    json: bool,
    declared: Option<&HashSet<String>>,
) -> Result<FileState, Vec<ConfigIssue>> {
    let root = to_value(text, json).map_err(|i| vec![i])?;
    let Value::Object(root) = root else {
        return Err(vec![ConfigIssue::new("file", "must be a table of keys")]);
    };
    let mut issues = Vec::new();
    let mut state = FileState {
        default_check_ratio: 1.0,
        paths: HashMap::new(),
    };
    for (k, v) in &root {
        match k.as_str() {
            "default_check_ratio" => {
                if let Some(r) = ratio(v, k, &mut issues) {
                    state.default_check_ratio = r;
                }
            }
            "paths" => {
                let Value::Object(paths) = v else {
                    issues.push(ConfigIssue::new("paths", "must be a table of paths"));
                    continue;
                };
                for (p, pv) in paths {
                    let key = format!("paths.{}", key_segment(p));
                    if declared.is_some_and(|d| !d.contains(p)) {
                        issues.push(ConfigIssue::new(
                            &key,
                            "not declared under [flags.paths] in the configuration",
                        ));
                    }
                    let Value::Object(fields) = pv else {
                        issues.push(ConfigIssue::new(
                            &key,
                            "must be a table (stage, check_ratio, tenants)",
                        ));
                        continue;
                    };
                    let mut entry = PathEntry::default();
                    for (f, fv) in fields {
                        let fkey = format!("{key}.{}", key_segment(f));
                        match f.as_str() {
                            "stage" => {
                                entry.stage = stage(fv, &fkey, &mut issues)
                                    .map(|s| (s, format!("file {key}")));
                            }
                            "check_ratio" => entry.check_ratio = ratio(fv, &fkey, &mut issues),
                            "tenants" => {
                                let Value::Object(tenants) = fv else {
                                    issues.push(ConfigIssue::new(
                                        &fkey,
                                        "must be a table of tenant = \"stage\"",
                                    ));
                                    continue;
                                };
                                for (t, tv) in tenants {
                                    let tkey = format!("{fkey}.{}", key_segment(t));
                                    if t.is_empty() {
                                        issues.push(ConfigIssue::new(
                                            &tkey,
                                            "tenant must not be empty",
                                        ));
                                    }
                                    if let Some(s) = stage(tv, &tkey, &mut issues) {
                                        entry
                                            .tenants
                                            .insert(t.clone(), (s, format!("file {tkey}")));
                                    }
                                }
                            }
                            _ => issues.push(ConfigIssue::new(fkey, "unknown key")),
                        }
                    }
                    state.paths.insert(p.clone(), entry);
                }
            }
            _ => issues.push(ConfigIssue::new(key_segment(k), "unknown key")),
        }
    }
    if issues.is_empty() {
        Ok(state)
    } else {
        Err(issues)
    }
}

/// Read and parse the file once.
pub fn load(file: &Path, declared: Option<&HashSet<String>>) -> Result<FileState, FlagError> {
    let text = std::fs::read_to_string(file).map_err(|source| FlagError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    parse(&text, is_json(file), declared).map_err(|issues| FlagError::File {
        file: file.to_path_buf(),
        issues,
    })
}

struct Shared {
    state: RwLock<Arc<FileState>>,
}

impl Shared {
    fn current(&self) -> Arc<FileState> {
        // A poisoned lock still holds a complete state (writers only swap an Arc).
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The file source: the current state plus a watcher thread that ends when this is dropped.
pub struct FileSource {
    shared: Arc<Shared>,
}

impl FileSource {
    /// Load `file` (must exist and be valid) and start watching it. `watch_events`: also use
    /// file-system events (otherwise poll only).
    pub fn open(
        file: &Path,
        declared: HashSet<String>,
        reload: Duration,
        watch_events: bool,
    ) -> Result<FileSource, FlagError> {
        FileSource::open_with(
            file,
            declared,
            RulesConfig::default(),
            Stage::Off,
            reload,
            watch_events,
        )
    }

    /// [`FileSource::open`], with `[flags.rules]` enforced on every load (`default`: the
    /// stage of a path without one).
    pub fn open_with(
        file: &Path,
        declared: HashSet<String>,
        rules: RulesConfig,
        default: Stage,
        reload: Duration,
        watch_events: bool,
    ) -> Result<FileSource, FlagError> {
        // Watch before reading, and take the metadata before the text: an edit racing with
        // startup is then either in the text or seen as a change later, never lost.
        let events = if watch_events { watch(file) } else { None };
        let initial_meta = meta(file);
        let text = std::fs::read_to_string(file).map_err(|source| FlagError::Io {
            path: file.to_path_buf(),
            source,
        })?;
        let json = is_json(file);
        let state = parse(&text, json, Some(&declared))
            .and_then(|st| {
                let issues = rules.check(&st, default);
                if issues.is_empty() {
                    Ok(st)
                } else {
                    Err(issues)
                }
            })
            .map_err(|issues| FlagError::File {
                file: file.to_path_buf(),
                issues,
            })?;
        let shared = Arc::new(Shared {
            state: RwLock::new(Arc::new(state)),
        });
        metrics::gauge!("cutover_flags_file_valid").set(1.0);
        let watcher = Watcher {
            shared: Arc::downgrade(&shared),
            file: file.to_path_buf(),
            json,
            declared,
            rules,
            default,
            reload,
            seen: Seen {
                text: Some(text),
                error: None,
                meta: initial_meta,
            },
        };
        std::thread::Builder::new()
            .name("cutover-flags-watch".into())
            .spawn(move || watcher.run(events))
            .map_err(|source| FlagError::Io {
                path: file.to_path_buf(),
                source,
            })?;
        Ok(FileSource { shared })
    }

    /// The state currently served.
    pub fn current(&self) -> Arc<FileState> {
        self.shared.current()
    }
}

impl FlagSource for FileSource {
    fn evaluate(&self, spec: &PathSpec, ctx: &FlagContext, default: Stage) -> Decision {
        let st = self.shared.current();
        let Some(e) = st.paths.get(&*spec.path) else {
            return Decision::sampled(
                spec.path.clone(),
                default,
                "default (no entry in the flag file)".into(),
                st.default_check_ratio,
            );
        };
        let ratio = e.check_ratio.unwrap_or(st.default_check_ratio);
        let chosen = ctx
            .tenant
            .as_deref()
            .and_then(|t| e.tenants.get(t))
            .or(e.stage.as_ref());
        match chosen {
            Some((s, origin)) => Decision::sampled(spec.path.clone(), *s, origin.clone(), ratio),
            None => Decision::sampled(
                spec.path.clone(),
                default,
                "default (no stage for this path in the flag file)".into(),
                ratio,
            ),
        }
    }

    fn list(&self, paths: &[PathSpec], ctx: &FlagContext, default: Stage) -> Vec<PathState> {
        let st = self.shared.current();
        paths
            .iter()
            .map(|spec| {
                let d = self.evaluate(spec, ctx, default);
                let entry = st.paths.get(&*spec.path);
                PathState {
                    path: spec.path.to_string(),
                    flag: spec.flag.clone(),
                    stage: d.stage,
                    origin: d.origin_of_stage,
                    tenants: entry
                        .map(|e| {
                            e.tenants
                                .iter()
                                .map(|(t, (s, _))| (t.clone(), *s))
                                .collect()
                        })
                        .unwrap_or_default(),
                    check_ratio: Some(
                        entry
                            .and_then(|e| e.check_ratio)
                            .unwrap_or(st.default_check_ratio),
                    ),
                }
            })
            .collect()
    }
}

/// What the watcher last saw, so an unchanged file is not re-parsed and an error is logged once.
struct Seen {
    text: Option<String>,
    error: Option<std::io::ErrorKind>,
    meta: Option<(SystemTime, u64, u64)>,
}

fn meta(file: &Path) -> Option<(SystemTime, u64, u64)> {
    let m = std::fs::metadata(file).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

type Events = (
    notify::RecommendedWatcher,
    mpsc::Receiver<notify::Result<notify::Event>>,
);

/// File-system events for the file's directory, or None (then polling alone notices edits).
fn watch(file: &Path) -> Option<Events> {
    use notify::Watcher as _;
    // Watch the directory, not the file: an atomic rename replaces the file's inode, and a
    // watch on the old inode would go silent.
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tx, rx) = mpsc::channel();
    let mut w = match notify::recommended_watcher(move |ev| {
        let _ = tx.send(ev);
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "no file-system watcher; polling the flag file only");
            return None;
        }
    };
    match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
        Ok(()) => Some((w, rx)),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the flag file's directory; polling only");
            None
        }
    }
}

struct Watcher {
    shared: Weak<Shared>,
    file: PathBuf,
    json: bool,
    declared: HashSet<String>,
    rules: RulesConfig,
    default: Stage,
    reload: Duration,
    seen: Seen,
}

impl Watcher {
    fn run(mut self, events: Option<Events>) {
        let (_watcher, mut events) = match events {
            Some((w, rx)) => (Some(w), Some(rx)),
            None => (None, None),
        };
        let name = self.file.file_name().map(|n| n.to_os_string());
        let settle = (self.reload / 4).min(Duration::from_millis(50));
        let mut last_poll = Instant::now();
        loop {
            let mut changed = false;
            match &events {
                // Wake for the next poll on time even when unrelated files keep the dir busy.
                Some(rx) => {
                    match rx.recv_timeout(self.reload.saturating_sub(last_poll.elapsed())) {
                        Ok(Ok(ev)) => {
                            changed = ev
                                .paths
                                .iter()
                                .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
                        }
                        // A watcher error: fall back to comparing metadata below.
                        Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => events = None,
                    }
                }
                None => std::thread::sleep(self.reload.saturating_sub(last_poll.elapsed())),
            }
            if self.shared.strong_count() == 0 {
                return;
            }
            if changed {
                // Let a burst of writes (truncate, write, rename) finish before reading.
                std::thread::sleep(settle);
                if let Some(rx) = &events {
                    while rx.try_recv().is_ok() {}
                }
                self.reload_now();
                last_poll = Instant::now();
            } else if last_poll.elapsed() >= self.reload {
                last_poll = Instant::now();
                if meta(&self.file) != self.seen.meta {
                    self.reload_now();
                }
            }
        }
    }

    fn reload_now(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        self.seen.meta = meta(&self.file);
        let file = self.file.display().to_string();
        let text = match std::fs::read_to_string(&self.file) {
            Ok(t) => t,
            Err(e) => {
                if self.seen.error != Some(e.kind()) {
                    self.seen.error = Some(e.kind());
                    self.seen.text = None;
                    reject(&file, &format!("cannot read: {e}"));
                }
                return;
            }
        };
        self.seen.error = None;
        if self.seen.text.as_deref() == Some(text.as_str()) {
            return;
        }
        let result = if text.trim().is_empty() {
            // An editor that truncates before writing shows an empty file for a moment; an
            // empty file would silently send every path to the default stage.
            Err(vec![ConfigIssue::new(
                "file",
                "is empty (a partial write?); an empty flag file is not applied on reload",
            )])
        } else {
            parse(&text, self.json, Some(&self.declared)).and_then(|mut st| {
                for path in st.keep_removed_stages(&shared.current()) {
                    metrics::counter!("cutover_flags_removed_stages_total", "path" => path.clone())
                        .increment(1);
                    tracing::warn!(file, path, "the path's stage was removed from the flag file; it keeps its last known stage (set it explicitly to change it)");
                }
                let issues = self.rules.check(&st, self.default);
                if issues.is_empty() {
                    Ok(st)
                } else {
                    Err(issues)
                }
            })
        };
        self.seen.text = Some(text);
        match result {
            Ok(state) => {
                let n = state.paths.len();
                *shared.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(state);
                metrics::counter!("cutover_flags_reloads_total").increment(1);
                metrics::gauge!("cutover_flags_file_valid").set(1.0);
                tracing::info!(file, paths = n, "flag file reloaded");
            }
            Err(issues) => {
                let list = issues
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                reject(&file, &list);
            }
        }
    }
}

fn reject(file: &str, problems: &str) {
    metrics::counter!("cutover_flags_reload_errors_total").increment(1);
    metrics::gauge!("cutover_flags_file_valid").set(0.0);
    tracing::error!(
        file,
        problems,
        "flag file rejected; still serving the last good flags"
    );
}

/// Set `path`'s stage (or `tenant`'s override of it) in the flag file, creating the file if
/// needed. The path is not checked against `[flags.paths]` here: callers do that (the CLI
/// does). The whole result is validated before it replaces the file.
pub fn set_stage(
    file: &Path,
    path: &str,
    stage: Stage,
    tenant: Option<&str>,
) -> Result<(), FlagError> {
    set_stage_with(
        file,
        path,
        stage,
        tenant,
        &RulesConfig::default(),
        Stage::Off,
    )
}

/// [`set_stage`], refusing a result that breaks `[flags.rules]` (`default`: the stage of a
/// path without one), with the rule's key and what to move first.
pub fn set_stage_with(
    file: &Path,
    path: &str,
    stage: Stage,
    tenant: Option<&str>,
    rules: &RulesConfig,
    default: Stage,
) -> Result<(), FlagError> {
    let io = |source| FlagError::Io {
        path: file.to_path_buf(),
        source,
    };
    let bad = |key: String, message: &str| FlagError::File {
        file: file.to_path_buf(),
        issues: vec![ConfigIssue::new(key, message)],
    };
    if path.is_empty() {
        return Err(FlagError::UnknownPath(String::new()));
    }
    if tenant == Some("") {
        return Err(bad("tenant".into(), "tenant must not be empty"));
    }
    let _lock = lock(file)?;
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let json = is_json(file);
    let mut root = if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        to_value(&text, json).map_err(|i| FlagError::File {
            file: file.to_path_buf(),
            issues: vec![i],
        })?
    };
    let pkey = format!("paths.{}", key_segment(path));
    let Value::Object(obj) = &mut root else {
        return Err(bad("file".into(), "must be a table of keys"));
    };
    let Value::Object(paths) = obj
        .entry("paths")
        .or_insert_with(|| Value::Object(Default::default()))
    else {
        return Err(bad("paths".into(), "must be a table of paths"));
    };
    let Value::Object(entry) = paths
        .entry(path)
        .or_insert_with(|| Value::Object(Default::default()))
    else {
        return Err(bad(pkey, "must be a table"));
    };
    match tenant {
        None => {
            entry.insert("stage".into(), Value::String(stage.as_str().into()));
        }
        Some(t) => {
            let Value::Object(tenants) = entry
                .entry("tenants")
                .or_insert_with(|| Value::Object(Default::default()))
            else {
                return Err(bad(format!("{pkey}.tenants"), "must be a table"));
            };
            tenants.insert(t.to_string(), Value::String(stage.as_str().into()));
        }
    }
    let body = if json {
        serde_json::to_string_pretty(&root).map_err(|e| bad("file".into(), &e.to_string()))? + "\n"
    } else {
        let table: toml::Table =
            serde_json::from_value(root).map_err(|e| bad("file".into(), &e.to_string()))?;
        toml::to_string(&table).map_err(|e| bad("file".into(), &e.to_string()))?
    };
    let out = if json {
        body
    } else {
        // Keep the leading comment block (usually what the file is and who owns it).
        let header: String = text
            .lines()
            .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            .filter(|l| l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        format!("{header}{body}")
    };
    let state = parse(&out, json, None).map_err(|issues| FlagError::File {
        file: file.to_path_buf(),
        issues,
    })?;
    let issues = rules.check(&state, default);
    if !issues.is_empty() {
        return Err(FlagError::File {
            file: file.to_path_buf(),
            issues,
        });
    }
    write_atomic(file, out.as_bytes())
}

/// An exclusive lock on `.<name>.lock` next to the file, so concurrent `set_stage` calls
/// (several operators, scripts) do not lose each other's edits.
fn lock(file: &Path) -> Result<std::fs::File, FlagError> {
    let lock_path = sibling(file, ".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| FlagError::Io {
            path: lock_path.clone(),
            source,
        })?;
    f.lock().map_err(|source| FlagError::Io {
        path: lock_path,
        source,
    })?;
    Ok(f)
}

/// `.<name><suffix>` in the file's directory.
fn sibling(file: &Path, suffix: &str) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "flags".into());
    file.with_file_name(format!(".{name}{suffix}"))
}

/// Write to a temporary file in the same directory, fsync, rename over `file`, fsync the
/// directory: a reader sees the old or the new content, and a crash leaves one of them.
fn write_atomic(file: &Path, bytes: &[u8]) -> Result<(), FlagError> {
    let tmp = sibling(
        file,
        &format!(".{}.{}.tmp", std::process::id(), rand::random::<u32>()),
    );
    let io = |source| FlagError::Io {
        path: file.to_path_buf(),
        source,
    };
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(m) = std::fs::metadata(file) {
            f.set_permissions(m.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, file)?;
        #[cfg(unix)]
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
