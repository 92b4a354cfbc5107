//! The server: executors, listeners, connections and the shard mesh.

use crate::config::Config;

/// Runs the server until shutdown.
pub fn run(config: Config) -> Result<(), String> {
    let _ = config;
    Err("not built yet".into())
}
