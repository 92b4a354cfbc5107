//! Persistence: Redis-format RDB snapshots (fork-less), their loading, and the shared save state.

pub mod aof;
pub mod crc64;
pub mod lzf;
pub mod rdb;
pub mod snapshot;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::server::exec::shard_of_key;
use crate::storage::db::StrEncoding;
use crate::storage::hash::{HashLimits, HashValue};
use crate::storage::list::{End, ListValue};
use crate::storage::set::SetValue;
use crate::storage::value::{Object, OwnedValue};
use crate::storage::zset::{ZLimits, ZSetValue};
use rdb::{LoadError, LoadedKey, LoadedValue};

/// Starts `f` on a thread of its own and returns what waits for its result
/// without blocking the core. Not Glommio's `spawn_blocking`: its pool has
/// one thread per executor, and Glommio queues its own file operations there
/// (the AOF's truncate at a file switch), so a long job in it would hold the
/// AOF writer (and `appendfsync always` replies) until the job ends.
pub fn spawn_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<impl std::future::Future<Output = Result<T, String>>, String> {
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start the {name} thread: {e}"))?;
    let name = name.to_string();
    Ok(async move { rx.await.map_err(|_| format!("the {name} thread panicked")) })
}

/// Server-wide save state (Redis's server.lastsave, rdb_child_pid, ...), read by INFO.
#[derive(Debug)]
pub struct State {
    /// A snapshot is running (SAVE or BGSAVE).
    pub in_progress: AtomicBool,
    /// The running snapshot is a background one.
    pub background: AtomicBool,
    /// When it started (s).
    pub started_secs: AtomicU64,
    /// Unix time (s) of the last successful save (start time of the server before any).
    pub lastsave: AtomicU64,
    /// rdb_last_bgsave_status.
    pub last_bgsave_ok: AtomicBool,
    /// When the last save failed (s), for the save-point retry delay.
    pub last_fail_secs: AtomicU64,
    /// rdb_last_bgsave_time_sec (-1 before any).
    pub last_bgsave_secs: AtomicI64,
    /// rdb_saves.
    pub saves: AtomicU64,
    /// Bytes written by write hooks ahead of the walker in the running snapshot.
    pub cow_bytes: AtomicU64,
    /// rdb_last_cow_size: `cow_bytes` of the last background save.
    pub last_cow: AtomicU64,
    /// current_save_keys_processed.
    pub keys_processed: AtomicU64,
    /// current_save_keys_total.
    pub keys_total: AtomicU64,
    /// Total dirty count when the last successful save started.
    pub dirty_base: AtomicU64,
    /// rdb_last_load_keys_loaded.
    pub load_keys_loaded: AtomicU64,
    /// rdb_last_load_keys_expired.
    pub load_keys_expired: AtomicU64,
}

/// The save state.
pub fn state() -> &'static State {
    static S: OnceLock<State> = OnceLock::new();
    S.get_or_init(|| State {
        in_progress: AtomicBool::new(false),
        background: AtomicBool::new(false),
        started_secs: AtomicU64::new(0),
        lastsave: AtomicU64::new(snapshot::now_secs()),
        last_bgsave_ok: AtomicBool::new(true),
        last_fail_secs: AtomicU64::new(0),
        last_bgsave_secs: AtomicI64::new(-1),
        saves: AtomicU64::new(0),
        cow_bytes: AtomicU64::new(0),
        last_cow: AtomicU64::new(0),
        keys_processed: AtomicU64::new(0),
        keys_total: AtomicU64::new(0),
        dirty_base: AtomicU64::new(0),
        load_keys_loaded: AtomicU64::new(0),
        load_keys_expired: AtomicU64::new(0),
    })
}

/// Set while the final save before exiting runs (and after it succeeds):
/// write commands are refused so that no write is acknowledged after the
/// dump's cut and then lost at exit. Lifted again when the save fails.
pub static WRITE_FENCE: AtomicBool = AtomicBool::new(false);

/// The reply to a write refused by `WRITE_FENCE`.
pub const FENCE_ERROR: &str =
    "ERR the server is shutting down: writes are refused after the final save";

/// Changes per core since start (Redis's server.dirty, split so each core counts its own).
pub static DIRTY: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

/// Counts `n` changes made on core `core`.
#[inline]
pub fn add_dirty(core: usize, n: u64) {
    if let Some(d) = DIRTY.get(core) {
        d.fetch_add(n, Ordering::Relaxed);
    }
}

/// Changes since start over all cores.
pub fn dirty_total() -> u64 {
    DIRTY.iter().map(|d| d.load(Ordering::Relaxed)).sum()
}

/// rdb_changes_since_last_save.
pub fn changes_since_last_save() -> u64 {
    dirty_total().saturating_sub(state().dirty_base.load(Ordering::Relaxed))
}

/// Reads and fully validates an RDB file (structure, checksum, db indexes)
/// without keeping its keys. Ok(None) when the file does not exist.
pub fn read_and_check(
    path: &std::path::Path,
    databases: usize,
    checksum: bool,
) -> Result<Option<Vec<u8>>, String> {
    Ok(read_check_functions(path, databases, checksum)?.map(|(d, _)| d))
}

/// A dump file's bytes and its function libraries.
pub type FileAndLibs = (Vec<u8>, Vec<bytes::Bytes>);

