//! Migration flags (`[flags]`, `cutover flags list | set`): which LaunchDarkly migration stage
//! (`off → dualwrite → shadow → live → rampdown → complete`) each read/write *path* of the
//! service is in, per request and per tenant.
//!
//! Invariants:
//! - Every path the service uses is declared in `[flags.paths]`; deciding an undeclared path is
//!   an error ([`FlagError::UnknownPath`]), never a silent default. Unknown stage strings are
//!   errors wherever they appear (config, flag file, CLI).
//! - The stage comes from one [`FlagSource`]: the local flag file ([`file`](mod@file), hot-reloaded; an
//!   invalid edit is rejected and the last good state keeps serving) or LaunchDarkly ([`ld`]).
//! - [`Flags::decide`] is on the hot path of every request: a hash lookup, one `Arc` clone
//!   under a briefly held read lock (file) or one SDK evaluation (LaunchDarkly); no lock is
//!   held across an await, no I/O.
//! - Every [`Decision`] is reported once by [`Decision::finish`]: to LaunchDarkly as a
//!   migration-op event (LaunchDarkly source) and always to Prometheus (`cutover_flags_*`).

mod config;
pub mod file;
pub mod ld;
pub mod rules;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;
use crate::error::{Classify, Disposition};

pub(crate) use self::config::key_segment;
pub use self::config::{default_flag_key, FlagsConfig, LaunchDarklyConfig, PathConfig, SourceKind};
pub use file::{set_stage, set_stage_with};
pub use rules::RulesConfig;

/// A LaunchDarkly migration stage, in rollout order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Old (MySQL) only.
    Off,
    /// Writes go to old then new; reads from old.
    DualWrite,
    /// Reads from both (old returned, compared); writes old then new.
    Shadow,
    /// Reads from both (new returned, compared); writes new then old.
    Live,
    /// Reads from new; writes new then old.
    RampDown,
    /// New (DynamoDB) only.
    Complete,
}

impl Stage {
    /// Every stage, in rollout order.
    pub const ALL: [Stage; 6] = [
        Stage::Off,
        Stage::DualWrite,
        Stage::Shadow,
        Stage::Live,
        Stage::RampDown,
        Stage::Complete,
    ];

    /// The LaunchDarkly spelling: "off", "dualwrite", "shadow", "live", "rampdown", "complete".
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Off => "off",
            Stage::DualWrite => "dualwrite",
            Stage::Shadow => "shadow",
            Stage::Live => "live",
            Stage::RampDown => "rampdown",
            Stage::Complete => "complete",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = FlagError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| FlagError::UnknownStage(s.to_string()))
    }
}

impl Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Stage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl From<Stage> for launchdarkly_server_sdk::Stage {
    fn from(s: Stage) -> Self {
        use launchdarkly_server_sdk::Stage as L;
        match s {
            Stage::Off => L::Off,
            Stage::DualWrite => L::DualWrite,
            Stage::Shadow => L::Shadow,
            Stage::Live => L::Live,
            Stage::RampDown => L::Rampdown,
            Stage::Complete => L::Complete,
        }
    }
}

impl TryFrom<launchdarkly_server_sdk::Stage> for Stage {
    type Error = FlagError;
    /// Fails only on a stage a future SDK adds (the SDK's enum is `#[non_exhaustive]`).
    fn try_from(s: launchdarkly_server_sdk::Stage) -> Result<Self, FlagError> {
        s.to_string().parse()
    }
}

/// Which side of the migration an operation touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// MySQL.
    Old,
    /// DynamoDB.
    New,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Origin::Old => "old",
            Origin::New => "new",
        }
    }
    const fn index(self) -> usize {
        match self {
            Origin::Old => 0,
            Origin::New => 1,
        }
    }
}

impl From<Origin> for launchdarkly_server_sdk::Origin {
    fn from(o: Origin) -> Self {
        match o {
            Origin::Old => launchdarkly_server_sdk::Origin::Old,
            Origin::New => launchdarkly_server_sdk::Origin::New,
        }
    }
}

/// The kind of operation a decision was used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Read,
    Write,
}

impl OpKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
        }
    }
}

impl From<OpKind> for launchdarkly_server_sdk::Operation {
    fn from(o: OpKind) -> Self {
        match o {
            OpKind::Read => launchdarkly_server_sdk::Operation::Read,
            OpKind::Write => launchdarkly_server_sdk::Operation::Write,
        }
    }
}

