//! The extras pass: each target scanned in parallel segments, every item reverse-matched to the
//! blocks whose key templates fit it, and looked up in MySQL by primary key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::block::{is_tombstone, item_key_display, Block};
use super::forward::{push_finding, rows_by_pk};
use super::repair::repair_extras;
use super::report::{Finding, FindingKind, RepairCounts, TableReport};
use super::{dynamo, Ctx, Item, VerifyError};
use crate::cdc::Cell;
use crate::mapping::{key_text, TargetSpec};
use crate::mysql;

/// An item that a block's templates match: the primary key to look up, and the key columns
/// to rebuild the delete with.
#[derive(Clone)]
pub(super) struct Candidate {
    pub(super) block: usize,
    pub(super) item_key: Item,
    pub(super) key_id: String,
    pub(super) display: BTreeMap<String, String>,
    pub(super) pk_text: Vec<String>,
    pub(super) key_cells: Vec<(String, Cell)>,
}

#[derive(Default)]
pub(super) struct ExtraTally {
    pub(super) extra: Vec<u64>,
    pub(super) repaired: Vec<RepairCounts>,
    pub(super) findings: Vec<Vec<Finding>>,
    pub(super) unchecked: Vec<u64>,
    pub(super) unrecognised: u64,
}

/// Scan `target` and count the items no row explains. Returns the unrecognised count.
pub(super) async fn extras_pass(
    ctx: &Ctx<'_>,
    target: &str,
    blocks: &[Block<'_>],
    reports: &mut [TableReport],
) -> Result<u64, VerifyError> {
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
                    .map_err(dynamo(format!("Scan of {target}")))?;
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
            Ok::<_, VerifyError>(())
        })
        .buffer_unordered(segments as usize)
        .try_collect::<Vec<()>>()
        .await?;
    bar.finish_and_clear();
    let tally = tally
        .into_inner()
        .map_err(|_| VerifyError::Setup("extras tally poisoned".into()))?;
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
pub(super) async fn extras_page(
    ctx: &Ctx<'_>,
    conn: &mut mysql_async::Conn,
    blocks: &[Block<'_>],
    mine: &[usize],
    all_blocks: bool,
    spec: &TargetSpec,
    items: Vec<Item>,
    tally: &Mutex<ExtraTally>,
) -> Result<(), VerifyError> {
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
        let Some(key_id) = spec.key_id_of(&item) else {
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
    let mut t = tally
        .lock()
        .map_err(|_| VerifyError::Setup("extras tally poisoned".into()))?;
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
pub(super) fn captures(b: &Block<'_>, item: &Item) -> Option<Vec<(String, String)>> {
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
pub(super) fn lookup_safe(kind: &mysql::ColumnKind) -> bool {
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
pub(super) fn lookup_param(text: &str, kind: &mysql::ColumnKind) -> mysql_async::Value {
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
pub(super) async fn found_key_ids(
    ctx: &Ctx<'_>,
    conn: &mut mysql_async::Conn,
    b: &Block<'_>,
    cands: &[Candidate],
) -> Result<HashSet<String>, VerifyError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
