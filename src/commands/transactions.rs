//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH (Redis 7.0 semantics).
//!
//! MULTI only flips the connection into queuing mode; the connection loop
//! queues what follows (`server::tx::queue_command`). EXEC runs the queued
//! block as ONE multi-shard transaction locking every key the block declares
//! (plus the watched keys, to check them atomically); a block with a command
//! that touches the keyspace without declaring keys locks every shard.
//! WATCH records each key's modification version in its shard's database
//! (`Db::watch_add`); EXEC compares under the transaction's locks.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::{ConnCtx, MultiCtx};
use crate::protocol::reply::ReplyBuf;
use crate::server::exec::shard_of_key;
use crate::server::tx::{self, Mode, Tx};

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// Watched keys of one shard: (database, key, what WATCH saw).
type ShardWatches = Vec<(usize, Bytes, crate::storage::db::WatchMark)>;

/// EXEC's reply when a queuing error was seen.
const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// MULTI
pub fn multi(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    let mut st = ctx.core.tx.borrow_mut();
    let m = st.multi.entry(ctx.client.id).or_default();
    if m.in_multi {
        drop(st);
        return ctx.out.error("ERR MULTI calls can not be nested");
    }
    m.in_multi = true;
    m.dirty_exec = false;
    m.queued.clear();
    ctx.out.ok();
}

/// Takes the connection's MULTI state out (EXEC/DISCARD end it); None when not in MULTI.
fn end_multi(ctx: &MultiCtx) -> Option<tx::MultiState> {
    let mut st = ctx.core.tx.borrow_mut();
    if !st.multi.get(&ctx.client.id).is_some_and(|m| m.in_multi) {
        return None;
    }
    st.multi.remove(&ctx.client.id)
}

/// DISCARD
pub fn discard(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let Some(m) = end_multi(&ctx) else {
            out.error("ERR DISCARD without MULTI");
            return out;
        };
        tx::unwatch(&ctx.core, m.watched).await;
        out.ok();
        out
    })
}

/// EXEC
pub fn exec(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let Some(m) = end_multi(&ctx) else {
            out.error("ERR EXEC without MULTI");
            return out;
        };
        if m.dirty_exec {
            tx::unwatch(&ctx.core, m.watched).await;
            out.error(EXECABORT);
            return out;
        }
        let mut t = Tx::with(ctx.core.clone(), ctx.db, false);
        if m.watched.is_empty() {
            if let Some(run) = tx::single_segment(&ctx.core, &m.queued) {
                // Only single-shard commands: one armed hop per shard, as MSET.
                tx::plan_block(&mut t, ctx.db, &m.queued);
                t.schedule_single_hop().await;
                out.array_len(m.queued.len());
                tx::run_single_segment(&ctx, t, m.queued, run, &mut out).await;
                return out;
            }
        }
        for (db, key, _, _) in &m.watched {
            t.key_in(*db, key, Mode::Shared);
        }
        tx::plan_block(&mut t, ctx.db, &m.queued);
        t.schedule().await;
        // The watched keys, checked (and unwatched) under the locks.
        let mut per: Vec<ShardWatches> = vec![Vec::new(); ctx.core.nshards];
        for (db, key, s, mark) in m.watched {
            per[s].push((db, key, mark));
        }
        let items: Vec<(usize, ShardWatches)> = per
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let now = crate::server::core::now_ms();
        let dirty = t
            .run_each(items, move |_, core, keys| {
                let mut shard = core.shard.borrow_mut();
                let mut dirty = false;
                for (db, k, mark) in keys {
                    if let Some(d) = shard.dbs.get_mut(db) {
                        dirty |= d.watch_dirty(&k, mark, now);
                        d.watch_remove(&k);
                    }
                }
                dirty
            })
            .await
            .into_iter()
            .any(|(_, d)| d);
        if dirty {
            t.abandon().await;
            out.null_array();
            return out;
        }
        out.array_len(m.queued.len());
        tx::run_block(&ctx, m.queued, &mut out).await;
        t.conclude().await;
        // The block may have switched protocols (HELLO): the array header
        // was written in the old one, as Redis does.
        out
    })
}

/// WATCH key [key ...]
pub fn watch(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        if tx::in_multi(&ctx.core, ctx.client.id) {
            out.error("ERR WATCH inside MULTI is not allowed");
            return out;
        }
        let n = ctx.core.nshards;
        let db = ctx.db;
        let mut per: Vec<Vec<Bytes>> = vec![Vec::new(); n];
        {
            let st = ctx.core.tx.borrow();
            let already = st.multi.get(&ctx.client.id);
            for k in &ctx.argv[1..] {
                let dup = already
                    .is_some_and(|m| m.watched.iter().any(|(d, wk, _, _)| *d == db && wk == k))
                    || per.iter().flatten().any(|x| x == k);
                if !dup {
                    per[shard_of_key(k, n)].push(Bytes::copy_from_slice(k));
                }
            }
        }
        let now = ctx.now_ms;
        let mut waits = Vec::new();
        let mut order = Vec::new();
        for (s, keys) in per.into_iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            order.push(s);
            waits.push(ctx.core.run_on(s, move |core| {
                let mut shard = core.shard.borrow_mut();
                keys.into_iter()
                    .map(|k| {
                        let mark = shard.dbs[db].watch_add(&k, now);
                        (k, mark)
                    })
                    .collect::<Vec<_>>()
            }));
        }
        let res = futures::future::join_all(waits).await;
        let mut st = ctx.core.tx.borrow_mut();
        let m = st.multi.entry(ctx.client.id).or_default();
        for (s, r) in order.into_iter().zip(res) {
            for (k, mark) in r.into_iter().flatten() {
                m.watched.push((db, k, s, mark));
            }
        }
        drop(st);
        out.ok();
        out
    })
}

/// UNWATCH
pub fn unwatch(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let watched = {
            let mut st = ctx.core.tx.borrow_mut();
            match st.multi.get_mut(&ctx.client.id) {
                Some(m) => std::mem::take(&mut m.watched),
                None => Vec::new(),
            }
        };
        tx::unwatch(&ctx.core, watched).await;
        let mut out = ctx.reply();
        out.ok();
        out
    })
}
