//! The hash command family: HSET, HGET, HGETALL, HINCRBY, HRANDFIELD, HSCAN and the rest.
