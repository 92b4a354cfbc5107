//! percore-bench: a RESP load generator on Glommio, plus the pieces its tests exercise.

pub mod compare;
pub mod openloop;
pub mod report;
pub mod resp;
pub mod rng;
pub mod runner;
pub mod stats;
pub mod workload;
pub mod zipf;
