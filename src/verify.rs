//! `cutover verify [--repair]` (`[verify]`): proof that DynamoDB holds what MySQL holds, before
//! a flag is flipped.
//!
//! # What is compared
//! For every `[[table]]` block, each MySQL row is mapped as a `load` change
//! ([`Mapping::map`]), i.e. exactly what the pipeline would write, and compared with the item
//! it names. Only the attributes the block's part owns are compared (its declared `columns`
//! and derived attributes, or, without `columns`, every attribute but the key), never the
//! bookkeeping: version attributes (`_v`, `_v_<table>`), the tombstone flag and TTL attributes.
//! A row's item is *missing* when it is absent, a tombstone (`_deleted = true`; in merge mode
//! only for the owner part, since a non-owner part written after the owner's delete stays under
//! the tombstone, as the pipeline leaves it), or, in merge mode, lacks this part's version
//! attribute (the part was never written). It is *different*
//! when an owned attribute differs, is absent, or is present where the row has none; the report
//! names those attributes, and prints values only with `--show-values`.
//!
//! An *extra* is an item that no MySQL row explains. Each target table is scanned (parallel
//! Scan segments); an item belongs to a block when its key attributes reverse-match the block's
//! key templates ([`crate::mapping::Template::unrender_exact`]: `MSG#{id}` recovers `id`), and, in
//! merge mode, when it carries the part (its version attribute and at least one owned
//! attribute; a deleted non-owner part keeps only its version). Primary-key columns that no key
//! template holds are read from the item's attribute of that column. The candidates are looked
//! up in MySQL by primary key in batches (`WHERE (pk) IN (...)`); the rows found are mapped
//! again, and a candidate is extra when no found row maps to its key. Items that no block's
//! templates match are counted as `unrecognised` on their target and never repaired.
//!
//! # Bounded memory
//! MySQL is read by keyset pagination on the primary key (binary protocol,
//! `WHERE (pk) > (?) ORDER BY pk LIMIT n`, never OFFSET), one page of `verify.page_size` rows
//! at a time, and their items fetched with BatchGetItem (≤ 100 keys, UnprocessedKeys retried
//! with backoff). The extras pass holds one Scan page per segment.
//!
//! # Sampling (`--sample 0.01` or `--sample 5000`)
//! Random keyset windows: when the first primary-key column is an integer, windows of up to
//! `page_size` rows start at uniformly random values between its MIN and MAX; otherwise each
//! keyset page is filtered with `RAND() < ratio`. The row count comes from
//! `information_schema.TABLES` (an estimate). A sample cannot see extras (items without a row):
//! that pass is skipped and the report says so (`extra: null`).
//!
//! # Repair (`--repair`) and why it never loses a newer change
//! Differences are repaired page by page as they are found, through the same guarded writer as
//! the pipeline ([`Writer`], conditional mode). For each batch, the MySQL binlog position `P`
//! (`SHOW MASTER STATUS`) is read *before* the rows are read again, and every repair write
//! carries version `P`:
//! - a change committed before `P` is already in the rows read, and its CDC write (version
//!   `< P`) is rejected by the guard if it arrives later: nothing older wins;
//! - a change committed after `P` has a version `> P`, so its CDC write always overwrites the
//!   repair, and a repair never overwrites it (the guard rejects the repair as stale).
//!
//! Missing and different items are rewritten from the row; extras that are still without a row
//! after `P` get the pipeline's delete (a tombstone, or the part's attributes removed in merge
//! mode). The repaired keys are then read again and counted as `repaired` or `unrepaired`
//! (e.g. a newer CDC write holds the item, which the next CDC change or run will settle).
//!
//! # Result file
//! The last report is written to `verify.state_file` (relative to the config file's directory)
//! for `cutover status`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context as _};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use crate::app::Config;
use crate::cdc::{Cell, ChangeEvent, Op, Row, SourcePosition, TableRef};
use crate::config::ConfigIssue;
use crate::mapping::{
    key_text, Change, ItemWrite, Mapped, Mapping, TableConfig, TargetSpec, Template,
    DEFAULT_TTL_ATTRIBUTE,
};
use crate::mysql::{self, TableSchema};
use crate::sink::WriteMode;
use crate::sink::{RetryPolicy, SdkApi, Writer};

type Item = HashMap<String, AttributeValue>;

/// `[verify]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyConfig {
    /// Rows read from MySQL per keyset page, and items checked per round. Bounds memory.
    pub page_size: usize,
    /// Parallel Scan segments per target table for the extras pass.
    pub scan_segments: u32,
    /// Where the last result is kept for `cutover status`. A relative path is relative to the
    /// config file's directory.
    pub state_file: PathBuf,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            page_size: 500,
            scan_segments: 4,
            state_file: PathBuf::from(".cutover/verify-last.json"),
        }
    }
}

impl VerifyConfig {
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if !(1..=10_000).contains(&self.page_size) {
            issues.push(ConfigIssue::new("verify.page_size", "must be 1..=10000"));
        }
        if !(1..=1_000).contains(&self.scan_segments) {
            issues.push(ConfigIssue::new("verify.scan_segments", "must be 1..=1000"));
        }
        if self.state_file.as_os_str().is_empty() {
            issues.push(ConfigIssue::new("verify.state_file", "must not be empty"));
        }
        issues
    }

    /// `state_file`, resolved against the directory of the config file.
    pub fn state_path(&self, config_file: &Path) -> PathBuf {
        if self.state_file.is_absolute() {
            return self.state_file.clone();
        }
        let dir = config_file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        dir.join(&self.state_file)
    }
}

/// `--sample`: a ratio (`0.05`, `5%`) or a number of rows (`5000`) per table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    Ratio(f64),
    Rows(u64),
}

impl std::str::FromStr for Sample {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("--sample {s:?}: expected a ratio (0.05 or 5%) or a row count (5000)");
        if let Some(pct) = s.strip_suffix('%') {
            let p: f64 = pct.trim().parse().map_err(|_| bad())?;
            return Sample::ratio(p / 100.0).ok_or_else(bad);
        }
        if s.contains('.') {
            let r: f64 = s.parse().map_err(|_| bad())?;
            return Sample::ratio(r).ok_or_else(bad);
        }
        match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Sample::Rows(n)),
            _ => Err(bad()),
        }
    }
}

impl Sample {
    fn ratio(r: f64) -> Option<Sample> {
        (r > 0.0 && r <= 1.0).then_some(Sample::Ratio(r))
    }
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sample::Ratio(r) => write!(f, "{}%", r * 100.0),
            Sample::Rows(n) => write!(f, "{n} rows"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Only these source tables (`schema.table`); every mapped table when empty.
    pub tables: Vec<String>,
    pub sample: Option<Sample>,
    /// How many keys to list per kind of difference.
    pub show: usize,
    /// Print attribute values of differences (redacted by default).
    pub show_values: bool,
    pub repair: bool,
    /// Show progress bars (stderr is a terminal).
    pub progress: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            tables: Vec::new(),
            sample: None,
            show: 10,
            show_values: false,
            repair: false,
            progress: false,
        }
    }
}

