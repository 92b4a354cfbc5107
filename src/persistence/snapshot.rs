//! Fork-less, point-in-time RDB snapshots.
//!
//! Design:
//! * **The cut.** Each shard starts its part of a snapshot by flipping, per
//!   database, the "fresh" bit new records get (`Db::snapshot_begin`): from
//!   then on every record that still carries the old bit existed at the cut
//!   and has not been serialized yet. No pass over the keys is needed. The
//!   shards take their cuts under one transaction holding them all, so the
//!   cut is consistent across shards: a multi-shard transaction is in the
//!   dump whole or not at all.
//! * **The walker.** A task in a low-share background task queue serializes
//!   pending records (`Db::snapshot_step`, in the table's tag order, which is
//!   stable across resizes) in time-bounded slices: 200 µs while the core has
//!   nothing else to do, 50 µs while connections have work. Between slices
//!   it lets the executor poll for I/O and the connections run first. When
//!   the thread itself waits for a CPU (other processes on it), the walker
//!   also keeps to its `snapshot-shares` part of the time while connections
//!   are busy.
//! * **Copy-on-write per key.** Every `Db` method that changes or removes a
//!   record first serializes it if it is still pending (`Db::cow`), so the
//!   dump holds each key's value as of the cut. Records created after the
//!   cut carry the fresh bit and are skipped.
//! * **Output.** Serialized bytes are buffered per (shard, db) and handed in
//!   256 KiB chunks over a channel to a writer thread. It streams the first
//!   database with keys straight into the final file (temp-<pid>.rdb: header,
//!   SELECTDB/RESIZEDB, keys) and the others into one part file each,
//!   appended in db order at the end, then EOF and CRC-64; it starts
//!   writeback every 4 MiB, fsyncs and renames the file.
//!
//! The memory a snapshot costs is its buffers (256 KiB per active db per
//! shard, plus the channel backlog when the disk is slower than the cores),
//! not a copy of the changed pages as with fork.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Instant;

use super::crc64;
use super::rdb::{self, SaveOpts};
use crate::server::core::Core;

/// Keys serialized between two looks at the clock.
const STEP: usize = 32;
/// How long a walker slice runs before letting the executor poll for I/O
/// (the most a request arriving during a slice waits for it) when the core
/// had nothing else to do between two slices...
const SLICE_IDLE: std::time::Duration = std::time::Duration::from_micros(200);
/// ... and when connections had work: shorter, for their latency.
const SLICE_BUSY: std::time::Duration = std::time::Duration::from_micros(50);
/// A pause between two slices longer than this means other tasks ran in it.
const BUSY_GAP: std::time::Duration = std::time::Duration::from_micros(20);
/// Bytes buffered per (shard, db) before they go to the writer: few channel
/// messages and large writes.
const CHUNK: usize = 256 * 1024;

/// What the writer thread receives.
pub enum WriterMsg {
    /// Serialized keys of database `db`.
    Chunk {
        /// Database index at the cut.
        db: usize,
        /// Complete key records.
        bytes: Vec<u8>,
    },
    /// Keys and keys with a TTL per database at the cut (for RESIZEDB), summed by the coordinator.
    Sizes(Vec<(u64, u64)>),
}

/// A snapshot in progress over one database of one shard.
#[derive(Debug)]
pub struct DbSnap {
    /// The database's index at the cut (SWAPDB moves `Db`s, not this).
    pub db: usize,
    /// Serialized keys not yet handed to the writer.
    pub buf: Vec<u8>,
    /// Where chunks go.
    sink: mpsc::Sender<WriterMsg>,
    /// Encoding options.
    pub opts: SaveOpts,
    /// The walker's table cursor.
    pub cursor: u32,
    /// Bytes serialized by write hooks ahead of the walker.
    pub cow_bytes: u64,
    /// Keys serialized so far.
    pub keys: u64,
    /// When the cut was taken.
    started: Instant,
}

