pub mod cdc;
pub mod config;
pub mod mapping;
