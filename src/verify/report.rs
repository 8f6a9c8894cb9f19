//! The result of a run: counts per table, the first findings, repair counts; saved to
//! `verify.state_file` for `cutover status`, and rendered for people.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::VerifyError;

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
    /// no unrecognised item, no unmappable row, and every item was checked (`verdict` is
    /// `clean`).
    pub clean: bool,
    /// The run's verdict. A report saved before verdicts existed reads as `incomplete`.
    #[serde(default = "Verdict::unknown")]
    pub verdict: Verdict,
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
    /// Items that could not be checked for a row (see `notes`): they make the run INCOMPLETE.
    #[serde(default)]
    pub unchecked: u64,
    /// Why the extras pass is incomplete for this table, if it is.
    pub notes: Vec<String>,
    /// Present with `--repair`.
    pub repaired: Option<RepairCounts>,
}

impl TableReport {
    /// missing + different + extra + errors.
    pub fn differences(&self) -> u64 {
        self.missing + self.different + self.extra.unwrap_or(0) + self.errors
    }
}

/// The three verdicts of a run, each with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every row and item checked, nothing differs (after repair, when repairing). Exit 0.
    Clean,
    /// Something differs (or a repair did not take). Exit 1.
    Differences,
    /// Nothing found to differ, but some items could not be checked: not proof. Exit 3.
    Incomplete,
}

impl Verdict {
    fn unknown() -> Verdict {
        Verdict::Incomplete
    }

    /// `DIFFERENCES` when something differs, else `INCOMPLETE` when an item went unchecked,
    /// else `CLEAN`.
    pub fn of(differs: bool, unchecked: u64) -> Verdict {
        match (differs, unchecked) {
            (true, _) => Verdict::Differences,
            (false, 0) => Verdict::Clean,
            (false, _) => Verdict::Incomplete,
        }
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

/// Write the report to `path` (atomically: a temporary file renamed over it).
pub fn save(report: &VerifyReport, path: &Path) -> Result<(), VerifyError> {
    let io = |what: String| move |source| VerifyError::Io { what, source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    }
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(report).map_err(|source| VerifyError::Report {
        what: "serialize the report".into(),
        source,
    })?;
    std::fs::write(&tmp, bytes).map_err(io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("write {}", path.display())))?;
    Ok(())
}

/// The last saved report, if any.
pub fn load(path: &Path) -> Result<Option<VerifyReport>, VerifyError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|source| {
            VerifyError::Report {
                what: format!("parse {}", path.display()),
                source,
            }
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(VerifyError::Io {
            what: format!("read {}", path.display()),
            source,
        }),
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
    let unchecked: u64 = r.tables.iter().map(|t| t.unchecked).sum();
    let verdict = match (r.verdict, r.repair) {
        (Verdict::Clean, true) if diffs > 0 => {
            format!("CLEAN after repair: {fixed} difference(s) repaired")
        }
        (Verdict::Clean, _) => "CLEAN".to_string(),
        (Verdict::Incomplete, repair) => format!(
            "INCOMPLETE: no difference found, but {unchecked} item(s) could not be checked (see the notes){}",
            if repair && fixed > 0 {
                format!("; {fixed} difference(s) repaired")
            } else {
                String::new()
            }
        ),
        (Verdict::Differences, repair) => format!(
            "DIFFERENCES: {diffs} in {} table(s){}{}",
            r.tables.iter().filter(|t| t.differences() > 0).count(),
            if repair {
                format!(", {fixed} repaired")
            } else {
                String::new()
            },
            if unchecked > 0 {
                format!("; {unchecked} item(s) could not be checked")
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
