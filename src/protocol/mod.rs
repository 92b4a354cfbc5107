//! RESP: the zero-copy request parser and the RESP2/RESP3 reply encoder.

pub mod parser;
pub mod reply;
