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
use super::{Ctx, Item, VerifyError};
use base64::Engine as _;

use crate::cdc::{Cell, Row};
use crate::mapping::{convert, key_text, BinaryEncoding, ColumnType, TargetSpec, TimeFormat};
use crate::mysql;

/// An item that a block's templates match: every recovered key (one per split of its key
/// text that renders the key again), with what to look the row up by and rebuild the delete
/// with.
#[derive(Clone)]
pub(super) struct Candidate {
    pub(super) block: usize,
    pub(super) item_key: Item,
    pub(super) key_id: String,
    pub(super) display: BTreeMap<String, String>,
    pub(super) keys: Vec<Recovered>,
}

/// One recovered key of an item.
#[derive(Clone)]
pub(super) struct Recovered {
    /// The primary key to look up; `None` when no row can hold these values (a non-integer
    /// for an integer column, text that is not the binary's encoding).
    pub(super) pk: Option<Vec<mysql_async::Value>>,
    /// The key-template and primary-key columns, to build the delete from.
    pub(super) cells: Vec<(String, Cell)>,
}

/// Most splits of one item's key tried; an item with more is counted as not checked.
const MAX_SPLITS: usize = 256;

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
                    .scan_page(target, segment, segments, start.take())
                    .await?;
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
        r.unchecked += tally.unchecked[i];
        if tally.unchecked[i] > 0 {
            r.notes.push(format!(
                "{} item(s) could not be checked for a row (so neither judged extra nor repaired): a primary-key column is in neither a key template nor an attribute, its key text can't be looked up exactly (float, bit, time, an epoch format coarser than the column, ...), or the key splits more than {MAX_SPLITS} ways",
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
            let Some(found) = ctx
                .cfg
                .mapping
                .key_candidates(&b.cfg.source, &item, MAX_SPLITS)
            else {
                continue;
            };
            if found.truncated {
                matched = true;
                unchecked[i] += 1;
                continue;
            }
            if found.rows.is_empty() {
                continue; // no split renders this key: not this block's item
            }
            matched = true;
            if b.cfg.merge
                && !(item.contains_key(&b.version_attribute) && item.keys().any(|n| b.owns(n)))
            {
                continue; // the item does not carry this part
            }
            let Some(keys) = recover_keys(b, &item, found.rows) else {
                unchecked[i] += 1;
                continue;
            };
            claims.entry(key_id.clone()).or_default().push(i);
            per_block[i].push(Candidate {
                block: i,
                item_key: b.item_key(&item).unwrap_or_default(),
                key_id: key_id.clone(),
                display: item_key_display(spec, &item),
                keys,
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
            if is_extra && !blocks[c.block].lookup_safe {
                // A lookup that finds the row is proof; one that finds nothing is not, for
                // keys MySQL may not compare back exactly.
                unchecked[c.block] += 1;
            } else if is_extra {
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

/// The recovered keys of an item: each candidate row of key-template columns, completed with
/// the primary-key columns that no template holds (from the item's attribute of that column),
/// and its lookup values. `None` when a primary-key column can't be recovered.
fn recover_keys(b: &Block<'_>, item: &Item, rows: Vec<Row>) -> Option<Vec<Recovered>> {
    let mut out = Vec::with_capacity(rows.len());
    for Row(mut cells) in rows {
        let mut pk = Some(Vec::with_capacity(b.cfg.primary_key.len()));
        for (n, col) in b.cfg.primary_key.iter().enumerate() {
            let cell = match cells.iter().find(|(c, _)| c == col) {
                Some((_, cell)) => cell.clone(),
                None => {
                    let text = b
                        .pk_from_attribute
                        .iter()
                        .find(|(c, _)| c == col)
                        .and_then(|(_, a)| a.as_ref())
                        .and_then(|a| item.get(a))
                        .and_then(key_text)?;
                    let cell = Cell::Str(text.to_string());
                    cells.push((col.clone(), cell.clone()));
                    cell
                }
            };
            let (kind, ty) = (&b.schema.columns[b.pk_index[n]].kind, b.pk_types[n]);
            pk = pk.and_then(|mut v| {
                v.push(lookup_value(&cell, ty, kind)?);
                Some(v)
            });
        }
        out.push(Recovered { pk, cells });
    }
    Some(out)
}

/// Whether a primary-key column's key text, as the mapping's type renders it, finds its row
/// by lookup: the rendering must be lossless and MySQL must compare it back exactly. Items of
/// blocks with other keys (float, bit, time, an epoch format coarser than the column, a
/// number rendering of a text column, ...) are counted as not checked rather than risk
/// calling them extra (and deleting them).
pub(super) fn lookup_safe(kind: &mysql::ColumnKind, ty: ColumnType) -> bool {
    use mysql::ColumnKind as K;
    use ColumnType as T;
    match kind {
        K::Int { .. } | K::Year => matches!(ty, T::Auto | T::String | T::Number | T::Int | T::Year),
        K::Decimal { .. } => matches!(ty, T::Auto | T::String | T::Number),
        K::Text | K::Enum { .. } => matches!(ty, T::Auto | T::String | T::Enum),
        K::Date => matches!(ty, T::Auto | T::String | T::Date),
        K::DateTime { fsp } | K::Timestamp { fsp } => match ty {
            T::Auto | T::String => true,
            T::DateTime(TimeFormat::Iso | TimeFormat::EpochMicros) => true,
            T::DateTime(TimeFormat::EpochMillis) => *fsp <= 3,
            T::DateTime(TimeFormat::EpochSeconds) => *fsp == 0,
            _ => false,
        },
        K::Binary { .. } => matches!(ty, T::Auto | T::String | T::Binary(_)),
        _ => false,
    }
}

/// The value to look a recovered key cell up by (exact for the columns [`lookup_safe`] accepts):
/// integers as integers, binary keys by their bytes (decoded from the key's encoding),
/// date-times in MySQL's form, anything else as text (MySQL converts it to the column's type).
/// `None` when no row of the column can render this text (so no lookup is needed).
pub(super) fn lookup_value(
    cell: &Cell,
    ty: ColumnType,
    kind: &mysql::ColumnKind,
) -> Option<mysql_async::Value> {
    use mysql::ColumnKind as K;
    use mysql_async::Value as V;
    let text = match cell {
        Cell::Str(s) | Cell::Number(s) => s.as_str(),
        Cell::Bytes(b) => return Some(V::Bytes(b.clone())),
        _ => return None,
    };
    Some(match kind {
        K::Int { .. } | K::Year => match text.parse::<i64>() {
            Ok(n) => V::Int(n),
            Err(_) => V::UInt(text.parse::<u64>().ok()?),
        },
        K::Binary { .. } => V::Bytes(match ty {
            ColumnType::Binary(BinaryEncoding::Base64) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?,
            ColumnType::Binary(BinaryEncoding::Hex) => hex::decode(
                text.strip_prefix("0x")
                    .or_else(|| text.strip_prefix("0X"))
                    .unwrap_or(text),
            )
            .ok()?,
            // DMS renders binary as `0x` + upper-case hex; the key holds that text.
            _ => hex::decode(text.strip_prefix("0x")?).ok()?,
        }),
        K::DateTime { .. } | K::Timestamp { .. } => {
            match convert(cell, ColumnType::DateTime(TimeFormat::Iso)) {
                Ok(Some(AttributeValue::S(iso))) => lookup_param(&iso, kind),
                _ => V::Bytes(text.as_bytes().to_vec()),
            }
        }
        _ => V::Bytes(text.as_bytes().to_vec()),
    })
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

/// The key ids (of this block) that the rows of the candidates' recovered keys map to now.
pub(super) async fn found_key_ids(
    ctx: &Ctx<'_>,
    conn: &mut mysql_async::Conn,
    b: &Block<'_>,
    cands: &[Candidate],
) -> Result<HashSet<String>, VerifyError> {
    let mut out = HashSet::new();
    let mut seen = HashSet::new();
    let pks: Vec<Vec<mysql_async::Value>> = cands
        .iter()
        .flat_map(|c| c.keys.iter().filter_map(|k| k.pk.clone()))
        .filter(|pk| seen.insert(super::repair::pk_bytes(pk)))
        .collect();
    for chunk in pks.chunks(ctx.page_size().max(1)) {
        for row in rows_by_pk(conn, b, chunk).await? {
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
        assert!(lookup_safe(
            &mysql::ColumnKind::Binary { fixed: None },
            ColumnType::Auto
        ));
        assert!(!lookup_safe(&mysql::ColumnKind::Double, ColumnType::Auto));
        assert!(!lookup_safe(
            &mysql::ColumnKind::DateTime { fsp: 3 },
            ColumnType::DateTime(TimeFormat::EpochSeconds)
        ));
        assert!(!lookup_safe(&mysql::ColumnKind::Text, ColumnType::Number));
    }
}
