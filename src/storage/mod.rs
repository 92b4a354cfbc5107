//! Per-shard storage: the keyspace table, value encodings and expiry.

pub mod table;
pub mod db;
pub mod value;
