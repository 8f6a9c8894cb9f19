pub mod cdc;
pub mod config;
pub mod mapping;
pub mod sink;
