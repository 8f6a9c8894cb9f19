//! A deterministic (seeded) AWS DMS topic, as a MySQL source behind a DMS task with
//! `IncludeTransactionDetails` and a full before-image would produce it, plus the final rows
//! as truth and a checker that compares a DynamoDB table with that truth.
//!
//! The source is a small shop (`shop.customer`, `shop.orders`, `shop.order_line`,
//! `shop.product`), all mapped onto one single-table-design target ([`tables_toml`]) with key
//! templates over several columns, renames, an excluded column and derived attributes.
//!
//! What the topic holds ([`Shape::Realistic`]):
//! - multi-row transactions (1–5 rows, tables interleaved), each row with `transaction-id`,
//!   `transaction-record-id`, `prev-transaction-id`, `prev-transaction-record-id`,
//!   `commit-timestamp` and a `stream-position` whose binlog file rotates (sequence + 1,
//!   position back to 4) every [`Params::binlog_file_bytes`];
//! - inserts, updates with a full `before-image`, deletes (the row in `data`), inserts of
//!   previously deleted primary keys;
//! - primary-key moves ([`Params::pk_moves`]): an update whose before-image has another primary
//!   key. The Kafka key and partition follow the new key, so old and new keys usually sit on
//!   different partitions. Key moves ([`Params::key_moves`]): an update of a non-key column a
//!   key template reads (the item moves, the Kafka key stays);
//! - at-least-once re-delivery ([`Params::redelivery`]): like DMS task restarts, a stretch of
//!   already-sent records (from a transaction start) is sent again, in order and byte for byte,
//!   after newer ones, each on its own partition;
//! - hostile values: key values containing the templates' separator `#`, unicode (emoji, ZWJ
//!   sequences, CJK, RTL, combining marks, control characters, NUL), strings sent with `\u`
//!   escapes, DECIMALs with up to 38 significant digits as JSON numbers and as strings, FLOATs
//!   in scientific notation, DATETIME(6) with `T…Z` or a space, JSON columns (JSON text in a
//!   string), SETs (empty ones too), `0x` hex binary, NULLs, empty strings.
//!
//! [`Shape::HotKeys`] is the backlog of issue 12.4: every key is inserted, then updated in
//! rounds over all keys, so one key's changes are hundreds of records apart in its partition.
//!
//! The Kafka partition of a record is explicit: FNV-1a of the Kafka key (`schema.table.pk`)
//! modulo the partition count ([`partition_of`]), so the generator knows what each partition
//! holds. [`produce`] writes the topic; [`Truth::expected_items`] maps every final row through
//! the crate's own decoder and mapping (a synthetic DMS `load` record per row); [`check`] scans
//! the table (parallel segments) and counts missing / extra / different items, tombstones
//! (`_deleted = true`) counting as absent.

// Included by several examples (and tests) through #[path]; each uses only part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use cutover::cdc::{self, Decoded, Format};
use cutover::mapping::{Change, Mapped, Mapping};
use cutover::sink::SinkConfig;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

/// The source schema (MySQL database).
pub const SCHEMA: &str = "shop";

/// The source tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Table {
    Customer,
    Orders,
    OrderLine,
    Product,
}

impl Table {
    pub const ALL: [Table; 4] = [
        Table::Customer,
        Table::Orders,
        Table::OrderLine,
        Table::Product,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Customer => "customer",
            Table::Orders => "orders",
            Table::OrderLine => "order_line",
            Table::Product => "product",
        }
    }

    /// `schema.table`.
    pub fn source(self) -> String {
        format!("{SCHEMA}.{}", self.name())
    }

    fn pk_columns(self) -> &'static [&'static str] {
        match self {
            Table::Customer | Table::Orders => &["id"],
            Table::OrderLine => &["order_id", "line_no"],
            Table::Product => &["sku"],
        }
    }

    fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The `[[table]]` blocks mapping the shop onto one target table `target`.
pub fn tables_toml(target: &str) -> String {
    format!(
        r##"
[[table]]
source = "shop.customer"
target = "{target}"
primary_key = ["id"]
partition_key = {{ name = "pk", template = "CUST#{{id}}" }}
sort_key = {{ name = "sk", template = "PROFILE#{{region}}" }}
rename = {{ name = "display_name" }}
exclude = ["password_hash"]
attributes = {{ entity = "customer", gsi1pk = "EMAIL#{{email}}" }}
types = {{ id = "int", balance = "decimal", created_at = "datetime", updated_at = "datetime", prefs = "json", avatar = "binary", is_vip = "bool" }}

[[table]]
source = "shop.orders"
target = "{target}"
primary_key = ["id"]
partition_key = {{ name = "pk", template = "CUST#{{customer_id}}" }}
sort_key = {{ name = "sk", template = "ORDER#{{placed_at}}#{{id}}" }}
attributes = {{ entity = "order" }}
types = {{ placed_at = "datetime", status = "enum", total = "decimal", tags = "set", shipping = "json" }}

[[table]]
source = "shop.order_line"
target = "{target}"
primary_key = ["order_id", "line_no"]
partition_key = {{ name = "pk", template = "ORDER#{{order_id}}" }}
sort_key = {{ name = "sk", template = "LINE#{{line_no}}#{{sku}}" }}
attributes = {{ entity = "line" }}
types = {{ unit_price = "decimal", attrs = "json", raw = "binary" }}

[[table]]
source = "shop.product"
target = "{target}"
primary_key = ["sku"]
partition_key = {{ name = "pk", template = "PROD#{{sku}}" }}
sort_key = {{ name = "sk", template = "DETAILS" }}
rename = {{ title = "name" }}
attributes = {{ entity = "product", vendor = "VENDOR#{{vendor_id}}" }}
types = {{ price = "decimal", weight = "float", dims = "json", image = "binary", launched = "date", active = "bool" }}
"##
    )
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

/// A column value as DMS puts it in JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Null,
    Int(i64),
    /// A JSON number written as this exact text (DECIMAL, FLOAT).
    Num(String),
    Str(String),
    Bool(bool),
}

/// A source row: columns in table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<(&'static str, Val)>);

impl Row {
    pub fn get(&self, column: &str) -> Option<&Val> {
        self.0.iter().find(|(c, _)| *c == column).map(|(_, v)| v)
    }

    fn set(&mut self, column: &'static str, value: Val) {
        match self.0.iter_mut().find(|(c, _)| *c == column) {
            Some(slot) => slot.1 = value,
            None => self.0.push((column, value)),
        }
    }

