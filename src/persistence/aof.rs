//! The append-only file: per-shard RESP logs written with O_DIRECT through
//! Glommio's DMA stream writer, Redis 7's multi-part layout, group commit.
//!
//! Layout (in `dir`/`appenddirname`): `appendfilename.manifest` lists the
//! files in Redis 7's syntax (`file <name> seq <n> type <b|i>`). With one
//! shard the names are exactly Redis's (`appendonly.aof.<n>.incr.aof`);
//! with several, every shard has its own file per sequence number, named
//! with a `.s<shard>` suffix (`appendonly.aof.<n>.incr.aof.s3`), one
//! manifest line each. Every start adds a new incr sequence (files of a
//! previous run are never appended to, so their direct-I/O padding stays
//! behind their last record).
//!
//! Direct-I/O padding: a synced partial block is padded with zero bytes.
//! A record always starts with `*`, so the loader treats a zero byte where
//! a record should start as the end of the file, provided only zeros
//! follow; anything else there is corruption.
//!
//! What is logged: a shard command's argv when it did not reply with an
//! error, except commands whose effect depends on time or chance, which are
//! logged as their effect (Redis's rewrites): SET/SETEX/PSETEX/GETEX/
//! INCRBYFLOAT/EXPIRE family as the key's resulting state (SET ... and
//! PEXPIREAT absolute, or DEL), SPOP as SREM of the popped members,
//! blocking commands as the resulting state of their keys. Coordinator
//! (multi-shard) writes are logged as the resulting state of each of their
//! keys on its shard; keyless ones (FLUSHALL, FLUSHDB, SWAPDB) verbatim on
//! every shard. Expirations are not logged: expiry times are absolute and
//! loading does not expire keys, so the replay reaches the same state.
//!
//! Transactions (MULTI/EXEC, scripts, multi-shard commands: everything run
//! by `server::tx`): a transaction's records on a shard are held back while
//! it runs and appended as one block when it releases the shard, before any
//! transaction queued behind it runs there. With writes on several shards
//! each part is `MULTI PERCORE-TX <run id>-<tx id> <parts>` ... `EXEC`
//! (Redis logs MULTI ... EXEC; the arguments mark ours); a part of one shard
//! with several records is a plain MULTI ... EXEC, as Redis writes it. The
//! loader reads every shard's files first and applies a part only when all
//! `<parts>` parts are complete (after a crash some shards may hold their
//! part and others not); blocks cut short are dropped, as Redis reverts an
//! incomplete MULTI. Multi-shard coordinators log the resulting state of
//! their keys at release, under their locks.
//!
//! Rewrites (BGREWRITEAOF, auto-aof-rewrite-*) are fork-less and do not
//! stop the shards: under a transaction holding every shard (so no
//! transaction straddles the cut) each shard switches its log to a new incr
//! file and starts a point-in-time snapshot (`persistence::snapshot`: a write
//! serializes a key before changing it, a walker serializes the rest in
//! background slices). Each shard's snapshot is its new base file: RDB with
//! `aof-use-rdb-preamble yes` (`<name>.<seq>.base.rdb[.s<shard>]`, manifest
//! type b, as Redis 7), else converted to commands (`.base.aof`). A rewrite
//! and a BGSAVE share the databases' snapshot state, so one waits for the
//! other (BGREWRITEAOF answers "scheduled", BGSAVE refuses or schedules).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::Either;

use crate::commands::spec::CmdFlags;
use crate::commands::{Command, CommandTable, Exec, ShardCtx};
use crate::config::Config;
use crate::protocol::reply::{Proto, ReplyBuf};
use crate::server::core::Core;
use crate::server::shard::Shard;
use crate::storage::db::Access;
use crate::storage::value::{Object, StrRef};
use crate::util::num::format_i64;

/// Logical bytes appended per core (records handed to the log, durable or not).
static APPENDED: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];
/// Logical bytes known durable (fdatasync done) per core.
static DURABLE: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];
/// appendfsync always: replies wait for durability.
static ALWAYS: AtomicBool = AtomicBool::new(false);
/// The AOF is on (appendonly yes at start).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// aof_last_write_status.
static WRITE_OK: AtomicBool = AtomicBool::new(true);

/// How records are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// fdatasync before the replies of a batch leave (group commit).
    Always,
    /// fdatasync once a second in the background.
    EverySec,
    /// Written, never synced explicitly.
    No,
}

impl Fsync {
    /// From the `appendfsync` value.
    pub fn parse(s: &str) -> Fsync {
        match s {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::EverySec,
        }
    }
}

/// True when the AOF is on.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Sets appendfsync at run time (CONFIG SET appendfsync).
pub fn set_fsync(s: &str) {
    // The writer's mode first: a reply that waits because of ALWAYS then
    // always finds a writer that syncs before it releases it.
    FSYNC_MODE.store(
        match Fsync::parse(s) {
            Fsync::Always => 0,
            Fsync::EverySec => 1,
            Fsync::No => 2,
        },
        Ordering::SeqCst,
    );
    ALWAYS.store(
        enabled() && Fsync::parse(s) == Fsync::Always,
        Ordering::SeqCst,
    );
}

static FSYNC_MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

/// aof-timestamp-enabled: records are preceded by a `#TS:<unix time>`
/// annotation whenever the second changed since the last one (Redis 7's
/// format; its loader and redis-check-aof --truncate-to-timestamp read them).
static TIMESTAMPS: AtomicBool = AtomicBool::new(false);

/// Sets aof-timestamp-enabled (at start and by CONFIG SET).
pub fn set_timestamps(on: bool) {
    TIMESTAMPS.store(on, Ordering::Relaxed);
}

/// Appends the `#TS:` annotation for now to `out` when timestamps are on
/// and the second is past `last` (which then becomes it).
fn push_timestamp(out: &mut Vec<u8>, last: &mut u64) {
    if !TIMESTAMPS.load(Ordering::Relaxed) {
        return;
    }
    let now = crate::server::core::now_ms() / 1000;
    if *last < now {
        *last = now;
        out.extend_from_slice(b"#TS:");
        let mut d = [0u8; 24];
        out.extend_from_slice(format_i64(now as i64, &mut d));
        out.extend_from_slice(b"\r\n");
    }
}

/// Logs Redis's message for a failed fsync under `always` and exits, as
/// Redis does: records not known durable must not be acknowledged.
fn exit_on_fsync_failure(e: impl std::fmt::Display) -> ! {
    crate::server::log::warning(&format!(
        "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {e}. Exiting..."
    ));
    std::process::exit(1);
}

fn fsync_mode() -> Fsync {
    match FSYNC_MODE.load(Ordering::Relaxed) {
        0 => Fsync::Always,
        2 => Fsync::No,
        _ => Fsync::EverySec,
    }
}

// ---------------------------------------------------------------------------
// Manifest and file names
// ---------------------------------------------------------------------------

/// Kind of a file in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A base file (type b).
    Base,
    /// An incremental file (type i).
    Incr,
}

/// One manifest line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// File name inside the AOF directory.
    pub name: String,
    /// Sequence number.
    pub seq: u64,
    /// Base or incr.
    pub kind: Kind,
    /// Shard it belongs to.
    pub shard: usize,
}

/// A file's name: Redis's with one shard, `.s<shard>` appended with several.
pub fn file_name(prefix: &str, seq: u64, kind: Kind, shard: usize, nshards: usize) -> String {
    let k = match kind {
        Kind::Base => "base",
        Kind::Incr => "incr",
    };
    if nshards == 1 {
        format!("{prefix}.{seq}.{k}.aof")
    } else {
        format!("{prefix}.{seq}.{k}.aof.s{shard}")
    }
}

/// A base file's name: `.base.rdb` with an RDB preamble (as Redis 7), else `.base.aof`.
pub fn base_file_name(prefix: &str, seq: u64, shard: usize, nshards: usize, rdb: bool) -> String {
    let name = file_name(prefix, seq, Kind::Base, shard, nshards);
    if rdb {
        name.replacen(".base.aof", ".base.rdb", 1)
    } else {
        name
    }
}

/// The manifest's text.
pub fn format_manifest(entries: &[Entry]) -> String {
    let mut s = String::new();
    for e in entries {
        let t = match e.kind {
            Kind::Base => 'b',
            Kind::Incr => 'i',
        };
        s.push_str(&format!("file {} seq {} type {t}\n", e.name, e.seq));
    }
    s
}

