//! The command table and the command families.

pub mod spec;
