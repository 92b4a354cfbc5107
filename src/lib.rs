//! percore: a Redis-compatible in-memory data store, thread-per-core on Glommio.
//!
//! The request path, top to bottom: `server` accepts connections on every
//! core, `protocol` parses RESP out of the read buffer, `commands` holds the
//! command table and one module per command family, `storage` is the
//! per-shard keyspace those handlers operate on.

pub mod commands;
pub mod config;
pub mod persistence;
pub mod protocol;
pub mod scripting;
pub mod server;
pub mod storage;
pub mod util;

/// The Redis version percore is compatible with, as reported to clients (HELLO, INFO).
pub const REDIS_VERSION: &str = "7.0.15";
