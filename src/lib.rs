//! cutover: move a live MySQL-backed service to DynamoDB with no downtime.
//!
//! # Layout
//! The data path is source → transform → sink, and each module's name is also its config key
//! and, where it has one, its subcommand. Every concept has one module; a module's `//!` says
//! what it guarantees.
//!
//! **Foundation** (imports nothing above itself):
//! - [`error`]: [`error::Disposition`] (`Retry`, `Poison`, `Fatal`), the class every error
//!   type in the crate answers (`Classify::disposition`), and the shared [`error::FatalError`]
//!   that stops a stream. Loops that handle errors are one `match` on the class.
//! - [`config`]: the loading machinery: file + `CUTOVER_*` environment, every unknown key and
//!   bad value listed at once (`serde_ignored`), the issue list. It knows no section.
//! - [`cdc`]: decode Kafka records (AWS DMS JSON, Debezium JSON) into one `ChangeEvent` type,
//!   with the source position that orders changes (`SourcePosition::version`).
//! - [`mapping`] (`[[table]]`): the declarative, validated row → item spec: key templates,
//!   types, renames, derived attributes, merge mode, DynamoDB limits; and its reverse (an item
//!   back to its row, for the data-access layer and verify).
//!
//! **Edges** (the outside world, one module each):
//! - [`kafka`] (`[kafka]`): librdkafka settings, pass-through properties, the `Record`, the
//!   dead-letter topic, the EOF-aware consumer context.
//! - [`mysql`] (`[mysql]`): the source database: pool (UTC sessions), server checks, binlog
//!   position, column model, and the one DMS rendering of MySQL values.
//! - [`sink`] (`[sink]`, `[dynamodb]`): the version-guarded DynamoDB writer (conditional,
//!   rebuild or batch), coalescing, [`sink::retry`] (the one retry policy, full jitter) and
//!   [`sink::dynamo`] (the one DynamoDB edge: writes, reads, BatchGetItem, Scan, tables).
//! - [`flags`] (`[flags]`): the migration stage (off → dualwrite → shadow → live → rampdown
//!   → complete) of each read/write path, per tenant, from a hot-reloaded file or
//!   LaunchDarkly; measurements back to either.
//! - [`telemetry`] (`[telemetry]`): tracing, Prometheus `/metrics`, `/healthz`, `/readyz`.
//!
//! **The stream:**
//! - [`pipeline`]: one batch of records → decode → map → write → dead-letter.
//! - [`tables`]: tables, GSIs and TTL from the mapping; rendered for infra/ so infrastructure
//!   and mapping cannot drift.
//! - [`consumer`]: per-partition ordered workers with bounded queues behind one poll loop that
//!   never waits (a partition whose queue is full is paused, not the loop).
//!
//! **Features** (each takes its sections, or the settings its command resolved):
//! - [`run`] (`[run]`): the consumer group; offsets stored only after durable writes,
//!   committed on revoke and shutdown.
//! - [`verify`] (`[verify]`): compare every mapped MySQL row with its DynamoDB item (missing /
//!   extra / different), sampled or full; repair through the guarded writer.
//! - [`capture`] (`[capture]`): MySQL/MariaDB snapshot + binlog → DMS-format JSON records on
//!   Kafka, checkpointed in a Kafka topic, for users without AWS DMS.
//! - [`access`] (`[access]`): the data-access layer a service links to: a typed
//!   [`access::Store`] per entity over MySQL and DynamoDB, each path routed by its flag stage
//!   ([`access::plan`]), second-write failures queued for repair, shadow comparisons reported.
//! - [`replay`]: re-read from an offset/time into the same or a new table, to each partition's
//!   end offset (or fails saying which fell short), without touching the live group's offsets
//!   (built on `run`).
//! - [`status`] (`[status]`): CDC lag and last applied commit per partition and table, each
//!   path's stage, the last verify, the capture checkpoint's age, the repair queue, and a
//!   READY / NOT READY verdict (reads `verify`'s report).
//!
//! **The application:**
//! - [`app`]: the whole `cutover.toml` ([`Config`]): every section assembled, cross-section
//!   checks, the compiled mapping. Library users (a service using [`access`]) load it here.
//! - [`cli`]: clap types. [`commands`]: one file per subcommand, each
//!   `Settings::resolve(args, &Config)` (every check, no I/O) then `run`. `main.rs`: parse →
//!   load → dispatch → exit code.
//!
//! # Layering
//! Each line imports only from the lines above it; modules on one line never import each
//! other. `tests/layering.rs` parses every `crate::` path in `src/` and fails on a reference
//! that goes up or sideways, so there is no import loop and the foundation stays a foundation.
//! ```text
//! main.rs
//! commands
//! app, cli
//! replay (→ run), status (→ verify)
//! run, verify, capture, access
//! consumer
//! pipeline, tables
//! kafka, mysql, flags, telemetry, sink
//! mapping
//! cdc
//! config
//! error
//! ```
//! Two choices keep it so. A section's type and checks live with the module that owns it, and
//! [`app::Config`] assembles them above every feature, so `config` needs no feature and no
//! feature needs the whole file. Where a lower module needs a higher one's setting, it
//! declares the little it needs and the owner converts into it: [`mapping::ItemShape`] is the
//! part of `[sink]` the mapping checks against (`&SinkConfig` converts), and
//! [`access::Sections`] is what the layer is built from (`&Config` converts).
//!
//! # Kept on purpose
//! - [`access::plan`]: the six-stage table is data; behaviour follows from the table.
//! - [`sink::WriteError`] and its one classification at the edge; the writer's retry loop
//!   asks only the class.
//! - Config loading through `serde_ignored`: every problem in one run, with its key path.
//! - [`consumer::Workers`]: *stop* (drop what is queued) versus *finish* (drain, then stop),
//!   named where it is decided.
//! - One rendering of MySQL values ([`mysql::render`]): snapshot, binlog, verify and the
//!   access layer pass rows through the DMS decoder, so they can't disagree on a value.

pub mod access;
pub mod app;
pub mod capture;
pub mod cdc;
pub mod cli;
pub mod commands;
pub mod config;
pub mod consumer;
pub mod error;
pub mod flags;
pub mod kafka;
pub mod mapping;
pub mod mysql;
pub mod pipeline;
pub mod replay;
pub mod run;
pub mod sink;
pub mod status;
pub mod tables;
pub mod telemetry;
pub mod verify;

pub use app::Config;