/// As [`read_and_check`], also returning the file's function libraries.
pub fn read_check_functions(
    path: &std::path::Path,
    databases: usize,
    checksum: bool,
) -> Result<Option<FileAndLibs>, String> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "Fatal error loading the DB {}: {e}",
                path.display()
            ))
        }
    };
    let r = rdb::load(&data, checksum, |k| {
        if k.db >= databases {
            return Err(LoadError {
                offset: k.offset,
                msg: format!(
                    "key in DB {} but the server is configured with {databases} databases",
                    k.db
                ),
            });
        }
        match invalid_value(&k.value, k.offset) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    match r {
        Ok(info) => {
            let libs = info.functions.into_iter().map(bytes::Bytes::from).collect();
            Ok(Some((data, libs)))
        }
        Err(e) => Err(describe(path, &e)),
    }
}

/// The error for a value percore refuses to store (each type's checks live here).
pub fn invalid_value(v: &LoadedValue, offset: usize) -> Option<LoadError> {
    let t = match v {
        LoadedValue::ZSet(z) => {
            let mut names: Vec<&[u8]> = z.iter().map(|(m, _)| &m[..]).collect();
            names.sort_unstable();
            if z.iter().any(|(_, s)| s.is_nan()) {
                "sorted set with a NaN score"
            } else if names.windows(2).any(|w| w[0] == w[1]) {
                "duplicate sorted set members"
            } else {
                return None;
            }
        }
        _ => return None,
    };
    Some(LoadError {
        offset,
        msg: format!("invalid value: {t}"),
    })
}

/// Installs the function libraries of a loaded dump in place of the current ones.
pub fn install_functions(path: &std::path::Path, libs: &[bytes::Bytes]) -> Result<(), String> {
    crate::scripting::functions::restore(libs, crate::scripting::functions::Policy::Flush).map_err(
        |e| {
            format!(
                "Bad RDB file {}: Failed loading library, {}. Refusing to load it.",
                path.display(),
                e.strip_prefix("ERR ").unwrap_or(&e)
            )
        },
    )
}

/// The message for a load error: file, offset, problem.
pub fn describe(path: &std::path::Path, e: &LoadError) -> String {
    format!(
        "Bad RDB file {} at offset {}: {}. Refusing to load it.",
        path.display(),
        e.offset,
        e.msg
    )
}

/// Inserts into `shard` the keys of an already validated file that route to
/// it (of `nshards`). Expired keys are skipped, as a Redis master does.
/// Returns (loaded, expired).
pub fn load_into_shard(
    data: &[u8],
    shard: &mut crate::server::shard::Shard,
    nshards: usize,
    now_ms: u64,
) -> Result<(u64, u64), String> {
    let id = shard.id;
    let (mut loaded, mut expired) = (0u64, 0u64);
    rdb::load(data, false, |k: LoadedKey| {
        if shard_of_key(&k.key, nshards) != id {
            return Ok(());
        }
        if k.expire_ms.is_some_and(|at| at < now_ms) {
            expired += 1;
            return Ok(());
        }
        let limits = shard.limits;
        let Some(db) = shard.dbs.get_mut(k.db) else {
            return Err(LoadError {
                offset: k.offset,
                msg: format!("DB index {} out of range", k.db),
            });
        };
        if !insert_loaded(db, &limits, &k.key, k.value, k.expire_ms, now_ms) {
            return Ok(());
        }
        loaded += 1;
        Ok(())
    })
    .map_err(|e| format!("at offset {}: {}", e.offset, e.msg))?;
    Ok((loaded, expired))
}

/// Stores a value read from an RDB file or a DUMP payload under `key`
/// (replacing it), with the encodings Redis's loader picks for it. False for
/// an empty collection, which is not stored.
pub fn insert_loaded(
    db: &mut crate::storage::db::Db,
    limits: &crate::storage::Limits,
    key: &[u8],
    value: LoadedValue,
    expire_ms: Option<u64>,
    now_ms: u64,
) -> bool {
    let hash_limits = HashLimits::of(limits);
    match value {
        LoadedValue::Str(v) => {
            db.set_str(key, &v, StrEncoding::Auto, expire_ms, false, now_ms);
        }
        // Encodings follow the thresholds as Redis's loader applies them.
        LoadedValue::Hash(pairs) => {
            if pairs.is_empty() {
                return false;
            }
            let mut h = HashValue::new();
            for (f, v) in &pairs {
                h.set(f, v, hash_limits);
            }
            db.insert_owned(key, OwnedValue::Object(Object::Hash(h)), expire_ms, now_ms);
        }
        LoadedValue::List(items) => {
            if items.is_empty() {
                return false;
            }
            let mut l = ListValue::with_fill(limits.list_max_listpack_size);
            for it in &items {
                l.push(End::Tail, it);
            }
            db.insert_owned(key, OwnedValue::Object(Object::List(l)), expire_ms, now_ms);
        }
        LoadedValue::ZSet(mut members) => {
            if members.is_empty() {
                return false;
            }
            // Duplicates and NaNs were refused by `read_and_check`.
            members.sort_by(|a, b| crate::storage::zset::cmp_key(a.1, &a.0, b.1, &b.0));
            let z = ZSetValue::from_sorted(&members, ZLimits::from(limits));
            db.insert_owned(key, OwnedValue::Object(Object::ZSet(z)), expire_ms, now_ms);
        }
        LoadedValue::Set(members) => {
            if members.is_empty() {
                return false;
            }
            // As rdbLoadObject: an intset unless too long, converted on the first non-integer.
            let max = limits.set_max_intset_entries;
            let mut set = if members.len() > max {
                SetValue::new_hashtable()
            } else {
                SetValue::new_intset()
            };
            for m in &members {
                set.add(m, max);
            }
            db.insert_owned(key, OwnedValue::Object(Object::Set(set)), expire_ms, now_ms);
        }
    }
    true
}
