//! Version lineages. Versions come from binlog coordinates (`cdc::SourcePosition::version`),
//! so a new binlog lineage (`RESET MASTER`, a failover to a server with its own numbering, a
//! blue/green switchover) starts below what is stored, and the guard drops every later change
//! as stale, silently. Two defences:
//! - `sink.version_epoch`: the high-order part of every stored version
//!   (`epoch · 10^30 + binlog version`), so operators continue on a new lineage by raising it;
//! - the stale ratio per table over windows of [`WINDOW`] conditional writes
//!   (`cutover_stale_ratio{table}`), with a loud warning above [`ALARM`].

use std::collections::HashMap;
use std::sync::Mutex;

use super::SinkConfig;
use crate::cdc::Version;

/// Every binlog-derived version is below this (binlog file numbers below 10^10).
pub const EPOCH_FACTOR: u128 = 1_000_000_000_000_000_000_000_000_000_000; // 10^30
/// The largest `sink.version_epoch`: 7 digits over the 30, so every binlog-derived version of
/// every epoch stays below 10^37, where the data-access layer's `complete`-stage versions
/// start (`access::dynamo_store::COMPLETE_BASE`), and within DynamoDB's 38 digits.
pub const MAX_VERSION_EPOCH: u64 = 9_999_999;

/// The version stored and compared in DynamoDB: the epoch above the binlog version. A version
/// at or above [`EPOCH_FACTOR`] is not binlog-derived (the data-access layer's per-item
/// counter in `complete`) and is stored as it is.
pub fn stored_version(cfg: &SinkConfig, v: Version) -> u128 {
    if v >= EPOCH_FACTOR {
        return v;
    }
    u128::from(cfg.version_epoch.min(MAX_VERSION_EPOCH)) * EPOCH_FACTOR + v
}

/// Writes per table per window.
pub const WINDOW: u64 = 1000;
/// A window with more stale writes than this is a warning.
pub const ALARM: f64 = 0.9;

/// Applied and stale conditional writes per table, in the current window.
#[derive(Default)]
pub(super) struct StaleWatch {
    tables: Mutex<HashMap<String, (u64, u64)>>,
}

impl StaleWatch {
    pub(super) fn observe(&self, table: &str, stale: bool, epoch: u64) {
        let mut tables = self.tables.lock().expect("stale watch lock");
        let (writes, stales) = tables.entry(table.to_string()).or_default();
        *writes += 1;
        *stales += u64::from(stale);
        if *writes < WINDOW {
            return;
        }
        let ratio = *stales as f64 / *writes as f64;
        metrics::gauge!("cutover_stale_ratio", "table" => table.to_string()).set(ratio);
        if ratio > ALARM {
            tracing::warn!(
                table,
                stale = *stales,
                writes = *writes,
                version_epoch = epoch,
                "{:.0}% of the last {} writes were stale (the item already holds that version or a newer one). \
                 Expected while replaying over a table that already has the changes; otherwise the \
                 source's binlog lineage has probably changed (RESET MASTER, failover, blue/green) and \
                 every new change is being dropped: raise sink.version_epoch in every writer and \
                 replay from where the new lineage began (README, Known limits)",
                ratio * 100.0,
                *writes
            );
        }
        *writes = 0;
        *stales = 0;
    }
}