    /// The row as a DMS `data` object. With `escape_unicode`, every non-ASCII character is
    /// written as `\uXXXX` (surrogate pairs above the BMP), as some producers do.
    pub fn to_json(&self, escape_unicode: bool) -> String {
        let mut out = String::with_capacity(256);
        out.push('{');
        for (i, (c, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_string(&mut out, c, false);
            out.push(':');
            match v {
                Val::Null => out.push_str("null"),
                Val::Int(n) => out.push_str(&n.to_string()),
                Val::Num(t) => out.push_str(t),
                Val::Str(s) => json_string(&mut out, s, escape_unicode),
                Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            }
        }
        out.push('}');
        out
    }
}

fn json_string(out: &mut String, s: &str, escape_unicode: bool) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || (escape_unicode && !c.is_ascii()) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The primary key as text: the key columns' values joined by `.`.
pub fn pk_text(table: Table, row: &Row) -> String {
    table
        .pk_columns()
        .iter()
        .map(|c| match row.get(c) {
            Some(Val::Int(n)) => n.to_string(),
            Some(Val::Str(s)) => s.clone(),
            Some(Val::Num(n)) => n.clone(),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The Kafka key DMS uses with `PartitionIncludeSchemaTable`: `schema.table.pk`.
pub fn kafka_key(table: Table, pk: &str) -> String {
    format!("{SCHEMA}.{}.{pk}", table.name())
}

/// The record's partition: FNV-1a (64-bit) of the Kafka key, modulo `partitions`.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % partitions.max(1) as u64) as i32
}

// ---------------------------------------------------------------------------------------------
// Parameters and output
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Shape {
    /// Mixed CDC traffic (see the module doc).
    Realistic,
    /// Issue 12.4's backlog: each key inserted, then updated in rounds over all keys, so it
    /// has `changes_per_key` records (1 insert + the rest updates), far apart in its partition.
    HotKeys { changes_per_key: usize },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Params {
    pub seed: u64,
    /// Records to emit, re-deliveries included (the result has at least this many: whole
    /// transactions are kept).
    pub records: usize,
    pub partitions: i32,
    pub shape: Shape,
    /// Share of the emitted records that are re-deliveries.
    pub redelivery: f64,
    /// Share of the changes that move a row to another primary key.
    pub pk_moves: f64,
    /// Share of the changes that update a non-key column a key template reads.
    pub key_moves: f64,
    pub deletes: f64,
    /// Share of the changes that insert a previously deleted primary key again.
    pub reinserts: f64,
    pub updates: f64,
    /// Binlog file size: past it the file sequence increments and the position resets.
    pub binlog_file_bytes: u64,
    /// Commit time of the first transaction, seconds since the epoch. Tombstones expire
    /// `sink.tombstone_ttl` after the commit time, and DynamoDB (Local too) deletes expired
    /// items: a topic that is older than that loses its tombstones, and a re-read of older
    /// records then resurrects deleted rows. End-to-end runs start it near now.
    pub start_secs: i64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: 1,
            records: 150_000,
            partitions: 12,
            shape: Shape::Realistic,
            redelivery: 0.05,
            pk_moves: 0.01,
            key_moves: 0.01,
            deletes: 0.07,
            reinserts: 0.01,
            updates: 0.30,
            binlog_file_bytes: 8 << 20,
            start_secs: 1_709_251_200, // 2024-03-01
        }
    }
}

impl Params {
    /// Issue 12.4's backlog shape: `records` records, `changes_per_key` per key, no
    /// re-delivery, moves or deletes.
    pub fn hot_keys(seed: u64, records: usize, partitions: i32, changes_per_key: usize) -> Self {
        Params {
            seed,
            records,
            partitions,
            shape: Shape::HotKeys { changes_per_key },
            redelivery: 0.0,
            pk_moves: 0.0,
            key_moves: 0.0,
            deletes: 0.0,
            reinserts: 0.0,
            ..Params::default()
        }
    }
}

/// What a record does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Kind {
    Insert,
    /// An insert of a primary key that was deleted earlier.
    Reinsert,
    Update,
    /// An update that changes a non-key column a key template reads (the item moves).
    KeyMove,
    /// An update that changes the primary key (before-image has the old one).
    PkMove,
    Delete,
}

/// One unique source change, as it goes on the topic.
#[derive(Debug, Clone)]
pub struct Record {
    /// Kafka key, `schema.table.pk` (the new pk for a move).
    pub key: String,
    pub partition: i32,
    /// The DMS JSON value.
    pub payload: String,
    /// `file·10^20 + pos·10^8 + transaction-record-id`, as `cdc::SourcePosition::version`.
    pub version: u128,
    pub kind: Kind,
    pub table: Table,
    /// The row's primary key after the change (the deleted one for a delete).
    pub pk: String,
    /// The primary key before a [`Kind::PkMove`].
    pub old_pk: Option<String>,
    /// Index (into [`Workload::records`]) of the first record of its transaction.
    pub txn_start: usize,
}

/// The final rows, by (table, primary key).
#[derive(Debug, Clone, Default)]
pub struct Truth {
    pub rows: BTreeMap<(Table, String), Row>,
}

/// Counts describing a generated topic.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Records on the topic, re-deliveries included.
    pub records: usize,
    pub unique: usize,
    pub redelivered: usize,
    pub restarts: usize,
    pub transactions: usize,
    pub multi_row_transactions: usize,
    pub binlog_files: u64,
    pub by_kind: BTreeMap<String, usize>,
    pub by_table: BTreeMap<String, usize>,
    /// PK moves whose old and new Kafka keys sit on different partitions.
    pub cross_partition_moves: usize,
    /// Records whose Kafka key contains `#`.
    pub keys_with_separator: usize,
    pub records_per_partition: Vec<usize>,
    pub truth_rows: usize,
}

/// A generated topic: the unique records in commit order, the order they are sent in, and
/// the truth.
pub struct Workload {
    pub params: Params,
    /// Unique records, in source commit order.
    pub records: Vec<Record>,
    /// What is sent, in order: (index into `records`, is a re-delivery).
    pub emission: Vec<(usize, bool)>,
    pub truth: Truth,
    pub stats: Stats,
}

impl Workload {
    /// The records as sent, in order, with their re-delivery flag.
    pub fn emitted(&self) -> impl Iterator<Item = (&Record, bool)> {
        self.emission.iter().map(|&(i, r)| (&self.records[i], r))
    }

    /// Records per partition (= the end offset of each partition of a fresh topic).
    pub fn end_offsets(&self) -> Vec<i64> {
        self.stats
            .records_per_partition
            .iter()
            .map(|&n| n as i64)
            .collect()
    }

    /// Write `truth.jsonl` (one `{"table","pk","row"}` per final row) and `summary.json`
    /// (parameters and counts) into `dir`.
    pub fn export(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(dir)?;
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("truth.jsonl"))?);
        for ((table, pk), row) in &self.truth.rows {
            let mut pk_json = String::new();
            json_string(&mut pk_json, pk, false);
            writeln!(
                f,
                r#"{{"table":"{}","pk":{pk_json},"row":{}}}"#,
                table.source(),
                row.to_json(false)
            )?;
        }
        f.flush()?;
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_string_pretty(&serde_json::json!({
                "params": self.params,
                "stats": self.stats,
            }))?,
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

const TEXTS: &[&str] = &[
    "plain text",
    "naïve café crème brûlée",
    "Zoë Saldaña",
    "😀👍🏽🚀",
    "👩‍👩‍👧‍👦 family",
    "中文字符测试",
    "日本語のテキスト",
    "한국어 텍스트",
    "עברית מימין לשמאל",
    "العربية",
    "Ελληνικά",
    "Кириллица",
    "e\u{301} combining",
    "quote \" and \\ backslash",
    "tab\tnew\nline\r",
    "ctrl \u{1}\u{1f} chars",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙",
    "<script>alert(1)</script>",
    "'; DROP TABLE customer; --",
    "a#b#c",
    "{braces} and {{double}}",
    "",
    " leading and trailing ",
    "\u{feff}bom",
    "zero\u{200b}width",
    "NUL\u{0}inside",
    "ÀÉÎÕÜ àéîõü ß ÿ",
];
const SKU_PREFIXES: &[&str] = &[
    "SKU", "sku", "ÆØÅ", "😀", "x.y", "中", "a b", "A#B", "ü-ß", "#lead", "dup##",
];
const SKU_SUFFIXES: &[&str] = &["", "#XL", "-红", "#🚀", ".v2", "#", " "];
const REGIONS: &[&str] = &[
    "eu#west#1",
    "us-east-1",
    "ap#南#2",
    "sa-east",
    "me#🌍",
    "af south",
    "x",
];
const EMAIL_LOCAL: &[&str] = &["john.doe+", "josé.", "用户", "o'brien", "a#b.", "zoë_"];
const EMAIL_DOMAIN: &[&str] = &["example.com", "exämple.de", "例子.测试", "x.io"];
const STATUSES: &[&str] = &["new", "paid", "shipped", "delivered", "cancelled"];
const TAGS: &[&str] = &["gift", "fragile", "express", "b2b", "ünïcode", "🎁"];

