//! Per-shard storage: the keyspace table, value encodings and expiry.

pub mod db;
pub mod table;
pub mod value;