/// Parses a manifest; the shard of each file comes from its `.s<N>` suffix (0 without).
pub fn parse_manifest(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.len().is_multiple_of(2) {
            return Err(format!(
                "Invalid AOF manifest file format at line {}",
                n + 1
            ));
        }
        let (mut name, mut seq, mut kind) = (None, None, None);
        for kv in words.chunks(2) {
            match kv[0] {
                "file" => name = Some(kv[1].to_string()),
                "seq" => seq = kv[1].parse::<u64>().ok(),
                "type" => {
                    kind = match kv[1] {
                        "b" => Some(Kind::Base),
                        "i" => Some(Kind::Incr),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
            return Err(format!(
                "Invalid AOF manifest file format at line {}",
                n + 1
            ));
        };
        let shard = name
            .rsplit_once(".s")
            .and_then(|(_, s)| s.parse::<usize>().ok())
            .unwrap_or(0);
        out.push(Entry {
            name,
            seq,
            kind,
            shard,
        });
    }
    Ok(out)
}

/// Writes `text` to `path` atomically (temp file, fsync, rename, fsync of the directory).
fn write_atomic(dir: &Path, path: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("temp-{}.manifest", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Parsing a file
// ---------------------------------------------------------------------------

/// One command of a file: its arguments.
pub type Argv = Vec<Vec<u8>>;

/// How a file ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// After a whole record (possibly followed by direct-I/O zero padding).
    Clean,
    /// Cut short inside a record that starts at this offset.
    Truncated(usize),
}

/// Parses a file into commands. Err((offset, message)) on corruption.
pub fn parse_file(data: &[u8]) -> Result<(Vec<Argv>, Tail), (usize, String)> {
    let mut cmds = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        if data[pos] == 0 {
            // Direct-I/O padding: only zeros may follow.
            if data[pos..].iter().all(|&b| b == 0) {
                return Ok((cmds, Tail::Clean));
            }
            return Err((pos, "unexpected zero byte".into()));
        }
        if data[pos] == b'#' {
            // An annotation line between commands (Redis 7 writes `#TS:<unix
            // time>` ones with aof-timestamp-enabled): skipped, as Redis's
            // loader does; one cut short at the end of the file is dropped.
            match memchr::memchr(b'\n', &data[pos..]) {
                Some(nl) => pos += nl + 1,
                None => return Ok((cmds, Tail::Clean)),
            }
            continue;
        }
        match parse_record(data, pos) {
            Ok((argv, next)) => {
                cmds.push(argv);
                pos = next;
            }
            Err(None) => return Ok((cmds, Tail::Truncated(pos))),
            Err(Some((at, msg))) => {
                // A record cut short and then zero padded is a truncation too.
                if data[at..].iter().all(|&b| b == 0) {
                    return Ok((cmds, Tail::Truncated(pos)));
                }
                return Err((at, msg));
            }
        }
    }
    Ok((cmds, Tail::Clean))
}

/// One `*N\r\n($len\r\nbytes\r\n)*N` record from `pos`; Err(None) when the data ends inside it.
#[allow(clippy::type_complexity)]
fn parse_record(data: &[u8], pos: usize) -> Result<(Argv, usize), Option<(usize, String)>> {
    let line = |at: usize, lead: u8| -> Result<(i64, usize), Option<(usize, String)>> {
        if at >= data.len() {
            return Err(None);
        }
        if data[at] != lead {
            return Err(Some((
                at,
                format!("expected '{}' found byte 0x{:02x}", lead as char, data[at]),
            )));
        }
        let Some(nl) = memchr::memchr(b'\n', &data[at..]) else {
            return Err(None);
        };
        let end = at + nl;
        if end == at + 1 || data[end - 1] != b'\r' {
            return Err(Some((at, "malformed length line".into())));
        }
        let n = std::str::from_utf8(&data[at + 1..end - 1])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| Some((at, "invalid length".to_string())))?;
        Ok((n, end + 1))
    };
    let (argc, mut at) = line(pos, b'*')?;
    if !(1..=1 << 20).contains(&argc) {
        return Err(Some((pos, format!("invalid argument count {argc}"))));
    }
    let mut argv = Vec::with_capacity(argc as usize);
    for _ in 0..argc {
        let (len, next) = line(at, b'$')?;
        if !(0..=1 << 32).contains(&len) {
            return Err(Some((at, format!("invalid bulk length {len}"))));
        }
        let len = len as usize;
        if next + len + 2 > data.len() {
            return Err(None);
        }
        if &data[next + len..next + len + 2] != b"\r\n" {
            return Err(Some((next + len, "bulk not terminated by CRLF".into())));
        }
        argv.push(data[next..next + len].to_vec());
        at = next + len + 2;
    }
    Ok((argv, at))
}

// ---------------------------------------------------------------------------
// Start-up: validate, plan, replay
// ---------------------------------------------------------------------------

/// What start-up found and decided, shared by the executors.
#[derive(Debug)]
pub struct Plan {
    /// The AOF directory.
    pub dir: PathBuf,
    /// Commands to replay per shard (None: no AOF existed).
    pub replay: Option<Vec<Vec<Argv>>>,
    /// Each shard's RDB base file, loaded before its commands replay.
    pub base_rdb: Vec<Option<Arc<Vec<u8>>>>,
    /// The new incr file of each shard.
    pub incr: Vec<PathBuf>,
    /// appendfsync.
    pub fsync: Fsync,
}

/// Reads and validates the AOF (before any executor starts) and writes the
/// manifest with this run's new incr files. Err: refuse to start.
pub fn prepare(config: &Config) -> Result<Plan, String> {
    let nshards = config.shards;
    let dir = Path::new(&config.dir).join(&config.appenddirname);
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            dir.display()
        )
    })?;
    let manifest_path = dir.join(format!("{}.manifest", config.appendfilename));
    let mut entries = match std::fs::read_to_string(&manifest_path) {
        Ok(t) => Some(parse_manifest(&t)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("Unable to read the AOF manifest file: {e}")),
    };
    let mut replay = None;
    let mut base_rdb: Vec<Option<Arc<Vec<u8>>>> = vec![None; nshards];
    if let Some(entries) = &entries {
        if let Some(e) = entries
            .iter()
            .find(|e| e.shard >= nshards)
            .or_else(|| {
                entries
                    .iter()
                    .find(|e| nshards > 1 && !e.name.contains(".s"))
            })
            .or_else(|| {
                entries.iter().find(|e| {
                    nshards == 1
                        && e.name
                            .rsplit_once(".s")
                            .is_some_and(|(_, s)| s.parse::<usize>().is_ok())
                })
            })
        {
            return Err(format!(
                "The AOF file {} was written with a different number of shards than --shards {nshards}: start percore with the shard count that wrote it",
                e.name
            ));
        }
        let mut per: Vec<Vec<Item>> = (0..nshards).map(|_| Vec::new()).collect();
        let mut ordered = entries.clone();
        // Base first, then incr files by sequence.
        ordered.sort_by_key(|e| (e.kind == Kind::Incr, e.seq, e.shard));
        for e in &ordered {
            let path = dir.join(&e.name);
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(err) => {
                    return Err(format!(
                        "Unable to open the AOF file {}: {err}",
                        path.display()
                    ))
                }
            };
            let rdb_base = e.kind == Kind::Base && data.starts_with(b"REDIS");
            // An incr file's zeros after its last record (direct-I/O padding,
            // zeros written ahead before a crash) are not log.
            let size = if rdb_base {
                data.len()
            } else {
                data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
            };
            BASE_SIZE.fetch_add(size as u64, Ordering::Relaxed);
            if rdb_base {
                // An RDB base (aof-use-rdb-preamble): validated whole now,
                // loaded into its shard before the incr files replay.
                drop(data);
                let (rdb, libs) =
                    super::read_check_functions(&path, config.databases, config.rdbchecksum)?
                        .ok_or_else(|| format!("Unable to open the AOF file {}", path.display()))?;
                // Only shard 0's base holds the (global) function libraries.
                if !libs.is_empty() {
                    crate::scripting::functions::restore(
                        &libs,
                        crate::scripting::functions::Policy::Append,
                    )
                    .map_err(|e| {
                        format!(
                            "Bad AOF base {}: Failed loading library, {}",
                            path.display(),
                            e.strip_prefix("ERR ").unwrap_or(&e)
                        )
                    })?;
                }
                base_rdb[e.shard] = Some(Arc::new(rdb));
                continue;
            }
            match parse_file(&data) {
                Ok((cmds, tail)) => {
                    if let Tail::Truncated(off) = tail {
                        if !config.aof_load_truncated {
                            return Err(format!(
                                "Unexpected end of file reading the append only file {} at offset {off}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.",
                                e.name
                            ));
                        }
                        crate::server::log::warning(&format!(
                            "!!! Warning: short read while loading the AOF file {}!!! AOF loaded anyway because aof-load-truncated is enabled: {} commands loaded, the last command (at offset {off}) is incomplete and was skipped.",
                            e.name,
                            cmds.len()
                        ));
                    }
                    let items = split_blocks(cmds).map_err(|msg| {
                        format!(
                            "Bad file format reading the append only file {}: {msg}. Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>.",
                            e.name
                        )
                    })?;
                    if !config.aof_load_truncated
                        && items.iter().any(|i| {
                            matches!(
                                i,
                                Item::Block {
                                    complete: false,
                                    ..
                                }
                            )
                        })
                    {
                        return Err(format!(
                            "Unexpected end of file reading the append only file {}: it ends inside a MULTI/EXEC block. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.",
                            e.name
                        ));
                    }
                    per[e.shard].extend(items);
                }
                Err((off, msg)) => {
                    return Err(format!(
                        "Bad file format reading the append only file {} at offset {off}: {msg}. Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>.",
                        e.name
                    ));
                }
            }
        }
        replay = Some(resolve_blocks(per));
    }
    let list = entries.get_or_insert_with(Vec::new);
    let seq = list
        .iter()
        .filter(|e| e.kind == Kind::Incr)
        .map(|e| e.seq)
        .max()
        .unwrap_or(0)
        + 1;
    let incr = create_incr_files(&dir, &config.appendfilename, seq, nshards, list)?;
    write_atomic(&dir, &manifest_path, format_manifest(list).as_bytes())
        .map_err(|e| format!("Can't persist the AOF manifest file: {e}"))?;
    let fsync = Fsync::parse(&config.appendfsync);
    *LAYOUT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Layout {
        dir: dir.clone(),
        manifest: manifest_path.clone(),
        prefix: config.appendfilename.clone(),
        entries: list.clone(),
    });
    ENABLED.store(true, Ordering::SeqCst);
    set_fsync(&config.appendfsync);
    set_timestamps(config.aof_timestamp_enabled);
    Ok(Plan {
        dir,
        replay,
        base_rdb,
        incr,
        fsync,
    })
}

/// A multi-shard transaction part's mark: (transaction name, number of parts).
pub type PartMark = (Vec<u8>, usize);

/// A command of a file, or a MULTI/EXEC block of them.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A command outside any block.
    Cmd(Argv),
    /// MULTI ... EXEC: `part` names a multi-shard transaction part
    /// (`MULTI PERCORE-TX <name> <parts>`); `complete` is false when the
    /// file ends before its EXEC.
    Block {
        /// (transaction name, number of parts) of a multi-shard part.
        part: Option<PartMark>,
        /// The commands between MULTI and EXEC.
        cmds: Vec<Argv>,
        /// Its EXEC is in the file.
        complete: bool,
    },
}

/// Groups a file's commands into MULTI/EXEC blocks. Err on a MULTI inside a
/// block or a malformed transaction mark.
pub fn split_blocks(cmds: Vec<Argv>) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    let mut open: Option<(Option<PartMark>, Vec<Argv>)> = None;
    for argv in cmds {
        let name = &argv[0];
        if name.eq_ignore_ascii_case(b"multi") {
            if open.is_some() {
                return Err("MULTI inside a MULTI/EXEC block".into());
            }
            let part = match argv.len() {
                1 => None,
                4 if argv[1] == TX_MARK => {
                    let n = std::str::from_utf8(&argv[3])
                        .ok()
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|&n| n >= 1)
                        .ok_or("invalid transaction part count")?;
                    Some((argv[2].clone(), n))
                }
                _ => return Err("invalid MULTI arguments".into()),
            };
            open = Some((part, Vec::new()));
        } else if name.eq_ignore_ascii_case(b"exec") {
            // An EXEC outside a block runs nothing (as Redis's loader).
            if let Some((part, cmds)) = open.take() {
                out.push(Item::Block {
                    part,
                    cmds,
                    complete: true,
                });
            }
        } else if let Some((_, cmds)) = open.as_mut() {
            cmds.push(argv);
        } else {
            out.push(Item::Cmd(argv));
        }
    }
    if let Some((part, cmds)) = open {
        out.push(Item::Block {
            part,
            cmds,
            complete: false,
        });
    }
    Ok(out)
}

/// The commands to replay per shard: blocks cut short are dropped (Redis
/// reverts an incomplete MULTI/EXEC), and so is every part of a multi-shard
/// transaction unless all of its parts are complete (after a crash, some
/// shards' logs may hold their part and others not).
pub fn resolve_blocks(per: Vec<Vec<Item>>) -> Vec<Vec<Argv>> {
    let mut complete: HashMap<Vec<u8>, usize> = HashMap::new();
    for items in &per {
        for it in items {
            if let Item::Block {
                part: Some((name, _)),
                complete: true,
                ..
            } = it
            {
                *complete.entry(name.clone()).or_insert(0) += 1;
            }
        }
    }
    let (mut dropped_tx, mut dropped_parts, mut cut_blocks) =
        (std::collections::HashSet::new(), 0usize, 0usize);
    let out = per
        .into_iter()
        .map(|items| {
            let mut cmds = Vec::new();
            for it in items {
                match it {
                    Item::Cmd(a) => cmds.push(a),
                    Item::Block {
                        part: None,
                        cmds: c,
                        complete: whole,
                    } => {
                        if whole {
                            cmds.extend(c);
                        } else {
                            cut_blocks += 1;
                        }
                    }
                    Item::Block {
                        part: Some((name, n)),
                        cmds: c,
                        complete: ended,
                    } => {
                        let whole = ended && complete.get(&name).is_some_and(|&got| got >= n);
                        if whole {
                            cmds.extend(c);
                        } else {
                            dropped_parts += 1;
                            dropped_tx.insert(name);
                        }
                    }
                }
            }
            cmds
        })
        .collect();
    if cut_blocks > 0 {
        crate::server::log::warning(&format!(
            "Revert incomplete MULTI/EXEC transaction in AOF file ({cut_blocks} block(s) cut short by the end of their file were not loaded)"
        ));
    }
    if dropped_parts > 0 {
        crate::server::log::warning(&format!(
            "AOF loading: {} multi-shard transaction(s) were incomplete (some shard's part is missing or cut short, as after a crash) and were not applied: {dropped_parts} part(s) dropped",
            dropped_tx.len()
        ));
    }
    out
}