/// Who is asking: `key` identifies the request's user for LaunchDarkly (may be empty), `tenant`
/// selects per-tenant overrides (file) or targeting on `context_kind` (LaunchDarkly).
#[derive(Clone, Debug, Default)]
pub struct FlagContext {
    pub key: String,
    pub tenant: Option<String>,
}

impl FlagContext {
    pub fn tenant(tenant: impl Into<String>) -> Self {
        FlagContext {
            key: String::new(),
            tenant: Some(tenant.into()),
        }
    }
}

/// Everything that can go wrong deciding, loading or editing flags.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("unknown path `{0}`: declare it under [flags.paths] in the configuration")]
    UnknownPath(String),
    #[error(
        "unknown stage `{0}`: expected one of off, dualwrite, shadow, live, rampdown, complete"
    )]
    UnknownStage(String),
    /// The flag file is invalid; every problem with its key (`paths."message.read".stage`).
    #[error("{}: {}", file.display(), issues.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("; "))]
    File {
        file: PathBuf,
        issues: Vec<ConfigIssue>,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("launchdarkly: {0}")]
    LaunchDarkly(String),
    #[error("[flags]: {0}")]
    Config(String),
    #[error("flags come from LaunchDarkly (flags.source = \"launchdarkly\"): change the stage of flag `{0}` in LaunchDarkly (the migration flag's targeting), not with `cutover flags set`")]
    NotFileSource(String),
}

impl Classify for FlagError {
    fn disposition(&self) -> Disposition {
        match self {
            // The service may answer later.
            FlagError::LaunchDarkly(_) => Disposition::Retry,
            // A path, stage or file that is wrong stays wrong until someone edits it.
            _ => Disposition::Fatal,
        }
    }
}

/// One declared path and its LaunchDarkly flag key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSpec {
    /// Shared, so metric labels and decisions clone a pointer rather than the string.
    pub path: Arc<str>,
    pub flag: String,
}

impl PathSpec {
    pub fn new(path: &str) -> Self {
        PathSpec {
            path: Arc::from(path),
            flag: default_flag_key(path),
        }
    }
    pub fn with_flag(path: &str, flag: &str) -> Self {
        PathSpec {
            path: Arc::from(path),
            flag: flag.to_string(),
        }
    }
}

/// How a decision's measurements are sampled and reported.
enum Tracking {
    /// Sample consistency checks at this ratio (0..=1); report to Prometheus only.
    Ratio(f64),
    /// LaunchDarkly's tracker samples by the flag's checkRatio and carries the measurements
    /// to `track_migration_op`.
    LaunchDarkly {
        client: Arc<launchdarkly_server_sdk::Client>,
        tracker: Arc<Mutex<launchdarkly_server_sdk::MigrationOpTracker>>,
    },
}

/// The stage of one path for one request, and the measurements of the operation run under it.
/// Call [`Decision::finish`] once the operation is done.
pub struct Decision {
    pub stage: Stage,
    /// Where the stage came from, for logs and `flags list`: `file paths."message.read"`,
    /// `file paths."message.read".tenants.acme`, `launchdarkly flag message-read`,
    /// `default (no entry in the flag file)`, `default (launchdarkly unreachable)`, ...
    pub origin_of_stage: String,
    path: Arc<str>,
    op: Option<OpKind>,
    invoked: [bool; 2],
    errors: [bool; 2],
    latency: [Option<Duration>; 2],
    consistent: Option<bool>,
    tracking: Tracking,
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("path", &self.path)
            .field("stage", &self.stage)
            .field("origin_of_stage", &self.origin_of_stage)
            .field("op", &self.op)
            .field("invoked", &self.invoked)
            .field("errors", &self.errors)
            .field("latency", &self.latency)
            .field("consistent", &self.consistent)
            .finish()
    }
}

impl Decision {
    /// A decision whose consistency checks run for a `check_ratio` fraction (0..=1) of calls,
    /// reported to Prometheus. For [`FlagSource`] implementations.
    pub fn sampled(path: Arc<str>, stage: Stage, origin: String, check_ratio: f64) -> Decision {
        Decision::with(path, stage, origin, Tracking::Ratio(check_ratio))
    }