impl DbSnap {
    /// A snapshot of database `db` sending to `sink`.
    pub fn new(db: usize, sink: mpsc::Sender<WriterMsg>, opts: SaveOpts) -> DbSnap {
        DbSnap {
            db,
            buf: Vec::new(),
            sink,
            opts,
            cursor: 0,
            cow_bytes: 0,
            keys: 0,
            started: Instant::now(),
        }
    }

    /// Hands the buffer to the writer once it is big enough.
    pub fn maybe_flush(&mut self) {
        if self.buf.len() >= CHUNK {
            self.flush(CHUNK + CHUNK / 8);
        }
    }

    /// Sends the buffered bytes; the next buffer gets `capacity` (allocated
    /// at its full size once rather than grown by doubling).
    fn flush(&mut self, capacity: usize) {
        if !self.buf.is_empty() {
            let bytes = std::mem::replace(&mut self.buf, Vec::with_capacity(capacity));
            // A gone writer means the snapshot failed; it reports that itself.
            let _ = self.sink.send(WriterMsg::Chunk { db: self.db, bytes });
        }
    }

    /// Hands over the last bytes and records the totals.
    pub fn finish(&mut self) {
        self.flush(0);
        let st = super::state();
        st.cow_bytes.fetch_add(self.cow_bytes, Ordering::Relaxed);
        st.keys_processed.fetch_add(self.keys, Ordering::Relaxed);
        crate::server::log::verbose(&format!(
            "Snapshot of DB {}: {} keys serialized in {:.3} s, {} bytes of them by writes ahead of the walker",
            self.db,
            self.keys,
            self.started.elapsed().as_secs_f64(),
            self.cow_bytes
        ));
    }
}

/// How a snapshot runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// SAVE, SHUTDOWN, DEBUG RELOAD: each shard serializes everything at once.
    Blocking,
    /// BGSAVE and save points: shards serialize in background slices.
    Background,
}

/// Where the dump goes: `dir`/`dbfilename`.
pub fn dump_path(core: &Core) -> PathBuf {
    let c = core.config.borrow();
    Path::new(&c.dir).join(&c.dbfilename)
}

