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
//! Scan segments); an item belongs to a block when some split of its key text over the block's
//! key templates renders the item's exact key again ([`Mapping::key_candidates`]: every split
//! is tried, so `NOTE#{owner}#{id}` over `NOTE#bob#1#2` yields owner `bob#1`, id `2` as well as
//! owner `bob`, id `1#2`), and, in merge mode, when it carries the part (its version attribute
//! and at least one owned attribute; a deleted non-owner part keeps only its version).
//! Primary-key columns that no key template holds are read from the item's attribute of that
//! column. Every recovered key is looked up in MySQL by primary key in batches
//! (`WHERE (pk) IN (...)`): integers as integers, binary keys by their bytes, date-times
//! (also epoch-typed ones, through their conversion) in MySQL's form. The rows found are
//! mapped again; the item is explained when one of them maps to its key. An item is *extra*
//! only when no recovered key finds such a row **and** its recovered values render its exact
//! key. Items that no block's templates match are counted as `unrecognised` on their target
//! and never repaired.
//!
//! # Three verdicts (exit codes)
//! - `CLEAN` (exit 0): every row and item checked, nothing differs (after repair, when
//!   repairing).
//! - `DIFFERENCES` (exit 1): something differs, or a repair did not take.
//! - `INCOMPLETE` (exit 3): nothing found to differ, but some items could not be checked
//!   (`unchecked`, with a note): a primary-key column in neither a template nor an attribute,
//!   more than 256 splits, or a key MySQL can't compare back exactly (float, bit, time, an
//!   epoch format coarser than the column) whose lookup found no row. Such an item is never
//!   judged extra nor repaired, and `cutover status` is NOT READY.
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

mod block;
mod compare;
mod config;
mod extras;
mod forward;
mod repair;
mod report;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use self::config::VerifyConfig;
pub use report::{
    load, render_text, save, Finding, FindingKind, RepairCounts, TableReport, Verdict, VerifyReport,
};

use crate::cdc::SourcePosition;
use crate::error::{Classify, Disposition, FatalError};
use crate::mapping::{Mapping, TableConfig, TargetSpec};
use crate::mysql::{self, MysqlConfig, MysqlError};
use crate::sink::{DynamoConfig, RetryPolicy, SdkApi, SinkConfig, WriteError, WriteMode, Writer};
use block::Block;
use extras::extras_pass;
use forward::forward_pass;

type Item = HashMap<String, AttributeValue>;

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

/// What verify runs with: the sections it reads and the compiled mapping, resolved by
/// `commands::verify` before any I/O (it has checked that `[mysql]` is set and that every
/// `--table` is mapped).
#[derive(Debug)]
pub struct Settings {
    pub tables: Vec<TableConfig>,
    pub mapping: Mapping,
    pub sink: SinkConfig,
    pub verify: VerifyConfig,
    pub mysql: MysqlConfig,
    pub dynamodb: DynamoConfig,
}

