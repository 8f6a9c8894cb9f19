//! Repair: missing and different items rewritten from MySQL, extras deleted, all through the
//! guarded writer at the binlog position read before the rows are read again (see the module
//! docs of [`crate::verify`]); then read again and counted.

use std::collections::{HashMap, HashSet};

use super::block::{is_tombstone, Block};
use super::extras::{found_key_ids, Candidate};
use super::forward::{check_page, rows_by_pk, Check, Read};
use super::report::{RepairCounts, TableReport};
use super::{sql, Ctx, Item, VerifyError};
use crate::cdc::{ChangeEvent, Op, Row, SourcePosition};
use crate::mapping::{Change, Mapped, TargetSpec};
use crate::mysql;
use mysql_async::prelude::Queryable;

/// Run `read` in a transaction that holds the shared locks it takes, then read the binlog
/// position (the repair version), then end the transaction. Every transaction that touched
/// the rows read and is below that position has committed and is in what was read (a locking
/// read waits for it); any later one must wait for the locks, so it commits above it.
async fn locked_then_version<T>(
    ctx: &Ctx<'_>,
    conn: &mut mysql_async::Conn,
    read: impl AsyncFnOnce(&mut mysql_async::Conn) -> Result<T, VerifyError>,
) -> Result<(T, u128), VerifyError> {
    conn.query_drop("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(sql("set the repair transaction's isolation level"))?;
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(sql("start the repair transaction"))?;
    let done = async {
        let rows = read(conn).await?;
        let version = ctx.repair_version(conn).await?;
        Ok::<_, VerifyError>((rows, version))
    }
    .await;
    let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn
        .query_drop(end)
        .await
        .map_err(sql("end the repair transaction"));
    let done = done?;
    ended?;
    Ok(done)
}

/// Rewrite the rows' items from MySQL, read under shared locks, at the binlog position read
/// after them (see [`locked_then_version`]); then read the rows afresh and check again.
pub(super) async fn repair_rows(
    ctx: &Ctx<'_>,
    b: &Block<'_>,
    conn: &mut mysql_async::Conn,
    problems: Vec<(Vec<mysql_async::Value>, Vec<String>)>,
    report: &mut TableReport,
) -> Result<(), VerifyError> {
    let pks: Vec<Vec<mysql_async::Value>> = problems.iter().map(|(pk, _)| pk.clone()).collect();
    let unexpected: HashMap<Vec<u8>, Vec<String>> = problems
        .into_iter()
        .map(|(pk, u)| (pk_bytes(&pk), u))
        .collect();
    let (rows, version) = locked_then_version(ctx, conn, async |conn| {
        rows_by_pk(conn, b, &pks, Read::Shared).await
    })
    .await?;
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
    // Check again against the rows as they are now, not as they were read for the repair.
    let written: Vec<Vec<mysql_async::Value>> = checks.into_iter().map(|c| c.pk).collect();
    let mut fresh = Vec::with_capacity(written.len());
    for row in rows_by_pk(conn, b, &written, Read::Plain).await? {
        let pk = b.pk_values(&row);
        if let Ok(expected) = mysql::row_cells(&b.schema, row)
            .map_err(|e| e.to_string())
            .and_then(|cells| b.expected(ctx, cells))
        {
            fresh.push(Check { pk, expected });
        }
    }
    let mut scratch = TableReport::default();
    let still = check_page(ctx, b, &fresh, &mut scratch, false).await?;
    let counts = report.repaired.get_or_insert_with(RepairCounts::default);
    // A row deleted since the repair is left to CDC (its delete follows).
    counts.skipped += (written.len() - fresh.len()) as u64;
    counts.unrepaired += still.len() as u64;
    counts.repaired += (fresh.len() - still.len()) as u64;
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
    // Look the extras up again under shared (and gap) locks, then read the position: a row
    // inserted since detection is seen (and left to CDC), a later insert commits above it.
    let (found, version) = locked_then_version(ctx, conn, async |conn| {
        let mut found: HashMap<usize, HashSet<String>> = HashMap::new();
        for (i, b) in blocks.iter().enumerate() {
            let mine: Vec<Candidate> = extras.iter().filter(|c| c.block == i).cloned().collect();
            if !mine.is_empty() {
                found.insert(i, found_key_ids(ctx, conn, b, &mine, Read::Shared).await?);
            }
        }
        Ok(found)
    })
    .await?;
    let mut counts: HashMap<usize, RepairCounts> = HashMap::new();
    let mut writes = Vec::new();
    let mut written: Vec<&Candidate> = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let mine: Vec<&Candidate> = extras.iter().filter(|c| c.block == i).collect();
        let Some(now_found) = found.get(&i) else {
            continue;
        };
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
