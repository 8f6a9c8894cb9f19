//! `[[table]]`: one block per source table, as written in the file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One `[[table]]` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TableConfig {
    /// Source table as `schema.table` (the MySQL database is the schema).
    pub source: String,
    /// Target DynamoDB table name.
    pub target: String,
    /// Primary-key columns of the source table.
    pub primary_key: Vec<String>,
    /// Partition key attribute: `{ name = "pk", template = "CONV#{conversation_id}" }`.
    pub partition_key: KeyConfig,
    /// Optional sort key attribute: `{ name = "sk", template = "MSG#{created_at}#{id}" }`.
    pub sort_key: Option<KeyConfig>,
    /// The columns that become attributes. Optional, except in merge mode, where it declares
    /// the part of the item this table owns. Unlisted columns are ignored when it is set.
    pub columns: Option<Vec<String>>,
    /// Column types: `auto` (default), `string`, `number`, `int`, `decimal`, `float`, `bool`,
    /// `datetime[:FORMAT]`, `timestamp[:FORMAT]`, `date`, `time`, `year`, `json`, `set`,
    /// `enum`, `binary[:hex|base64]`. FORMAT is `iso` (default, fixed 6-digit fraction),
    /// `epoch_seconds`, `epoch_millis` or `epoch_micros`.
    pub types: BTreeMap<String, String>,
    /// Attribute renames: `{ column = "attribute" }`.
    pub rename: BTreeMap<String, String>,
    /// Columns that never become attributes (they may still be used in keys).
    pub exclude: Vec<String>,
    /// What a NULL column becomes: `remove` (the attribute is removed) or `null` (NULL type).
    pub null: NullPolicy,
    /// What a column absent from the record means: `keep` (leave the attribute as it is;
    /// DMS omits NULLs without IncludeNullAndEmpty and may omit LOBs) or `remove` (needs `columns`).
    pub missing: MissingPolicy,
    /// Constant and derived attributes: `{ entity = "message", gsi1pk = "USER#{sender_id}" }`.
    pub attributes: BTreeMap<String, String>,
    /// A TTL attribute (epoch seconds) derived from a time column or the commit time.
    pub ttl: Option<TtlConfig>,
    /// Merge mode: this table writes only its `columns` into items shared with other tables.
    pub merge: bool,
    /// In merge mode, the table whose delete deletes the whole item (e.g. `users` for
    /// users + preferences). Deleting another part removes only its attributes.
    pub owner: bool,
    /// Global secondary indexes of the target table (for `cutover tables create`).
    pub gsi: Vec<GsiConfig>,
}

/// A key attribute and the template that renders it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyConfig {
    /// Attribute name, e.g. `pk`.
    pub name: String,
    /// Template over columns, e.g. `USER#{id}`; `{{` and `}}` are literal braces.
    pub template: String,
    /// `S` (default) or `N`. An `N` key's template must be a single `{column}`.
    #[serde(rename = "type")]
    pub kind: KeyType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    #[default]
    S,
    N,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
        }
    }
}

/// `[table.ttl]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TtlConfig {
    /// TTL attribute name; it is also the table's TTL attribute for tombstones.
    pub attribute: String,
    /// Time column the expiry counts from; the source commit time when absent.
    pub from: Option<String>,
    /// How long after `from` the item expires, e.g. `"30d"`.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
}

/// `[[table.gsi]]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GsiConfig {
    pub name: String,
    /// Partition key attribute of the index.
    pub partition_key: String,
    #[serde(rename = "partition_key_type")]
    pub partition_key_type: KeyType,
    pub sort_key: Option<String>,
    pub sort_key_type: KeyType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullPolicy {
    #[default]
    Remove,
    Null,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    #[default]
    Keep,
    Remove,
}

/// Default TTL attribute, used for tombstones when a target has no `[table.ttl]`.
pub const DEFAULT_TTL_ATTRIBUTE: &str = "_ttl";

/// What the mapping needs to know of how items are written (`[sink]`): the bookkeeping
/// attributes every write names, and whether writes replace whole items (`batch` mode), which
/// merge mode cannot live with. `&sink::SinkConfig` converts into it, so the mapping never
/// imports the sink that consumes what it produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemShape {
    /// `sink.version_attribute`.
    pub version_attribute: String,
    /// `sink.deleted_attribute`.
    pub deleted_attribute: String,
    /// `sink.write_mode = "batch"`: BatchWriteItem replaces whole items.
    pub batch_writes: bool,
}

impl Default for ItemShape {
    /// `[sink]`'s defaults.
    fn default() -> Self {
        ItemShape {
            version_attribute: "_v".into(),
            deleted_attribute: "_deleted".into(),
            batch_writes: false,
        }
    }
}
