//! Redis 7.0's command metadata (arity, flags, key specs, docs) that drives COMMAND and routing.
