//! Running commands on a shard: routing by hash slot, the shard side of a batch, statistics.

use std::rc::Rc;
use std::time::Instant;

use smallvec::SmallVec;

use super::core::{now_ms, BatchReply, BatchReq, Core};
use super::shard::Shard;
use crate::commands::{Command, CommandTable, Exec, ShardCtx};
use crate::protocol::reply::ReplyBuf;
use crate::util::crc16::{key_hash_slot, SLOTS};

/// The shard owning hash slot `slot` (contiguous slot ranges per shard).
#[inline]
pub fn shard_of_slot(slot: u16, nshards: usize) -> usize {
    slot as usize * nshards / SLOTS
}

/// The shard owning `key`.
#[inline]
pub fn shard_of_key(key: &[u8], nshards: usize) -> usize {
    if nshards == 1 {
        return 0;
    }
    shard_of_slot(key_hash_slot(key), nshards)
}

/// The one shard all of the command's keys live on, or None when they span several.
/// A command without keys runs on the connection's own shard.
#[inline]
pub fn route(core: &Core, cmd: &Command, argv: &[&[u8]]) -> Option<usize> {
    if core.nshards == 1 {
        return Some(0);
    }
    let keys = cmd.key_positions(argv);
    let mut shard = None;
    for &k in &keys {
        let s = shard_of_key(argv[k], core.nshards);
        match shard {
            None => shard = Some(s),
            Some(x) if x != s => return None,
            _ => {}
        }
    }
    Some(shard.unwrap_or(core.id))
}

/// Commands of a pipelined batch whose keys are prefetched together.
pub const PREFETCH_WINDOW: usize = 16;

/// Starts loading what looking up these keys (a window of a batch's first
/// keys, see [`first_key`]) will touch in `db` (see
/// [`crate::storage::db::Db::prefetch`]). Callers go through a batch in
/// windows of [`PREFETCH_WINDOW`] commands: far enough ahead that the misses
/// overlap, near enough that the lines are still cached.
pub fn prefetch_keys<'a>(shard: &Shard, db: usize, keys: impl Iterator<Item = &'a [u8]>) {
    let hashes: SmallVec<[u64; PREFETCH_WINDOW]> = keys.map(crate::storage::table::hash).collect();
    if hashes.len() >= 2 {
        if let Some(d) = shard.dbs.get(db) {
            d.prefetch(&hashes);
        }
    }
}

/// Index of `cmd`'s first key in an argv of `argc` arguments, if it has one there.
#[inline]
pub fn first_key(cmd: &Command, argc: usize) -> Option<usize> {
    let k = cmd.spec.first_key;
    (k > 0 && (k as usize) < argc).then_some(k as usize)
}

/// Times the commands of a batch back to back for INFO commandstats: one
/// clock read per command (its end is the next one's start) instead of a
/// start and an end for each. Work between two commands of the batch counts
/// towards the second.
pub struct Lap(Instant);

impl Lap {
    /// Starts timing at the current instant.
    #[inline]
    pub fn start() -> Self {
        Lap(Instant::now())
    }

    /// Microseconds since the last split (or the start); starts the next lap.
    #[inline]
    pub fn split(&mut self) -> u64 {
        let now = Instant::now();
        let usec = now.saturating_duration_since(self.0).as_micros() as u64;
        self.0 = now;
        usec
    }
}

/// Runs a shard command and records its statistics (its time is the `lap`'s split).
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn run_shard_cmd(
    core: &Rc<Core>,
    shard: &mut Shard,
    cmd: &'static Command,
    argv: &[&[u8]],
    db: usize,
    now_ms: u64,
    lap: &mut Lap,
    out: &mut ReplyBuf,
) {
    let f = match cmd.exec {
        Exec::Shard(f) | Exec::Keys(f, _) => f,
        _ => unreachable!("only shard commands are routed to shards"),
    };
    // The final save before exiting has taken (or is taking) its cut: a
    // write now would be acknowledged and then lost, so it is refused.
    if crate::persistence::WRITE_FENCE.load(std::sync::atomic::Ordering::Relaxed)
        && cmd.flags().contains(crate::commands::spec::CmdFlags::WRITE)
    {
        out.error(crate::persistence::FENCE_ERROR);
        return;
    }
    let before = out.len();
    let mut ctx = ShardCtx {
        shard,
        db,
        now_ms,
        out,
    };
    f(&mut ctx, argv);
    record_usec(core, cmd, lap.split(), &out.buf[before..]);
    crate::persistence::aof::feed(core, shard, cmd, argv, db, &out.buf[before..]);
    // As Redis's handleClientsBlockedOnKeys after each command (serving logs
    // the keys it changes).
    super::blocking::serve_ready(core, shard);
}

