//! The forward pass: every (or a sample of the) MySQL rows of a block, by keyset pages, each
//! mapped as a `load` change and compared with its item.

use std::collections::{BTreeMap, HashSet};

use mysql_async::prelude::Queryable;

use super::block::{key_display, Block};
use super::compare::{compare, values_of, Outcome};
use super::repair::repair_rows;
use super::report::{Finding, FindingKind, TableReport};
use super::{sql, Ctx, Sample, VerifyError};
use crate::mapping::ItemWrite;
use crate::mysql;

/// One row to check: its primary key (for re-reading) and the write it maps to.
pub(super) struct Check {
    pub(super) pk: Vec<mysql_async::Value>,
    pub(super) expected: ItemWrite,
}

pub(super) async fn read_rows(
    conn: &mut mysql_async::Conn,
    statement: String,
    params: Vec<mysql_async::Value>,
) -> Result<Vec<mysql_async::Row>, VerifyError> {
    conn.exec(statement, mysql_async::Params::Positional(params))
        .await
        .map_err(sql("read MySQL rows"))
}

/// How [`rows_by_pk`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// A plain (consistent, non-locking) read.
    Plain,
    /// A locking read (`LOCK IN SHARE MODE`, inside the caller's transaction): it waits for
    /// transactions that hold the rows, sees their latest committed versions, and keeps others
    /// from changing (or, by gap locks, inserting) them until the transaction ends.
    Shared,
}

/// The rows of these primary keys (now).
pub(super) async fn rows_by_pk(
    conn: &mut mysql_async::Conn,
    b: &Block<'_>,
    pks: &[Vec<mysql_async::Value>],
    read: Read,
) -> Result<Vec<mysql_async::Row>, VerifyError> {
    if pks.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {} FROM {} WHERE {} IN ({}){}",
        b.select_list(),
        b.from(),
        b.pk_tuple(),
        vec![b.placeholders(); pks.len()].join(", "),
        match read {
            Read::Plain => "",
            Read::Shared => " LOCK IN SHARE MODE",
        }
    );
    read_rows(conn, sql, pks.iter().flatten().cloned().collect()).await
}

pub(super) fn estimated_rows(v: Option<mysql_async::Value>) -> u64 {
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

pub(super) fn as_i64(v: &mysql_async::Value) -> Option<i64> {
    match v {
        mysql_async::Value::Int(n) => Some(*n),
        mysql_async::Value::UInt(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

/// How the forward pass walks the table.
pub(super) enum Walk {
    /// Every row, by keyset pages.
    Full,
    /// Windows of `window` rows at random values of an integer first PK column.
    Windows { min: i64, max: i64, window: usize },
    /// Keyset pages filtered with `RAND() < ratio`.
    Filtered { ratio: f64 },
}

pub(super) async fn forward_pass(
    ctx: &Ctx<'_>,
    b: &Block<'_>,
    report: &mut TableReport,
) -> Result<(), VerifyError> {
    let mut conn = ctx.conn().await?;
    let estimate = estimated_rows(
        conn.exec_first::<mysql_async::Value, _, _>(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (b.schema.schema.clone(), b.schema.table.clone()),
        )
        .await
        .map_err(sql("estimate the row count"))?,
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
                    .map_err(sql("read the primary-key range"))?;
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

pub(super) fn record_error(
    ctx: &Ctx<'_>,
    report: &mut TableReport,
    key: BTreeMap<String, String>,
    m: String,
) {
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

pub(super) fn push_finding(ctx: &Ctx<'_>, report: &mut TableReport, f: Finding) {
    let shown = report.findings.iter().filter(|x| x.kind == f.kind).count();
    if shown < ctx.opts.show {
        report.findings.push(f);
    }
}

/// Compare a page of rows with their items; count (when `record`) and return the problems
/// with what repair needs.
pub(super) async fn check_page(
    ctx: &Ctx<'_>,
    b: &Block<'_>,
    checks: &[Check],
    report: &mut TableReport,
    record: bool,
) -> Result<Vec<(Vec<mysql_async::Value>, Vec<String>)>, VerifyError> {
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
