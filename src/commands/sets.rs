//! The set command family, including the cross-shard SINTER/SUNION/SDIFF family.
