//! Lua scripting (EVAL and SCRIPT), with Redis 7.0's Lua 5.1 semantics through `mlua`.
//!
//! * The script cache (SCRIPT LOAD, EVAL bodies) is process-wide: a script
//!   loaded through a connection on one core runs by sha on every core. It is
//!   a mutex-guarded map touched once per EVAL, never on the keyspace path.
//! * Each core has its own Lua state (thread-local), compiled lazily from
//!   the cache; SCRIPT FLUSH bumps a generation that makes every core start
//!   a fresh state. One script runs at a time per core (a core-local async
//!   mutex), since scripts share their state's KEYS/ARGV globals.
//! * `redis.call` runs a command exactly as EXEC does (`tx::run_block`,
//!   RESP2, the script's database), awaiting other shards: the core keeps
//!   serving other clients while a script waits for a remote shard.
//! * Atomicity: see [`Shape`] and `run_script`.
//! * Timeout: an instruction-count hook marks a script busy past
//!   busy-reply-threshold ([`BUSY`]); connections on every core then answer
//!   BUSY to commands without `allow_busy`, and SCRIPT KILL sets [`KILL`],
//!   which the hook turns into the script's error. The core running a
//!   pure-Lua loop cannot run its connection tasks: the hook serves its
//!   connections and listeners itself (`crate::server::busy`), and stops the
//!   script when SHUTDOWN NOSAVE was asked.
//!
//! * Functions (FCALL, FUNCTION ...): see [`functions`]; they run through
//!   the same `lua::run_body` as EVAL, in a separate per-core Lua state.
//!
//! mlua hands Rust 0 for -0 and for numbers closer to 0 than f64::EPSILON:
//! redis.call/pcall get their numbers as `%.17g` texts made from the stack, the
//! libraries and `{double=...}` read theirs from the stack too. The global
//! `cjson` table's settings are shared by the cores (one set for EVAL, reset by
//! SCRIPT FLUSH, one for functions), as Redis's single states hold them.
//!
//! Known differences from Redis 7.0: a failing `return redis.call(...)` (a
//! Lua tail call) reports line 1, since mlua's async glue is a Lua frame that
//! the tail call replaces; an error object that is a table (`error({err=..})`)
//! reaches Rust as mlua's "table: 0x..." text; redis.sha1hex and redis.log
//! still see such tiny numbers as 0; there is no `__redis__err__handler`
//! global nor `redis.acl_check_cmd`. bit, cjson, cmsgpack and struct are reimplemented
//! in Rust ([`bit`], [`libs`]); the globals are read-only through a patch of
//! the vendored Lua (vendor/lua-src).

pub mod bit;
pub mod functions;
pub mod libs;
pub mod lua;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

/// Bodies of the known scripts by lowercase hex sha1.
static SCRIPTS: Mutex<Option<HashMap<String, Bytes>>> = Mutex::new(None);

/// What the scripts by sha were seen to do (see [`Shape`]).
static SHAPES: Mutex<Option<HashMap<String, Shape>>> = Mutex::new(None);

/// `busy-reply-threshold` in ms (set by the config).
pub static BUSY_THRESHOLD_MS: AtomicU64 = AtomicU64::new(5000);

/// Scripts running past the threshold right now (other clients get BUSY while > 0).
pub static BUSY: AtomicU64 = AtomicU64::new(0);

/// SCRIPT KILL asked the busy scripts to stop.
pub static KILL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A busy script wrote already (SCRIPT KILL answers UNKILLABLE).
pub static BUSY_WROTE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The BUSY error other clients get.
pub const BUSY_ERROR: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// The BUSY error while the busy scripts are functions (Redis's slowscripterr).
pub const BUSY_FN_ERROR: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// Busy scripts that are functions (FCALL), out of [`BUSY`]: FUNCTION KILL stops those.
pub static BUSY_FN: AtomicU64 = AtomicU64::new(0);

/// FUNCTION KILL asked the busy functions to stop.
pub static KILL_FN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The BUSY reply for a refused command: names FUNCTION KILL when only functions are busy.
pub fn busy_error() -> &'static str {
    let f = BUSY_FN.load(Ordering::SeqCst);
    if f > 0 && f >= BUSY.load(Ordering::SeqCst) {
        BUSY_FN_ERROR
    } else {
        BUSY_ERROR
    }
}

/// True when a command must be refused with [`BUSY_ERROR`] (a script is past the threshold).
#[inline]
pub fn refuse_busy(cmd: &crate::commands::Command) -> bool {
    BUSY.load(Ordering::Relaxed) > 0
        && !cmd
            .flags()
            .contains(crate::commands::spec::CmdFlags::ALLOW_BUSY)
}

/// Bumped by SCRIPT FLUSH: cores then drop their Lua state.
pub static GENERATION: AtomicU64 = AtomicU64::new(0);

/// How a script with a given sha must be locked.
///
/// A script is run the first time under a whole-keyspace transaction (its
/// shape is unknown) while recording whether it touched keys it did not
/// declare. Scripts that only touched their declared keys run from then on
/// locking only those keys. Should such a script later reach an undeclared
/// key (its key access depends on data), that keyed run stops before the
/// command runs, is undone and the script is rerun under the global lock
/// (and is `Global` for good), so that the client sees one run, as in
/// Redis. Undoing is free when the run wrote nothing yet; otherwise the
/// run's undo log puts back the before-image of every key it wrote, captured
/// on the key's shard just before the first write to it, and drops the
/// run's records from the AOF part it holds on each shard, all under the
/// run's locks: nobody saw its intermediate state and nothing of it is
/// logged (see `server::tx::UndoLog`). The cost: a keyed, writing run copies
/// each key it writes once (a script pushing on a large list copies the
/// list), the price of running without the global lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Seen to touch only its declared keys.
    Keyed,
    /// Touches undeclared keys or the whole keyspace: always runs globally.
    Global,
}

/// The sha1 of a script body, lowercase hex.
pub fn sha1hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// Stores a script body; returns its sha.
pub fn store(body: &[u8]) -> String {
    let sha = sha1hex(body);
    let mut g = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(HashMap::new)
        .entry(sha.clone())
        .or_insert_with(|| Bytes::copy_from_slice(body));
    sha
}

/// The body of script `sha` (lowercase hex), when known.
pub fn body(sha: &str) -> Option<Bytes> {
    let g = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().and_then(|m| m.get(sha).cloned())
}

/// Number of known scripts (INFO's number_of_cached_scripts).
pub fn count() -> usize {
    let g = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().map_or(0, |m| m.len())
}

/// True when script `sha` is known.
pub fn exists(sha: &str) -> bool {
    let g = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().is_some_and(|m| m.contains_key(sha))
}

/// Forgets every script (SCRIPT FLUSH).
pub fn flush() {
    SCRIPTS.lock().unwrap_or_else(|e| e.into_inner()).take();
    SHAPES.lock().unwrap_or_else(|e| e.into_inner()).take();
    // Redis recreates its EVAL state: the global cjson table's settings too.
    libs::reset_json(libs::JsonScope::Eval);
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// What script `sha` was seen to do, if it ran before.
pub fn shape(sha: &str) -> Option<Shape> {
    let g = SHAPES.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().and_then(|m| m.get(sha).copied())
}

/// Records what script `sha` did (Global is sticky).
pub fn set_shape(sha: &str, s: Shape) {
    let mut g = SHAPES.lock().unwrap_or_else(|e| e.into_inner());
    let m = g.get_or_insert_with(HashMap::new);
    let e = m.entry(sha.to_string()).or_insert(s);
    if s == Shape::Global {
        *e = Shape::Global;
    }
}