    fn with(path: Arc<str>, stage: Stage, origin: String, tracking: Tracking) -> Decision {
        Decision {
            stage,
            origin_of_stage: origin,
            path,
            op: None,
            invoked: [false; 2],
            errors: [false; 2],
            latency: [None; 2],
            consistent: None,
            tracking,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Run `f` on LaunchDarkly's tracker, if this decision has one.
    fn track(&self, f: impl FnOnce(&mut launchdarkly_server_sdk::MigrationOpTracker)) {
        if let Tracking::LaunchDarkly { tracker, .. } = &self.tracking {
            // A poisoned tracker only loses measurements, never the decision.
            let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut t);
        }
    }

    /// The operation this decision was used for (required before `finish`).
    pub fn operation(&mut self, op: OpKind) {
        self.op = Some(op);
        self.track(|t| t.operation(op.into()));
    }

    /// `o` was called.
    pub fn invoked(&mut self, o: Origin) {
        self.invoked[o.index()] = true;
        self.track(|t| t.invoked(o.into()));
    }

    /// How long the call to `o` took (implies `invoked(o)`).
    pub fn latency(&mut self, o: Origin, d: Duration) {
        self.invoked(o);
        self.latency[o.index()] = Some(d);
        self.track(|t| t.latency(o.into(), d));
    }

    /// The call to `o` failed (implies `invoked(o)`).
    pub fn error(&mut self, o: Origin) {
        self.invoked(o);
        self.errors[o.index()] = true;
        self.track(|t| t.error(o.into()));
    }

    /// Sampled consistency check, after both origins were read successfully: runs `check` only
    /// if this evaluation is sampled (file: `check_ratio`; LaunchDarkly: the flag's checkRatio),
    /// records the result and returns `Some(result)` if it ran.
    pub fn consistent(&mut self, check: impl FnOnce() -> bool) -> Option<bool> {
        let result = match &self.tracking {
            Tracking::Ratio(r) => {
                let sampled = *r >= 1.0 || (*r > 0.0 && rand::random::<f64>() < *r);
                sampled.then(check)
            }
            Tracking::LaunchDarkly { tracker, .. } => {
                // The SDK takes `Fn`; the check runs at most once, so hand it over through a cell.
                let check = std::cell::Cell::new(Some(check));
                let out = std::cell::Cell::new(None);
                let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
                t.consistent(|| {
                    let r = check.take().is_some_and(|c| c());
                    out.set(Some(r));
                    r
                });
                out.get()
            }
        };
        if result.is_some() {
            self.consistent = result;
        }
        result
    }

    /// Why the measurements cannot be reported, if they cannot (the same rules LaunchDarkly's
    /// tracker applies).
    pub fn problem(&self) -> Option<&'static str> {
        if self.op.is_none() {
            return Some("operation not recorded");
        }
        if !self.invoked.iter().any(|b| *b) {
            return Some("no origin invoked");
        }
        if self.consistent.is_some() && !(self.invoked[0] && self.invoked[1]) {
            return Some("consistency recorded without both origins invoked");
        }
        None
    }

    /// Report the operation: Prometheus always (`cutover_flags_ops_total{path,stage,op}`,
    /// `cutover_flags_errors_total{path,origin}`, `cutover_flags_latency_seconds{path,origin}`,
    /// `cutover_flags_consistency_total{path,result}`), and LaunchDarkly's
    /// `track_migration_op` for the LaunchDarkly source. Incomplete measurements are counted in
    /// `cutover_flags_track_errors_total{path}` and not sent.
    pub fn finish(self) {
        if let Some(problem) = self.problem() {
            metrics::counter!("cutover_flags_track_errors_total", "path" => self.path.clone())
                .increment(1);
            tracing::debug!(path = %self.path, problem, "flag decision not reported");
            return;
        }
        let op = self.op.map_or("unknown", OpKind::as_str);
        metrics::counter!("cutover_flags_ops_total", "path" => self.path.clone(), "stage" => self.stage.as_str(), "op" => op)
            .increment(1);
        for o in [Origin::Old, Origin::New] {
            let i = o.index();
            if self.errors[i] {
                metrics::counter!("cutover_flags_errors_total", "path" => self.path.clone(), "origin" => o.as_str())
                    .increment(1);
            }
            if let Some(d) = self.latency[i] {
                metrics::histogram!("cutover_flags_latency_seconds", "path" => self.path.clone(), "origin" => o.as_str())
                    .record(d.as_secs_f64());
            }
        }
        if let Some(c) = self.consistent {
            let result = if c { "consistent" } else { "inconsistent" };
            metrics::counter!("cutover_flags_consistency_total", "path" => self.path.clone(), "result" => result)
                .increment(1);
        }
        if let Tracking::LaunchDarkly { client, tracker } = self.tracking {
            client.track_migration_op(tracker);
        }
    }
}

