//! Command-line surface (clap types only; the logic lives in the modules they name).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::replay::{ReplayFrom, ReplayUntil};
use crate::sink::WriteMode;
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "cutover",
    version,
    about = "Move a live MySQL-backed service to DynamoDB with no downtime"
)]
pub struct Cli {
    /// Configuration file (TOML). `CUTOVER_*` environment variables override it.
    #[arg(
        long,
        short,
        global = true,
        env = "CUTOVER_CONFIG",
        default_value = "cutover.toml"
    )]
    pub config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration and print every problem at once.
    Validate,
    /// Consume the change topics and write DynamoDB items until stopped.
    Run,
    /// Read MySQL (full load, then the binlog) and write DMS-format records to Kafka.
    Capture,
    /// Re-read the topics from an offset or time and rebuild a table.
    Replay(ReplayArgs),
    /// Manage the DynamoDB tables the mapping implies.
    Tables {
        #[command(subcommand)]
        command: TablesCommand,
    },
    /// Compare every mapped MySQL row with its DynamoDB item; `--repair` fixes differences.
    /// Exit 0 clean, 1 differences (or a failure), 2 configuration error.
    Verify(VerifyArgs),
    /// CDC lag, last applied commit, last verify, and a READY / NOT READY verdict (exit 0 / 1).
    Status {
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Show or change the migration stage of the service's read/write paths (`[flags]`).
    Flags {
        #[command(subcommand)]
        command: FlagsCommand,
    },
}

impl Command {
    /// The commands that consume the change topics: they need `kafka.topics` (`validate` is
    /// strict and checks it too).
    pub fn consumes_topics(&self) -> bool {
        matches!(
            self,
            Command::Validate | Command::Run | Command::Replay(_) | Command::Status { .. }
        )
    }
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Rewrite missing and different items from MySQL and delete extras, through the
    /// version-guarded writer at the current binlog position; then check them again.
    #[arg(long)]
    pub repair: bool,
    /// Check a sample per table: a ratio (`0.01`, `1%`) or a row count (`5000`). Extras
    /// (items without a row) are not checked when sampling.
    #[arg(long)]
    pub sample: Option<crate::verify::Sample>,
    /// How many keys to list per kind of difference and table.
    #[arg(long, default_value_t = 10)]
    pub show: usize,
    /// Print the expected and actual values of differing attributes (redacted by default).
    #[arg(long)]
    pub show_values: bool,
    /// Verify only this source table (`schema.table`); repeatable. Default: every mapped table.
    #[arg(long = "table")]
    pub tables: Vec<String>,
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

#[derive(Debug, Subcommand)]
pub enum FlagsCommand {
    /// Every declared path with its stage and where the stage came from.
    List {
        /// Evaluate for this tenant (per-tenant overrides / LaunchDarkly targeting).
        #[arg(long)]
        tenant: Option<String>,
        /// Evaluate for this request/user key (LaunchDarkly user targeting).
        #[arg(long)]
        key: Option<String>,
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Set a path's stage, or one tenant's override, in the flag file (atomic replace; the
    /// running service picks it up within `flags.reload`). File source only.
    Set {
        /// A path declared under [flags.paths], e.g. `message.read`.
        path: String,
        /// off, dualwrite, shadow, live, rampdown or complete.
        stage: crate::flags::Stage,
        /// Set this tenant's override instead of the path's stage.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// `earliest`, `partition:offset,...` (unlisted partitions are skipped), or an RFC 3339 time.
    #[arg(long, default_value = "earliest")]
    pub from: ReplayFrom,
    /// `end`, or an RFC 3339 time (records after it are not applied).
    #[arg(long, default_value = "end")]
    pub until: ReplayUntil,
    /// Replay only this source table (`schema.table`); repeatable. Default: every mapped table.
    #[arg(long = "table")]
    pub tables: Vec<String>,
    /// Write into this table instead of the mapping's target.
    #[arg(long)]
    pub target_table: Option<String>,
    /// Create `--target-table` from the mapping first (key schema, GSIs, TTL).
    #[arg(long, requires = "target_table")]
    pub create_table: bool,
    /// Override `sink.write_mode` (e.g. `batch` for a single-writer rebuild into a new table).
    #[arg(long, value_enum)]
    pub write_mode: Option<WriteModeArg>,
    /// Allow `--write-mode batch` (no version checks) into a table this replay did not create.
    #[arg(long)]
    pub force_batch: bool,
    /// A partition with no new record for this long counts as fully read.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WriteModeArg {
    /// One guarded write per item: exact, safe with concurrent writers.
    Conditional,
    /// BatchWriteItem without conditions: fast, not exact under re-delivery or key moves.
    Batch,
    /// BatchWriteItem after reading the stored versions, key moves applied last under the
    /// guard: exact, close to batch speed; only into a table this replay creates.
    Rebuild,
}

impl From<WriteModeArg> for WriteMode {
    fn from(m: WriteModeArg) -> Self {
        match m {
            WriteModeArg::Conditional => WriteMode::Conditional,
            WriteModeArg::Batch => WriteMode::Batch,
            WriteModeArg::Rebuild => WriteMode::Rebuild,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// Create the target tables that do not exist yet.
    Create {
        /// Only this target table; repeatable.
        #[arg(long = "table")]
        tables: Vec<String>,
    },
    /// Print the tables the mapping implies, for infra/ (no AWS access needed).
    Render {
        /// `json` (consumed by infra/terraform/modules/dynamodb_tables) or `terraform`
        /// (a `.tf.json` file of aws_dynamodb_table resources).
        #[arg(long, value_enum, default_value_t = RenderFormat::Json)]
        format: RenderFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RenderFormat {
    Json,
    Terraform,
}
