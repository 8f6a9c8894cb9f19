//! Coalescing: the writes of one call folded per item part, so a hot key is written once per
//! batch window, and superseded changes are dropped rather than folded across a gap.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::mapping::{Change, ItemWrite};

/// Fold the writes of each item part in arrival order, dropping any write older than one
/// already seen for that part in this call: the version guard would reject it anyway, and
/// folding it into a newer one could carry attributes across a gap (a re-delivery that starts
/// over, e.g. after a DMS task restart, puts an old change right after a new one, without the
/// changes in between). What remains is an increasing run of one contiguous stretch of the
/// source log, whose fold equals applying it change by change. Every input index is reported.
/// Output order follows first appearance.
pub fn coalesce(writes: Vec<ItemWrite>) -> Vec<(ItemWrite, Vec<usize>)> {
    fold_writes(writes)
        .into_iter()
        .map(|f| (f.write, f.inputs))
        .collect()
}

/// One coalesced write and what it was folded from.
#[derive(Debug, Clone)]
pub struct Folded {
    pub write: ItemWrite,
    /// Indices (into the input) of the writes it covers, in arrival order.
    pub inputs: Vec<usize>,
    /// Those writes themselves when there are several, in the same order: if DynamoDB rejects
    /// the fold, they are re-applied one by one so only the bad one is dead-lettered (a delete
    /// followed by a rejected upsert still writes its tombstone). Empty for a single input.
    pub parts: Vec<ItemWrite>,
}

/// [`coalesce`], keeping the folded inputs of each group of several.
pub fn fold_writes(writes: Vec<ItemWrite>) -> Vec<Folded> {
    let mut index: HashMap<(String, Arc<str>), usize> = HashMap::with_capacity(writes.len());
    let mut groups: Vec<Vec<(usize, ItemWrite)>> = Vec::new();
    for (i, w) in writes.into_iter().enumerate() {
        let k = (
            w.key_id.clone(),
            Arc::from(w.part.version_attribute.as_str()),
        );
        match index.get(&k) {
            Some(&g) => groups[g].push((i, w)),
            None => {
                index.insert(k, groups.len());
                groups.push(vec![(i, w)]);
            }
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let inputs = g.iter().map(|(i, _)| *i).collect();
            let parts = if g.len() > 1 {
                g.iter().map(|(_, w)| w.clone()).collect()
            } else {
                Vec::new()
            };
            let mut acc: Option<ItemWrite> = None;
            for (_, w) in g {
                acc = Some(match acc {
                    None => w,
                    // Superseded: drop it, but a key move anywhere in the group keeps the
                    // group on the conditional path of `rebuild` mode.
                    Some(mut a) if w.version < a.version => {
                        a.key_move |= w.key_move;
                        a
                    }
                    Some(a) => fold(a, w),
                });
            }
            Folded {
                write: acc.expect("non-empty group"),
                inputs,
                parts,
            }
        })
        .collect()
}

fn fold(acc: ItemWrite, next: ItemWrite) -> ItemWrite {
    let key_move = acc.key_move || next.key_move;
    let change = match (acc.change, next.change) {
        (prev, Change::Delete { remove }) => {
            let mut all = match prev {
                Change::Upsert { set, remove } => set
                    .into_iter()
                    .map(|(n, _)| n)
                    .chain(remove)
                    .collect::<Vec<_>>(),
                Change::Delete { remove } => remove,
            };
            all.extend(remove);
            dedup(&mut all);
            Change::Delete { remove: all }
        }
        (
            Change::Upsert {
                set: old,
                remove: old_rm,
            },
            Change::Upsert { set, remove },
        ) => {
            let mut merged: Vec<(String, AttributeValue)> = old
                .into_iter()
                .filter(|(n, _)| !set.iter().any(|(m, _)| m == n) && !remove.contains(n))
                .collect();
            merged.extend(set);
            let mut rm: Vec<String> = old_rm.into_iter().chain(remove).collect();
            rm.retain(|n| !merged.iter().any(|(m, _)| m == n));
            dedup(&mut rm);
            Change::Upsert {
                set: merged,
                remove: rm,
            }
        }
        (Change::Delete { remove: old_rm }, Change::Upsert { set, remove }) => {
            // Re-created after a delete: clear what the deleted row had that the new one lacks.
            let mut rm: Vec<String> = old_rm.into_iter().chain(remove).collect();
            rm.retain(|n| !set.iter().any(|(m, _)| m == n));
            dedup(&mut rm);
            Change::Upsert { set, remove: rm }
        }
    };
    ItemWrite {
        change,
        key_move,
        ..next
    }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
}
