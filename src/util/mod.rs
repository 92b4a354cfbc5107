//! Small Redis-exact helpers: glob matching, CRC16 hash slots, number parsing and formatting.

pub mod alloc;
pub mod crc16;
pub mod glob;
pub mod num;