/// Runs one snapshot to completion (the caller holds the in-progress flag).
/// Returns the file's size.
/// `cut_tx`: take the cut under a transaction holding every shard (not from
/// inside a running transaction: DEBUG RELOAD in MULTI would wait for itself).
pub async fn run(core: &Rc<Core>, mode: Mode, cut_tx: bool) -> Result<u64, String> {
    let (dir, path, opts, checksum, ndbs) = {
        let c = core.config.borrow();
        (
            PathBuf::from(&c.dir),
            Path::new(&c.dir).join(&c.dbfilename),
            SaveOpts {
                compression: c.rdbcompression,
            },
            c.rdbchecksum,
            c.databases,
        )
    };
    let st = super::state();
    st.cow_bytes.store(0, Ordering::Relaxed);
    st.keys_processed.store(0, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel::<WriterMsg>();
    let used_mem = crate::util::alloc::allocated() as u64;
    // The libraries at the cut, written after the header as Redis's rdbSaveFunctions.
    let mut functions = Vec::new();
    crate::scripting::functions::save_rdb(
        &crate::scripting::functions::current(),
        &mut functions,
        opts,
    );
    let writer = super::spawn_thread("percore-rdb", move || {
        let fopts = FileOpts {
            tag: String::new(),
            aof_base: false,
            functions,
        };
        write_file(rx, &dir, &path, ndbs, used_mem, checksum, &fopts)
    })?;
    let txc = tx.clone();
    let part = move |core: &Rc<Core>| {
        let sizes = begin(core, txc.clone(), opts);
        match mode {
            Mode::Blocking => {
                let mut shard = core.shard.borrow_mut();
                for d in shard.dbs.iter_mut() {
                    while !d.snapshot_step(usize::MAX) {}
                }
            }
            Mode::Background => spawn_walker(core.clone()),
        }
        sizes
    };
    let sizes = if !cut_tx || super::WRITE_FENCE.load(Ordering::SeqCst) {
        // The final save refuses writes already: nothing can straddle the cut.
        core.run_on_all(part).await
    } else {
        // The cut runs under a transaction holding every shard, so that no
        // multi-shard transaction is in the dump on one shard and not on another.
        let mut cut = crate::server::tx::Tx::with(core.clone(), 0, false).without_aof();
        cut.global(crate::server::tx::Mode::Exclusive);
        cut.schedule().await;
        let sizes = cut.run_all(move |_, c| part(c)).await;
        cut.conclude().await;
        sizes.into_iter().map(|(_, s)| s).collect()
    };
    let mut total = vec![(0u64, 0u64); ndbs];
    for s in &sizes {
        for (t, x) in total.iter_mut().zip(s) {
            t.0 += x.0;
            t.1 += x.1;
        }
    }
    st.keys_total
        .store(total.iter().map(|t| t.0).sum(), Ordering::Relaxed);
    let _ = tx.send(WriterMsg::Sizes(total));
    drop(tx);
    // The writer ends when every shard dropped its senders (all walkers done).
    writer.await?
}

/// Starts this shard's part: returns (keys, keys with TTL) per db at the cut.
pub fn begin(core: &Rc<Core>, tx: mpsc::Sender<WriterMsg>, opts: SaveOpts) -> Vec<(u64, u64)> {
    let mut shard = core.shard.borrow_mut();
    shard
        .dbs
        .iter_mut()
        .enumerate()
        .map(|(i, d)| {
            if d.is_empty() {
                return (0, 0);
            }
            let n = (d.len() as u64, d.volatile_len() as u64);
            d.snapshot_begin(DbSnap::new(i, tx.clone(), opts));
            n
        })
        .collect()
}

thread_local! {
    static WALKER_TQ: std::cell::OnceCell<glommio::TaskQueueHandle> = const { std::cell::OnceCell::new() };
}

/// Spawns the walker in the snapshot task queue (`snapshot-shares`, fewer than connections).
pub fn spawn_walker(core: Rc<Core>) {
    let shares = core.config.borrow().snapshot_shares;
    let tq = WALKER_TQ.with(|c| {
        *c.get_or_init(|| {
            glommio::executor().create_task_queue(
                glommio::Shares::Static(shares),
                glommio::Latency::NotImportant,
                "percore-snapshot",
            )
        })
    });
    let c2 = core.clone();
    let task = async move {
        let mut slice = SLICE_IDLE;
        let mut contention = Contention::new();
        loop {
            // One slice: steps of STEP keys until `slice` has passed, so a
            // slice lasts about as long whatever the keys cost to serialize.
            let started = Instant::now();
            let done = {
                let mut shard = c2.shard.borrow_mut();
                loop {
                    match shard.dbs.iter_mut().find(|d| d.snapshot_active()) {
                        Some(d) => {
                            d.snapshot_step(STEP);
                        }
                        None => break true,
                    }
                    if started.elapsed() >= slice {
                        break false;
                    }
                }
            };
            if done {
                return;
            }
            let paused = Instant::now();
            // Yielding the task queue is not enough: while this task is
            // runnable the executor does not poll for network events (the
            // rings' completions wait for the thread to enter the kernel), so
            // connections would wait for the preempt timer. A timer wait
            // makes the executor go through its reactor; when nothing else is
            // runnable the walker is back within microseconds.
            glommio::timer::sleep(std::time::Duration::from_micros(1)).await;
            // The timer and the connections that the same poll woke start
            // with equal virtual runtimes: let the connections go first.
            glommio::executor().yield_task_queue_now().await;
            // Long slices while the core has nothing else to do; short ones
            // while connections have work, so their requests wait less.
            let busy = paused.elapsed() > BUSY_GAP;
            slice = if busy { SLICE_BUSY } else { SLICE_IDLE };
            if busy && contention.cpu_is_short() {
                // The thread waits for a CPU (other processes share it):
                // every slice of the walker is time the connections then
                // wait in the run queue. Keep to the walker's share
                // (snapshot-shares against the connections' 1000) until the
                // CPU is free again.
                glommio::timer::sleep(slice * 1000 / shares.max(1) as u32).await;
            }
        }
    };
    match glommio::spawn_local_into(task, tq) {
        Ok(t) => {
            t.detach();
        }
        Err(_) => {
            // No task queue: finish inline rather than never.
            for d in core.shard.borrow_mut().dbs.iter_mut() {
                while !d.snapshot_step(usize::MAX) {}
            }
        }
    }
}

/// How often the walker looks at how long its thread waits for a CPU.
const CONTENTION_EVERY: std::time::Duration = std::time::Duration::from_millis(5);
/// Waiting for a CPU more than this part of the time (per mille) means the
/// CPU is oversubscribed.
const CONTENDED_PER_MILLE: u64 = 50;

/// Whether the walker's thread is short of CPU: the time it spent runnable
/// but waiting for a CPU (`/proc/thread-self/schedstat`, second field), as
/// a part of the time that passed, sampled every `CONTENTION_EVERY`.
struct Contention {
    at: Instant,
    waited_ns: Option<u64>,
    short: bool,
}

impl Contention {
    fn new() -> Contention {
        Contention {
            at: Instant::now(),
            waited_ns: run_queue_wait_ns(),
            short: false,
        }
    }

    /// The last verdict, renewed when it is `CONTENTION_EVERY` old.
    fn cpu_is_short(&mut self) -> bool {
        let elapsed = self.at.elapsed();
        if elapsed >= CONTENTION_EVERY {
            let now = run_queue_wait_ns();
            self.short = match (self.waited_ns, now) {
                (Some(a), Some(b)) => {
                    b.saturating_sub(a) * 1000 > elapsed.as_nanos() as u64 * CONTENDED_PER_MILLE
                }
                _ => false,
            };
            self.waited_ns = now;
            self.at = Instant::now();
        }
        self.short
    }
}

/// Nanoseconds this thread has spent runnable but waiting for a CPU (None
/// where the kernel does not say).
fn run_queue_wait_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes written to the final file between two writeback requests (Redis's
/// REDIS_AUTOSYNC_BYTES for rdb-save-incremental-fsync): the disk works while
/// the snapshot runs instead of all at the closing fsync.
const AUTOSYNC: u64 = 4 << 20;
/// Small pieces (headers) are gathered up to this before a write.
const OUT_BUF: usize = 64 * 1024;

/// The final file being written: a running CRC-64 of its bytes, and
/// writeback started every `AUTOSYNC` bytes.
struct Out {
    file: File,
    buf: Vec<u8>,
    crc: u64,
    written: u64,
    synced: u64,
}

impl Out {
    fn new(file: File) -> Out {
        Out {
            file,
            buf: Vec::with_capacity(OUT_BUF),
            crc: 0,
            written: 0,
            synced: 0,
        }
    }

    /// Appends `b`: gathered when small, written at once when large (chunks
    /// are not copied again).
    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.crc = crc64::crc64(self.crc, b);
        if self.buf.len() + b.len() > OUT_BUF {
            self.flush_buf()?;
        }
        if b.len() >= OUT_BUF {
            self.file.write_all(b)?;
            self.written += b.len() as u64;
            self.autosync();
        } else {
            self.buf.extend_from_slice(b);
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
            self.autosync();
        }
        Ok(())
    }

    /// Starts writeback of what was written since the last call, as Redis's
    /// rioWrite does with sync_file_range when autosync is on.
    fn autosync(&mut self) {
        if self.written - self.synced < AUTOSYNC {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain system call on a descriptor this struct owns,
            // with no memory passed. It is a hint: an error is ignored here
            // and any write error surfaces at the closing fsync.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.synced as libc::off64_t,
                    (self.written - self.synced) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.synced = self.written;
    }
}

/// How the writer thread names and heads its file.
pub struct FileOpts {
    /// Distinguishes the temp files of writers running at once ("" for BGSAVE).
    pub tag: String,
    /// Written as an AOF base (the `aof-base` aux field is 1).
    pub aof_base: bool,
    /// The function libraries as RDB records, written after the header (rdbSaveFunctions).
    pub functions: Vec<u8>,
}

/// The writer thread. The first database with keys at the cut is written
/// straight into the final file as its chunks arrive (once the sizes are
/// known: RESIZEDB comes first); the others go to part files, appended in db
/// order at the end (header, SELECTDB/RESIZEDB per db, the db's keys, EOF,
/// CRC-64). With one database in use nothing is written twice.
pub fn write_file(
    rx: mpsc::Receiver<WriterMsg>,
    dir: &Path,
    path: &Path,
    ndbs: usize,
    used_mem: u64,
    checksum: bool,
    fopts: &FileOpts,
) -> Result<u64, String> {
    let pid = std::process::id();
    let tag = &fopts.tag;
    let part_path = |db: usize| dir.join(format!("temp-{pid}{tag}-db{db}.part"));
    let tmp = dir.join(format!("temp-{pid}{tag}.rdb"));
    let mut parts: Vec<Option<File>> = (0..ndbs).map(|_| None).collect();
    let mut sizes = vec![(0u64, 0u64); ndbs];
    let cleanup = |parts: &mut Vec<Option<File>>| {
        for (db, p) in parts.iter_mut().enumerate() {
            if p.take().is_some() {
                let _ = std::fs::remove_file(part_path(db));
            }
        }
    };
    let write_err = |e: std::io::Error| format!("Write error saving DB on disk: {e}");
    // The final file, with its header written (and the direct db's, if any).
    let mut out: Option<Out> = None;
    // The database whose chunks go straight into `out`.
    let mut direct: Option<usize> = None;
    // Opens the final file and writes everything before the first db's keys.
    let start = |direct: Option<usize>,
                 sizes: &[(u64, u64)],
                 parts: &mut Vec<Option<File>>|
     -> Result<Out, String> {
        let file = File::create(&tmp).map_err(|e| {
            format!(
                "Failed opening the temp RDB file {} (in server root dir {}) for saving: {e}",
                tmp.display(),
                dir.display()
            )
        })?;
        let mut o = Out::new(file);
        let mut head = Vec::new();
        let now = now_secs();
        rdb::save_header_with(&mut head, used_mem, now, fopts.aof_base);
        head.extend_from_slice(&fopts.functions);
        if let Some(db) = direct {
            rdb::save_db_header(&mut head, db, sizes[db].0, sizes[db].1);
        }
        o.write(&head).map_err(write_err)?;
        // Chunks of the direct db that came before the sizes.
        if let Some(db) = direct {
            if let Some(f) = parts[db].take() {
                let r = copy_part(f, &mut o);
                let _ = std::fs::remove_file(part_path(db));
                r.map_err(write_err)?;
            }
        }
        Ok(o)
    };
    let mut failure: Option<String> = None;
    for msg in rx {
        if failure.is_some() {
            continue; // drain so senders never block or error
        }
        match msg {
            WriterMsg::Sizes(s) => {
                sizes = s;
                sizes.resize(ndbs, (0, 0));
                if out.is_none() {
                    direct = sizes.iter().position(|s| s.0 > 0);
                    match start(direct, &sizes, &mut parts) {
                        Ok(o) => out = Some(o),
                        Err(e) => failure = Some(e),
                    }
                }
            }
            WriterMsg::Chunk { db, bytes } => {
                if db >= ndbs {
                    continue;
                }
                if direct == Some(db) {
                    if let Some(o) = out.as_mut() {
                        if let Err(e) = o.write(&bytes) {
                            failure = Some(write_err(e));
                        }
                        continue;
                    }
                }
                if parts[db].is_none() {
                    match std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(part_path(db))
                    {
                        Ok(f) => parts[db] = Some(f),
                        Err(e) => {
                            failure = Some(format!(
                                "Failed opening the temp RDB file {} (in server root dir {}) for saving: {e}",
                                part_path(db).display(),
                                dir.display()
                            ));
                            continue;
                        }
                    }
                }
                if let Some(f) = parts[db].as_mut() {
                    if let Err(e) = f.write_all(&bytes) {
                        failure = Some(write_err(e));
                    }
                }
            }
        }
    }
    let result = (|| -> Result<u64, String> {
        if let Some(e) = failure {
            return Err(e);
        }
        let mut o = match out.take() {
            Some(o) => o,
            // No sizes came (a caller that failed half way): no direct db.
            None => start(None, &sizes, &mut parts)?,
        };
        // The other databases in db order (a db below the direct one can
        // only come from a sizes message that missed it; a second SELECTDB
        // for it is still a valid file).
        for (db, part) in parts.iter_mut().enumerate() {
            let Some(f) = part.take() else { continue };
            let _ = std::fs::remove_file(part_path(db));
            let mut h = Vec::new();
            rdb::save_db_header(&mut h, db, sizes[db].0, sizes[db].1);
            o.write(&h).map_err(write_err)?;
            copy_part(f, &mut o).map_err(write_err)?;
        }
        o.write(&[rdb::op::EOF]).map_err(write_err)?;
        let crc = if checksum { o.crc } else { 0 };
        o.write(&crc.to_le_bytes()).map_err(write_err)?;
        o.flush_buf().map_err(write_err)?;
        o.file.sync_all().map_err(write_err)?;
        let written = o.written;
        drop(o);
        std::fs::rename(&tmp, path).map_err(write_err)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(written)
    })();
    cleanup(&mut parts);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Appends a part file to the final file.
fn copy_part(mut f: File, o: &mut Out) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        o.write(&buf[..n])?;
    }
}

/// Takes the in-progress flag; false when a snapshot is already running.
pub fn try_begin() -> bool {
    super::state()
        .in_progress
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}

/// Runs a snapshot under the in-progress flag and records the outcome (INFO persistence).
pub async fn save(core: &Rc<Core>, mode: Mode) -> Result<(), String> {
    if !try_begin() {
        return Err("Background save already in progress".into());
    }
    save_held(core, mode).await
}

/// As `save`, for a caller that took the flag with `try_begin`; releases it.
pub async fn save_held(core: &Rc<Core>, mode: Mode) -> Result<(), String> {
    save_held_with(core, mode, true).await
}

/// As `save_held`; `cut_tx` as for [`run`].
async fn save_held_with(core: &Rc<Core>, mode: Mode, cut_tx: bool) -> Result<(), String> {
    let st = super::state();
    st.background
        .store(mode == Mode::Background, Ordering::SeqCst);
    let dirty_at_start = super::dirty_total();
    let started = Instant::now();
    st.started_secs.store(now_secs(), Ordering::Relaxed);
    let r = run(core, mode, cut_tx).await;
    let secs = started.elapsed().as_secs();
    let ok = r.is_ok();
    match &r {
        Ok(size) => {
            st.dirty_base.store(dirty_at_start, Ordering::SeqCst);
            st.lastsave.store(now_secs(), Ordering::SeqCst);
            st.saves.fetch_add(1, Ordering::Relaxed);
            crate::server::log::notice(&format!(
                "DB saved on disk ({size} bytes, {} keys, {} bytes copied on write)",
                st.keys_processed.load(Ordering::Relaxed),
                st.cow_bytes.load(Ordering::Relaxed)
            ));
        }
        Err(e) => crate::server::log::warning(e),
    }
    st.last_bgsave_ok.store(ok, Ordering::SeqCst);
    if !ok {
        st.last_fail_secs.store(now_secs(), Ordering::Relaxed);
    }
    if mode == Mode::Background {
        st.last_bgsave_secs.store(secs as i64, Ordering::Relaxed);
        st.last_cow
            .store(st.cow_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    st.in_progress.store(false, Ordering::SeqCst);
    r.map(|_| ())
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts a background save on this core; the reply does not wait for it.
pub fn start_background(core: &Rc<Core>) -> Result<(), String> {
    if !try_begin() {
        return Err("Background save already in progress".into());
    }
    let core = core.clone();
    glommio::spawn_local(async move {
        let _ = save_held(&core, Mode::Background).await;
    })
    .detach();
    Ok(())
}

/// The save before exiting (SHUTDOWN, SIGTERM): waits for a background save
/// in progress, then saves. False when the save failed (the caller refuses
/// to exit unless forced, as Redis).
pub async fn save_before_exit(core: &Rc<Core>) -> bool {
    crate::server::log::notice("Saving the final RDB snapshot before exiting.");
    while !try_begin() {
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
    }
    super::WRITE_FENCE.store(true, Ordering::SeqCst);
    match save_held(core, Mode::Blocking).await {
        Ok(()) => true,
        Err(_) => {
            super::WRITE_FENCE.store(false, Ordering::SeqCst);
            crate::server::log::warning("Error trying to save the DB, can't exit.");
            false
        }
    }
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: save (unless NOSAVE), validate
/// the file, empty the databases (unless NOFLUSH) and load it back.
pub async fn debug_reload(core: &Rc<Core>, save_first: bool, flush: bool) -> Result<(), String> {
    if save_first {
        if !try_begin() {
            return Err("Error trying to save the DB, check server logs.".into());
        }
        // DEBUG RELOAD may run inside MULTI, under a transaction of its own.
        save_held_with(core, Mode::Blocking, false)
            .await
            .map_err(|_| "Error trying to save the DB, check server logs.".to_string())?;
    }
    let (path, ndbs, checksum) = {
        let c = core.config.borrow();
        (
            Path::new(&c.dir).join(&c.dbfilename),
            c.databases,
            c.rdbchecksum,
        )
    };
    let data = match super::read_check_functions(&path, ndbs, checksum) {
        Ok(Some((d, libs))) => {
            // As emptyData: a flushing reload replaces the functions too;
            // NOFLUSH adds them and fails on a library that exists, as Redis.
            let r = if flush {
                super::install_functions(&path, &libs)
            } else {
                crate::scripting::functions::restore(
                    &libs,
                    crate::scripting::functions::Policy::Append,
                )
            };
            if let Err(e) = r {
                crate::server::log::warning(&e);
                return Err("Error trying to load the RDB dump, check server logs.".into());
            }
            std::sync::Arc::new(d)
        }
        Ok(None) | Err(_) => {
            if let Err(e) = super::read_and_check(&path, ndbs, checksum) {
                crate::server::log::warning(&e);
            }
            return Err("Error trying to load the RDB dump, check server logs.".into());
        }
    };
    let nshards = core.nshards;
    let results = core
        .run_on_all(move |core| {
            let mut shard = core.shard.borrow_mut();
            if flush {
                for d in shard.dbs.iter_mut() {
                    d.clear();
                }
            }
            super::load_into_shard(&data, &mut shard, nshards, crate::server::core::now_ms())
        })
        .await;
    let (mut loaded, mut expired) = (0, 0);
    for r in results {
        match r {
            Ok((l, e)) => {
                loaded += l;
                expired += e;
            }
            Err(e) => {
                crate::server::log::warning(&e);
                return Err("Error trying to load the RDB dump, check server logs.".into());
            }
        }
    }
    let st = super::state();
    st.load_keys_loaded.store(loaded, Ordering::SeqCst);
    st.load_keys_expired.store(expired, Ordering::SeqCst);
    crate::server::log::notice(&format!(
        "Done loading RDB, keys loaded: {loaded}, keys expired: {expired}."
    ));
    Ok(())
}