/// Generate a topic. Deterministic: the same `params` give the same bytes.
pub fn generate(params: Params) -> Workload {
    let mut g = Gen::new(&params);
    match params.shape {
        Shape::Realistic => g.realistic(&params),
        Shape::HotKeys { changes_per_key } => g.hot_keys(&params, changes_per_key.max(1)),
    }
    g.finish(params)
}

type RowKey = (Table, String);

struct Gen {
    rng: StdRng,
    partitions: i32,
    file_bytes: u64,
    /// Live rows, and an index for O(1) random picks and removal.
    live: HashMap<RowKey, Row>,
    live_list: HashMap<Table, Vec<String>>,
    live_pos: HashMap<RowKey, usize>,
    /// Deleted primary keys that are free again.
    deleted: HashMap<Table, Vec<String>>,
    next_id: HashMap<Table, i64>,
    order_ids: Vec<i64>,
    // Source log position.
    file_seq: u64,
    pos: u64,
    /// Where the current transaction began.
    txn_pos: u64,
    txid: u64,
    prev: (u64, u32),
    commit_us: i64,
    // Output.
    records: Vec<Record>,
    emission: Vec<(usize, bool)>,
    restarts: Vec<(usize, usize)>,
    next_restart: usize,
    stats: Stats,
}

impl Gen {
    fn new(p: &Params) -> Gen {
        let mut rng = StdRng::seed_from_u64(p.seed);
        let commit_us = p.start_secs * 1_000_000 + rng.random_range(0..1_000_000i64);
        Gen {
            rng,
            partitions: p.partitions,
            file_bytes: p.binlog_file_bytes.max(4096),
            live: HashMap::new(),
            live_list: HashMap::new(),
            live_pos: HashMap::new(),
            deleted: HashMap::new(),
            next_id: HashMap::from([
                (Table::Customer, 1_000),
                (Table::Orders, 5_000_000_000),
                (Table::OrderLine, 1),
                (Table::Product, 1),
            ]),
            order_ids: Vec::new(),
            file_seq: 2171,
            pos: 4,
            txn_pos: 4,
            txid: 9_324_410_911_751,
            prev: (9_324_410_910_341, 10),
            commit_us,
            records: Vec::new(),
            emission: Vec::new(),
            restarts: Vec::new(),
            next_restart: 0,
            stats: Stats::default(),
        }
    }

