//! Repair: missing and different items rewritten from MySQL, extras deleted, all through the
//! guarded writer at the binlog position read before the rows are read again (see the module
//! docs of [`crate::verify`]); then read again and counted.

use std::collections::{HashMap, HashSet};

use super::block::{is_tombstone, Block};
use super::extras::{found_key_ids, Candidate};
use super::forward::{check_page, rows_by_pk, Check};
use super::report::{RepairCounts, TableReport};
use super::{Ctx, Item, VerifyError};
use crate::cdc::{ChangeEvent, Op, Row, SourcePosition};
use crate::mapping::{Change, Mapped, TargetSpec};
use crate::mysql;

/// Rewrite the rows' items from MySQL at the binlog position read before re-reading them.
pub(super) async fn repair_rows(
    ctx: &Ctx<'_>,
    b: &Block<'_>,
    conn: &mut mysql_async::Conn,
    problems: Vec<(Vec<mysql_async::Value>, Vec<String>)>,
    report: &mut TableReport,
) -> Result<(), VerifyError> {
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
        .map_err(VerifyError::Repair)?;
    let mut scratch = TableReport::default();
    let still = check_page(ctx, b, &checks, &mut scratch, false).await?;
    let counts = report.repaired.get_or_insert_with(RepairCounts::default);
    counts.unrepaired += still.len() as u64;
    counts.repaired += (checks.len() - still.len()) as u64;
    Ok(())
}

pub(super) fn pk_bytes(pk: &[mysql_async::Value]) -> Vec<u8> {
    pk.iter()
        .flat_map(|v| {
            let mut s = v.as_sql(false).into_bytes();
            s.push(0x1f);
            s
        })
        .collect()
}

/// Delete (tombstone, or remove the part) the extras that still have no row after the repair
/// position, at that position; then read them again.
pub(super) async fn repair_extras(
    ctx: &Ctx<'_>,
    conn: &mut mysql_async::Conn,
    blocks: &[Block<'_>],
    spec: &TargetSpec,
    extras: &[Candidate],
) -> Result<Vec<(usize, RepairCounts)>, VerifyError> {
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
                before: Some(Row(c
                    .keys
                    .first()
                    .map(|k| k.cells.clone())
                    .unwrap_or_default())),
                after: None,
                position: SourcePosition::default(),
                kafka: None,
            };
            match ctx.cfg.mapping.map(&event) {
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
        .map_err(VerifyError::Repair)?;
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
