//! Integration tests against the real local stack (MariaDB, the Kafka-protocol broker,
//! DynamoDB Local), started by `localstack/up.sh`. See tests/it/common.

mod access;
mod capture;
mod chat;
#[path = "../../examples/chat_service/chat.rs"]
mod chat_service;
mod common;
mod flags;
mod ops;
mod rebuild;
mod replay_complete;
mod run_topic;
mod sink_faults;
mod status;
mod stream;
mod verify;
mod verify_keys;
#[path = "../../examples/support/workload.rs"]
mod workload;