    /// Plan the DMS task restarts: (unique records sent before it, records to send again).
    fn plan_restarts(&mut self, p: &Params) -> usize {
        let redelivered = (p.records as f64 * p.redelivery.clamp(0.0, 0.5)).round() as usize;
        let unique = p.records - redelivered;
        if redelivered > 0 {
            let count = (redelivered / 1_500).clamp(1, 50);
            let mut at: Vec<usize> = (0..count)
                .map(|_| self.rng.random_range(unique / 10..unique.max(2) * 9 / 10))
                .collect();
            at.sort_unstable();
            let each = redelivered / count;
            self.restarts = at
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    let len = if i + 1 == count {
                        redelivered - each * (count - 1)
                    } else {
                        each
                    };
                    (a, len)
                })
                .collect();
        }
        unique
    }

    fn realistic(&mut self, p: &Params) {
        let unique = self.plan_restarts(p);
        while self.records.len() < unique {
            let rows = *[1usize, 1, 1, 1, 2, 2, 3, 3, 4, 5]
                .choose(&mut self.rng)
                .expect("non-empty");
            let mut txn = Vec::with_capacity(rows);
            for _ in 0..rows {
                let table = pick_table(&mut self.rng);
                let r: f64 = self.rng.random();
                let mut edge = p.pk_moves;
                let kind = if r < edge {
                    Kind::PkMove
                } else if r < {
                    edge += p.key_moves;
                    edge
                } {
                    Kind::KeyMove
                } else if r < {
                    edge += p.deletes;
                    edge
                } {
                    Kind::Delete
                } else if r < {
                    edge += p.reinserts;
                    edge
                } {
                    Kind::Reinsert
                } else if r < edge + p.updates {
                    Kind::Update
                } else {
                    Kind::Insert
                };
                txn.push((table, kind, None));
            }
            self.transaction(txn);
        }
    }

    fn hot_keys(&mut self, p: &Params, changes_per_key: usize) {
        let unique = self.plan_restarts(p);
        let keys = unique.div_ceil(changes_per_key);
        let mut all: Vec<(Table, Option<RowKey>)> = (0..keys)
            .map(|_| (pick_table(&mut self.rng), None))
            .collect();
        // Round 0 inserts; remember which key each insert created.
        let mut created: Vec<RowKey> = Vec::with_capacity(keys);
        for chunk in chunks(&mut self.rng, all.len()) {
            let txn: Vec<_> = all[chunk]
                .iter()
                .map(|(t, _)| (*t, Kind::Insert, None))
                .collect();
            let start = self.records.len();
            self.transaction(txn);
            created.extend(
                self.records[start..]
                    .iter()
                    .map(|r| (r.table, r.pk.clone())),
            );
        }
        for (slot, key) in all.iter_mut().zip(created) {
            slot.1 = Some(key);
        }
        for _ in 1..changes_per_key {
            all.shuffle(&mut self.rng);
            for chunk in chunks(&mut self.rng, all.len()) {
                let txn: Vec<_> = all[chunk]
                    .iter()
                    .map(|(t, k)| (*t, Kind::Update, k.clone()))
                    .collect();
                self.transaction(txn);
            }
        }
    }

    /// Emit one transaction of (table, kind, explicit row for updates).
    fn transaction(&mut self, rows: Vec<(Table, Kind, Option<RowKey>)>) {
        // A DMS task restart happens between transactions.
        while let Some(&(at, len)) = self.restarts.get(self.next_restart) {
            if self.records.len() < at {
                break;
            }
            self.next_restart += 1;
            let from = self.records.len().saturating_sub(len);
            let from = self.records.get(from).map_or(0, |r| r.txn_start);
            for i in from..self.records.len() {
                self.emission.push((i, true));
            }
            self.stats.restarts += 1;
        }
        self.txid += self.rng.random_range(1..2_000);
        self.commit_us += self.rng.random_range(0..40_000);
        self.txn_pos = self.pos;
        self.pos += 70; // GTID + BEGIN events
        let txn_start = self.records.len();
        let mut rec_id = 0u32;
        for (table, kind, key) in rows {
            let Some((kind, before, after)) = self.change(table, kind, key) else {
                continue;
            };
            rec_id += 1;
            self.push_record(table, kind, before, after, rec_id, txn_start);
        }
        if rec_id > 0 {
            self.stats.transactions += 1;
            if rec_id > 1 {
                self.stats.multi_row_transactions += 1;
            }
        }
        self.pos += 31; // XID event
        if self.pos > self.file_bytes {
            self.file_seq += 1;
            self.pos = 4;
        }
    }

    /// Apply one change to the live rows. Returns (kind, before-image, after-image); for a
    /// delete the deleted row is the "after" (it goes in `data`).
    fn change(
        &mut self,
        table: Table,
        kind: Kind,
        key: Option<RowKey>,
    ) -> Option<(Kind, Option<Row>, Row)> {
        let kind = match kind {
            Kind::Reinsert if self.deleted.get(&table).is_none_or(Vec::is_empty) => Kind::Insert,
            Kind::KeyMove if table == Table::Product => Kind::Update,
            Kind::Update | Kind::KeyMove | Kind::PkMove | Kind::Delete
                if key.is_none() && self.live_list.get(&table).is_none_or(Vec::is_empty) =>
            {
                Kind::Insert
            }
            k => k,
        };
        match kind {
            Kind::Insert => {
                let row = self.new_row(table, None);
                self.add_live(table, row.clone());
                Some((kind, None, row))
            }
            Kind::Reinsert => {
                let list = self.deleted.get_mut(&table).expect("checked");
                let i = self.rng.random_range(0..list.len());
                let pk = list.swap_remove(i);
                let row = self.new_row(table, Some(&pk));
                self.add_live(table, row.clone());
                Some((kind, None, row))
            }
            Kind::Delete => {
                let pk = self.pick_live(table);
                let row = self.remove_live(&(table, pk.clone()));
                self.deleted.entry(table).or_default().push(pk);
                Some((kind, None, row))
            }
            Kind::Update | Kind::KeyMove => {
                let k = key.unwrap_or_else(|| (table, self.pick_live(table)));
                let before = self.live.get(&k)?.clone();
                let mut after = before.clone();
                self.edit(table, &mut after);
                if kind == Kind::KeyMove {
                    self.move_key(table, &mut after);
                }
                self.live.insert(k, after.clone());
                Some((kind, Some(before), after))
            }
            Kind::PkMove => {
                let pk = self.pick_live(table);
                let before = self.remove_live(&(table, pk.clone()));
                // Sometimes onto a key that was deleted earlier.
                let reuse = match self.deleted.get_mut(&table) {
                    Some(list) if !list.is_empty() && self.rng.random_bool(0.2) => {
                        let i = self.rng.random_range(0..list.len());
                        Some(list.swap_remove(i))
                    }
                    _ => None,
                };
                let fresh = self.new_row(table, reuse.as_deref());
                let mut after = before.clone();
                for &c in table.pk_columns() {
                    after.set(c, fresh.get(c).cloned().expect("pk column"));
                }
                self.edit(table, &mut after);
                self.deleted.entry(table).or_default().push(pk);
                self.add_live(table, after.clone());
                Some((kind, Some(before), after))
            }
        }
    }

    fn push_record(
        &mut self,
        table: Table,
        kind: Kind,
        before: Option<Row>,
        after: Row,
        rec_id: u32,
        txn_start: usize,
    ) {
        let pk = pk_text(table, &after);
        let old_pk = (kind == Kind::PkMove).then(|| pk_text(table, before.as_ref().expect("move")));
        let key = kafka_key(table, &pk);
        let partition = partition_of(&key, self.partitions);
        let escape = self.rng.random_bool(0.1);
        let data = after.to_json(escape);
        let before_json = before.as_ref().map(|b| b.to_json(escape));
        let event_pos = self.pos;
        let event_len = 40 + data.len() as u64 + before_json.as_ref().map_or(0, |b| b.len() as u64);
        self.pos += event_len;
        let file = format!("mysql-bin-changelog.{:06}", self.file_seq);
        let operation = match kind {
            Kind::Insert | Kind::Reinsert => "insert",
            Kind::Update | Kind::KeyMove | Kind::PkMove => "update",
            Kind::Delete => "delete",
        };
        let built_us = self.commit_us + self.rng.random_range(100_000..900_000);
        let mut payload = String::with_capacity(data.len() * 2 + 600);
        payload.push_str("{\"data\":");
        payload.push_str(&data);
        if let Some(b) = &before_json {
            payload.push_str(",\"before-image\":");
            payload.push_str(b);
        }
        payload.push_str(&format!(
            concat!(
                r#","metadata":{{"timestamp":"{ts}","record-type":"data","operation":"{op}","#,
                r#""partition-key-type":"primary-key","schema-name":"{schema}","table-name":"{table}","#,
                r#""transaction-id":{txid},"transaction-record-id":{rec},"#,
                r#""prev-transaction-id":{ptx},"prev-transaction-record-id":{prec},"#,
                r#""commit-timestamp":"{commit}","#,
                r#""stream-position":"{file}:{pos}:0:{end}:{txid}:{file}:{txpos}"}}}}"#
            ),
            ts = iso_us(built_us),
            op = operation,
            schema = SCHEMA,
            table = table.name(),
            txid = self.txid,
            rec = rec_id,
            ptx = self.prev.0,
            prec = self.prev.1,
            commit = iso_us(self.commit_us),
            file = file,
            pos = event_pos,
            end = event_pos + event_len,
            txpos = self.txn_pos,
        ));
        self.prev = (self.txid, rec_id);
        let version = u128::from(self.file_seq) * 10u128.pow(20)
            + u128::from(event_pos) * 10u128.pow(8)
            + u128::from(rec_id);
        self.emission.push((self.records.len(), false));
        self.records.push(Record {
            key,
            partition,
            payload,
            version,
            kind,
            table,
            pk,
            old_pk,
            txn_start,
        });
    }

    fn finish(mut self, params: Params) -> Workload {
        let mut s = std::mem::take(&mut self.stats);
        s.unique = self.records.len();
        s.records = self.emission.len();
        s.redelivered = self.emission.iter().filter(|(_, r)| *r).count();
        s.binlog_files = self.file_seq - 2171 + 1;
        s.records_per_partition = vec![0; params.partitions.max(1) as usize];
        for &(i, _) in &self.emission {
            s.records_per_partition[self.records[i].partition as usize] += 1;
        }
        for r in &self.records {
            *s.by_kind.entry(format!("{:?}", r.kind)).or_default() += 1;
            *s.by_table.entry(r.table.source()).or_default() += 1;
            if r.key.contains('#') {
                s.keys_with_separator += 1;
            }
            if let Some(old) = &r.old_pk {
                if partition_of(&kafka_key(r.table, old), params.partitions) != r.partition {
                    s.cross_partition_moves += 1;
                }
            }
        }
        let rows: BTreeMap<RowKey, Row> = self.live.into_iter().collect();
        s.truth_rows = rows.len();
        Workload {
            params,
            records: self.records,
            emission: self.emission,
            truth: Truth { rows },
            stats: s,
        }
    }

    // -- live-row bookkeeping

    fn add_live(&mut self, table: Table, row: Row) {
        let pk = pk_text(table, &row);
        let list = self.live_list.entry(table).or_default();
        self.live_pos.insert((table, pk.clone()), list.len());
        list.push(pk.clone());
        if table == Table::Orders {
            if let Some(Val::Int(id)) = row.get("id") {
                self.order_ids.push(*id);
            }
        }
        let previous = self.live.insert((table, pk), row);
        assert!(previous.is_none(), "a live primary key was inserted again");
    }

    fn remove_live(&mut self, key: &RowKey) -> Row {
        let i = self.live_pos.remove(key).expect("live");
        let list = self.live_list.get_mut(&key.0).expect("live list");
        list.swap_remove(i);
        if let Some(moved) = list.get(i) {
            self.live_pos.insert((key.0, moved.clone()), i);
        }
        self.live.remove(key).expect("live row")
    }

    fn pick_live(&mut self, table: Table) -> String {
        let list = &self.live_list[&table];
        list[self.rng.random_range(0..list.len())].clone()
    }

    // -- values

    fn fresh_pk(&mut self, table: Table) -> Vec<(&'static str, Val)> {
        let n = self.next_id.get_mut(&table).expect("counter");
        *n += 1;
        let n = *n;
        match table {
            Table::Customer | Table::Orders => vec![("id", Val::Int(n))],
            Table::OrderLine => {
                let order = self
                    .order_ids
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or(4_999_999_999);
                vec![("order_id", Val::Int(order)), ("line_no", Val::Int(n))]
            }
            Table::Product => {
                let p = SKU_PREFIXES.choose(&mut self.rng).expect("prefix");
                let s = SKU_SUFFIXES.choose(&mut self.rng).expect("suffix");
                vec![("sku", Val::Str(format!("{p}#{n:05}{s}")))]
            }
        }
    }

    /// A new row; with `pk`, for that (previously used) primary key.
    fn new_row(&mut self, table: Table, pk: Option<&str>) -> Row {
        let mut cols = match pk {
            None => self.fresh_pk(table),
            Some(pk) => parse_pk(table, pk),
        };
        let rng = &mut self.rng;
        match table {
            Table::Customer => {
                let id = match cols[0].1 {
                    Val::Int(n) => n,
                    _ => 0,
                };
                cols.extend([
                    (
                        "email",
                        Val::Str(format!(
                            "{}{id}@{}",
                            EMAIL_LOCAL.choose(rng).expect("x"),
                            EMAIL_DOMAIN.choose(rng).expect("x")
                        )),
                    ),
                    ("name", Val::Str(text(rng))),
                    ("nickname", nullable(rng, 0.3, text)),
                    ("region", Val::Str(pick(rng, REGIONS))),
                    ("balance", Val::Str(decimal(rng, 28, 10))),
                    ("created_at", Val::Str(datetime(rng))),
                    ("updated_at", nullable(rng, 0.5, datetime)),
                    ("prefs", nullable(rng, 0.2, json_doc)),
                    ("avatar", nullable(rng, 0.3, binary)),
                    ("is_vip", Val::Bool(rng.random_bool(0.1))),
                    ("password_hash", Val::Str(binary(rng))),
                ]);
            }
            Table::Orders => {
                let customer = rng.random_range(1_000..1_000 + 40_000i64);
                cols.extend([
                    ("customer_id", Val::Int(customer)),
                    ("placed_at", Val::Str(datetime(rng))),
                    ("status", Val::Str(pick(rng, STATUSES))),
                    ("total", Val::Num(decimal(rng, 20, 8))),
                    ("items_count", Val::Int(rng.random_range(0..50))),
                    ("tags", Val::Str(tags(rng))),
                    ("shipping", nullable(rng, 0.3, json_doc)),
                    ("note", nullable(rng, 0.5, text)),
                ]);
            }
            Table::OrderLine => {
                cols.extend([
                    ("sku", Val::Str(sku_ref(rng))),
                    ("qty", Val::Int(rng.random_range(1..100))),
                    ("unit_price", Val::Str(decimal(rng, 12, 4))),
                    ("attrs", nullable(rng, 0.5, json_doc)),
                    ("raw", nullable(rng, 0.6, binary)),
                ]);
            }
            Table::Product => {
                cols.extend([
                    ("vendor_id", Val::Int(rng.random_range(1..500))),
                    ("title", Val::Str(text(rng))),
                    ("price", Val::Num(decimal(rng, 30, 8))),
                    ("weight", Val::Num(float(rng))),
                    ("stock", Val::Int(rng.random_range(-5..100_000))),
                    ("dims", Val::Str(json_doc(rng))),
                    ("image", nullable(rng, 0.4, binary)),
                    ("launched", Val::Str(date(rng))),
                    ("active", Val::Bool(rng.random_bool(0.8))),
                ]);
            }
        }
        Row(cols)
    }

    /// Change 1–3 non-key columns.
    fn edit(&mut self, table: Table, row: &mut Row) {
        let fresh = self.new_row(table, Some(&pk_text(table, row)));
        let editable: Vec<&'static str> = fresh
            .0
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| !table.pk_columns().contains(c) && !is_key_template_column(table, c))
            .collect();
        let n = self.rng.random_range(1..=3);
        for &c in editable.choose_multiple(&mut self.rng, n) {
            row.set(c, fresh.get(c).cloned().expect("column"));
        }
    }

    /// Change a non-key column a key template reads, so the item moves.
    fn move_key(&mut self, table: Table, row: &mut Row) {
        let rng = &mut self.rng;
        match table {
            Table::Customer => {
                let now = row.get("region").cloned();
                loop {
                    let r = Val::Str(pick(rng, REGIONS));
                    if Some(&r) != now.as_ref() {
                        row.set("region", r);
                        break;
                    }
                }
            }
            Table::Orders => {
                if rng.random_bool(0.5) {
                    let c = match row.get("customer_id") {
                        Some(Val::Int(c)) => *c + 1,
                        _ => 1_000,
                    };
                    row.set("customer_id", Val::Int(c));
                } else {
                    row.set("placed_at", Val::Str(datetime(rng)));
                }
            }
            Table::OrderLine => row.set("sku", Val::Str(sku_ref(rng))),
            Table::Product => {}
        }
    }
}