/// One path as `flags list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathState {
    pub path: String,
    /// LaunchDarkly flag key (also shown for the file source, for the day it moves).
    pub flag: String,
    pub stage: Stage,
    /// Where `stage` came from, as in [`Decision::origin_of_stage`].
    pub origin: String,
    /// Per-tenant overrides in the flag file (empty for LaunchDarkly: targeting lives there).
    pub tenants: BTreeMap<String, Stage>,
    /// Fraction of shadow/live reads that are compared (file source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_ratio: Option<f64>,
}

/// Where stages come from. Implementations must make `evaluate` cheap and non-blocking.
pub trait FlagSource: Send + Sync + 'static {
    /// The stage of one declared path for one request.
    fn evaluate(&self, path: &PathSpec, ctx: &FlagContext, default: Stage) -> Decision;
    /// Every declared path's state for `ctx`, for `flags list`.
    fn list(&self, paths: &[PathSpec], ctx: &FlagContext, default: Stage) -> Vec<PathState>;
    /// Stop background work (watchers, SDK connections, final event flush). May block.
    fn close(&self) {}
}

struct Inner {
    source: Box<dyn FlagSource>,
    specs: Vec<PathSpec>,
    index: HashMap<String, usize>,
    default: Stage,
    /// Read path index → its write path's index (`[flags.rules.reads]`).
    follows: HashMap<usize, usize>,
    /// Rule violations held back per read path (logged at the first and every 1000th).
    held: Vec<std::sync::atomic::AtomicU64>,
}

/// The migration stage of every declared path. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Flags {
    inner: Arc<Inner>,
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flags")
            .field("paths", &self.paths())
            .field("default", &self.inner.default)
            .finish()
    }
}

