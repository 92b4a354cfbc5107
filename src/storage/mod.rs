//! Per-shard storage: the keyspace table, value encodings and expiry.

pub mod db;
pub mod hash;
pub mod list;
pub mod record;
pub mod set;
pub mod table;
pub mod value;
pub mod varint;
pub mod zset;

/// Size limits and encoding thresholds from the config, copied into every shard
/// (CONFIG SET updates every copy) so handlers read them without a hop.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// proto-max-bulk-len: the largest string a command may build.
    pub proto_max_bulk_len: u64,
    /// hash-max-listpack-entries.
    pub hash_max_listpack_entries: usize,
    /// hash-max-listpack-value.
    pub hash_max_listpack_value: usize,
    /// set-max-intset-entries.
    pub set_max_intset_entries: usize,
    /// zset-max-listpack-entries.
    pub zset_max_listpack_entries: usize,
    /// zset-max-listpack-value.
    pub zset_max_listpack_value: usize,
    /// list-max-listpack-size.
    pub list_max_listpack_size: i64,
    /// list-compress-depth.
    pub list_compress_depth: i64,
}

impl Limits {
    /// The limits a configuration sets.
    pub fn from_config(c: &crate::config::Config) -> Limits {
        Limits {
            proto_max_bulk_len: c.proto_max_bulk_len,
            hash_max_listpack_entries: c.hash_max_listpack_entries as usize,
            hash_max_listpack_value: c.hash_max_listpack_value as usize,
            set_max_intset_entries: c.set_max_intset_entries as usize,
            zset_max_listpack_entries: c.zset_max_listpack_entries as usize,
            zset_max_listpack_value: c.zset_max_listpack_value as usize,
            list_max_listpack_size: c.list_max_listpack_size,
            list_compress_depth: c.list_compress_depth,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&crate::config::Config::default())
    }
}
