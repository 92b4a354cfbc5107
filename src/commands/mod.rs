//! The command table and the command families.

pub mod introspect;
pub mod spec;