/// Replays this shard's commands through the normal handlers. Loading
/// never expires keys (time 0), as Redis's loading does not.
pub fn replay(shard: &mut Shard, cmds: &[Argv]) -> (u64, u64) {
    let table = CommandTable::get();
    let mut db = 0usize;
    let mut out = ReplyBuf::new(Proto::Resp2);
    let (mut ok, mut failed) = (0u64, 0u64);
    for argv in cmds {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        let av: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
        let num = |i: usize| -> Option<usize> {
            std::str::from_utf8(av.get(i)?)
                .ok()?
                .parse::<usize>()
                .ok()
                .filter(|&n| n < shard.dbs.len())
        };
        match name.as_str() {
            "select" => {
                if let Some(n) = num(1) {
                    db = n;
                }
                continue;
            }
            "multi" | "exec" => continue,
            "flushall" => {
                for d in shard.dbs.iter_mut() {
                    d.clear();
                }
                continue;
            }
            "flushdb" => {
                shard.dbs[db].clear();
                continue;
            }
            "swapdb" => {
                if let (Some(a), Some(b)) = (num(1), num(2)) {
                    shard.dbs.swap(a, b);
                }
                continue;
            }
            "function" => {
                let av: Vec<bytes::Bytes> = argv
                    .iter()
                    .map(|a| bytes::Bytes::copy_from_slice(a))
                    .collect();
                if crate::scripting::functions::replay(&av) {
                    ok += 1;
                } else {
                    failed += 1;
                }
                continue;
            }
            _ => {}
        }
        let Some(cmd) = table.by_name(&name) else {
            failed += 1;
            continue;
        };
        let f = match cmd.exec {
            Exec::Shard(f) | Exec::Keys(f, _) => f,
            _ => {
                failed += 1;
                continue;
            }
        };
        out.buf.clear();
        let mut ctx = ShardCtx {
            shard,
            db,
            now_ms: 0,
            out: &mut out,
        };
        f(&mut ctx, &av);
        if out.buf.first() == Some(&b'-') {
            failed += 1;
        } else {
            ok += 1;
        }
    }
    (ok, failed)
}

// ---------------------------------------------------------------------------
// The per-shard log
// ---------------------------------------------------------------------------

/// This core's log state.
struct ShardLog {
    /// Records not yet handed to the DMA writer.
    pending: Vec<u8>,
    /// The database the last record ran in (usize::MAX: none yet).
    db: usize,
    /// Logical bytes appended (pending included).
    appended: u64,
    /// Waiters for durability: (appended offset, wake-up).
    waiters: Vec<(u64, oneshot::Sender<()>)>,
    /// Wakes the writer task.
    kick: Option<oneshot::Sender<()>>,
    /// A rewrite's switch: (new incr file, last records for the old one, appended at the switch).
    switch: Option<(PathBuf, Vec<u8>, u64)>,
    /// Shutdown: write, sync and cut the file to its logical size, then say so.
    close: Option<oneshot::Sender<()>>,
    /// Records of running transactions, held back until they release this shard.
    parts: HashMap<u64, Part>,
    /// Unix second of the last `#TS:` annotation (aof-timestamp-enabled).
    last_ts: u64,
    /// Inside a MULTI ... EXEC appended record by record: no annotation
    /// there. Redis stamps with its cached `server.unixtime`, which does not
    /// move while one command's propagation (a whole block) is fed, so its
    /// files never have one inside a block; `now_ms` is not cached.
    in_block: bool,
}

/// A running transaction's records on this shard.
struct Part {
    /// RESP records, with SELECTs where the database changes inside the part.
    buf: Vec<u8>,
    /// The database of its first record.
    first_db: usize,
    /// The database of its last record.
    db: usize,
    /// Records, SELECTs not counted.
    records: usize,
}