/// The result of one run (also what `verify.state_file` holds).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifyReport {
    #[serde(with = "crate::config::rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "crate::config::rfc3339")]
    pub finished_at: DateTime<Utc>,
    /// `--sample` as given; `None` for a full run.
    pub sample: Option<String>,
    /// Whether `--repair` ran.
    pub repair: bool,
    /// True when nothing differs (after repair, when repairing): every row matched, no extra,
    /// no unrecognised item, no unmappable row.
    pub clean: bool,
    pub tables: Vec<TableReport>,
    /// Items no block's key templates match, per target table (not repaired).
    pub unrecognised: BTreeMap<String, u64>,
}

/// Counts for one `[[table]]` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableReport {
    pub source: String,
    pub target: String,
    /// MySQL rows read.
    pub rows: u64,
    pub matching: u64,
    /// Rows whose item is absent, a tombstone, or lacks this part.
    pub missing: u64,
    /// Items with no row; `None` when not checked (sampling).
    pub extra: Option<u64>,
    pub different: u64,
    /// Rows the mapping rejects (they would be dead-lettered by the pipeline).
    pub errors: u64,
    /// Attribute name → number of items where it differs.
    pub differing_attributes: BTreeMap<String, u64>,
    /// The first `--show` findings of each kind.
    pub findings: Vec<Finding>,
    /// Why the extras pass is incomplete for this table, if it is.
    pub notes: Vec<String>,
    /// Present with `--repair`.
    pub repaired: Option<RepairCounts>,
}