fn is_key_template_column(table: Table, column: &str) -> bool {
    matches!(
        (table, column),
        (Table::Customer, "region")
            | (Table::Orders, "customer_id" | "placed_at")
            | (Table::OrderLine, "sku")
    )
}

fn parse_pk(table: Table, pk: &str) -> Vec<(&'static str, Val)> {
    match table {
        Table::Customer | Table::Orders => vec![("id", Val::Int(pk.parse().unwrap_or(0)))],
        Table::OrderLine => {
            let (o, l) = pk.split_once('.').unwrap_or((pk, "0"));
            vec![
                ("order_id", Val::Int(o.parse().unwrap_or(0))),
                ("line_no", Val::Int(l.parse().unwrap_or(0))),
            ]
        }
        Table::Product => vec![("sku", Val::Str(pk.to_string()))],
    }
}

/// Split `n` items into transactions of 1–5.
fn chunks(rng: &mut StdRng, n: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < n {
        let len = rng.random_range(1..=5).min(n - at);
        out.push(at..at + len);
        at += len;
    }
    out
}

fn pick_table(rng: &mut StdRng) -> Table {
    match rng.random_range(0..100) {
        0..20 => Table::Customer,
        20..50 => Table::Orders,
        50..85 => Table::OrderLine,
        _ => Table::Product,
    }
}

fn pick(rng: &mut StdRng, from: &[&str]) -> String {
    from.choose(rng).expect("non-empty").to_string()
}

fn nullable(rng: &mut StdRng, p_null: f64, f: fn(&mut StdRng) -> String) -> Val {
    if rng.random_bool(p_null) {
        Val::Null
    } else {
        Val::Str(f(rng))
    }
}

fn text(rng: &mut StdRng) -> String {
    let n = rng.random_range(1..=3);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(TEXTS.choose(rng).expect("x"));
    }
    s
}

fn sku_ref(rng: &mut StdRng) -> String {
    format!(
        "{}#{:05}{}",
        SKU_PREFIXES.choose(rng).expect("x"),
        rng.random_range(1..99_999),
        SKU_SUFFIXES.choose(rng).expect("x")
    )
}

fn tags(rng: &mut StdRng) -> String {
    let n = rng.random_range(0..=3);
    let picked: Vec<&str> = TAGS.choose_multiple(rng, n).copied().collect();
    picked.join(",")
}

