//! Integration tests against the real local stack (MariaDB, the Kafka-protocol broker,
//! DynamoDB Local), started by `localstack/up.sh`. See tests/it/common.

mod access;
mod access_complete;
mod access_errors;
mod access_rollback;
mod backpressure;
mod capture;
mod capture_edges;
mod chat;
#[path = "../../examples/chat_service/chat.rs"]
mod chat_service;
mod common;
mod dlq;
mod errors;
mod flags;
mod flags_rules;
mod ops;
mod rebuild;
mod replay_complete;
mod run_topic;
mod sink_faults;
mod status;
mod stream;
mod telemetry;
mod verify;
mod verify_keys;
#[path = "../../examples/support/workload.rs"]
mod workload;