thread_local! {
    static LOG: RefCell<Option<ShardLog>> = const { RefCell::new(None) };
    static ON: Cell<bool> = const { Cell::new(false) };
    /// Commands run for a script that called redis.set_repl without REPL_AOF.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// True while the work running on this core must not be logged (redis.set_repl).
#[inline]
pub fn quiet() -> bool {
    QUIET.with(|q| q.get())
}

/// Sets whether the work running now is logged; returns the previous setting.
#[inline]
pub fn set_quiet(q: bool) -> bool {
    QUIET.with(|c| c.replace(q))
}

/// Appends one record to this core's log, or to the part of transaction
/// `owner` when it belongs to one (see [`crate::server::tx::aof_owner`]).
fn append_owned(core_id: usize, owner: Option<u64>, db: usize, argv: &[&[u8]]) {
    let Some(id) = owner else {
        return append(core_id, db, argv);
    };
    LOG.with(|l| {
        let mut l = l.borrow_mut();
        let Some(l) = l.as_mut() else { return };
        let p = l.parts.entry(id).or_insert_with(|| Part {
            buf: Vec::new(),
            first_db: db,
            db,
            records: 0,
        });
        if p.db != db {
            encode_select(&mut p.buf, db);
            p.db = db;
        }
        encode(&mut p.buf, argv);
        p.records += 1;
    });
}

/// The first argument of a multi-shard transaction part's MULTI.
pub const TX_MARK: &[u8] = b"PERCORE-TX";

/// Creates (empty, synced) the incr file `seq` of every shard in `dir` and
/// lists it in `list`; returns their paths by shard.
fn create_incr_files(
    dir: &std::path::Path,
    prefix: &str,
    seq: u64,
    nshards: usize,
    list: &mut Vec<Entry>,
) -> Result<Vec<PathBuf>, String> {
    let mut incr = Vec::new();
    for s in 0..nshards {
        let name = file_name(prefix, seq, Kind::Incr, s, nshards);
        let path = dir.join(&name);
        std::fs::File::create(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("Can't open the append-only file {}: {e}", path.display()))?;
        list.push(Entry {
            name,
            seq,
            kind: Kind::Incr,
            shard: s,
        });
        incr.push(path);
    }
    Ok(incr)
}

/// Ends transaction `id` on this shard: logs what its mark says is logged
/// at release, then appends its part. A transaction with writes on several
/// shards is wrapped as `MULTI PERCORE-TX <run id>-<id> <writers>` ... `EXEC`
/// on every shard where it may write (an empty part too: the loader counts
/// parts), so that after a crash it is applied only when every part is
/// complete. Otherwise a part of several records is wrapped in a plain
/// MULTI/EXEC, as Redis logs a transaction (a part cut short is dropped).
pub fn finish_part(
    core: &Rc<Core>,
    id: u64,
    mark: &crate::server::tx::AofMark,
    writes: bool,
    keys: &[(usize, bytes::Bytes)],
) {
    if !ON.with(|o| o.get()) {
        return;
    }
    match &mark.log {
        crate::server::tx::AofLog::Commands => {}
        crate::server::tx::AofLog::KeyStates => {
            if let Ok(mut shard) = core.shard.try_borrow_mut() {
                for (db, k) in keys {
                    log_key_state(core.id, &mut shard, *db, k, Some(id));
                }
            } else {
                crate::server::log::warning("AOF: a transaction released inside a shard borrow");
            }
        }
        crate::server::tx::AofLog::Verbatim(db, argv) => {
            if writes {
                let av: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
                append_owned(core.id, Some(id), *db, &av);
            }
        }
    }
    LOG.with(|l| {
        let mut l = l.borrow_mut();
        let Some(l) = l.as_mut() else { return };
        let part = l.parts.remove(&id);
        let cross = mark.writers >= 2 && writes;
        let Some(p) = part.or_else(|| {
            cross.then_some(Part {
                buf: Vec::new(),
                first_db: l.db,
                db: l.db,
                records: 0,
            })
        }) else {
            return;
        };
        let before = l.pending.len();
        push_timestamp(&mut l.pending, &mut l.last_ts);
        if p.first_db != l.db && p.first_db != usize::MAX {
            encode_select(&mut l.pending, p.first_db);
        }
        if cross {
            let name = format!("{}-{id}", crate::commands::server::run_id());
            let n = mark.writers.to_string();
            encode(
                &mut l.pending,
                &[b"MULTI", TX_MARK, name.as_bytes(), n.as_bytes()],
            );
        } else if p.records >= 2 {
            encode(&mut l.pending, &[b"MULTI"]);
        }
        l.pending.extend_from_slice(&p.buf);
        if cross || p.records >= 2 {
            encode(&mut l.pending, &[b"EXEC"]);
            // The next record selects its database again: a part dropped at
            // load must not leave the loader in the part's last database.
            l.db = usize::MAX;
        } else {
            l.db = p.db;
        }
        l.appended += (l.pending.len() - before) as u64;
        if let Some(a) = APPENDED.get(core.id) {
            a.store(l.appended, Ordering::Release);
        }
        if let Some(k) = l.kick.take() {
            let _ = k.send(());
        }
    });
}

/// Forgets what transaction `id` logged so far on this shard: a script run
/// rolled back by its undo log (see `scripting::Shape`) must leave no record,
/// since its effects were undone before anyone saw them and the rerun logs
/// its own. Records go to the file only when the part is finished at
/// release, so dropping the held part is enough.
pub fn discard_part(id: u64) {
    LOG.with(|l| {
        if let Some(l) = l.borrow_mut().as_mut() {
            l.parts.remove(&id);
        }
    });
}

/// Appends one command's RESP to this core's log.
fn append(core_id: usize, db: usize, argv: &[&[u8]]) {
    LOG.with(|l| {
        let mut l = l.borrow_mut();
        let Some(l) = l.as_mut() else { return };
        let before = l.pending.len();
        if !l.in_block {
            push_timestamp(&mut l.pending, &mut l.last_ts);
        }
        match argv.first().copied() {
            Some(b"MULTI") => l.in_block = true,
            Some(b"EXEC") => l.in_block = false,
            _ => {}
        }
        if l.db != db {
            encode_select(&mut l.pending, db);
            l.db = db;
        }
        encode(&mut l.pending, argv);
        l.appended += (l.pending.len() - before) as u64;
        if let Some(a) = APPENDED.get(core_id) {
            a.store(l.appended, Ordering::Release);
        }
        if let Some(k) = l.kick.take() {
            let _ = k.send(());
        }
    });
}

/// RESP array of bulk strings. One reservation, no allocation per length
/// (this runs for every logged write).
fn encode(out: &mut Vec<u8>, argv: &[&[u8]]) {
    // Upper bound: `*`/`$`, at most 20 digits and CRLF per header, CRLF per bulk.
    out.reserve(argv.iter().map(|a| a.len() + 25).sum::<usize>() + 23);
    push_len(out, b'*', argv.len());
    for a in argv {
        push_len(out, b'$', a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A RESP header line: `prefix`, `n` in decimal, CRLF.
#[inline]
fn push_len(out: &mut Vec<u8>, prefix: u8, n: usize) {
    // Argument counts and most key and value lengths are below 100: a
    // fixed-size copy for those (the general path measured ~2.5% of the
    // server's time under a SET load, most of it a memcpy call per header).
    if n < 10 {
        out.extend_from_slice(&[prefix, b'0' + n as u8, b'\r', b'\n']);
    } else if n < 100 {
        let (t, u) = (b'0' + (n / 10) as u8, b'0' + (n % 10) as u8);
        out.extend_from_slice(&[prefix, t, u, b'\r', b'\n']);
    } else {
        out.push(prefix);
        crate::util::num::push_i64(out, n as i64);
        out.extend_from_slice(b"\r\n");
    }
}

/// `SELECT <db>` as a record.
fn encode_select(out: &mut Vec<u8>, db: usize) {
    let mut d = [0u8; 24];
    encode(out, &[b"SELECT", format_i64(db as i64, &mut d)]);
}

/// Logs the current state of `key` (DEL, then commands recreating it, then
/// its TTL), in transaction `owner`'s part when it has one.
pub fn log_key_state(core_id: usize, shard: &mut Shard, db: usize, key: &[u8], owner: Option<u64>) {
    // Outside a transaction's part, a state of several records goes in a
    // MULTI/EXEC block: a crash in the middle of it leaves the key as it was
    // instead of half rebuilt (the loader reverts a block cut short).
    key_state_records(core_id, shard, db, key, owner.is_none(), &mut |c, d, av| {
        append_owned(c, owner, d, av)
    });
}

/// Where [`key_state_records`] puts each record: (core, db, argv).
type RecordSink<'a> = dyn FnMut(usize, usize, &[&[u8]]) + 'a;

/// The records that recreate `key`'s current state: DEL when it is absent,
/// `SET key value [PXAT ms]` for a string (one record, as Redis 7 logs SET EX),
/// otherwise DEL, the collection in chunks, then PEXPIREAT when it has a TTL;
/// with `wrap`, records of such a multi-record state go in MULTI ... EXEC.
fn key_state_records(
    core_id: usize,
    shard: &mut Shard,
    db: usize,
    key: &[u8],
    wrap: bool,
    append: &mut RecordSink<'_>,
) {
    let Some(d) = shard.dbs.get_mut(db) else {
        return;
    };
    let Some(pos) = d.find(key, 0, Access::Silent) else {
        append(core_id, db, &[b"DEL", key]);
        return;
    };
    let ttl = d.expire_at(pos);
    if let Some(s) = d.str_at(pos) {
        // Encoded straight from the stored value: no copy of it, no allocation.
        let mut num = [0u8; 24];
        let v: &[u8] = match s {
            StrRef::Int(i) => format_i64(i, &mut num),
            StrRef::Bytes(b) => b,
        };
        match ttl {
            Some(at) => {
                let mut t = [0u8; 24];
                let t = format_i64(at as i64, &mut t);
                append(core_id, db, &[b"SET", key, v, b"PXAT", t]);
            }
            None => append(core_id, db, &[b"SET", key, v]),
        }
        return;
    }
    let obj = d.object(pos);
    let wrap = wrap
        && (ttl.is_some()
            || matches!(
                obj,
                Some(
                    Object::Hash(_)
                        | Object::List(_)
                        | Object::Set(_)
                        | Object::ZSet(_)
                        | Object::RawStr(_)
                )
            ));
    if wrap {
        append(core_id, db, &[b"MULTI"]);
    }
    {
        append(core_id, db, &[b"DEL", key]);
        const CHUNK: usize = 64;
        match obj {
            Some(Object::Hash(h)) => {
                for c in h.pairs().chunks(CHUNK) {
                    let mut av: Vec<&[u8]> = vec![b"HSET", key];
                    for (f, v) in c {
                        av.push(f);
                        av.push(v);
                    }
                    append(core_id, db, &av);
                }
            }
            Some(Object::List(l)) => {
                let items: Vec<Vec<u8>> = l.iter(0).map(|e| e.to_vec()).collect();
                for c in items.chunks(CHUNK) {
                    let mut av: Vec<&[u8]> = vec![b"RPUSH", key];
                    av.extend(c.iter().map(|x| &x[..]));
                    append(core_id, db, &av);
                }
            }
            Some(Object::Set(s)) => {
                let items = s.members();
                for c in items.chunks(CHUNK) {
                    let mut av: Vec<&[u8]> = vec![b"SADD", key];
                    av.extend(c.iter().map(|x| &x[..]));
                    append(core_id, db, &av);
                }
            }
            Some(Object::ZSet(z)) => {
                let n = z.len();
                let items = if n == 0 {
                    Vec::new()
                } else {
                    z.range(0, n - 1, false)
                };
                let scores: Vec<Vec<u8>> = items
                    .iter()
                    .map(|(_, s)| crate::util::num::format_double(*s, &mut [0; 64]).to_vec())
                    .collect();
                for (c, sc) in items.chunks(CHUNK).zip(scores.chunks(CHUNK)) {
                    let mut av: Vec<&[u8]> = vec![b"ZADD", key];
                    for ((m, _), s) in c.iter().zip(sc) {
                        av.push(s);
                        av.push(m);
                    }
                    append(core_id, db, &av);
                }
            }
            Some(Object::RawStr(v)) => {
                let v = v.clone();
                append(core_id, db, &[b"SET", key, &v]);
            }
            _ => {}
        }
    }
    if let Some(at) = ttl {
        let mut t = [0u8; 24];
        append(
            core_id,
            db,
            &[b"PEXPIREAT", key, format_i64(at as i64, &mut t)],
        );
    }
    if wrap {
        append(core_id, db, &[b"EXEC"]);
    }
}

/// Logs the state of a key changed outside a command's own logging (blocked
/// clients served, elements given back), in its transaction's part if any.
pub fn log_state(core: &Core, shard: &mut Shard, db: usize, key: &[u8]) {
    if !ON.with(|o| o.get()) {
        return;
    }
    let owner = crate::server::tx::aof_owner(core, db, &[key]);
    log_key_state(core.id, shard, db, key, owner);
}

/// After a shard command ran: logs its effect (see the module doc).
#[inline]
pub fn feed(
    core: &Core,
    shard: &mut Shard,
    cmd: &Command,
    argv: &[&[u8]],
    db: usize,
    reply: &[u8],
) {
    if !ON.with(|o| o.get()) || !cmd.flags().contains(CmdFlags::WRITE) || quiet() {
        return;
    }
    if reply.first() == Some(&b'-') {
        return;
    }
    feed_slow(core, shard, cmd, argv, db, reply);
}

#[inline(never)]
fn feed_slow(
    core: &Core,
    shard: &mut Shard,
    cmd: &Command,
    argv: &[&[u8]],
    db: usize,
    reply: &[u8],
) {
    let core_id = core.id;
    let keys = cmd.key_positions(argv);
    // All keys of a command run by a transaction are its own: the first tells.
    let owner = match keys.first() {
        Some(&k) => crate::server::tx::aof_owner(core, db, &[argv[k]]),
        None => crate::server::tx::aof_owner(core, db, &[]),
    };
    let append = |core_id: usize, db: usize, argv: &[&[u8]]| append_owned(core_id, owner, db, argv);
    match cmd.name {
        "set" if argv.len() <= 3 => append(core_id, db, argv),
        "set" | "setex" | "psetex" | "getex" | "incrbyfloat" | "expire" | "pexpire"
        | "expireat" | "pexpireat" | "persist" | "restore" => {
            if let Some(k) = argv.get(1) {
                log_key_state(core_id, shard, db, k, owner);
            }
        }
        "spop" => {
            let members = bulks(reply);
            if !members.is_empty() {
                let mut av: Vec<&[u8]> = vec![b"SREM", argv[1]];
                av.extend(members.iter().map(|m| &m[..]));
                append(core_id, db, &av);
            }
        }
        _ if cmd.flags().contains(CmdFlags::BLOCKING) => {
            for k in keys {
                log_key_state(core_id, shard, db, argv[k], owner);
            }
        }
        _ => append(core_id, db, argv),
    }
}

/// The bulk strings of a reply (a bulk or an array of bulks).
fn bulks(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let read_line = |pos: &mut usize| -> Option<i64> {
        let nl = memchr::memchr(b'\n', &reply[*pos..])?;
        let s = std::str::from_utf8(&reply[*pos + 1..*pos + nl - 1]).ok()?;
        *pos += nl + 1;
        s.parse().ok()
    };
    let mut count = 1;
    if reply.first() == Some(&b'*') || reply.first() == Some(&b'~') {
        count = read_line(&mut pos).unwrap_or(0);
    }
    for _ in 0..count.max(0) {
        if reply.get(pos) != Some(&b'$') {
            break;
        }
        let Some(n) = read_line(&mut pos) else { break };
        if n < 0 || pos + n as usize > reply.len() {
            break;
        }
        out.push(reply[pos..pos + n as usize].to_vec());
        pos += n as usize + 2;
    }
    out
}

/// After a coordinator write (multi-shard command): logs the resulting state
/// of each key on its shard, or a keyless write verbatim on every shard.
pub async fn after_multi(
    core: &Rc<Core>,
    cmd: &'static Command,
    argv: &[&[u8]],
    db: usize,
    reply: &[u8],
) {
    if !enabled() || !cmd.flags().contains(CmdFlags::WRITE) || reply.first() == Some(&b'-') {
        return;
    }
    let keys = cmd.key_positions(argv);
    if cmd.name.starts_with("function|") {
        // The function registry is global: its changes go to shard 0's log only.
        let av: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
        core.run_on(0, move |c| {
            let r: Vec<&[u8]> = av.iter().map(|a| &a[..]).collect();
            append(c.id, db, &r);
        })
        .await;
        return;
    }
    if keys.is_empty() {
        let av: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
        core.run_on_all(move |c| {
            let r: Vec<&[u8]> = av.iter().map(|a| &a[..]).collect();
            let owner = crate::server::tx::aof_owner(c, db, &[]);
            append_owned(c.id, owner, db, &r);
        })
        .await;
        return;
    }
    let mut per: Vec<Vec<Vec<u8>>> = (0..core.nshards).map(|_| Vec::new()).collect();
    for k in keys {
        per[crate::server::exec::shard_of_key(argv[k], core.nshards)].push(argv[k].to_vec());
    }
    for (s, ks) in per.into_iter().enumerate() {
        if ks.is_empty() {
            continue;
        }
        core.run_on(s, move |c| {
            let mut shard = c.shard.borrow_mut();
            for k in &ks {
                let owner = crate::server::tx::aof_owner(c, db, &[k]);
                log_key_state(c.id, &mut shard, db, k, owner);
            }
        })
        .await;
    }
}

/// appendfsync always: waits until every record appended so far on any core is durable.
pub async fn wait_durable(core: &Rc<Core>) {
    if !ALWAYS.load(Ordering::Relaxed) {
        return;
    }
    for s in 0..core.nshards {
        let want = APPENDED[s].load(Ordering::Acquire);
        if DURABLE[s].load(Ordering::Acquire) >= want {
            continue;
        }
        if s == core.id {
            if let Some(rx) = register_waiter(s, want) {
                let _ = rx.await;
            }
        } else if let Some(Some(rx)) = core.run_on(s, move |c| register_waiter(c.id, want)).await {
            let _ = rx.await;
        }
    }
}

/// A wake-up for when `want` bytes of this core's log are durable (None: already).
fn register_waiter(id: usize, want: u64) -> Option<oneshot::Receiver<()>> {
    LOG.with(|l| {
        let mut l = l.borrow_mut();
        let l = l.as_mut()?;
        if DURABLE[id].load(Ordering::Acquire) >= want {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        l.waiters.push((want, tx));
        if let Some(k) = l.kick.take() {
            let _ = k.send(());
        }
        Some(rx)
    })
}

/// Where the AOF lives and what the manifest lists (for rewrites).
#[derive(Debug)]
struct Layout {
    dir: PathBuf,
    manifest: PathBuf,
    prefix: String,
    entries: Vec<Entry>,
}

static LAYOUT: std::sync::Mutex<Option<Layout>> = std::sync::Mutex::new(None);
/// Shards whose writer switched files (a rewrite waits for all of them).
static SWITCHED: AtomicU64 = AtomicU64::new(0);
/// Switches that failed (the shard stayed in its old incr file).
static SWITCH_FAILED: AtomicU64 = AtomicU64::new(0);
/// A rewrite is scheduled or running (one at a time).
static REWRITING: AtomicBool = AtomicBool::new(false);
/// aof_rewrite_scheduled: the rewrite waits for a BGSAVE to end.
static SCHEDULED: AtomicBool = AtomicBool::new(false);
/// aof_rewrites_consecutive_failures.
static CONSECUTIVE_FAILURES: AtomicU64 = AtomicU64::new(0);
/// aof_rewrites.
static REWRITES: AtomicU64 = AtomicU64::new(0);
/// aof_last_rewrite_time_sec (-1: none).
static LAST_REWRITE_SECS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(-1);
/// aof_last_bgrewrite_status.
static LAST_REWRITE_OK: AtomicBool = AtomicBool::new(true);
/// When the running rewrite started (s since the epoch).
static REWRITE_STARTED: AtomicU64 = AtomicU64::new(0);

/// INFO persistence's aof_* lines (Redis's names).
pub fn info_lines() -> String {
    let scheduled = SCHEDULED.load(Ordering::SeqCst);
    let running = REWRITING.load(Ordering::SeqCst) && !scheduled;
    let cur = if running {
        super::snapshot::now_secs().saturating_sub(REWRITE_STARTED.load(Ordering::Relaxed)) as i64
    } else {
        -1
    };
    format!(
        "aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{cur}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\n",
        enabled() as u8,
        running as u8,
        scheduled as u8,
        LAST_REWRITE_SECS.load(Ordering::Relaxed),
        if LAST_REWRITE_OK.load(Ordering::Relaxed) { "ok" } else { "err" },
        REWRITES.load(Ordering::Relaxed),
        CONSECUTIVE_FAILURES.load(Ordering::Relaxed),
        if WRITE_OK.load(Ordering::Relaxed) { "ok" } else { "err" },
    )
}

/// Logical AOF bytes appended over all cores since start.
fn total_appended() -> u64 {
    APPENDED.iter().map(|a| a.load(Ordering::Relaxed)).sum()
}

/// Size of the AOF after the last rewrite (or at start), and `total_appended` then.
static BASE_SIZE: AtomicU64 = AtomicU64::new(0);
static BASE_MARK: AtomicU64 = AtomicU64::new(0);

/// auto-aof-rewrite-percentage / min-size: true when a rewrite is due (serverCron's rule).
pub fn auto_rewrite_due(percentage: u64, min_size: u64) -> bool {
    if !enabled() || percentage == 0 || REWRITING.load(Ordering::Relaxed) {
        return false;
    }
    let base = BASE_SIZE.load(Ordering::Relaxed);
    let current = base + total_appended().saturating_sub(BASE_MARK.load(Ordering::Relaxed));
    if current < min_size {
        return false;
    }
    let base = base.max(1);
    (current - base.min(current)) * 100 / base >= percentage
}

/// True while an AOF rewrite runs (BGSAVE then answers as Redis with an AOF child).
pub fn rewriting() -> bool {
    REWRITING.load(Ordering::SeqCst)
}

/// Starts BGREWRITEAOF in the background on this core. Ok(true): it waits
/// for a BGSAVE in progress first (Redis's "scheduled").
pub fn start_rewrite(core: &Rc<Core>) -> Result<bool, String> {
    if !enabled() {
        return Err("ERR BGREWRITEAOF needs appendonly yes in percore".into());
    }
    if REWRITING
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // As Redis: asking again while it waits for a BGSAVE is not an error.
        if SCHEDULED.load(Ordering::SeqCst) {
            return Ok(true);
        }
        return Err("ERR Background append only file rewriting already in progress".into());
    }
    REWRITE_STARTED.store(super::snapshot::now_secs(), Ordering::Relaxed);
    let scheduled = super::state().in_progress.load(Ordering::SeqCst);
    SCHEDULED.store(scheduled, Ordering::SeqCst);
    let core = core.clone();
    glommio::spawn_local(async move {
        let started = Instant::now();
        let r = rewrite(&core).await;
        match &r {
            Ok(()) => {
                REWRITES.fetch_add(1, Ordering::Relaxed);
                CONSECUTIVE_FAILURES.store(0, Ordering::Relaxed);
                crate::server::log::notice("Background AOF rewrite finished successfully");
            }
            Err(e) => {
                CONSECUTIVE_FAILURES.fetch_add(1, Ordering::Relaxed);
                crate::server::log::warning(&format!("Background AOF rewrite failed: {e}"))
            }
        }
        LAST_REWRITE_OK.store(r.is_ok(), Ordering::Relaxed);
        LAST_REWRITE_SECS.store(started.elapsed().as_secs() as i64, Ordering::Relaxed);
        REWRITING.store(false, Ordering::SeqCst);
    })
    .detach();
    Ok(scheduled)
}

/// A rewrite: new incr files listed next to the old ones; on every shard, in
/// one step under a transaction holding every shard, the log switches to the
/// new incr file and a point-in-time snapshot of the shard starts (the
/// snapshot machinery: a cut that flips a bit, writes serialize a key before
/// changing it, a walker serializes the rest in background slices while
/// clients keep writing). Each shard's snapshot becomes its base file: RDB
/// with `aof-use-rdb-preamble yes`, else converted to commands. The manifest
/// then lists base + new incr only; old files are removed.
async fn rewrite(core: &Rc<Core>) -> Result<(), String> {
    // One snapshot at a time per database: wait for a BGSAVE in progress.
    while !super::snapshot::try_begin() {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    if SCHEDULED.swap(false, Ordering::SeqCst) {
        REWRITE_STARTED.store(super::snapshot::now_secs(), Ordering::Relaxed);
    }
    // Not a background save for INFO (rdb_bgsave_in_progress stays 0).
    super::state().background.store(false, Ordering::SeqCst);
    let r = rewrite_held(core).await;
    super::state().in_progress.store(false, Ordering::SeqCst);
    r
}

async fn rewrite_held(core: &Rc<Core>) -> Result<(), String> {
    let nshards = core.nshards;
    let (dir, manifest, prefix, entries) = {
        let l = LAYOUT.lock().unwrap_or_else(|e| e.into_inner());
        let l = l.as_ref().ok_or("no AOF layout")?;
        (
            l.dir.clone(),
            l.manifest.clone(),
            l.prefix.clone(),
            l.entries.clone(),
        )
    };
    let (preamble, opts, checksum, ndbs) = {
        let c = core.config.borrow();
        (
            c.aof_use_rdb_preamble,
            super::rdb::SaveOpts {
                compression: c.rdbcompression,
            },
            c.rdbchecksum,
            c.databases,
        )
    };
    let next = |k: Kind| {
        entries
            .iter()
            .filter(|e| e.kind == k)
            .map(|e| e.seq)
            .max()
            .unwrap_or(0)
            + 1
    };
    let (bseq, iseq) = (next(Kind::Base), next(Kind::Incr));
    // File creation and the manifest's fsyncs run off the core: behind the
    // base writers' data an fsync can wait for a journal commit of many MB.
    let (incr, with_new) = {
        let (dir, manifest, prefix, mut with_new) = (
            dir.clone(),
            manifest.clone(),
            prefix.clone(),
            entries.clone(),
        );
        super::spawn_thread("percore-aof-manifest", move || -> Result<_, String> {
            let incr = create_incr_files(&dir, &prefix, iseq, nshards, &mut with_new)?;
            write_atomic(&dir, &manifest, format_manifest(&with_new).as_bytes())
                .map_err(|e| e.to_string())?;
            Ok((incr, with_new))
        })?
        .await??
    };
    set_layout(&with_new);
    // One writer thread per shard: its snapshot's chunks become its base file.
    let used_mem = crate::util::alloc::allocated() as u64;
    let mut senders = Vec::new();
    let mut writers = Vec::new();
    let mut base_entries = Vec::new();
    for s in 0..nshards {
        let (tx, rx) = std::sync::mpsc::channel::<super::snapshot::WriterMsg>();
        senders.push(tx);
        let name = base_file_name(&prefix, bseq, s, nshards, preamble);
        let path = dir.join(&name);
        base_entries.push(Entry {
            name,
            seq: bseq,
            kind: Kind::Base,
            shard: s,
        });
        let dir = dir.clone();
        // The function libraries go in shard 0's base only (they are global).
        let mut functions = Vec::new();
        if s == 0 {
            crate::scripting::functions::save_rdb(
                &crate::scripting::functions::current(),
                &mut functions,
                opts,
            );
        }
        // aof-timestamp-enabled: the rewrite's start heads its base.
        let mut head = Vec::new();
        push_timestamp(&mut head, &mut 0);
        let writer = super::spawn_thread("percore-aof-base", move || -> Result<u64, String> {
            let fopts = super::snapshot::FileOpts {
                tag: format!("-aof{s}"),
                aof_base: true,
                functions,
            };
            if preamble {
                return super::snapshot::write_file(
                    rx, &dir, &path, ndbs, used_mem, checksum, &fopts,
                );
            }
            let rdb = dir.join(format!("temp-rewriteaof-{}-{s}.rdb", std::process::id()));
            let r = super::snapshot::write_file(rx, &dir, &rdb, ndbs, used_mem, checksum, &fopts)
                .and_then(|_| rdb_to_commands(&rdb, &dir, &path, head));
            let _ = std::fs::remove_file(&rdb);
            r
        })?;
        writers.push(writer);
    }
    let switched_before = SWITCHED.load(Ordering::SeqCst);
    let failed_before = SWITCH_FAILED.load(Ordering::SeqCst);
    let incr = Arc::new(incr);
    let sinks = Arc::new(senders.clone());
    // The cut runs under a transaction holding every shard: no multi-shard
    // transaction is half before it and half after on any shard.
    let mut cut = crate::server::tx::Tx::with(core.clone(), 0, false).without_aof();
    cut.global(crate::server::tx::Mode::Exclusive);
    cut.schedule().await;
    let sizes = cut
        .run_all(move |_, c| {
            let id = c.id;
            let tail = LOG.with(|l| {
                let mut l = l.borrow_mut();
                let l = l.as_mut()?;
                l.db = usize::MAX;
                Some(std::mem::take(&mut l.pending))
            })?;
            let at = APPENDED[id].load(Ordering::Acquire);
            let sizes = super::snapshot::begin(c, sinks[id].clone(), opts);
            super::snapshot::spawn_walker(c.clone());
            LOG.with(|l| {
                let mut l = l.borrow_mut();
                let l = l.as_mut()?;
                l.db = usize::MAX;
                l.switch = Some((incr[id].clone(), tail, at));
                if let Some(k) = l.kick.take() {
                    let _ = k.send(());
                }
                Some(sizes)
            })
        })
        .await;
    cut.conclude().await;
    let ok = sizes.len() == nshards && sizes.iter().all(|(_, s)| s.is_some());
    for (s, sz) in sizes {
        if let Some(sz) = sz {
            let _ = senders[s].send(super::snapshot::WriterMsg::Sizes(sz));
        }
    }
    // The writers end when every shard's snapshot dropped its senders.
    drop(senders);
    let mut written = Vec::with_capacity(writers.len());
    for w in writers {
        written.push(w.await.and_then(|r| r));
    }
    if !ok {
        return Err("a shard did not take part in the rewrite's cut".into());
    }
    let mut base_bytes = 0u64;
    for w in written {
        base_bytes += w.map_err(|e| format!("writing the base files: {e}"))?;
    }
    // Every shard's writer is on its new incr file before the old ones go.
    while SWITCHED.load(Ordering::SeqCst) < switched_before + nshards as u64 {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    if SWITCH_FAILED.load(Ordering::SeqCst) != failed_before {
        // A shard still appends to its old incr file: the manifest that
        // lists old and new incr files stays, and so do the old files. The
        // new base files are not listed anywhere.
        unlink_off_core(dir.clone(), base_entries).await?;
        return Err("a shard could not switch to its new incr file".into());
    }
    let mut fresh = base_entries;
    fresh.extend(
        with_new
            .iter()
            .filter(|e| e.kind == Kind::Incr && e.seq == iseq)
            .cloned(),
    );
    let text = format_manifest(&fresh);
    let manifest_dir = dir.clone();
    super::spawn_thread("percore-aof-manifest", move || {
        write_atomic(&manifest_dir, &manifest, text.as_bytes()).map_err(|e| e.to_string())
    })?
    .await??;
    set_layout(&fresh);
    BASE_SIZE.store(base_bytes, Ordering::Relaxed);
    BASE_MARK.store(total_appended(), Ordering::Relaxed);
    unlink_off_core(dir, entries).await
}

/// Removes the files of `entries` from `dir` on a thread of its own:
/// unlinking big files frees their blocks, which takes a while.
async fn unlink_off_core(dir: PathBuf, entries: Vec<Entry>) -> Result<(), String> {
    super::spawn_thread("percore-aof-unlink", move || {
        for e in &entries {
            let _ = std::fs::remove_file(dir.join(&e.name));
        }
    })?
    .await
}

/// Converts an RDB file into an AOF base of commands (`aof-use-rdb-preamble
/// no`): per key SET, or DEL-free RPUSH/SADD/HSET/ZADD runs, then PEXPIREAT.
/// Written to a temp file after `head`, synced and renamed to `path`.
/// Returns its size.
fn rdb_to_commands(rdb: &Path, dir: &Path, path: &Path, mut head: Vec<u8>) -> Result<u64, String> {
    use std::io::Write;
    let data = std::fs::read(rdb).map_err(|e| e.to_string())?;
    let mut out: Vec<u8> = Vec::with_capacity(data.len() * 2);
    let mut cur_db = usize::MAX;
    const CHUNK: usize = 64;
    let info = super::rdb::load(&data, false, |k| {
        if k.db != cur_db {
            let d = k.db.to_string();
            encode(&mut out, &[b"SELECT", d.as_bytes()]);
            cur_db = k.db;
        }
        let key = &k.key[..];
        let mut run = |cmd: &[u8], items: Vec<Vec<u8>>| {
            for c in items.chunks(CHUNK) {
                let mut av: Vec<&[u8]> = vec![cmd, key];
                av.extend(c.iter().map(|x| &x[..]));
                encode(&mut out, &av);
            }
        };
        match k.value {
            super::rdb::LoadedValue::Str(v) => encode(&mut out, &[b"SET", key, &v]),
            super::rdb::LoadedValue::List(items) => run(b"RPUSH", items),
            super::rdb::LoadedValue::Set(items) => run(b"SADD", items),
            super::rdb::LoadedValue::Hash(pairs) => {
                let flat = pairs.into_iter().flat_map(|(f, v)| [f, v]).collect();
                run(b"HSET", flat)
            }
            super::rdb::LoadedValue::ZSet(members) => {
                let flat = members
                    .into_iter()
                    .flat_map(|(m, s)| {
                        [crate::util::num::format_double(s, &mut [0; 64]).to_vec(), m]
                    })
                    .collect();
                run(b"ZADD", flat)
            }
        }
        if let Some(at) = k.expire_ms {
            let t = at.to_string();
            encode(&mut out, &[b"PEXPIREAT", key, t.as_bytes()]);
        }
        Ok(())
    })
    .map_err(|e| {
        format!(
            "reading back the rewrite's snapshot at offset {}: {}",
            e.offset, e.msg
        )
    })?;
    // After the timestamp (if any), the function libraries, as Redis's
    // rewriteAppendOnlyFileRio.
    for code in &info.functions {
        encode(&mut head, &[b"FUNCTION", b"LOAD", code]);
    }
    head.extend_from_slice(&out);
    let out = head;
    let tmp = dir.join(format!(
        "temp-rewriteaof-{}-{}.aof",
        std::process::id(),
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    ));
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.to_string()
    })?;
    Ok(out.len() as u64)
}

fn set_layout(entries: &[Entry]) {
    if let Some(l) = LAYOUT.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        l.entries = entries.to_vec();
    }
}

/// The most bytes one direct-I/O write carries (a longer append is cut in pieces).
const REGION: usize = 256 << 10;

/// How far ahead of the records the file is extended with zeros (see
/// [`DioLog::zero_ahead`]); a multiple of any direct-I/O alignment.
const ZERO_AHEAD: u64 = 2 << 20;

/// A direct-I/O appender. A write covers only what it adds plus the last
/// partial block (`carry`, rewritten with what follows it), zero-padded up
/// to the alignment: its cost is what it appends, never what the file
/// already holds. Each write's buffer comes from Glommio's DMA pool; its
/// tail past the logical end is zeroed by us (Glommio recycles buffers, so
/// stale bytes there would read back as records). Writes are awaited one
/// at a time, so they never overlap and reach the file in order.
struct DioLog {
    /// Shared with the `always` mode's sync tasks, which run beside the
    /// next group's write.
    file: Rc<glommio::io::DmaFile>,
    /// File offset of `carry[0]` (a multiple of the alignment).
    base: u64,
    /// The bytes of the last, partial block (fewer than the alignment).
    carry: Vec<u8>,
    /// The file holds written blocks (records or zeros) up to here.
    zeroed: u64,
}

/// A Glommio error as an `io::Error`.
fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl DioLog {
    /// Opens the (new, empty) file at `path` to write it from its start.
    async fn open(path: &Path) -> std::io::Result<DioLog> {
        let file = glommio::io::OpenOptions::new()
            .write(true)
            .dma_open(path)
            .await
            .map_err(io_err)?;
        let align = file.alignment() as usize;
        Ok(DioLog {
            file: Rc::new(file),
            base: 0,
            carry: Vec::with_capacity(align),
            zeroed: 0,
        })
    }

    /// Closes the file.
    async fn close(self) {
        let _ = self.file.close_rc().await;
    }

    /// Makes sure the file holds written blocks up to at least `end`, by
    /// writing zeros ahead of the records in steps of [`ZERO_AHEAD`]. A
    /// record write then lands on blocks that exist, within the file's
    /// size: io_uring issues it inline instead of handing it to a worker
    /// thread that competes with the executor for its core (an appending
    /// O_DIRECT write must allocate), and its fdatasync has no size or
    /// allocation to commit (on the test VM's ext4: 0.1 ms against
    /// 0.2-0.27 ms). The loader reads zeros after the last record as the
    /// end of the file; close and a rewrite's switch cut the file to its
    /// logical size.
    async fn zero_ahead(&mut self, end: u64) -> std::io::Result<()> {
        if ZERO_AHEAD == 0 || end <= self.zeroed {
            return Ok(());
        }
        let target = end.div_ceil(ZERO_AHEAD) * ZERO_AHEAD + ZERO_AHEAD;
        while self.zeroed < target {
            let n = ((target - self.zeroed) as usize).min(REGION);
            let mut buf = self.file.alloc_dma_buffer(n);
            buf.as_bytes_mut().fill(0);
            match self.file.write_at(buf, self.zeroed).await {
                Ok(w) if w >= n => self.zeroed += n as u64,
                Ok(_) => return Err(io_err("short write extending the AOF file")),
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(())
    }

    /// After a failed file switch, which may have cut the file to its
    /// logical size: zeros ahead are written again from the next block on.
    fn forget_zeroed(&mut self) {
        self.zeroed = self.file.align_up(self.size());
    }

    /// The file's logical size.
    fn size(&self) -> u64 {
        self.base + self.carry.len() as u64
    }

    /// Writes `data` after the logical end. Returns how many bytes of `data`
    /// reached the file: all of them unless it also returns an error.
    async fn write(&mut self, data: &[u8]) -> (usize, std::io::Result<()>) {
        let mut done = 0;
        while done < data.len() {
            let head = self.carry.len();
            let n = (head + data.len() - done).min(REGION);
            let take = n - head;
            let len = self.file.align_up(n as u64) as usize;
            let full = self.file.align_down(n as u64) as usize;
            if let Err(e) = self.zero_ahead(self.base + len as u64).await {
                return (done, Err(e));
            }
            let mut buf = self.file.alloc_dma_buffer(len);
            let b = buf.as_bytes_mut();
            b[..head].copy_from_slice(&self.carry);
            b[head..n].copy_from_slice(&data[done..done + take]);
            b[n..].fill(0);
            match self.file.write_at(buf, self.base).await {
                Ok(w) if w >= len => {}
                Ok(w) => {
                    let e = format!("short write to the AOF file: {w} of {len} bytes");
                    return (done, Err(io_err(e)));
                }
                Err(e) => return (done, Err(io_err(e))),
            }
            if full == 0 {
                // Still inside the same block: it grows.
                self.carry.extend_from_slice(&data[done..done + take]);
            } else {
                // `full` > `head`: the new partial block is all from `data`.
                self.carry.clear();
                self.carry
                    .extend_from_slice(&data[done + full - head..done + take]);
                self.base += full as u64;
            }
            done += take;
        }
        (done, Ok(()))
    }

    /// fdatasync.
    async fn sync(&mut self) -> std::io::Result<()> {
        self.file.fdatasync().await.map_err(io_err)
    }

    /// Starts an fdatasync of everything written so far as a task of its
    /// own (in the writer's task queue): when it succeeds the log is
    /// durable up to `upto`. The writer can write the next group meanwhile;
    /// that write only rewrites the shared last block with the same bytes
    /// in front, so the sync still covers all it was started for.
    fn start_sync(&self, id: usize, upto: u64) -> glommio::Task<()> {
        let file = Rc::clone(&self.file);
        let sync = async move {
            if let Err(e) = file.fdatasync().await {
                // With O_DIRECT nothing is left in memory to write again, and
                // a later sync's success would not prove these records
                // durable (another sync may be in flight).
                exit_on_fsync_failure(e);
            }
            made_durable(id, upto);
        };
        glommio::spawn_local_into(sync, writer_queue()).expect("spawn an AOF sync")
    }

    /// Cuts the file to its logical size (drops the padding of the last block).
    async fn cut(&mut self) -> std::io::Result<()> {
        self.file.truncate(self.size()).await.map_err(io_err)
    }
}

/// Opens this shard's incr file, replays what the plan holds, starts the writer task.
pub async fn start(core: &Rc<Core>, plan: &Plan) -> Result<(), String> {
    let id = core.id;
    let path = plan.incr[id].clone();
    let writer = DioLog::open(&path)
        .await
        .map_err(|e| format!("Can't open the append-only file {}: {e}", path.display()))?;
    LOG.with(|l| {
        *l.borrow_mut() = Some(ShardLog {
            pending: Vec::new(),
            db: usize::MAX,
            appended: 0,
            waiters: Vec::new(),
            kick: None,
            switch: None,
            close: None,
            parts: HashMap::new(),
            last_ts: 0,
            in_block: false,
        })
    });
    APPENDED[id].store(0, Ordering::SeqCst);
    DURABLE[id].store(0, Ordering::SeqCst);
    ON.with(|o| o.set(true));
    if plan.replay.is_none() {
        // No AOF existed: the dataset loaded from the RDB starts the log.
        let mut shard = core.shard.borrow_mut();
        for db in 0..shard.dbs.len() {
            let mut keys = Vec::new();
            shard.dbs[db].for_each(|r| keys.push(r.key().to_vec()));
            for k in keys {
                log_key_state(id, &mut shard, db, &k, None);
            }
        }
    }
    spawn_writer(id, writer);
    Ok(())
}

thread_local! {
    /// This core's task queue for its AOF writer and sync tasks.
    static WRITER_TQ: std::cell::OnceCell<glommio::TaskQueueHandle> = const { std::cell::OnceCell::new() };
}

/// This core's writer task queue (made on first use): its latency matters.
fn writer_queue() -> glommio::TaskQueueHandle {
    WRITER_TQ.with(|c| {
        *c.get_or_init(|| {
            glommio::executor().create_task_queue(
                glommio::Shares::Static(1000),
                glommio::Latency::Matters(Duration::from_millis(1)),
                "percore-aof-writer",
            )
        })
    })
}

/// Starts this core's writer task in a task queue of its own whose latency
/// matters. Its writes and fdatasyncs are then submitted as soon as they are
/// issued and complete on Glommio's latency ring, which preempts the
/// connections' queue: a group commit moves to its next step when the kernel
/// is done, not after every runnable connection has had its turn (measured
/// on the test VM: ~300 us of each ~950 us round, 2000 rounds/s).
fn spawn_writer(id: usize, writer: DioLog) {
    glommio::spawn_local_into(writer_task(id, writer), writer_queue())
        .expect("spawn the AOF writer")
        .detach();
}

/// At shutdown: this core's log is written, synced and cut to its logical size.
pub async fn close(_core: &Rc<Core>) {
    let rx = LOG.with(|l| {
        let mut l = l.borrow_mut();
        let l = l.as_mut()?;
        let (tx, rx) = oneshot::channel();
        l.close = Some(tx);
        if let Some(k) = l.kick.take() {
            let _ = k.send(());
        }
        Some(rx)
    });
    if let Some(rx) = rx {
        let _ = rx.await;
    }
}

/// Serializes run-time switches of the AOF (CONFIG SET appendonly).
static SWITCHING: AtomicBool = AtomicBool::new(false);

/// CONFIG SET appendonly yes|no at run time, in the background (Redis's
/// startAppendOnly / stopAppendOnly): yes starts every shard's log on new
/// incr files, then a rewrite writes the base from the dataset (the older
/// files go when it is done); no writes, syncs and closes every shard's log.
pub fn set_enabled(core: &Rc<Core>, on: bool) {
    let core = core.clone();
    glommio::spawn_local(async move {
        while SWITCHING
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        let r = if on {
            turn_on(&core).await
        } else {
            turn_off(&core).await;
            Ok(())
        };
        if let Err(e) = r {
            WRITE_OK.store(false, Ordering::Relaxed);
            crate::server::log::warning(&format!("Turning the AOF on failed: {e}"));
        }
        SWITCHING.store(false, Ordering::SeqCst);
    })
    .detach();
}

async fn turn_on(core: &Rc<Core>) -> Result<(), String> {
    if enabled() {
        return Ok(());
    }
    let config = core.config.borrow().clone();
    let nshards = core.nshards;
    let dir = Path::new(&config.dir).join(&config.appenddirname);
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            dir.display()
        )
    })?;
    let manifest = dir.join(format!("{}.manifest", config.appendfilename));
    // Files of an earlier period are listed until the rewrite replaces them.
    let mut list = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| parse_manifest(&t).ok())
        .unwrap_or_default();
    let seq = list.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
    let incr = create_incr_files(&dir, &config.appendfilename, seq, nshards, &mut list)?;
    *LAYOUT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Layout {
        dir: dir.clone(),
        manifest,
        prefix: config.appendfilename.clone(),
        entries: list,
    });
    let plan = Arc::new(Plan {
        dir,
        // Nothing to replay, and no state dump: the rewrite writes the base.
        replay: Some(Vec::new()),
        base_rdb: vec![None; nshards],
        incr,
        fsync: Fsync::parse(&config.appendfsync),
    });
    let started = core
        .run_on_all(move |c| {
            let (tx, rx) = oneshot::channel();
            let (c, plan) = (c.clone(), plan.clone());
            glommio::spawn_local(async move {
                let _ = tx.send(start(&c, &plan).await);
            })
            .detach();
            rx
        })
        .await;
    for rx in started {
        rx.await
            .map_err(|_| "a shard's log did not start".to_string())??;
    }
    ENABLED.store(true, Ordering::SeqCst);
    set_fsync(&config.appendfsync);
    set_timestamps(config.aof_timestamp_enabled);
    while REWRITING
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    REWRITE_STARTED.store(super::snapshot::now_secs(), Ordering::Relaxed);
    let t = Instant::now();
    let r = rewrite(core).await;
    LAST_REWRITE_OK.store(r.is_ok(), Ordering::Relaxed);
    LAST_REWRITE_SECS.store(t.elapsed().as_secs() as i64, Ordering::Relaxed);
    if r.is_ok() {
        REWRITES.fetch_add(1, Ordering::Relaxed);
        crate::server::log::notice("Background AOF rewrite finished successfully");
    }
    REWRITING.store(false, Ordering::SeqCst);
    r
}