/// Exact decimal text: up to `int_digits` integer digits and exactly `scale` fraction digits
/// (trailing zeros kept, as MySQL sends DECIMAL(p,s)).
fn decimal(rng: &mut StdRng, int_digits: usize, scale: usize) -> String {
    let mut s = String::new();
    if rng.random_bool(0.1) {
        s.push('-');
    }
    let digits = if rng.random_bool(0.2) {
        int_digits
    } else {
        rng.random_range(1..=int_digits.min(6))
    };
    s.push(char::from(
        b'0' + rng.random_range(if digits == 1 { 0 } else { 1 }..10),
    ));
    for _ in 1..digits {
        s.push(char::from(b'0' + rng.random_range(0..10)));
    }
    if scale > 0 {
        s.push('.');
        for i in 0..scale {
            let zero_tail = i >= 2 && rng.random_bool(0.3);
            s.push(if zero_tail {
                '0'
            } else {
                char::from(b'0' + rng.random_range(0..10))
            });
        }
    }
    if s == "-0" || s.starts_with("-0.") && s[3..].bytes().all(|b| b == b'0') {
        s.remove(0);
    }
    s
}

/// A FLOAT/DOUBLE as DMS may print it: plain or in scientific notation.
fn float(rng: &mut StdRng) -> String {
    let m = rng.random_range(1..99_999);
    match rng.random_range(0..4) {
        0 => format!("{}.{}E-{}", m / 10_000, m % 10_000, rng.random_range(1..9)),
        1 => format!("{}.{}e{}", m / 10_000, m % 10_000, rng.random_range(1..12)),
        2 => format!("{}.{:04}", m / 10_000, m % 10_000),
        _ => format!("{m}"),
    }
}