impl TableReport {
    fn differences(&self) -> u64 {
        self.missing + self.different + self.extra.unwrap_or(0) + self.errors
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepairCounts {
    /// Checked again after the write and found matching (or gone, for extras).
    pub repaired: u64,
    /// Still differing after the write: a newer change holds the item, or the row changed.
    pub unrepaired: u64,
    /// Rows that changed or vanished between detection and repair (left to CDC).
    pub skipped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Missing,
    Extra,
    Different,
    Error,
}

/// One difference, by item key. Values only with `--show-values`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    /// Key attribute → value as text.
    pub key: BTreeMap<String, String>,
    /// Differing attribute names (for `different`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// Attribute → {expected, actual} in DynamoDB JSON, only with `--show-values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, serde_json::Value>>,
    /// Why a row could not be mapped (never contains row values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/// Run verify (and repair) over the selected tables.
pub async fn verify(cfg: &Config, opts: &VerifyOptions) -> anyhow::Result<VerifyReport> {
    let started_at = Utc::now();
    let mapping = Mapping::new(&cfg.tables, &cfg.sink)
        .map_err(|e| anyhow!(crate::config::ConfigErrors(e)))?;
    for t in &opts.tables {
        if !cfg.tables.iter().any(|b| &b.source == t) {
            bail!("--table {t}: not a mapped source table");
        }
    }
    let client = crate::sink::dynamo::client(&cfg.dynamodb).await;
    let pool = cfg.mysql.pool().context("MySQL connection pool")?;
    let mut sink = cfg.sink.clone();
    sink.write_mode = WriteMode::Conditional;
    let api = SdkApi { client };
    let writer = Writer::new(api.clone(), sink);
    let progress = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let ctx = Ctx {
        cfg,
        opts,
        mapping,
        api,
        pool,
        writer,
        progress,
    };

    let mut blocks = Vec::new();
    {
        let mut conn = ctx.conn().await?;
        for t in &cfg.tables {
            if !opts.tables.is_empty() && !opts.tables.contains(&t.source) {
                continue;
            }
            blocks.push(Block::new(&ctx, &mut conn, t).await?);
        }
    }
    let mut reports: Vec<TableReport> = blocks
        .iter()
        .map(|b| TableReport {
            source: b.cfg.source.clone(),
            target: b.cfg.target.clone(),
            repaired: opts.repair.then(RepairCounts::default),
            ..Default::default()
        })
        .collect();
    for (b, report) in blocks.iter().zip(reports.iter_mut()) {
        forward_pass(&ctx, b, report).await?;
    }
    let mut unrecognised = BTreeMap::new();
    if opts.sample.is_none() {
        let targets: std::collections::BTreeSet<&String> =
            blocks.iter().map(|b| &b.cfg.target).collect();
        for target in targets {
            let n = extras_pass(&ctx, target, &blocks, &mut reports).await?;
            if n > 0 {
                unrecognised.insert(target.clone(), n);
            }
        }
    }
    let clean = reports.iter().all(|r| match &r.repaired {
        Some(rc) => r.errors == 0 && rc.repaired >= r.differences() - r.errors,
        None => r.differences() == 0,
    }) && unrecognised.is_empty();
    Ok(VerifyReport {
        started_at,
        finished_at: Utc::now(),
        sample: opts.sample.map(|s| s.to_string()),
        repair: opts.repair,
        clean,
        tables: reports,
        unrecognised,
    })
}

/// Write the report to `path` (atomically: a temporary file renamed over it).
pub fn save(report: &VerifyReport, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// The last saved report, if any.
pub fn load(path: &Path) -> anyhow::Result<Option<VerifyReport>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// The human report: one line per table, then the first findings.
pub fn render_text(r: &VerifyReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let w = r
        .tables
        .iter()
        .map(|t| t.source.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "{:<w$}  {:<20}  {:>9}  {:>9}  {:>8}  {:>8}  {:>9}  {:>6}",
        "source", "target", "rows", "matching", "missing", "extra", "different", "errors"
    );
    for t in &r.tables {
        let extra = t.extra.map_or("-".to_string(), |n| n.to_string());
        let _ = writeln!(
            out,
            "{:<w$}  {:<20}  {:>9}  {:>9}  {:>8}  {:>8}  {:>9}  {:>6}",
            t.source, t.target, t.rows, t.matching, t.missing, extra, t.different, t.errors
        );
    }
    for t in &r.tables {
        if t.findings.is_empty() && t.notes.is_empty() && t.repaired.is_none() {
            continue;
        }
        let _ = writeln!(out, "\n{} → {}:", t.source, t.target);
        for f in &t.findings {
            let key: Vec<String> = f.key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let kind = match f.kind {
                FindingKind::Missing => "missing",
                FindingKind::Extra => "extra",
                FindingKind::Different => "different",
                FindingKind::Error => "error",
            };
            let _ = write!(out, "  {kind:<9} {}", key.join(" "));
            if !f.attributes.is_empty() {
                let _ = write!(out, "  attributes: {}", f.attributes.join(", "));
            }
            if let Some(m) = &f.message {
                let _ = write!(out, "  ({m})");
            }
            let _ = writeln!(out);
            if let Some(values) = &f.values {
                for (a, v) in values {
                    let _ = writeln!(out, "            {a}: {v}");
                }
            }
        }
        if !t.differing_attributes.is_empty() {
            let attrs: Vec<String> = t
                .differing_attributes
                .iter()
                .map(|(a, n)| format!("{a} ({n})"))
                .collect();
            let _ = writeln!(out, "  differing attributes: {}", attrs.join(", "));
        }
        for n in &t.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        if let Some(rc) = &t.repaired {
            let _ = writeln!(
                out,
                "  repair: {} repaired, {} unrepaired, {} skipped (changed during the run)",
                rc.repaired, rc.unrepaired, rc.skipped
            );
        }
    }
    for (target, n) in &r.unrecognised {
        let _ = writeln!(
            out,
            "\n{target}: {n} item(s) match no [[table]] key template (not repaired)"
        );
    }
    let diffs: u64 = r.tables.iter().map(TableReport::differences).sum();
    let fixed: u64 = r
        .tables
        .iter()
        .filter_map(|t| t.repaired.map(|rc| rc.repaired))
        .sum();
    let verdict = match (r.clean, r.repair) {
        (true, true) if diffs > 0 => format!("CLEAN after repair: {fixed} difference(s) repaired"),
        (true, _) => "CLEAN".to_string(),
        (false, repair) => format!(
            "DIFFERENCES: {diffs} in {} table(s){}",
            r.tables.iter().filter(|t| t.differences() > 0).count(),
            if repair {
                format!(", {fixed} repaired")
            } else {
                String::new()
            }
        ),
    };
    let _ = writeln!(
        out,
        "\n{verdict}{}",
        match &r.sample {
            Some(s) => format!(" (sample of {s} per table; extras not checked)"),
            None => String::new(),
        }
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Ctx<'a> {
    cfg: &'a Config,
    opts: &'a VerifyOptions,
    mapping: Mapping,
    api: SdkApi,
    pool: mysql_async::Pool,
    writer: Writer<SdkApi>,
    progress: MultiProgress,
}

impl Ctx<'_> {
    async fn conn(&self) -> anyhow::Result<mysql_async::Conn> {
        self.pool.get_conn().await.context("connect to MySQL")
    }

    /// The items of `keys` (deduplicated), by identity, through the one DynamoDB edge.
    async fn batch_get(
        &self,
        spec: &TargetSpec,
        keys: Vec<Item>,
    ) -> anyhow::Result<HashMap<String, Item>> {
        self.api
            .batch_get(spec, keys, RetryPolicy::default())
            .await
            .map_err(|e| anyhow!("BatchGetItem on {}: {e}", spec.name))
    }

    fn page_size(&self) -> usize {
        self.cfg.verify.page_size
    }

    /// A bar of `len` rows, or a counter when the total is unknown (Scan).
    fn bar(&self, len: Option<u64>, name: &str) -> ProgressBar {
        let (bar, template) = match len {
            Some(n) => (
                ProgressBar::new(n),
                "{prefix:>24} [{bar:30}] {pos}/{len} {msg}",
            ),
            None => (
                ProgressBar::no_length(),
                "{prefix:>24} {spinner} {pos} items",
            ),
        };
        let bar = self.progress.add(bar);
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        bar
    }

    /// Version of the repair writes: the binlog position before the rows are (re)read.
    async fn repair_version(&self, conn: &mut mysql_async::Conn) -> anyhow::Result<u128> {
        let pos: SourcePosition = mysql::current_position(conn)
            .await
            .context("read the MySQL binlog position (SHOW MASTER STATUS) for repair")?;
        let v = pos.version();
        if v == 0 {
            bail!("MySQL reports no binlog position: repair needs log_bin on");
        }
        Ok(v)
    }
}

/// One `[[table]]` block, ready to verify.
struct Block<'a> {
    cfg: &'a TableConfig,
    schema: TableSchema,
    /// Indexes of the primary-key columns in the SELECT list (schema order).
    pk_index: Vec<usize>,
    spec: TargetSpec,
    pk_tpl: Template,
    sk_tpl: Option<Template>,
    version_attribute: String,
    /// Declared attributes of the part (without its TTL attribute), if declared.
    owned: Option<HashSet<String>>,
    /// Bookkeeping attributes of the target: never compared.
    bookkeeping: HashSet<String>,
    /// For primary-key columns no key template holds: the attribute that carries them.
    pk_from_attribute: Vec<(String, Option<String>)>,
    /// Every primary-key column can be looked up by its key text (see [`lookup_safe`]).
    lookup_safe: bool,
}

impl<'a> Block<'a> {
    async fn new(
        ctx: &Ctx<'_>,
        conn: &mut mysql_async::Conn,
        t: &'a TableConfig,
    ) -> anyhow::Result<Block<'a>> {
        let (db, table) = t
            .source
            .split_once('.')
            .ok_or_else(|| anyhow!("{}: not schema.table", t.source))?;
        let schema = mysql::table_schema(conn, db, table)
            .await
            .with_context(|| format!("read the schema of {}", t.source))?;
        // Keyset pages and lookups need the real, unique key, in the order the mapping names it.
        if schema.primary_key != t.primary_key {
            bail!(
                "{}: the mapping's primary_key [{}] is not the table's primary key [{}]",
                t.source,
                t.primary_key.join(", "),
                schema.primary_key.join(", ")
            );
        }
        let mut pk_index = Vec::new();
        for pk in &t.primary_key {
            let i = schema
                .columns
                .iter()
                .position(|c| &c.name == pk)
                .ok_or_else(|| {
                    anyhow!(
                        "{}: primary-key column {pk} of the mapping is not a column of the table",
                        t.source
                    )
                })?;
            pk_index.push(i);
        }
        let spec = ctx
            .mapping
            .targets()
            .get(&t.target)
            .cloned()
            .ok_or_else(|| anyhow!("{}: unknown target", t.target))?;
        let pk_tpl = Template::parse(&t.partition_key.template).map_err(|e| anyhow!(e))?;
        let sk_tpl = match &t.sort_key {
            Some(k) => Some(Template::parse(&k.template).map_err(|e| anyhow!(e))?),
            None => None,
        };
        let sink = &ctx.cfg.sink;
        let version_attribute = if t.merge {
            format!("{}_{}", sink.version_attribute, table)
        } else {
            sink.version_attribute.clone()
        };
        let mut bookkeeping: HashSet<String> = [
            sink.version_attribute.clone(),
            sink.deleted_attribute.clone(),
            spec.ttl_attribute.clone(),
            DEFAULT_TTL_ATTRIBUTE.to_string(),
        ]
        .into_iter()
        .collect();
        for other in ctx.cfg.tables.iter().filter(|o| o.target == t.target) {
            if let Some(ttl) = &other.ttl {
                bookkeeping.insert(ttl.attribute.clone());
            }
            if other.merge {
                if let Some((_, tb)) = other.source.split_once('.') {
                    bookkeeping.insert(format!("{}_{}", sink.version_attribute, tb));
                }
            }
        }
        let owned = t.columns.as_ref().map(|cols| {
            cols.iter()
                .filter(|c| !t.exclude.contains(c))
                .map(|c| t.rename.get(c).cloned().unwrap_or_else(|| c.clone()))
                .chain(t.attributes.keys().cloned())
                .filter(|a| !bookkeeping.contains(a))
                .collect()
        });
        let in_templates: HashSet<&str> = pk_tpl
            .columns()
            .chain(sk_tpl.iter().flat_map(|s| s.columns()))
            .collect();
        let pk_from_attribute = t
            .primary_key
            .iter()
            .filter(|c| !in_templates.contains(c.as_str()))
            .map(|c| {
                let kept = !t.exclude.contains(c)
                    && t.columns.as_ref().is_none_or(|cols| cols.contains(c));
                let attr = kept.then(|| t.rename.get(c).cloned().unwrap_or_else(|| c.clone()));
                (c.clone(), attr)
            })
            .collect();
        let lookup_safe = pk_index
            .iter()
            .all(|&i| lookup_safe(&schema.columns[i].kind));
        Ok(Block {
            cfg: t,
            lookup_safe,
            schema,
            pk_index,
            spec,
            pk_tpl,
            sk_tpl,
            version_attribute,
            owned,
            bookkeeping,
            pk_from_attribute,
        })
    }

    fn table_ref(&self) -> TableRef {
        let (schema, table) = self.cfg.source.split_once('.').unwrap_or(("", ""));
        TableRef {
            schema: schema.to_string(),
            table: table.to_string(),
        }
    }

    fn is_key(&self, name: &str) -> bool {
        self.spec.partition_key.0 == name
            || self.spec.sort_key.as_ref().is_some_and(|(k, _)| k == name)
    }

    /// Does this part own `name` (for the unexpected-attribute check)?
    fn owns(&self, name: &str) -> bool {
        if self.bookkeeping.contains(name) || self.is_key(name) {
            return false;
        }
        match &self.owned {
            Some(set) => set.contains(name),
            None => true,
        }
    }

    fn select_list(&self) -> String {
        mysql::select_list(&self.schema)
    }

    fn pk_list(&self) -> String {
        self.cfg
            .primary_key
            .iter()
            .map(|c| mysql::quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn from(&self) -> String {
        format!(
            "{}.{}",
            mysql::quote_ident(&self.schema.schema),
            mysql::quote_ident(&self.schema.table)
        )
    }

    fn pk_values(&self, row: &mysql_async::Row) -> Vec<mysql_async::Value> {
        self.pk_index
            .iter()
            .map(|&i| row.as_ref(i).cloned().unwrap_or(mysql_async::Value::NULL))
            .collect()
    }

    /// A row's primary key, for findings of rows that have no item key (mapping errors).
    fn pk_display(&self, pk: &[mysql_async::Value]) -> BTreeMap<String, String> {
        self.cfg
            .primary_key
            .iter()
            .zip(pk)
            .map(|(c, v)| (c.clone(), v.as_sql(true).trim_matches('\'').to_string()))
            .collect()
    }

    /// `(pk) > (?, ..)` / `(pk) IN ((?,..),..)` building blocks.
    fn pk_tuple(&self) -> String {
        if self.cfg.primary_key.len() == 1 {
            self.pk_list()
        } else {
            format!("({})", self.pk_list())
        }
    }

    fn placeholders(&self) -> String {
        let p = vec!["?"; self.cfg.primary_key.len()].join(", ");
        if self.cfg.primary_key.len() == 1 {
            p
        } else {
            format!("({p})")
        }
    }

    /// Map a MySQL row as a `load` change: the upsert the pipeline would write.
    fn expected(&self, ctx: &Ctx<'_>, row: Row) -> Result<ItemWrite, String> {
        let event = ChangeEvent {
            table: self.table_ref(),
            op: Op::Load,
            before: None,
            after: Some(row),
            position: SourcePosition::default(),
            kafka: None,
        };
        match ctx.mapping.map(&event) {
            Ok(Mapped::Writes(mut w)) => w.pop().ok_or_else(|| "no write".to_string()),
            Ok(Mapped::Unmapped) => Err("table is not mapped".into()),
            Err(e) => Err(e.0),
        }
    }

    fn item_key(&self, item: &Item) -> Option<Item> {
        let mut key = Item::new();
        for (name, _) in std::iter::once(&self.spec.partition_key).chain(self.spec.sort_key.iter())
        {
            key.insert(name.clone(), item.get(name)?.clone());
        }
        Some(key)
    }
}

/// The item's identity, as [`ItemWrite::key_id`] names it.
fn key_id(spec: &TargetSpec, item: &Item) -> Option<String> {
    let texts = std::iter::once(&spec.partition_key)
        .chain(spec.sort_key.iter())
        .map(|(name, _)| key_text(item.get(name)?))
        .collect::<Option<Vec<&str>>>()?;
    Some(crate::mapping::key_id(&spec.name, texts))
}

fn key_display(key: &[crate::mapping::KeyAttr]) -> BTreeMap<String, String> {
    key.iter()
        .map(|k| {
            (
                k.name.to_string(),
                key_text(&k.value).unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn item_key_display(spec: &TargetSpec, item: &Item) -> BTreeMap<String, String> {
    std::iter::once(&spec.partition_key)
        .chain(spec.sort_key.iter())
        .filter_map(|(n, _)| Some((n.clone(), key_text(item.get(n)?)?.to_string())))
        .collect()
}

fn is_tombstone(item: &Item, deleted_attribute: &str) -> bool {
    matches!(
        item.get(deleted_attribute),
        Some(AttributeValue::Bool(true))
    )
}

/// Equality of attribute values, with sets compared as sets.
fn av_eq(a: &AttributeValue, b: &AttributeValue) -> bool {
    use AttributeValue as A;
    fn sorted<T: Clone + Ord>(v: &[T]) -> Vec<T> {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    }
    match (a, b) {
        (A::Ss(x), A::Ss(y)) | (A::Ns(x), A::Ns(y)) => sorted(x) == sorted(y),
        (A::Bs(x), A::Bs(y)) => {
            let f = |v: &[aws_sdk_dynamodb::primitives::Blob]| {
                sorted(&v.iter().map(|b| b.as_ref().to_vec()).collect::<Vec<_>>())
            };
            f(x) == f(y)
        }
        (A::L(x), A::L(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| av_eq(p, q)),
        (A::M(x), A::M(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| av_eq(v, w)))
        }
        _ => a == b,
    }
}

/// DynamoDB JSON of a value, for `--show-values`.
fn av_json(v: &AttributeValue) -> serde_json::Value {
    use base64::Engine as _;
    use serde_json::json;
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::B(b) => {
            json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) })
        }
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(s) => json!({ "NS": s }),
        AttributeValue::Bs(s) => json!({ "BS": s
            .iter()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
            .collect::<Vec<_>>() }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(av_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": m
            .iter()
            .map(|(k, v)| (k.clone(), av_json(v)))
            .collect::<serde_json::Map<_, _>>() }),
        _ => serde_json::Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Match,
    Missing,
    /// Differing attributes, and the ones present in the item that the row does not have.
    Different {
        attributes: Vec<String>,
        unexpected: Vec<String>,
    },
}

fn compare(b: &Block<'_>, expected: &ItemWrite, item: Option<&Item>, deleted: &str) -> Outcome {
    let Change::Upsert { set, remove } = &expected.change else {
        return Outcome::Missing;
    };
    // A tombstone hides the whole item. Only the owner's delete makes one in merge mode; a
    // non-owner part written onto it (a row whose owner row is gone) stays under it, as the
    // pipeline leaves it, so that part is still compared.
    let owns_item = !b.cfg.merge || b.cfg.owner;
    let Some(item) = item.filter(|i| !(owns_item && is_tombstone(i, deleted))) else {
        return Outcome::Missing;
    };
    if b.cfg.merge && !item.contains_key(&b.version_attribute) {
        return Outcome::Missing;
    }
    let mut attributes = Vec::new();
    for (n, v) in set {
        if b.bookkeeping.contains(n) {
            continue;
        }
        if !item.get(n).is_some_and(|a| av_eq(a, v)) {
            attributes.push(n.clone());
        }
    }
    for n in remove {
        if !b.bookkeeping.contains(n) && item.contains_key(n) {
            attributes.push(n.clone());
        }
    }
    let mut unexpected = Vec::new();
    for n in item.keys() {
        if b.owns(n) && !set.iter().any(|(m, _)| m == n) && !remove.contains(n) {
            unexpected.push(n.clone());
        }
    }
    attributes.extend(unexpected.iter().cloned());
    attributes.sort();
    attributes.dedup();
    if attributes.is_empty() {
        Outcome::Match
    } else {
        Outcome::Different {
            attributes,
            unexpected,
        }
    }
}

fn values_of(
    expected: &ItemWrite,
    item: Option<&Item>,
    attributes: &[String],
) -> BTreeMap<String, serde_json::Value> {
    let set = match &expected.change {
        Change::Upsert { set, .. } => set.as_slice(),
        Change::Delete { .. } => &[],
    };
    attributes
        .iter()
        .map(|a| {
            let exp = set
                .iter()
                .find(|(n, _)| n == a)
                .map_or(serde_json::Value::Null, |(_, v)| av_json(v));
            let act = item
                .and_then(|i| i.get(a))
                .map_or(serde_json::Value::Null, av_json);
            (
                a.clone(),
                serde_json::json!({ "expected": exp, "actual": act }),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Forward pass: MySQL rows → items
// ---------------------------------------------------------------------------------------------

/// One row to check: its primary key (for re-reading) and the write it maps to.
struct Check {
    pk: Vec<mysql_async::Value>,
    expected: ItemWrite,
}

async fn read_rows(
    conn: &mut mysql_async::Conn,
    sql: String,
    params: Vec<mysql_async::Value>,
) -> anyhow::Result<Vec<mysql_async::Row>> {
    conn.exec(sql, mysql_async::Params::Positional(params))
        .await
        .context("read MySQL rows")
}

/// The rows of these primary keys (now).
async fn rows_by_pk(
    conn: &mut mysql_async::Conn,
    b: &Block<'_>,
    pks: &[Vec<mysql_async::Value>],
) -> anyhow::Result<Vec<mysql_async::Row>> {
    if pks.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {} FROM {} WHERE {} IN ({})",
        b.select_list(),
        b.from(),
        b.pk_tuple(),
        vec![b.placeholders(); pks.len()].join(", ")
    );
    read_rows(conn, sql, pks.iter().flatten().cloned().collect()).await
}

fn estimated_rows(v: Option<mysql_async::Value>) -> u64 {
    match v {
        Some(mysql_async::Value::UInt(n)) => n,
        Some(mysql_async::Value::Int(n)) => n.max(0) as u64,
        Some(mysql_async::Value::Bytes(b)) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

fn as_i64(v: &mysql_async::Value) -> Option<i64> {
    match v {
        mysql_async::Value::Int(n) => Some(*n),
        mysql_async::Value::UInt(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

/// How the forward pass walks the table.
enum Walk {
    /// Every row, by keyset pages.
    Full,
    /// Windows of `window` rows at random values of an integer first PK column.
    Windows { min: i64, max: i64, window: usize },
    /// Keyset pages filtered with `RAND() < ratio`.
    Filtered { ratio: f64 },
}

async fn forward_pass(
    ctx: &Ctx<'_>,
    b: &Block<'_>,
    report: &mut TableReport,
) -> anyhow::Result<()> {
    let mut conn = ctx.conn().await?;
    let estimate = estimated_rows(
        conn.exec_first::<mysql_async::Value, _, _>(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (b.schema.schema.clone(), b.schema.table.clone()),
        )
        .await
        .context("estimate the row count")?,
    );
    let page = ctx.page_size();
    let (walk, target) = match ctx.opts.sample {
        None => (Walk::Full, None),
        Some(s) => {
            let target = match s {
                Sample::Rows(n) => n,
                Sample::Ratio(r) => ((estimate as f64) * r).ceil().max(1.0) as u64,
            };
            if estimate > 0 && target >= estimate {
                (Walk::Full, Some(target))
            } else {
                let first = mysql::quote_ident(&b.cfg.primary_key[0]);
                let bounds: Option<(mysql_async::Value, mysql_async::Value)> = conn
                    .exec_first(
                        format!("SELECT MIN({first}), MAX({first}) FROM {}", b.from()),
                        (),
                    )
                    .await
                    .context("read the primary-key range")?;
                // Ten windows at least, so a sample spreads over the table.
                let window = (target as usize).div_ceil(10).clamp(1, page);
                match bounds
                    .as_ref()
                    .and_then(|(lo, hi)| Some((as_i64(lo)?, as_i64(hi)?)))
                {
                    Some((min, max)) => (Walk::Windows { min, max, window }, Some(target)),
                    None => (
                        Walk::Filtered {
                            ratio: if estimate == 0 {
                                1.0
                            } else {
                                (target as f64 / estimate as f64).min(1.0)
                            },
                        },
                        Some(target),
                    ),
                }
            }
        }
    };
    let bar = ctx.bar(Some(target.unwrap_or(estimate)), &b.cfg.source);
    let mut cursor: Option<Vec<mysql_async::Value>> = None;
    let mut seen: HashSet<String> = HashSet::new();
    let mut windows_left = match &walk {
        Walk::Windows { window, .. } => {
            // Twice the windows needed, in case some overlap or land past the last row.
            2 * (target.unwrap_or(0) as usize).div_ceil(*window).max(1)
        }
        _ => 0,
    };
    loop {
        if target.is_some_and(|t| report.rows >= t) {
            break;
        }
        let rows = match &walk {
            Walk::Full | Walk::Filtered { .. } => {
                let filter = match &walk {
                    Walk::Filtered { ratio } => format!(" AND RAND() < {ratio}"),
                    _ => String::new(),
                };
                let (cond, params) = match &cursor {
                    None => ("1=1".to_string(), Vec::new()),
                    Some(pk) => (
                        format!("{} > {}", b.pk_tuple(), b.placeholders()),
                        pk.clone(),
                    ),
                };
                let sql = format!(
                    "SELECT {} FROM {} WHERE {cond}{filter} ORDER BY {} LIMIT {page}",
                    b.select_list(),
                    b.from(),
                    b.pk_list()
                );
                let rows = read_rows(&mut conn, sql, params).await?;
                match rows.last() {
                    Some(last) => cursor = Some(b.pk_values(last)),
                    None => break,
                }
                rows
            }
            Walk::Windows { min, max, window } => {
                if windows_left == 0 {
                    break;
                }
                windows_left -= 1;
                let start = if max > min {
                    min + (rand::random::<u64>() % ((max - min) as u64 + 1)) as i64
                } else {
                    *min
                };
                let sql = format!(
                    "SELECT {} FROM {} WHERE {} >= ? ORDER BY {} LIMIT {window}",
                    b.select_list(),
                    b.from(),
                    mysql::quote_ident(&b.cfg.primary_key[0]),
                    b.pk_list()
                );
                read_rows(&mut conn, sql, vec![mysql_async::Value::Int(start)]).await?
            }
        };
        let mut checks = Vec::with_capacity(rows.len());
        for row in rows {
            let pk = b.pk_values(&row);
            let cells = match mysql::row_cells(&b.schema, row) {
                Ok(c) => c,
                Err(e) => {
                    report.rows += 1;
                    record_error(ctx, report, b.pk_display(&pk), e.to_string());
                    continue;
                }
            };
            match b.expected(ctx, cells) {
                Ok(w) => {
                    if target.is_some() && !seen.insert(w.key_id.clone()) {
                        continue; // overlapping sample windows
                    }
                    checks.push(Check { pk, expected: w })
                }
                Err(m) => {
                    report.rows += 1;
                    record_error(ctx, report, b.pk_display(&pk), m);
                }
            }
        }
        report.rows += checks.len() as u64;
        bar.inc(checks.len() as u64);
        let problems = check_page(ctx, b, &checks, report, true).await?;
        if ctx.opts.repair && !problems.is_empty() {
            repair_rows(ctx, b, &mut conn, problems, report).await?;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

fn record_error(ctx: &Ctx<'_>, report: &mut TableReport, key: BTreeMap<String, String>, m: String) {
    report.errors += 1;
    push_finding(
        ctx,
        report,
        Finding {
            kind: FindingKind::Error,
            key,
            attributes: Vec::new(),
            values: None,
            message: Some(m),
        },
    );
}

fn push_finding(ctx: &Ctx<'_>, report: &mut TableReport, f: Finding) {
    let shown = report.findings.iter().filter(|x| x.kind == f.kind).count();
    if shown < ctx.opts.show {
        report.findings.push(f);
    }
}

/// Compare a page of rows with their items; count (when `record`) and return the problems
/// with what repair needs.
async fn check_page(
    ctx: &Ctx<'_>,
    b: &Block<'_>,
    checks: &[Check],
    report: &mut TableReport,
    record: bool,
) -> anyhow::Result<Vec<(Vec<mysql_async::Value>, Vec<String>)>> {
    let mut keys = Vec::with_capacity(checks.len());
    let mut ids = HashSet::new();
    for c in checks {
        if ids.insert(c.expected.key_id.clone()) {
            keys.push(
                c.expected
                    .key
                    .iter()
                    .map(|k| (k.name.to_string(), k.value.clone()))
                    .collect(),
            );
        }
    }
    let items = ctx.batch_get(&b.spec, keys).await?;
    let deleted = &ctx.cfg.sink.deleted_attribute;
    let mut problems = Vec::new();
    for c in checks {
        let item = items.get(&c.expected.key_id);
        let outcome = compare(b, &c.expected, item, deleted);
        if !record {
            if outcome != Outcome::Match {
                problems.push((c.pk.clone(), Vec::new()));
            }
            continue;
        }
        match outcome {
            Outcome::Match => report.matching += 1,
            Outcome::Missing => {
                report.missing += 1;
                push_finding(
                    ctx,
                    report,
                    Finding {
                        kind: FindingKind::Missing,
                        key: key_display(&c.expected.key),
                        attributes: Vec::new(),
                        values: None,
                        message: None,
                    },
                );
                problems.push((c.pk.clone(), Vec::new()));
            }
            Outcome::Different {
                attributes,
                unexpected,
            } => {
                report.different += 1;
                for a in &attributes {
                    *report.differing_attributes.entry(a.clone()).or_default() += 1;
                }
                let values = ctx
                    .opts
                    .show_values
                    .then(|| values_of(&c.expected, item, &attributes));
                push_finding(
                    ctx,
                    report,
                    Finding {
                        kind: FindingKind::Different,
                        key: key_display(&c.expected.key),
                        attributes,
                        values,
                        message: None,
                    },
                );
                problems.push((c.pk.clone(), unexpected));
            }
        }
    }
    Ok(problems)
}

/// Rewrite the rows' items from MySQL at the binlog position read before re-reading them.
async fn repair_rows(
    ctx: &Ctx<'_>,
    b: &Block<'_>,
    conn: &mut mysql_async::Conn,
    problems: Vec<(Vec<mysql_async::Value>, Vec<String>)>,
    report: &mut TableReport,
) -> anyhow::Result<()> {
    let version = ctx.repair_version(conn).await?;
    let pks: Vec<Vec<mysql_async::Value>> = problems.iter().map(|(pk, _)| pk.clone()).collect();
    let unexpected: HashMap<Vec<u8>, Vec<String>> = problems
        .into_iter()
        .map(|(pk, u)| (pk_bytes(&pk), u))
        .collect();
    let rows = rows_by_pk(conn, b, &pks).await?;
    let mut checks = Vec::with_capacity(rows.len());
    let mut writes = Vec::with_capacity(rows.len());
    for row in rows {
        let pk = b.pk_values(&row);
        let Ok(cells) = mysql::row_cells(&b.schema, row) else {
            continue;
        };
        let Ok(mut w) = b.expected(ctx, cells) else {
            continue;
        };
        w.version = version;
        if let (Change::Upsert { set, remove }, Some(extra)) =
            (&mut w.change, unexpected.get(&pk_bytes(&pk)))
        {
            for a in extra {
                if !set.iter().any(|(n, _)| n == a) && !remove.contains(a) {
                    remove.push(a.clone());
                }
            }
        }
        writes.push(w.clone());
        checks.push(Check { pk, expected: w });
    }
    let counts = report.repaired.get_or_insert_with(RepairCounts::default);
    counts.skipped += (pks.len() - checks.len()) as u64;
    ctx.writer
        .write(writes)
        .await
        .map_err(|e| anyhow!("repair write: {e}"))?;
    let mut scratch = TableReport::default();
    let still = check_page(ctx, b, &checks, &mut scratch, false).await?;
    let counts = report.repaired.get_or_insert_with(RepairCounts::default);
    counts.unrepaired += still.len() as u64;
    counts.repaired += (checks.len() - still.len()) as u64;
    Ok(())
}

fn pk_bytes(pk: &[mysql_async::Value]) -> Vec<u8> {
    pk.iter()
        .flat_map(|v| {
            let mut s = v.as_sql(false).into_bytes();
            s.push(0x1f);
            s
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Extras pass: items → MySQL rows
// ---------------------------------------------------------------------------------------------

/// An item that a block's templates match: the primary key to look up, and the key columns
/// to rebuild the delete with.
#[derive(Clone)]
struct Candidate {
    block: usize,
    item_key: Item,
    key_id: String,
    display: BTreeMap<String, String>,
    pk_text: Vec<String>,
    key_cells: Vec<(String, Cell)>,
}

#[derive(Default)]
struct ExtraTally {
    extra: Vec<u64>,
    repaired: Vec<RepairCounts>,
    findings: Vec<Vec<Finding>>,
    unchecked: Vec<u64>,
    unrecognised: u64,
}

/// Scan `target` and count the items no row explains. Returns the unrecognised count.
async fn extras_pass(
    ctx: &Ctx<'_>,
    target: &str,
    blocks: &[Block<'_>],
    reports: &mut [TableReport],
) -> anyhow::Result<u64> {
    let mine: Vec<usize> = (0..blocks.len())
        .filter(|&i| blocks[i].cfg.target == target)
        .collect();
    let Some(&first) = mine.first() else {
        return Ok(0);
    };
    let spec = &blocks[first].spec;
    // Unrecognised items can only be told apart when every block of the target is verified.
    let all_blocks = ctx.cfg.tables.iter().filter(|t| t.target == target).count() == mine.len();
    let tally = Mutex::new(ExtraTally {
        extra: vec![0; blocks.len()],
        repaired: vec![RepairCounts::default(); blocks.len()],
        findings: vec![Vec::new(); blocks.len()],
        unchecked: vec![0; blocks.len()],
        unrecognised: 0,
    });
    let bar = ctx.bar(None, &format!("scan {target}"));
    let segments = ctx.cfg.verify.scan_segments.max(1) as i32;
    let tally_ref = &tally;
    let bar_ref = &bar;
    let mine_ref = &mine;
    stream::iter(0..segments)
        .map(|segment| async move {
            let mut conn = ctx.conn().await?;
            let mut start: Option<Item> = None;
            loop {
                let (items, next) = ctx
                    .api
                    .scan_page(
                        target,
                        segment,
                        segments,
                        ctx.page_size() as i32,
                        start.take(),
                    )
                    .await
                    .map_err(|e| anyhow!("Scan of {target}: {e}"))?;
                bar_ref.inc(items.len() as u64);
                extras_page(
                    ctx, &mut conn, blocks, mine_ref, all_blocks, spec, items, tally_ref,
                )
                .await?;
                match next {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(segments as usize)
        .try_collect::<Vec<()>>()
        .await?;
    bar.finish_and_clear();
    let tally = tally
        .into_inner()
        .map_err(|_| anyhow!("extras tally poisoned"))?;
    for &i in &mine {
        let r = &mut reports[i];
        r.extra = Some(tally.extra[i]);
        for f in &tally.findings[i] {
            push_finding(ctx, r, f.clone());
        }
        if let Some(rc) = r.repaired.as_mut() {
            rc.repaired += tally.repaired[i].repaired;
            rc.unrepaired += tally.repaired[i].unrepaired;
            rc.skipped += tally.repaired[i].skipped;
        }
        if tally.unchecked[i] > 0 {
            r.notes.push(format!(
                "{} item(s) could not be checked for a row: a primary-key column is in neither a key template nor an attribute, or is of a type its key text cannot be looked up by (binary, float, bit, ...)",
                tally.unchecked[i]
            ));
        }
    }
    Ok(if all_blocks { tally.unrecognised } else { 0 })
}

#[allow(clippy::too_many_arguments)]
async fn extras_page(
    ctx: &Ctx<'_>,
    conn: &mut mysql_async::Conn,
    blocks: &[Block<'_>],
    mine: &[usize],
    all_blocks: bool,
    spec: &TargetSpec,
    items: Vec<Item>,
    tally: &Mutex<ExtraTally>,
) -> anyhow::Result<()> {
    let deleted = &ctx.cfg.sink.deleted_attribute;
    let merge = mine.iter().any(|&i| blocks[i].cfg.merge);
    // Per block: the candidates whose row must exist.
    let mut per_block: Vec<Vec<Candidate>> = (0..blocks.len()).map(|_| Vec::new()).collect();
    // Non-merge targets: an item is extra only if no matching block has its row.
    let mut claims: HashMap<String, Vec<usize>> = HashMap::new();
    let mut unrecognised = 0;
    let mut unchecked = vec![0u64; blocks.len()];
    for item in items {
        if is_tombstone(&item, deleted) {
            continue;
        }
        let Some(key_id) = key_id(spec, &item) else {
            unrecognised += u64::from(all_blocks);
            continue;
        };
        let mut matched = false;
        for &i in mine {
            let b = &blocks[i];
            let Some(mut caps) = captures(b, &item) else {
                continue;
            };
            matched = true;
            if b.cfg.merge
                && !(item.contains_key(&b.version_attribute) && item.keys().any(|n| b.owns(n)))
            {
                continue; // the item does not carry this part
            }
            let mut pk_text = Vec::new();
            let mut ok = true;
            for pk in &b.cfg.primary_key {
                if let Some((_, v)) = caps.iter().find(|(c, _)| c == pk) {
                    pk_text.push(v.clone());
                    continue;
                }
                let from_attr = b
                    .pk_from_attribute
                    .iter()
                    .find(|(c, _)| c == pk)
                    .and_then(|(_, a)| a.as_ref())
                    .and_then(|a| item.get(a))
                    .and_then(key_text);
                match from_attr {
                    Some(v) => {
                        pk_text.push(v.to_string());
                        caps.push((pk.clone(), v.to_string()));
                    }
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok || !b.lookup_safe {
                unchecked[i] += 1;
                continue;
            }
            let key_cells = caps
                .into_iter()
                .map(|(c, v)| {
                    let numeric = matches!(
                        item.get(&b.spec.partition_key.0),
                        Some(AttributeValue::N(n)) if *n == v
                    ) || b.spec.sort_key.as_ref().is_some_and(
                        |(s, _)| matches!(item.get(s), Some(AttributeValue::N(n)) if *n == v),
                    );
                    (
                        c,
                        if numeric {
                            Cell::Number(v)
                        } else {
                            Cell::Str(v)
                        },
                    )
                })
                .collect();
            claims.entry(key_id.clone()).or_default().push(i);
            per_block[i].push(Candidate {
                block: i,
                item_key: b.item_key(&item).unwrap_or_default(),
                key_id: key_id.clone(),
                display: item_key_display(spec, &item),
                pk_text,
                key_cells,
            });
        }
        if !matched && all_blocks {
            unrecognised += 1;
        }
    }
    // Look the candidates up in MySQL; keep the key ids some row explains.
    let mut explained: HashSet<(usize, String)> = HashSet::new();
    for (i, cands) in per_block.iter().enumerate() {
        if cands.is_empty() {
            continue;
        }
        for id in found_key_ids(ctx, conn, &blocks[i], cands).await? {
            explained.insert((i, id));
        }
    }
    let mut extras: Vec<Candidate> = Vec::new();
    for cands in per_block {
        for c in cands {
            let is_extra = if merge {
                !explained.contains(&(c.block, c.key_id.clone()))
            } else {
                // Attribute a non-merge extra to the first block that claims the item.
                let claimants = claims.get(&c.key_id).cloned().unwrap_or_default();
                claimants.first() == Some(&c.block)
                    && !claimants
                        .iter()
                        .any(|&b| explained.contains(&(b, c.key_id.clone())))
            };
            if is_extra {
                extras.push(c);
            }
        }
    }
    let mut repaired: Vec<(usize, RepairCounts)> = Vec::new();
    if ctx.opts.repair && !extras.is_empty() {
        repaired = repair_extras(ctx, conn, blocks, spec, &extras).await?;
    }
    let mut t = tally.lock().map_err(|_| anyhow!("extras tally poisoned"))?;
    t.unrecognised += unrecognised;
    for (i, n) in unchecked.into_iter().enumerate() {
        t.unchecked[i] += n;
    }
    for c in extras {
        t.extra[c.block] += 1;
        if t.findings[c.block].len() < ctx.opts.show {
            t.findings[c.block].push(Finding {
                kind: FindingKind::Extra,
                key: c.display,
                attributes: Vec::new(),
                values: None,
                message: None,
            });
        }
    }
    for (i, rc) in repaired {
        t.repaired[i].repaired += rc.repaired;
        t.repaired[i].unrepaired += rc.unrepaired;
        t.repaired[i].skipped += rc.skipped;
    }
    Ok(())
}

/// Reverse-match both key templates of `b` against the item's key.
fn captures(b: &Block<'_>, item: &Item) -> Option<Vec<(String, String)>> {
    let pk = key_text(item.get(&b.spec.partition_key.0)?)?;
    let mut caps: Vec<(String, String)> = b
        .pk_tpl
        .unrender_exact(pk)?
        .into_iter()
        .map(|(c, v)| (c.to_string(), v))
        .collect();
    if let (Some(tpl), Some((sk_name, _))) = (&b.sk_tpl, &b.spec.sort_key) {
        let sk = key_text(item.get(sk_name)?)?;
        for (c, v) in tpl.unrender_exact(sk)? {
            match caps.iter().find(|(n, _)| n == c) {
                Some((_, seen)) if *seen != v => return None,
                Some(_) => {}
                None => caps.push((c.to_string(), v)),
            }
        }
    }
    Some(caps)
}

/// Primary-key column kinds whose key text MySQL compares back reliably: a lookup by such text
/// finds the row when it exists. Items of tables with other key kinds (binary, float, bit, ...)
/// are reported as not checkable rather than risk calling them extra (and deleting them).
fn lookup_safe(kind: &mysql::ColumnKind) -> bool {
    use mysql::ColumnKind as K;
    matches!(
        kind,
        K::Int { .. }
            | K::Decimal { .. }
            | K::Text
            | K::Date
            | K::DateTime { .. }
            | K::Timestamp { .. }
            | K::Year
            | K::Enum { .. }
    )
}

/// MySQL's form of a captured key text for lookup: for DATETIME/TIMESTAMP columns, an ISO
/// date-time (`T`, `Z`, as `datetime` types render) as MySQL writes it; other text unchanged
/// (MySQL converts it to the column's type).
fn lookup_param(text: &str, kind: &mysql::ColumnKind) -> mysql_async::Value {
    let b = text.as_bytes();
    let iso = b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && text.ends_with('Z');
    if iso
        && matches!(
            kind,
            mysql::ColumnKind::DateTime { .. } | mysql::ColumnKind::Timestamp { .. }
        )
    {
        let t = text.trim_end_matches('Z').replacen('T', " ", 1);
        return mysql_async::Value::Bytes(t.into_bytes());
    }
    mysql_async::Value::Bytes(text.as_bytes().to_vec())
}

/// The key ids (of this block) that the candidates' rows map to now.
async fn found_key_ids(
    ctx: &Ctx<'_>,
    conn: &mut mysql_async::Conn,
    b: &Block<'_>,
    cands: &[Candidate],
) -> anyhow::Result<HashSet<String>> {
    let mut out = HashSet::new();
    for chunk in cands.chunks(ctx.page_size().max(1)) {
        let pks: Vec<Vec<mysql_async::Value>> = chunk
            .iter()
            .map(|c| {
                c.pk_text
                    .iter()
                    .zip(&b.pk_index)
                    .map(|(t, &i)| lookup_param(t, &b.schema.columns[i].kind))
                    .collect()
            })
            .collect();
        for row in rows_by_pk(conn, b, &pks).await? {
            let Ok(cells) = mysql::row_cells(&b.schema, row) else {
                continue;
            };
            if let Ok(w) = b.expected(ctx, cells) {
                out.insert(w.key_id);
            }
        }
    }
    Ok(out)
}

/// Delete (tombstone, or remove the part) the extras that still have no row after the repair
/// position, at that position; then read them again.
async fn repair_extras(
    ctx: &Ctx<'_>,
    conn: &mut mysql_async::Conn,
    blocks: &[Block<'_>],
    spec: &TargetSpec,
    extras: &[Candidate],
) -> anyhow::Result<Vec<(usize, RepairCounts)>> {
    let version = ctx.repair_version(conn).await?;
    let mut counts: HashMap<usize, RepairCounts> = HashMap::new();
    let mut writes = Vec::new();
    let mut written: Vec<&Candidate> = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let mine: Vec<&Candidate> = extras.iter().filter(|c| c.block == i).collect();
        if mine.is_empty() {
            continue;
        }
        let owned: Vec<Candidate> = mine.iter().map(|c| (*c).clone()).collect();
        // Read after the position: a row that appeared since detection is left to CDC.
        let now_found = found_key_ids(ctx, conn, b, &owned).await?;
        for c in mine {
            let rc = counts.entry(i).or_default();
            if now_found.contains(&c.key_id) {
                rc.skipped += 1;
                continue;
            }
            let event = ChangeEvent {
                table: b.table_ref(),
                op: Op::Delete,
                before: Some(Row(c.key_cells.clone())),
                after: None,
                position: SourcePosition::default(),
                kafka: None,
            };
            match ctx.mapping.map(&event) {
                Ok(Mapped::Writes(mut w)) if w.len() == 1 && w[0].key_id == c.key_id => {
                    let mut w = w.remove(0);
                    w.version = version;
                    writes.push(w);
                    written.push(c);
                }
                _ => {
                    // The key does not render back from its parts: leave it to an operator.
                    rc.unrepaired += 1;
                }
            }
        }
    }
    ctx.writer
        .write(writes)
        .await
        .map_err(|e| anyhow!("repair write: {e}"))?;
    let keys: Vec<Item> = {
        let mut seen = HashSet::new();
        written
            .iter()
            .filter(|c| seen.insert(c.key_id.clone()))
            .map(|c| c.item_key.clone())
            .collect()
    };
    let items = ctx.batch_get(spec, keys).await?;
    let deleted = &ctx.cfg.sink.deleted_attribute;
    for c in written {
        let b = &blocks[c.block];
        let gone = match items.get(&c.key_id) {
            None => true,
            Some(item) if is_tombstone(item, deleted) => true,
            Some(item) => b.cfg.merge && !item.keys().any(|n| b.owns(n)),
        };
        let rc = counts.entry(c.block).or_default();
        if gone {
            rc.repaired += 1;
        } else {
            rc.unrepaired += 1;
        }
    }
    Ok(counts.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_parses_ratios_and_counts() {
        assert_eq!("0.1".parse::<Sample>(), Ok(Sample::Ratio(0.1)));
        assert_eq!("5%".parse::<Sample>(), Ok(Sample::Ratio(0.05)));
        assert_eq!("5000".parse::<Sample>(), Ok(Sample::Rows(5000)));
        for bad in ["0", "0.0", "1.5", "-3", "x", "150%", ""] {
            assert!(bad.parse::<Sample>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sets_compare_as_sets() {
        let a = AttributeValue::Ss(vec!["x".into(), "y".into()]);
        let b = AttributeValue::Ss(vec!["y".into(), "x".into()]);
        assert!(av_eq(&a, &b));
        let m1 = AttributeValue::M(HashMap::from([("k".to_string(), a.clone())]));
        let m2 = AttributeValue::M(HashMap::from([("k".to_string(), b)]));
        assert!(av_eq(&m1, &m2));
        assert!(!av_eq(&a, &AttributeValue::S("x".into())));
    }

    #[test]
    fn iso_keys_are_looked_up_in_mysql_form() {
        let dt = mysql::ColumnKind::DateTime { fsp: 6 };
        assert_eq!(
            lookup_param("2024-01-02T03:04:05.000000Z", &dt),
            mysql_async::Value::Bytes(b"2024-01-02 03:04:05.000000".to_vec())
        );
        assert_eq!(
            lookup_param("42", &dt),
            mysql_async::Value::Bytes(b"42".to_vec())
        );
        // The same text in a character column is looked up as it is.
        assert_eq!(
            lookup_param("2024-01-02T03:04:05.000000Z", &mysql::ColumnKind::Text),
            mysql_async::Value::Bytes(b"2024-01-02T03:04:05.000000Z".to_vec())
        );
        assert!(!lookup_safe(&mysql::ColumnKind::Binary { fixed: None }));
    }

    #[test]
    fn state_path_is_next_to_the_config() {
        let c = VerifyConfig::default();
        assert_eq!(
            c.state_path(Path::new("/etc/cutover/cutover.toml")),
            PathBuf::from("/etc/cutover/.cutover/verify-last.json")
        );
        assert_eq!(
            c.state_path(Path::new("cutover.toml")),
            PathBuf::from("./.cutover/verify-last.json")
        );
    }
}