/// Records one executed command that started at `start`: see [`record_usec`].
#[inline]
pub fn record(core: &Core, cmd: &Command, start: Instant, reply: &[u8]) {
    record_usec(core, cmd, start.elapsed().as_micros() as u64, reply);
}

/// Records one executed command: calls, time, and whether it replied with an error.
#[inline]
pub fn record_usec(core: &Core, cmd: &Command, usec: u64, reply: &[u8]) {
    let failed = reply.first() == Some(&b'-');
    // Redis's server.dirty, approximated as one change per successful write command.
    if !failed && cmd.flags().contains(crate::commands::spec::CmdFlags::WRITE) {
        crate::persistence::add_dirty(core.id, 1);
    }
    {
        let mut st = core.stats.borrow_mut();
        st.commands_processed += 1;
        let c = &mut st.cmds[cmd.id as usize];
        c.calls += 1;
        c.usec += usec;
        if failed {
            c.failed_calls += 1;
        }
    }
    if failed {
        let end = memchr::memchr2(b' ', b'\r', reply).unwrap_or(reply.len());
        let code = String::from_utf8_lossy(&reply[1..end]);
        core.count_error(&code);
    }
}

/// Runs a batch sent by another core and sends the replies back.
pub fn run_remote_batch(core: &Rc<Core>, req: BatchReq) {
    let table = CommandTable::get();
    let mut out = ReplyBuf::new(req.proto);
    let mut ends = Vec::with_capacity(req.cmds.len());
    let now = now_ms();
    let mut lap = Lap::start();
    {
        let mut shard = core.shard.borrow_mut();
        for (i, c) in req.cmds.iter().enumerate() {
            if i % PREFETCH_WINDOW == 0 && req.cmds.len() > 1 {
                let window = &req.cmds[i..(i + PREFETCH_WINDOW).min(req.cmds.len())];
                let keys = window.iter().filter_map(|w| {
                    let k = first_key(&table.cmds[w.cmd as usize], w.argc as usize)?;
                    Some(&req.buf[req.args[w.arg_start as usize + k].range()])
                });
                prefetch_keys(&shard, req.db, keys);
            }
            let args = &req.args[c.arg_start as usize..(c.arg_start + c.argc) as usize];
            let argv: SmallVec<[&[u8]; 8]> = args.iter().map(|a| &req.buf[a.range()]).collect();
            let cmd = &table.cmds[c.cmd as usize];
            if super::tx::blocked(core, cmd, &argv, req.db) {
                // A key is locked by a queued transaction: finish the batch in a task.
                drop(argv);
                drop(shard);
                let core = core.clone();
                glommio::spawn_local(finish_remote_batch(core, req, i, out, ends)).detach();
                return;
            }
            run_shard_cmd(
                core, &mut shard, cmd, &argv, req.db, now, &mut lap, &mut out,
            );
            ends.push(out.len() as u32);
        }
    }
    let BatchReq { reply, buf, .. } = req;
    // Release the connection's buffer before it reads again, so it can reuse it.
    drop(buf);
    let _ = reply.send(BatchReply { out: out.buf, ends });
}

/// The rest of a remote batch from command `from` on, waiting for transaction locks where needed.
async fn finish_remote_batch(
    core: Rc<Core>,
    req: BatchReq,
    from: usize,
    mut out: ReplyBuf,
    mut ends: Vec<u32>,
) {
    let table = CommandTable::get();
    for c in &req.cmds[from..] {
        let args = &req.args[c.arg_start as usize..(c.arg_start + c.argc) as usize];
        let argv: SmallVec<[&[u8]; 8]> = args.iter().map(|a| &req.buf[a.range()]).collect();
        let cmd = &table.cmds[c.cmd as usize];
        if super::tx::blocked(&core, cmd, &argv, req.db) {
            super::tx::run_queued(&core, cmd, &argv, req.db, &mut out).await;
        } else {
            let mut shard = core.shard.borrow_mut();
            let mut lap = Lap::start();
            run_shard_cmd(
                &core,
                &mut shard,
                cmd,
                &argv,
                req.db,
                now_ms(),
                &mut lap,
                &mut out,
            );
        }
        ends.push(out.len() as u32);
    }
    let BatchReq { reply, buf, .. } = req;
    drop(buf);
    let _ = reply.send(BatchReply { out: out.buf, ends });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_add_up_to_the_elapsed_time() {
        let begin = Instant::now();
        let mut lap = Lap::start();
        let mut sum = 0;
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            let us = lap.split();
            assert!(us >= 2000, "a lap covers its sleep: {us}");
            sum += us;
        }
        // Each split starts the next lap: nothing counted twice.
        assert!(sum <= begin.elapsed().as_micros() as u64);
    }
}
