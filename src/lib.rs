//! cutover: move a live MySQL-backed service to DynamoDB with no downtime.
//!
//! # Layout
//! The data path is source → transform → sink, and each module's name is also its config key
//! and, where it has one, its subcommand.
//!
//! - [`cdc`]: decode Kafka records (AWS DMS JSON, Debezium JSON) into one `ChangeEvent` type,
//!   with the source position that orders changes (`SourcePosition::version`).
//! - [`mapping`] (`[[table]]`): the declarative, validated row → item spec: key templates,
//!   types, renames, derived attributes, merge mode, DynamoDB limits.
//! - [`sink`] (`[sink]`, `[dynamodb]`): the version-guarded DynamoDB writer (conditional or
//!   batch), coalescing, retries; [`sink::dynamo`] is the SDK edge behind a mockable trait.
//! - [`pipeline`]: one batch of records → decode → map → write → dead-letter; shared by
//!   `run` and `replay`.
//! - [`consumer`]: per-partition ordered workers with bounded queues behind one poll loop.
//! - [`run`] (`[run]`, `cutover run`): the consumer group; offsets stored only after durable
//!   writes, committed on revoke and shutdown.
//! - [`replay`] (`cutover replay`): re-read from an offset/time into the same or a new table,
//!   without touching the live group's offsets.
//! - [`tables`] (`cutover tables create | render`): tables, GSIs and TTL from the mapping;
//!   `render` feeds infra/ so infrastructure and mapping cannot drift.
//! - [`flags`] (`[flags]`, `cutover flags list | set`): the migration stage
//!   (off → dualwrite → shadow → live → rampdown → complete) of each read/write path, per
//!   tenant, from a hot-reloaded local file or LaunchDarkly; measurements back to either.
//! - [`access`] (`[access]`): the data-access layer a service links to: a typed [`access::Store`]
//!   per entity over MySQL and DynamoDB, each read/write path routed by its flag stage,
//!   second-write failures queued for repair, shadow comparisons reported, and one version
//!   rule shared with the pipeline's writer.
//! - [`dlq`]: the dead-letter topic, with the reason in headers.
//! - [`kafka`] (`[kafka]`): librdkafka settings, pass-through properties.
//! - [`capture`] (`[capture]`, `cutover capture`): MySQL/MariaDB snapshot + binlog → DMS-format
//!   JSON records on Kafka, checkpointed in a Kafka topic, for users without AWS DMS.
//! - [`mysql`] (`[mysql]`): the source database edge: pool (UTC sessions), server checks,
//!   binlog position, column model, and the one DMS rendering of MySQL values.
//! - [`verify`] (`[verify]`, `cutover verify [--repair]`): compare every mapped MySQL row with
//!   its DynamoDB item (missing / extra / different), sampled or full; repair through the
//!   guarded writer at the current binlog position.
//! - [`status`] (`[status]`, `cutover status`): CDC lag and last applied commit per partition
//!   and table, each path's flag stage, the last verify, and a READY / NOT READY verdict.
//! - [`config`]: the layered file (`cutover validate`), every problem reported at once.
//! - [`telemetry`] (`[telemetry]`): tracing, Prometheus `/metrics`, `/healthz`, `/readyz`.
//! - [`cli`]: clap types for the binary in `main.rs`.

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