async fn turn_off(core: &Rc<Core>) {
    if !enabled() {
        return;
    }
    // A rewrite in progress finishes first (Redis kills its child instead).
    while REWRITING.load(Ordering::SeqCst) {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    ENABLED.store(false, Ordering::SeqCst);
    ALWAYS.store(false, Ordering::SeqCst);
    let closed = core
        .run_on_all(|c| {
            let (tx, rx) = oneshot::channel();
            let c = c.clone();
            // No more records from here; what was logged is written and synced.
            ON.with(|o| o.set(false));
            glommio::spawn_local(async move {
                close(&c).await;
                LOG.with(|l| *l.borrow_mut() = None);
                let _ = tx.send(());
            })
            .detach();
            rx
        })
        .await;
    for rx in closed {
        let _ = rx.await;
    }
    crate::server::log::notice(
        "AOF turned off (CONFIG SET appendonly no): every shard's log closed",
    );
}

/// How long the everysec/no writer waits between rounds (what a process
/// crash, not only a power loss, can lose in those modes).
const ROUND: Duration = Duration::from_millis(2);

/// The most capacity the writer's backlog keeps between rounds (a burst of
/// big records should not pin its memory for good).
const BACKLOG_KEEP: usize = 4 << 20;

/// Hands pending records to the file and syncs as appendfsync says.
///
/// Group commit (`always`): each round takes every record appended since the
/// last one (by all connections of this shard, as one buffer swap: no copy)
/// and makes it durable with one write and one fdatasync; the connections
/// whose replies wait on it are woken together. The next round starts as
/// soon as the write is done: its write goes out while the previous sync is
/// still in flight (at most [`SYNCS_IN_FLIGHT`] syncs at once), so under
/// load a round's group is everything that arrived during the previous
/// round's write.
async fn writer_task(id: usize, mut writer: DioLog) {
    let mut last_sync = Instant::now();
    // `always`: the syncs in flight, oldest first, each with the offset it
    // makes durable (a finished one has already raised DURABLE past it).
    let mut syncs: VecDeque<(u64, glommio::Task<()>)> = VecDeque::new();
    // Records taken from the log but not yet in the file. Swapped with the
    // log's pending buffer, so both keep their capacity across rounds.
    let mut backlog: Vec<u8> = Vec::new();
    // Takes the log's pending records into `backlog` (after any not written yet).
    let take = |l: &mut ShardLog, backlog: &mut Vec<u8>| {
        if backlog.is_empty() {
            std::mem::swap(&mut l.pending, backlog);
        } else {
            backlog.extend_from_slice(&l.pending);
            l.pending.clear();
        }
    };
    // Writes the backlog; what a failed write left stays in it.
    async fn write_backlog(writer: &mut DioLog, backlog: &mut Vec<u8>) -> std::io::Result<()> {
        let (n, r) = writer.write(backlog).await;
        backlog.drain(..n);
        if backlog.capacity() > BACKLOG_KEEP {
            backlog.shrink_to(BACKLOG_KEEP);
        }
        r
    }

    loop {
        let switch = LOG.with(|l| l.borrow_mut().as_mut().and_then(|l| l.switch.take()));
        if switch.is_some() {
            settle(&mut syncs).await;
        }
        if let Some((path, tail, at)) = switch {
            // The old file gets its last records, synced and cut to its logical size.
            backlog.extend_from_slice(&tail);
            let r = async {
                write_backlog(&mut writer, &mut backlog).await?;
                writer.sync().await?;
                writer.cut().await?;
                DioLog::open(&path).await
            }
            .await;
            match r {
                Ok(next) => {
                    std::mem::replace(&mut writer, next).close().await;
                    DURABLE[id].fetch_max(at, Ordering::AcqRel);
                    wake(id, at);
                }
                Err(e) => {
                    // This shard goes on in its old incr file, which the
                    // manifest keeps: the rewrite sees SWITCH_FAILED and
                    // ends without replacing the manifest.
                    WRITE_OK.store(false, Ordering::Relaxed);
                    writer.forget_zeroed();
                    SWITCH_FAILED.fetch_add(1, Ordering::SeqCst);
                    crate::server::log::warning(&format!(
                        "AOF rewrite: switching files failed: {e}"
                    ));
                }
            }
            SWITCHED.fetch_add(1, Ordering::SeqCst);
        }
        let close = LOG.with(|l| l.borrow_mut().as_mut().and_then(|l| l.close.take()));
        if let Some(done) = close {
            settle(&mut syncs).await;
            let upto = LOG.with(|l| {
                let mut l = l.borrow_mut();
                let l = l.as_mut().expect("log state");
                take(l, &mut backlog);
                l.appended
            });
            let r = async {
                write_backlog(&mut writer, &mut backlog).await?;
                writer.sync().await
            }
            .await;
            match r {
                Ok(()) => {
                    DURABLE[id].store(upto, Ordering::Release);
                    wake(id, upto);
                    if let Err(e) = writer.cut().await {
                        crate::server::log::warning(&format!("Error closing the AOF file: {e}"));
                    }
                }
                Err(e) => {
                    // Replies still waiting under `always` would otherwise be
                    // released when the log goes: exit first, as Redis does.
                    let waiting =
                        LOG.with(|l| l.borrow().as_ref().is_some_and(|l| !l.waiters.is_empty()));
                    if waiting && fsync_mode() == Fsync::Always {
                        exit_on_fsync_failure(e);
                    }
                    crate::server::log::warning(&format!("Error closing the AOF file: {e}"));
                }
            }
            writer.close().await;
            let _ = done.send(());
            return;
        }
        let mode = fsync_mode();
        let (upto, kick) = LOG.with(|l| {
            let mut l = l.borrow_mut();
            let l = l.as_mut().expect("log state");
            take(l, &mut backlog);
            let issued = syncs.back().map_or(0, |s| s.0);
            let covered = DURABLE[id].load(Ordering::Acquire).max(issued) >= l.appended;
            let kick =
                if backlog.is_empty() && covered && mode == Fsync::Always && l.switch.is_none() {
                    let (tx, rx) = oneshot::channel();
                    l.kick = Some(tx);
                    Some(rx)
                } else {
                    None
                };
            (l.appended, kick)
        });
        if let Some(rx) = kick {
            // Wait for records or for the oldest sync; the timeout notices
            // a switch out of `always`.
            let timer = glommio::timer::sleep(Duration::from_millis(100));
            futures::pin_mut!(timer);
            let wait = futures::future::select(rx, timer);
            match syncs.front_mut() {
                Some((_, oldest)) => {
                    if let Either::Right(_) = futures::future::select(wait, oldest).await {
                        syncs.pop_front();
                    }
                }
                None => {
                    wait.await;
                }
            }
            continue;
        }
        if !backlog.is_empty() {
            if let Err(e) = write_backlog(&mut writer, &mut backlog).await {
                WRITE_OK.store(false, Ordering::Relaxed);
                crate::server::log::warning(&format!("Error writing to the AOF file: {e}"));
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        match mode {
            // One fdatasync for the whole group, in flight while the next
            // group is written: a batch that arrives during a sync waits for
            // its own write and sync only, not for the end of that sync too.
            // (Writing each group through an O_DSYNC handle instead cannot
            // overlap: two writes share the last block and must not race.)
            Fsync::Always => {
                if syncs.len() >= SYNCS_IN_FLIGHT {
                    let (_, oldest) = syncs.pop_front().expect("a sync in flight");
                    oldest.await;
                }
                syncs.push_back((upto, writer.start_sync(id, upto)));
            }
            Fsync::EverySec | Fsync::No => {
                settle(&mut syncs).await;
                // As Redis's aof_last_write_status: ok again once a write succeeds.
                WRITE_OK.store(true, Ordering::Relaxed);
                if mode == Fsync::EverySec
                    && last_sync.elapsed() >= Duration::from_secs(1)
                    && DURABLE[id].load(Ordering::Relaxed) < upto
                {
                    sync(id, &mut writer, upto).await;
                    last_sync = Instant::now();
                }
                // Waiters left from a switch out of `always`: release them,
                // unless the mode went back to `always` meanwhile (a waiter
                // may then be for records this round did not take).
                if fsync_mode() != Fsync::Always {
                    wake(id, u64::MAX);
                }
                glommio::timer::sleep(ROUND).await;
            }
        }
    }
}

/// How many `always` syncs may be in flight at once.
const SYNCS_IN_FLIGHT: usize = 2;

/// Waits for every `always` sync in flight (before the file is switched,
/// closed, or the mode leaves `always`).
async fn settle(syncs: &mut VecDeque<(u64, glommio::Task<()>)>) {
    while let Some((_, t)) = syncs.pop_front() {
        t.await;
    }
}

/// fdatasync, then wakes the waiters it covers.
async fn sync(id: usize, writer: &mut DioLog, upto: u64) {
    match writer.sync().await {
        Ok(()) => made_durable(id, upto),
        Err(e) => {
            WRITE_OK.store(false, Ordering::Relaxed);
            crate::server::log::warning(&format!("Error syncing the AOF file: {e}"));
        }
    }
}

/// The log is durable up to `upto`: wakes the waiters it covers.
fn made_durable(id: usize, upto: u64) {
    WRITE_OK.store(true, Ordering::Relaxed);
    // Syncs overlap under `always`; a later one may finish first.
    DURABLE[id].fetch_max(upto, Ordering::AcqRel);
    wake(id, upto);
}

fn wake(_id: usize, upto: u64) {
    LOG.with(|l| {
        if let Some(l) = l.borrow_mut().as_mut() {
            let mut i = 0;
            while i < l.waiters.len() {
                if l.waiters[i].0 <= upto {
                    let (_, tx) = l.waiters.swap_remove(i);
                    let _ = tx.send(());
                } else {
                    i += 1;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip() {
        let e = vec![
            Entry {
                name: file_name("appendonly.aof", 1, Kind::Base, 0, 1),
                seq: 1,
                kind: Kind::Base,
                shard: 0,
            },
            Entry {
                name: file_name("appendonly.aof", 2, Kind::Incr, 3, 4),
                seq: 2,
                kind: Kind::Incr,
                shard: 3,
            },
        ];
        let t = format_manifest(&e);
        assert_eq!(
            t,
            "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.2.incr.aof.s3 seq 2 type i\n"
        );
        assert_eq!(parse_manifest(&t).unwrap(), e);
    }

    fn argv(words: &[&str]) -> Argv {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn transaction_parts_all_or_nothing() {
        let part = |name: &str, n: &str, cmd: &[&str], end: bool| {
            let mut v = vec![argv(&["MULTI", "PERCORE-TX", name, n]), argv(cmd)];
            if end {
                v.push(argv(&["EXEC"]));
            }
            v
        };
        // t1: complete on both shards; t2: shard 1 cut short; t3: missing on shard 0.
        let mut s0 = vec![argv(&["SET", "a", "1"])];
        s0.extend(part("r-1", "2", &["INCRBY", "a", "5"], true));
        s0.extend(part("r-2", "2", &["INCRBY", "a", "7"], true));
        let mut s1 = part("r-1", "2", &["DECRBY", "b", "5"], true);
        s1.extend(part("r-3", "2", &["DECRBY", "b", "9"], true));
        s1.extend(part("r-2", "2", &["DECRBY", "b", "7"], false));
        let per = vec![split_blocks(s0).unwrap(), split_blocks(s1).unwrap()];
        let out = resolve_blocks(per);
        assert_eq!(
            out,
            vec![
                vec![argv(&["SET", "a", "1"]), argv(&["INCRBY", "a", "5"])],
                vec![argv(&["DECRBY", "b", "5"])],
            ]
        );
        // Plain MULTI/EXEC: applied when whole, dropped when cut short.
        let plain = vec![
            argv(&["MULTI"]),
            argv(&["SET", "x", "1"]),
            argv(&["EXEC"]),
            argv(&["MULTI"]),
            argv(&["SET", "y", "1"]),
        ];
        let out = resolve_blocks(vec![split_blocks(plain).unwrap()]);
        assert_eq!(out, vec![vec![argv(&["SET", "x", "1"])]]);
        assert!(split_blocks(vec![argv(&["MULTI"]), argv(&["MULTI"])]).is_err());
        assert!(split_blocks(vec![argv(&["MULTI", "PERCORE-TX", "x", "0"])]).is_err());
        assert!(split_blocks(vec![argv(&["MULTI", "x"])]).is_err());
    }

    #[test]
    fn encode_lengths() {
        let long = vec![b'x'; 1234];
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", &[b'k'; 10], &long, b""]);
        let mut want = b"*4\r\n$3\r\nSET\r\n$10\r\nkkkkkkkkkk\r\n$1234\r\n".to_vec();
        want.extend_from_slice(&long);
        want.extend_from_slice(b"\r\n$0\r\n\r\n");
        assert_eq!(out, want);
        let (cmds, tail) = parse_file(&out).unwrap();
        assert_eq!(tail, Tail::Clean);
        assert_eq!(cmds[0][2], long);
        let mut out = Vec::new();
        encode(&mut out, &[&[b'a'; 99], &[b'b'; 100]]);
        assert!(out.starts_with(b"*2\r\n$99\r\n"));
        assert_eq!(&out[4 + 5 + 99 + 2..4 + 5 + 99 + 2 + 6], b"$100\r\n");
    }

    #[test]
    fn parse_tails() {
        let mut d = Vec::new();
        encode(&mut d, &[b"SET", b"a", b"1"]);
        let whole = d.len();
        encode(&mut d, &[b"SET", b"b", b"2"]);
        assert_eq!(parse_file(&d).unwrap().0.len(), 2);
        let mut padded = d.clone();
        padded.extend(std::iter::repeat_n(0, 100));
        assert_eq!(
            parse_file(&padded).unwrap(),
            (parse_file(&d).unwrap().0, Tail::Clean)
        );
        let (c, t) = parse_file(&d[..whole + 5]).unwrap();
        assert_eq!((c.len(), t), (1, Tail::Truncated(whole)));
        let mut cut = d[..whole + 5].to_vec();
        cut.extend([0; 50]);
        assert_eq!(parse_file(&cut).unwrap().1, Tail::Truncated(whole));
        let mut bad = d.clone();
        bad[whole + 1] = b'x';
        assert_eq!(parse_file(&bad).unwrap_err().0, whole);
        assert_eq!(
            bulks(b"*2\r\n$1\r\na\r\n$2\r\nbc\r\n"),
            vec![b"a".to_vec(), b"bc".to_vec()]
        );
        assert_eq!(bulks(b"$1\r\nz\r\n"), vec![b"z".to_vec()]);
        assert!(bulks(b"$-1\r\n").is_empty());
    }

    #[test]
    fn parse_skips_annotations() {
        let mut d = b"#TS:1796396911\r\n".to_vec();
        encode(&mut d, &[b"SET", b"a", b"1"]);
        d.extend_from_slice(b"#TS:1796396912\r\n#\n");
        encode(&mut d, &[b"SET", b"b", b"2"]);
        let (cmds, tail) = parse_file(&d).unwrap();
        assert_eq!((cmds.len(), tail), (2, Tail::Clean));
        assert_eq!(cmds[1][1], b"b");
        // One cut short at the end (here before the direct-I/O padding).
        let mut cut = d.clone();
        cut.extend_from_slice(b"#TS:17");
        cut.extend([0; 20]);
        assert_eq!(parse_file(&cut).unwrap(), (cmds, Tail::Clean));
        // Only between commands: inside one it is corruption.
        let mut bad = Vec::new();
        encode(&mut bad, &[b"SET", b"a", b"1"]);
        bad.splice(4..4, b"#x\r\n".iter().copied());
        assert_eq!(parse_file(&bad).unwrap_err().0, 4);
    }
}