/// DATETIME(6): `YYYY-MM-DDTHH:MM:SS.ffffffZ` mostly, sometimes with a space and no zone.
fn datetime(rng: &mut StdRng) -> String {
    let us = 1_577_836_800_000_000 + rng.random_range(0..5 * 365 * 86_400_000_000i64);
    let us = if rng.random_bool(0.1) {
        us - us % 1_000_000
    } else {
        us
    };
    let t = chrono::DateTime::from_timestamp_micros(us).expect("in range");
    if rng.random_bool(0.1) {
        t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

fn date(rng: &mut StdRng) -> String {
    let days = rng.random_range(0..20_000i64);
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("date") + chrono::Days::new(days as u64))
        .format("%Y-%m-%d")
        .to_string()
}

fn iso_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .expect("in range")
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// `0x` + uppercase hex, 1–48 bytes.
fn binary(rng: &mut StdRng) -> String {
    let n = rng.random_range(1..=48);
    let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
    format!("0x{}", hex::encode_upper(bytes))
}

/// JSON text for a JSON column: objects, arrays, unicode keys, exact long numbers, nulls.
fn json_doc(rng: &mut StdRng) -> String {
    let mut s = String::new();
    let t = TEXTS.choose(rng).expect("x");
    let mut t_json = String::new();
    json_string(&mut t_json, t, false);
    match rng.random_range(0..4) {
        0 => s.push_str(&format!(
            r#"{{"theme":"dark","langs":["en","ü","中文"],"score":{},"big":{},"nested":{{"a":[1,2,{{"b":null}}],"t":{t_json}}},"on":true}}"#,
            decimal(rng, 4, 2),
            decimal(rng, 30, 0),
        )),
        1 => s.push_str(&format!(
            r#"[1,"x",{t_json},false,null,{},{{"k":[]}}]"#,
            decimal(rng, 10, 5)
        )),
        2 => s.push_str(&format!(
            r#"{{"addr":{{"line1":{t_json},"zip":"0{}","ключ":"значение","😀":1}},"w":{}}}"#,
            rng.random_range(1000..9999),
            float(rng)
        )),
        _ => s.push_str(&format!(r#"{{"n":{}}}"#, rng.random_range(-1000..1000))),
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Kafka
// ---------------------------------------------------------------------------------------------

/// Produce every emitted record to `topic` on its explicit partition, in emission order, and
/// check that each partition received them in that order from offset 0. Returns the end
/// offset of each partition.
pub async fn produce(brokers: &str, topic: &str, w: &Workload) -> anyhow::Result<Vec<i64>> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "50")
        .set("batch.num.messages", "10000")
        .set("batch.size", "4000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "2000000")
        // One request in flight: a retry can never reorder a partition.
        .set("max.in.flight.requests.per.connection", "1")
        .set("message.timeout.ms", "300000")
        .create()?;
    let sent = cutover::kafka::send_all(
        &producer,
        w.emitted().map(|(r, _)| {
            FutureRecord::to(topic)
                .key(r.key.as_str())
                .payload(r.payload.as_str())
                .partition(r.partition)
        }),
    )
    .await?;
    let mut next = vec![0i64; w.params.partitions as usize];
    for ((r, _), (p, o)) in w.emitted().zip(&sent) {
        anyhow::ensure!(
            *p == r.partition,
            "record for partition {} landed on {p}",
            r.partition
        );
        anyhow::ensure!(
            *o == next[*p as usize],
            "partition {p}: offset {o}, expected {} (not a fresh topic, or reordered)",
            next[*p as usize]
        );
        next[*p as usize] += 1;
    }
    anyhow::ensure!(next == w.end_offsets(), "records per partition differ");
    Ok(next)
}

// ---------------------------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------------------------

/// An item's key: partition key and sort key as text.
pub type ItemKey = (String, Option<String>);
pub type Item = HashMap<String, AttributeValue>;

impl Truth {
    /// Every final row as the item the crate's mapping makes of it: a synthetic DMS `load`
    /// record per row, through `cdc::decode` and `Mapping::map_into(table)`. Fails if a row
    /// does not map, or if two rows map onto one item.
    pub fn expected_items(
        &self,
        mapping: &Mapping,
        table: &str,
    ) -> anyhow::Result<HashMap<ItemKey, Item>> {
        let target: Arc<str> = Arc::from(table);
        let mut out = HashMap::with_capacity(self.rows.len());
        for ((t, pk), row) in &self.rows {
            let record = format!(
                r#"{{"data":{},"metadata":{{"timestamp":"2024-03-01T00:00:00.000000Z","record-type":"data","operation":"load","partition-key-type":"primary-key","schema-name":"{SCHEMA}","table-name":"{}"}}}}"#,
                row.to_json(false),
                t.name()
            );
            let Decoded::Change(ev) = cdc::decode(Some(record.as_bytes()), Format::Dms)
                .map_err(|e| anyhow::anyhow!("{}.{pk}: decode: {e}", t.source()))?
            else {
                anyhow::bail!("{}.{pk}: not a change", t.source());
            };
            let Mapped::Writes(writes) = mapping
                .map_into(&ev, &target)
                .map_err(|e| anyhow::anyhow!("{}.{pk}: map: {e}", t.source()))?
            else {
                anyhow::bail!("{} is not mapped", t.source());
            };
            for w in writes {
                let Change::Upsert { set, .. } = w.change else {
                    anyhow::bail!("{}.{pk}: a load mapped to a delete", t.source());
                };
                let mut item: Item = w
                    .key
                    .iter()
                    .map(|k| (k.name.to_string(), k.value.clone()))
                    .collect();
                item.extend(set);
                let key = item_key(&item, mapping, table)?;
                if out.insert(key.clone(), item).is_some() {
                    anyhow::bail!("two rows map onto the item {key:?}");
                }
            }
        }
        Ok(out)
    }
}

fn key_names(mapping: &Mapping) -> anyhow::Result<(String, Option<String>)> {
    let spec = mapping
        .targets()
        .values()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the mapping has no target"))?;
    Ok((
        spec.partition_key.0.clone(),
        spec.sort_key.as_ref().map(|s| s.0.clone()),
    ))
}

fn item_key(item: &Item, mapping: &Mapping, table: &str) -> anyhow::Result<ItemKey> {
    let (pk, sk) = key_names(mapping)?;
    let text = |name: &str| -> anyhow::Result<String> {
        match item.get(name) {
            Some(AttributeValue::S(s) | AttributeValue::N(s)) => Ok(s.clone()),
            other => anyhow::bail!("{table}: key attribute {name} is {other:?}"),
        }
    };
    Ok((text(&pk)?, sk.as_deref().map(text).transpose()?))
}

/// Every item of `table`, read by `segments` parallel Scan segments.
pub async fn scan_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    segments: i32,
) -> anyhow::Result<Vec<Item>> {
    let tasks = (0..segments).map(|segment| {
        let client = client.clone();
        let table = table.to_string();
        async move {
            let mut items = Vec::new();
            let mut start: Option<Item> = None;
            loop {
                let page = client
                    .scan()
                    .table_name(&table)
                    .segment(segment)
                    .total_segments(segments)
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("scan {table} segment {segment}: {e:?}"))?;
                items.extend(page.items.unwrap_or_default());
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
            anyhow::Ok(items)
        }
    });
    Ok(futures::future::try_join_all(tasks)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// How a table compares with the truth.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Diff {
    /// Items the truth implies.
    pub expected: usize,
    /// Live items in the table (tombstones excluded).
    pub items: usize,
    pub tombstones: usize,
    /// Expected items absent (or tombstoned).
    pub missing: usize,
    /// Live items the truth does not explain.
    pub extra: usize,
    /// Items present on both sides whose attributes differ.
    pub different: usize,
    /// A few examples: key and differing attribute names.
    pub examples: Vec<String>,
}

impl Diff {
    pub fn differences(&self) -> usize {
        self.missing + self.extra + self.different
    }
}

/// Compare `actual` items with `expected`. Bookkeeping attributes (the version attributes,
/// `deleted_attribute`, and the TTL attribute unless expected) are ignored; an item with
/// `deleted_attribute = true` counts as absent. Numbers compare by value, sets unordered.
pub fn diff(
    expected: &HashMap<ItemKey, Item>,
    actual: Vec<Item>,
    mapping: &Mapping,
    sink: &SinkConfig,
    table: &str,
) -> anyhow::Result<Diff> {
    let ttl = mapping
        .targets()
        .values()
        .next()
        .map(|t| t.ttl_attribute.clone())
        .unwrap_or_default();
    let mut d = Diff {
        expected: expected.len(),
        ..Diff::default()
    };
    let mut seen = HashSet::with_capacity(actual.len());
    let note = |d: &mut Diff, s: String| {
        if d.examples.len() < 8 {
            d.examples.push(s);
        }
    };
    for item in actual {
        if matches!(
            item.get(&sink.deleted_attribute),
            Some(AttributeValue::Bool(true))
        ) {
            d.tombstones += 1;
            continue;
        }
        d.items += 1;
        let key = item_key(&item, mapping, table)?;
        let Some(want) = expected.get(&key) else {
            d.extra += 1;
            note(&mut d, format!("extra {key:?}"));
            continue;
        };
        seen.insert(key.clone());
        let keep = |name: &str, other: &Item| {
            !name.starts_with(&sink.version_attribute)
                && name != sink.deleted_attribute
                && (name != ttl || other.contains_key(name))
        };
        let mut names: Vec<&String> = item
            .keys()
            .filter(|n| keep(n, want))
            .chain(want.keys().filter(|n| keep(n, &item)))
            .collect();
        names.sort();
        names.dedup();
        let differing: Vec<&String> = names
            .into_iter()
            .filter(|n| item.get(*n).map(normalize) != want.get(*n).map(normalize))
            .collect();
        if !differing.is_empty() {
            d.different += 1;
            note(&mut d, format!("different {key:?}: {differing:?}"));
        }
    }
    for key in expected.keys() {
        if !seen.contains(key) {
            d.missing += 1;
            note(&mut d, format!("missing {key:?}"));
        }
    }
    Ok(d)
}

/// Scan `table` and compare it with the truth mapped by `mapping`.
pub async fn check(
    client: &aws_sdk_dynamodb::Client,
    mapping: &Mapping,
    sink: &SinkConfig,
    table: &str,
    truth: &Truth,
) -> anyhow::Result<Diff> {
    let expected = truth.expected_items(mapping, table)?;
    let actual = scan_items(client, table, 4).await?;
    diff(&expected, actual, mapping, sink, table)
}

/// A value in a comparable form: numbers by their plain decimal text, sets sorted.
fn normalize(v: &AttributeValue) -> AttributeValue {
    let num = |n: &String| cutover::mapping::plain_number(n, true).unwrap_or_else(|_| n.clone());
    match v {
        AttributeValue::N(n) => AttributeValue::N(num(n)),
        AttributeValue::Ns(ns) => {
            let mut v: Vec<String> = ns.iter().map(num).collect();
            v.sort();
            AttributeValue::Ns(v)
        }
        AttributeValue::Ss(ss) => {
            let mut v = ss.clone();
            v.sort();
            AttributeValue::Ss(v)
        }
        AttributeValue::L(l) => AttributeValue::L(l.iter().map(normalize).collect()),
        AttributeValue::M(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests of the generator's own invariants
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use cutover::cdc::{ChangeEvent, Op};

    fn small(seed: u64) -> Workload {
        generate(Params {
            seed,
            records: 20_000,
            partitions: 8,
            binlog_file_bytes: 1 << 20,
            ..Params::default()
        })
    }

    fn decode(r: &Record) -> ChangeEvent {
        match cdc::decode(Some(r.payload.as_bytes()), Format::Dms) {
            Ok(Decoded::Change(ev)) => ev,
            other => panic!("record {} does not decode: {other:?}", r.key),
        }
    }

    fn table_of(ev: &ChangeEvent) -> Table {
        assert_eq!(ev.table.schema, SCHEMA);
        Table::from_name(&ev.table.table).expect("known table")
    }

    /// The primary key of a decoded row, as `pk_text` renders it.
    fn decoded_pk(table: Table, row: &cdc::Row) -> String {
        table
            .pk_columns()
            .iter()
            .map(|c| match row.get(c) {
                Some(cdc::Cell::Number(n) | cdc::Cell::Str(n)) => n.clone(),
                other => panic!("pk column {c}: {other:?}"),
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    fn truth_as_cells(w: &Workload) -> BTreeMap<(Table, String), cdc::Row> {
        w.truth
            .rows
            .iter()
            .map(|(k, row)| {
                (
                    k.clone(),
                    cdc::dms::row_from_json(&row.to_json(false)).expect("row decodes"),
                )
            })
            .collect()
    }

    /// Fold decoded changes into rows; with `guard`, a change applies only if its version is
    /// at least the one last applied to that row (what the sink's condition does).
    fn fold<'a>(
        records: impl Iterator<Item = &'a Record>,
        guard: bool,
    ) -> BTreeMap<(Table, String), cdc::Row> {
        let mut state: HashMap<(Table, String), (u128, Option<cdc::Row>)> = HashMap::new();
        let mut apply = |key: (Table, String), v: u128, row: Option<cdc::Row>| {
            let slot = state.entry(key).or_insert((0, None));
            if !guard || v >= slot.0 {
                *slot = (v, row);
            }
        };
        for r in records {
            let ev = decode(r);
            let table = table_of(&ev);
            let v = ev.position.version();
            match ev.op {
                Op::Delete => {
                    let row = ev.before.expect("deleted row");
                    apply((table, decoded_pk(table, &row)), v, None);
                }
                _ => {
                    let after = ev.after.expect("after");
                    let pk = decoded_pk(table, &after);
                    if let Some(before) = &ev.before {
                        let old = decoded_pk(table, before);
                        if old != pk {
                            apply((table, old), v, None);
                        }
                    }
                    apply((table, pk), v, Some(after));
                }
            }
        }
        state
            .into_iter()
            .filter_map(|(k, (_, row))| Some((k, row?)))
            .collect()
    }

    #[test]
    fn truth_is_the_fold_of_the_records_in_commit_order() {
        let w = small(7);
        assert!(w.stats.records >= 20_000, "{:?}", w.stats);
        assert_eq!(fold(w.records.iter(), false), truth_as_cells(&w));
    }

    #[test]
    fn guarded_fold_of_the_emitted_stream_is_the_truth() {
        let w = small(8);
        assert!(w.stats.redelivered > 0);
        let truth = truth_as_cells(&w);
        assert!(fold(w.emitted().map(|(r, _)| r), true) == truth);
        // Partitions are consumed independently: drain them one after another, in both
        // directions. The guard still converges; without it, re-delivered and cross-partition
        // (PK move) records break the result, so the topic really is out of order.
        for reverse in [false, true] {
            let mut by_partition: Vec<&Record> = w.emitted().map(|(r, _)| r).collect();
            by_partition.sort_by_key(|r| if reverse { -r.partition } else { r.partition });
            assert!(fold(by_partition.iter().copied(), true) == truth);
            assert!(fold(by_partition.iter().copied(), false) != truth);
        }
    }

    #[test]
    fn versions_increase_in_commit_order_and_match_the_decoder() {
        let w = small(9);
        let mut last = 0u128;
        let mut files = HashSet::new();
        for r in &w.records {
            let ev = decode(r);
            assert_eq!(ev.position.version(), r.version, "{}", r.payload);
            assert!(r.version > last, "versions must increase");
            last = r.version;
            files.insert(ev.position.log_file_seq.expect("file"));
            assert!(ev.position.transaction_id.is_some());
            assert!(ev.position.record_in_txn.is_some());
            assert!(ev.position.commit_ts_us.is_some());
            assert!(r.payload.contains("\"prev-transaction-id\":"));
        }
        assert!(files.len() > 3, "binlog rotation: {} files", files.len());
        assert!(w.stats.multi_row_transactions > 1000, "{:?}", w.stats);
    }

    #[test]
    fn every_pk_move_has_a_before_image_and_follows_the_new_key() {
        let w = small(10);
        let mut moves = 0;
        for r in &w.records {
            let ev = decode(r);
            let table = table_of(&ev);
            let Some(after) = &ev.after else { continue };
            assert_eq!(r.key, kafka_key(table, &decoded_pk(table, after)));
            assert_eq!(r.partition, partition_of(&r.key, w.params.partitions));
            if r.kind == Kind::PkMove {
                let before = ev
                    .before
                    .as_ref()
                    .expect("a PK move carries a before-image");
                assert_ne!(decoded_pk(table, before), decoded_pk(table, after));
                assert_eq!(r.old_pk.as_deref(), Some(&*decoded_pk(table, before)));
                moves += 1;
            } else if let Some(before) = &ev.before {
                assert_eq!(decoded_pk(table, before), decoded_pk(table, after));
            }
            if ev.op == Op::Update {
                assert!(ev.before.is_some(), "every update has a before-image");
            }
        }
        let share = moves as f64 / w.records.len() as f64;
        assert!((0.005..0.02).contains(&share), "PK moves {share}");
        assert!(w.stats.cross_partition_moves * 2 > moves);
    }

    #[test]
    fn redeliveries_are_exact_copies_sent_after_newer_records() {
        let w = small(11);
        let share = w.stats.redelivered as f64 / w.stats.records as f64;
        assert!((0.03..0.07).contains(&share), "re-delivery {share}");
        // Materialize what goes on the wire, per partition.
        let mut wire: Vec<Vec<(String, String, u128)>> =
            vec![Vec::new(); w.params.partitions as usize];
        let mut out_of_order = 0;
        for (r, redelivered) in w.emitted() {
            let part = &mut wire[r.partition as usize];
            if redelivered {
                assert!(
                    part.iter().any(|(k, p, _)| *k == r.key && *p == r.payload),
                    "a re-delivery repeats a record already sent on the same partition"
                );
                if part.last().is_some_and(|(_, _, v)| *v > r.version) {
                    out_of_order += 1;
                }
            }
            part.push((r.key.clone(), r.payload.clone(), r.version));
        }
        assert!(out_of_order > 0);
        assert!(w.stats.restarts >= 1);
    }

    #[test]
    fn deterministic_and_hostile() {
        let a = small(12);
        let b = small(12);
        let c = small(13);
        assert!(a
            .emitted()
            .map(|(r, _)| &r.payload)
            .eq(b.emitted().map(|(r, _)| &r.payload)));
        assert!(!a
            .emitted()
            .map(|(r, _)| &r.payload)
            .eq(c.emitted().map(|(r, _)| &r.payload)));
        assert!(a.stats.keys_with_separator > 100);
        let all: String = a.records.iter().map(|r| r.payload.as_str()).collect();
        for needle in [
            "\\u",
            "\\u0000",
            "😀",
            "E-",
            "0x",
            "null",
            "before-image",
            "\"{\\\"",
            ":\"\"",
        ] {
            assert!(all.contains(needle), "no {needle:?} in the topic");
        }
        for k in [
            Kind::Delete,
            Kind::Reinsert,
            Kind::KeyMove,
            Kind::Insert,
            Kind::Update,
        ] {
            assert!(
                a.stats
                    .by_kind
                    .get(&format!("{k:?}"))
                    .is_some_and(|n| *n > 50),
                "{k:?}"
            );
        }
    }

    #[test]
    fn truth_maps_to_distinct_items() {
        let w = small(14);
        let cfg = cutover::Config::from_toml(&tables_toml("soak-test")).expect("mapping parses");
        let mapping = Mapping::new(&cfg.tables, &cfg.sink).expect("mapping is valid");
        let items = w.truth.expected_items(&mapping, "soak-test").expect("maps");
        assert_eq!(items.len(), w.truth.rows.len());
        // And every record of the topic maps, so nothing is dead-lettered.
        for r in &w.records {
            mapping.map(&decode(r)).expect("maps");
        }
        // The checker: the truth against itself is clean; a dropped and a changed item show.
        let mut actual: Vec<Item> = items.values().cloned().collect();
        actual.pop();
        actual[0].insert("qty".into(), AttributeValue::N("123456".into()));
        let mut tomb = actual[1].clone();
        tomb.insert("_deleted".into(), AttributeValue::Bool(true));
        actual[1] = tomb;
        let d = diff(&items, actual, &mapping, &cfg.sink, "soak-test").expect("diff");
        assert_eq!((d.missing, d.extra, d.different), (2, 0, 1), "{d:?}");
    }

    #[test]
    fn hot_keys_spread_each_keys_changes_through_its_partition() {
        let w = generate(Params::hot_keys(3, 20_000, 8, 10));
        assert_eq!(w.stats.redelivered, 0);
        let mut per_key: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut offset = [0usize; 8];
        for (r, _) in w.emitted() {
            per_key
                .entry(r.key.as_str())
                .or_default()
                .push(offset[r.partition as usize]);
            offset[r.partition as usize] += 1;
        }
        assert_eq!(per_key.len(), 2_000);
        let mut gaps = Vec::new();
        for offsets in per_key.values() {
            assert_eq!(offsets.len(), 10);
            gaps.extend(offsets.windows(2).map(|p| p[1] - p[0]));
        }
        gaps.sort_unstable();
        assert!(
            gaps[gaps.len() / 2] >= 100,
            "median gap {}",
            gaps[gaps.len() / 2]
        );
        assert_eq!(fold(w.records.iter(), false), truth_as_cells(&w));
    }
}
