//! The per-core background cycle (Redis's serverCron): active expiry, idle-client timeouts, shutdown.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use glommio::{Latency, Shares};

use super::core::{now_ms, Core};
use super::SHUTDOWN;

/// Keys sampled per loop per database (ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP).
const KEYS_PER_LOOP: usize = 20;
/// Keep sampling while more than this share (per cent) of samples were expired.
const ACCEPTABLE_STALE_PCT: usize = 10;
/// Share of each cron period active expiry may use (ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC).
const SLOW_TIME_PCT: u64 = 25;

/// Starts the cron task in its own low-priority task queue; `stop` fires at shutdown.
pub fn start(core: Rc<Core>, stop: oneshot::Sender<()>) {
    let tq = glommio::executor().create_task_queue(
        Shares::Static(100),
        Latency::NotImportant,
        "percore-background",
    );
    glommio::spawn_local_into(run(core, stop), tq)
        .expect("spawn the cron task")
        .detach();
}

async fn run(core: Rc<Core>, stop: oneshot::Sender<()>) {
    let mut db_cursor = 0usize;
    let mut samples = [0u64; 16];
    let mut sample_i = 0usize;
    let mut last = (Instant::now(), 0u64);
    loop {
        let hz = core.config.borrow().hz.clamp(1, 500) as u64;
        let period = Duration::from_micros(1_000_000 / hz);
        glommio::timer::sleep(period).await;
        if SHUTDOWN.load(Ordering::SeqCst) {
            // As Redis at shutdown: the AOF is written and fsynced.
            crate::persistence::aof::close(&core).await;
            core.shutting_down.set(true);
            let _ = stop.send(());
            return;
        }
        if core.id == 0 {
            persistence_cron(&core);
        }
        close_idle_clients(&core);
        // instantaneous_ops_per_sec: average of the last 16 per-tick rates, as Redis.
        let processed = core.stats.borrow().commands_processed;
        let dt = last.0.elapsed().as_secs_f64();
        if dt > 0.0 {
            samples[sample_i % 16] = (processed.saturating_sub(last.1) as f64 / dt) as u64;
            sample_i += 1;
            last = (Instant::now(), processed);
            let avg = samples.iter().sum::<u64>() / 16;
            if let Some(slot) = super::INST_OPS.get(core.id) {
                slot.store(avg as usize, Ordering::Relaxed);
            }
        }
        if !super::ACTIVE_EXPIRE.load(Ordering::Relaxed) {
            continue;
        }
        let budget = period * SLOW_TIME_PCT as u32 / 100;
        db_cursor = active_expire(&core, db_cursor, budget).await;
    }
}

/// Core 0's share of serverCron for persistence: SIGTERM's save-then-exit
/// and the `save <seconds> <changes>` points.
fn persistence_cron(core: &Rc<Core>) {
    use crate::persistence::{changes_since_last_save, snapshot, state};
    if super::SIGNAL_SHUTDOWN.swap(false, Ordering::SeqCst) {
        let core = core.clone();
        glommio::spawn_local(async move {
            let save = !core.config.borrow().save.is_empty();
            if save && !snapshot::save_before_exit(&core).await {
                super::log::warning("SIGTERM received but errors trying to shut down the server, check the logs for more information");
                return;
            }
            SHUTDOWN.store(true, Ordering::SeqCst);
        })
        .detach();
        return;
    }
    let (pct, min) = {
        let c = core.config.borrow();
        (c.auto_aof_rewrite_percentage, c.auto_aof_rewrite_min_size)
    };
    if crate::persistence::aof::auto_rewrite_due(pct, min) {
        super::log::notice("Starting automatic rewriting of AOF");
        let _ = crate::persistence::aof::start_rewrite(core);
    }
    let st = state();
    if st.in_progress.load(Ordering::SeqCst) {
        return;
    }
    let now = snapshot::now_secs();
    let changes = changes_since_last_save();
    let lastsave = st.lastsave.load(Ordering::SeqCst);
    let retry_ok = st.last_bgsave_ok.load(Ordering::SeqCst)
        || now.saturating_sub(st.last_fail_secs.load(Ordering::Relaxed)) > 5;
    let points = core.config.borrow().save.clone();
    for (secs, n) in points {
        if changes >= n.max(0) as u64 && now.saturating_sub(lastsave) as i64 > secs && retry_ok {
            super::log::notice(&format!("{n} changes in {secs} seconds. Saving..."));
            let _ = snapshot::start_background(core);
            break;
        }
    }
}

/// Closes clients idle longer than `timeout` seconds.
fn close_idle_clients(core: &Core) {
    let timeout = core.config.borrow().timeout;
    if timeout == 0 {
        return;
    }
    let now = now_ms();
    let idle: Vec<_> = core
        .clients
        .borrow()
        .by_id
        .values()
        // In whole seconds, as Redis compares its unixtime clock.
        .filter(|c| {
            (now / 1000).saturating_sub(c.info.borrow().last_interaction_ms / 1000) > timeout
        })
        // As Redis: a client blocked in BLPOP & co. is never idle.
        .filter(|c| c.unblock.borrow().is_none())
        .cloned()
        .collect();
    for c in idle {
        c.kill();
    }
}

/// One slow active-expiry cycle over this core's databases, as Redis's
/// activeExpireCycle: sample keys with a TTL, delete the expired ones, repeat
/// while many were expired, stop at the time budget. Yields between loops so
/// connections are served. Returns the database to start from next time.
async fn active_expire(core: &Core, start_db: usize, budget: Duration) -> usize {
    let started = Instant::now();
    let ndbs = core.shard.borrow().dbs.len();
    let mut db = start_db % ndbs.max(1);
    for _ in 0..ndbs {
        loop {
            let (sampled, expired) = {
                let mut shard = core.shard.borrow_mut();
                let (d, rand) = shard.db_and_rng(db);
                if d.volatile_len() == 0 {
                    // No TTLs left: no average either (INFO keyspace avg_ttl=0).
                    d.avg_ttl = 0;
                    (0, 0)
                } else {
                    d.expire_sample(KEYS_PER_LOOP, now_ms(), rand)
                }
            };
            if sampled == 0 || expired * 100 <= sampled * ACCEPTABLE_STALE_PCT {
                break;
            }
            if started.elapsed() > budget {
                return db;
            }
            glommio::yield_if_needed().await;
        }
        db = (db + 1) % ndbs;
    }
    db
}