impl Flags {
    /// Flags over any source. `paths` must be non-empty and unique.
    pub fn new(
        source: impl FlagSource,
        paths: Vec<PathSpec>,
        default: Stage,
    ) -> Result<Flags, FlagError> {
        if paths.is_empty() {
            return Err(FlagError::Config(
                "no paths declared: add a [flags.paths.\"<path>\"] block per read/write path"
                    .into(),
            ));
        }
        let mut index = HashMap::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            if index.insert(p.path.to_string(), i).is_some() {
                return Err(FlagError::Config(format!(
                    "path `{}` declared twice",
                    p.path
                )));
            }
        }
        Ok(Flags {
            inner: Arc::new(Inner {
                source: Box::new(source),
                held: paths.iter().map(|_| Default::default()).collect(),
                specs: paths,
                index,
                default,
                follows: HashMap::new(),
            }),
        })
    }

    /// The same flags with `[flags.rules]` held at decision time (for sources that can serve
    /// an inconsistent pair, such as LaunchDarkly). Every rule's paths must be declared.
    pub fn with_rules(self, rules: &RulesConfig) -> Result<Flags, FlagError> {
        let mut follows = HashMap::new();
        for (read, write) in &rules.reads {
            let (Some(r), Some(w)) = (self.inner.index.get(read), self.inner.index.get(write))
            else {
                return Err(FlagError::Config(format!(
                    "flags.rules.reads.{}: both paths must be declared under [flags.paths]",
                    key_segment(read)
                )));
            };
            follows.insert(*r, *w);
        }
        let inner = match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.follows = follows;
                inner
            }
            Err(_) => {
                return Err(FlagError::Config(
                    "rules must be set before the flags are shared".into(),
                ))
            }
        };
        Ok(Flags {
            inner: Arc::new(inner),
        })
    }

    /// From `[flags]`: loads and watches the flag file, or starts the LaunchDarkly client and
    /// waits for its first data (`init_timeout`; failing to initialize is an error unless
    /// `offline`). `config_dir` resolves a relative `flags.file`.
    pub async fn from_config(cfg: &FlagsConfig, config_dir: &Path) -> Result<Flags, FlagError> {
        let issues = cfg.validate();
        if !issues.is_empty() {
            return Err(FlagError::Config(
                issues
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        let specs = cfg.path_specs();
        match cfg.source {
            SourceKind::File => {
                let src = file::FileSource::open_with(
                    &cfg.file_path(config_dir),
                    specs.iter().map(|s| s.path.to_string()).collect(),
                    cfg.rules.clone(),
                    cfg.default_stage,
                    cfg.reload,
                    true,
                )?;
                Flags::new(src, specs, cfg.default_stage)?.with_rules(&cfg.rules)
            }
            SourceKind::Launchdarkly => {
                let src = ld::LdSource::from_config(&cfg.launchdarkly, cfg.default_stage).await?;
                Flags::new(src, specs, cfg.default_stage)?.with_rules(&cfg.rules)
            }
        }
    }

    /// Flags from a local file (TOML, or JSON by extension), reloaded on change and polled
    /// every `reload`; default stage `off`. Fails if the file is missing or invalid.
    pub fn file(
        path: &Path,
        paths: impl IntoIterator<Item = String>,
        reload: Duration,
    ) -> Result<Flags, FlagError> {
        let specs: Vec<PathSpec> = paths.into_iter().map(|p| PathSpec::new(&p)).collect();
        let src = file::FileSource::open(
            path,
            specs.iter().map(|s| s.path.to_string()).collect(),
            reload,
            true,
        )?;
        Flags::new(src, specs, Stage::Off)
    }

    /// Flags from LaunchDarkly with an already built SDK configuration.
    pub async fn launchdarkly(
        config: launchdarkly_server_sdk::Config,
        paths: Vec<PathSpec>,
        opts: ld::LdOptions,
    ) -> Result<Flags, FlagError> {
        let default = opts.default_stage;
        let src = ld::LdSource::start(config, opts).await?;
        Flags::new(src, paths, default)
    }

    /// For tests: a LaunchDarkly client on `td` (events discarded), context kind `tenant`,
    /// default stage `off`, flag keys derived from the paths.
    pub async fn launchdarkly_test_data(
        td: &launchdarkly_server_sdk::TestData,
        paths: impl IntoIterator<Item = String>,
    ) -> Result<Flags, FlagError> {
        let config = launchdarkly_server_sdk::ConfigBuilder::new("test-sdk-key")
            .data_source(td)
            .event_processor(&launchdarkly_server_sdk::NullEventProcessorBuilder::new())
            .build()
            .map_err(|e| FlagError::LaunchDarkly(e.to_string()))?;
        let specs = paths.into_iter().map(|p| PathSpec::new(&p)).collect();
        Flags::launchdarkly(config, specs, ld::LdOptions::default()).await
    }

    /// The stage of `path` for this request. Errors only for an undeclared path.
    pub fn decide(&self, path: &str, ctx: &FlagContext) -> Result<Decision, FlagError> {
        let i = *self
            .inner
            .index
            .get(path)
            .ok_or_else(|| FlagError::UnknownPath(path.to_string()))?;
        let mut d = self
            .inner
            .source
            .evaluate(&self.inner.specs[i], ctx, self.inner.default);
        if let Some(&w) = self.inner.follows.get(&i) {
            let write = self
                .inner
                .source
                .evaluate(&self.inner.specs[w], ctx, self.inner.default);
            if d.stage > write.stage {
                let n = self.inner.held[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::counter!("cutover_flags_rule_violations_total", "path" => d.path.clone())
                    .increment(1);
                if n.is_multiple_of(1000) {
                    tracing::warn!(path = %d.path, stage = %d.stage, write_path = %write.path(), write_stage = %write.stage, origin = %d.origin_of_stage, "read path ahead of its write path (flags.rules.reads): held at the write path's stage");
                }
                d.origin_of_stage = format!(
                    "{} (held at {}'s stage by flags.rules.reads; it says {})",
                    write.origin_of_stage,
                    write.path(),
                    d.stage
                );
                d.stage = write.stage;
            }
        }
        Ok(d)
    }

    /// The declared paths, in declaration (config: sorted) order.
    pub fn paths(&self) -> Vec<String> {
        self.inner
            .specs
            .iter()
            .map(|s| s.path.to_string())
            .collect()
    }

    /// Every declared path with its stage for `ctx` and where it came from.
    pub fn list(&self, ctx: &FlagContext) -> Vec<PathState> {
        self.inner
            .source
            .list(&self.inner.specs, ctx, self.inner.default)
    }

    /// Stop watchers / the LaunchDarkly client, flushing pending events. Blocking: from async
    /// code, call it in `spawn_blocking`.
    pub fn close(&self) {
        self.inner.source.close();
    }
}

#[cfg(test)]
mod tests;
