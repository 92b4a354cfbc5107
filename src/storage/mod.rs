//! Per-shard storage: the keyspace table, value encodings and expiry.
