//! CRC16 (XMODEM) and Redis Cluster hash slots, with `{hash tag}` rules.

/// Number of hash slots in Redis Cluster.
pub const SLOTS: usize = 16384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
pub fn crc16(data: &[u8]) -> u16 {
    let _ = data;
    todo!("crc16: being written")
}

/// The hash slot of `key`: CRC16 of the key, or of its first non-empty `{tag}`, mod 16384.
pub fn key_hash_slot(key: &[u8]) -> u16 {
    let _ = key;
    todo!("crc16: being written")
}