/// Why a run could not finish. Differences are not errors: they are the report.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A block does not fit its table (primary key, columns), or the server can't be used.
    #[error("{0}")]
    Setup(String),
    /// A MySQL statement: what was being done, and the driver's error.
    #[error("{what}")]
    Sql {
        what: String,
        #[source]
        source: mysql_async::Error,
    },
    /// A MySQL operation of [`crate::mysql`] (pool, schema, binlog position).
    #[error("{what}")]
    Mysql {
        what: String,
        #[source]
        source: MysqlError,
    },
    /// A DynamoDB call, classified at the edge.
    #[error("{what}")]
    Dynamo {
        what: String,
        #[source]
        source: WriteError,
    },
    /// The guarded writer gave up on a repair.
    #[error("repair write")]
    Repair(#[source] FatalError),
    /// Reading or writing the report file.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The report file is not a report.
    #[error("{what}")]
    Report {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Classify for VerifyError {
    fn disposition(&self) -> Disposition {
        match self {
            VerifyError::Mysql { source, .. } => source.disposition(),
            VerifyError::Dynamo { source, .. } => source.disposition(),
            VerifyError::Sql {
                source: mysql_async::Error::Io(_) | mysql_async::Error::Driver(_),
                ..
            } => Disposition::Retry,
            _ => Disposition::Fatal,
        }
    }
}

fn sql(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> VerifyError {
    let what = what.into();
    move |source| VerifyError::Sql { what, source }
}

fn mysql_error(what: impl Into<String>) -> impl FnOnce(MysqlError) -> VerifyError {
    let what = what.into();
    move |source| VerifyError::Mysql { what, source }
}

fn dynamo(what: impl Into<String>) -> impl FnOnce(WriteError) -> VerifyError {
    let what = what.into();
    move |source| VerifyError::Dynamo { what, source }
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/// Run verify (and repair) over the selected tables.
/// `opts.tables` must name mapped sources (`commands::verify` checks it).
pub async fn verify(cfg: &Settings, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    let started_at = Utc::now();
    let client = crate::sink::dynamo::client(&cfg.dynamodb).await;
    let pool = cfg
        .mysql
        .pool()
        .map_err(mysql_error("MySQL connection pool"))?;
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
    let settled = reports.iter().all(|r| match &r.repaired {
        Some(rc) => r.errors == 0 && rc.repaired >= r.differences() - r.errors,
        None => r.differences() == 0,
    }) && unrecognised.is_empty();
    let verdict = Verdict::of(!settled, reports.iter().map(|r| r.unchecked).sum());
    Ok(VerifyReport {
        started_at,
        finished_at: Utc::now(),
        sample: opts.sample.map(|s| s.to_string()),
        repair: opts.repair,
        clean: verdict == Verdict::Clean,
        verdict,
        tables: reports,
        unrecognised,
    })
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Ctx<'a> {
    cfg: &'a Settings,
    opts: &'a VerifyOptions,
    api: SdkApi,
    pool: mysql_async::Pool,
    writer: Writer<SdkApi>,
    progress: MultiProgress,
}

impl Ctx<'_> {
    async fn conn(&self) -> Result<mysql_async::Conn, VerifyError> {
        self.pool.get_conn().await.map_err(sql("connect to MySQL"))
    }

    /// The items of `keys` (deduplicated), by identity, through the one DynamoDB edge.
    /// Throttling and transient failures are retried by the one retry policy (`[sink]`'s).
    async fn batch_get(
        &self,
        spec: &TargetSpec,
        keys: Vec<Item>,
    ) -> Result<HashMap<String, Item>, VerifyError> {
        let policy = self.retry_policy();
        with_retry(policy, || self.api.batch_get(spec, keys.clone(), policy))
            .await
            .map_err(dynamo(format!("BatchGetItem on {}", spec.name)))
    }

    /// One Scan page of one segment, retried like [`Ctx::batch_get`].
    async fn scan_page(
        &self,
        target: &str,
        segment: i32,
        segments: i32,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), VerifyError> {
        let limit = self.page_size() as i32;
        with_retry(self.retry_policy(), || {
            self.api
                .scan_page(target, segment, segments, limit, start.clone())
        })
        .await
        .map_err(dynamo(format!("Scan of {target}")))
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::from(&self.cfg.sink)
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
    async fn repair_version(&self, conn: &mut mysql_async::Conn) -> Result<u128, VerifyError> {
        let pos: SourcePosition = mysql::current_position(conn).await.map_err(mysql_error(
            "read the MySQL binlog position (SHOW MASTER STATUS) for repair",
        ))?;
        let v = pos.version();
        if v == 0 {
            return Err(VerifyError::Setup(
                "MySQL reports no binlog position: repair needs log_bin on".into(),
            ));
        }
        Ok(v)
    }
}

/// Run `call` until it succeeds or fails for good: errors of class `Retry` (throttling,
/// transient) wait by `policy` and try again, past the SDK's own few attempts.
async fn with_retry<T, F, Fut>(policy: RetryPolicy, mut call: F) -> Result<T, WriteError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, WriteError>>,
{
    let mut delays = policy.delays();
    loop {
        match call().await {
            Err(e) if e.disposition() == Disposition::Retry => match delays.next() {
                Some(wait) => {
                    tracing::debug!(error = %e, ?wait, "verify: DynamoDB read retried");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(e),
            },
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throttled_reads_are_retried_by_the_policy_not_three_times() {
        let policy = RetryPolicy {
            first: std::time::Duration::from_millis(1),
            max: std::time::Duration::from_millis(2),
            max_retries: Some(8),
        };
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let got = with_retry(policy, || async {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0..=5 => Err(WriteError::Throttled("slow down".into())),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(got.unwrap(), 7);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 7);
        // Out of retries: the last error.
        let got: Result<(), _> =
            with_retry(policy, || async { Err(WriteError::Transient("x".into())) }).await;
        assert!(matches!(got, Err(WriteError::Transient(_))));
        // A fatal error is not retried.
        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let got: Result<(), _> = with_retry(policy, || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(WriteError::Fatal("no table".into()))
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn sample_parses_ratios_and_counts() {
        assert_eq!("0.1".parse::<Sample>(), Ok(Sample::Ratio(0.1)));
        assert_eq!("5%".parse::<Sample>(), Ok(Sample::Ratio(0.05)));
        assert_eq!("5000".parse::<Sample>(), Ok(Sample::Rows(5000)));
        for bad in ["0", "0.0", "1.5", "-3", "x", "150%", ""] {
            assert!(bad.parse::<Sample>().is_err(), "{bad}");
        }
    }
}
