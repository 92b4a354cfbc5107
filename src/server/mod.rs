//! The server: executors, listeners, connections and the shard mesh.

pub mod blocking;
pub mod busy;
pub mod client;
pub mod connection;
pub mod core;
pub mod cron;
pub mod exec;
pub mod listener;
pub mod log;
pub mod shard;
pub mod tx;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};

use crate::config::Config;
use core::{Core, Msg};

/// Connected clients over all cores (maxclients is global).
pub static CONNECTED: AtomicUsize = AtomicUsize::new(0);
/// Set by SIGTERM/SIGINT or SHUTDOWN: every core stops at its next cron tick.
pub static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// Set by SIGTERM/SIGINT: core 0 saves (when save points are configured), then sets `SHUTDOWN`.
pub static SIGNAL_SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// DEBUG SET-ACTIVE-EXPIRE: whether the cron expires keys in the background.
pub static ACTIVE_EXPIRE: AtomicBool = AtomicBool::new(true);
static PEAK_MEMORY: AtomicUsize = AtomicUsize::new(0);

/// Records `used` as a memory peak candidate; returns the peak so far.
pub fn note_peak_memory(used: u64) -> u64 {
    let prev = PEAK_MEMORY.fetch_max(used as usize, Ordering::Relaxed);
    prev.max(used as usize) as u64
}

/// Commands per second over the last samples, summed over cores (INFO instantaneous_ops_per_sec).
pub fn instantaneous_ops(core: &Core) -> u64 {
    let _ = core;
    INST_OPS
        .iter()
        .map(|c| c.load(Ordering::Relaxed) as u64)
        .sum()
}

/// Per-core instantaneous ops/sec, written by each core's cron.
pub static INST_OPS: [AtomicUsize; 1024] = [const { AtomicUsize::new(0) }; 1024];

/// Process set-up that must happen before any thread exists.
///
/// Glommio 0.9 registers for private expedited `membarrier` lazily, from an
/// executor thread; registering once other threads run costs tens of
/// milliseconds, so we register here, single-threaded. Later registrations
/// are no-ops in the kernel.
pub fn early_init() {
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
    // SAFETY: membarrier takes two integer arguments and touches no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
            0 as libc::c_int,
        );
    }
}

/// Locked memory each executor needs for its io_uring rings and registered buffers.
const IO_MEMORY: usize = 1 << 20;

/// Glommio refuses to create an executor below this RLIMIT_MEMLOCK (`sys/uring.rs`).
const GLOMMIO_MIN_MEMLOCK: u64 = 512 << 10;

/// Raises RLIMIT_MEMLOCK as far as allowed; errors only below glommio's minimum.
///
/// Each executor pins its `IO_MEMORY` once per ring (3 rings) as registered
/// buffers. When the limit cannot cover them all, glommio registers what fits
/// and runs the other executors without registered buffers (slower direct
/// I/O, same network path), so that is a warning, not a reason to refuse
/// `--shards 8` on a machine with the common 8 MiB default limit.
fn raise_memlock(executors: usize) -> Result<(), String> {
    let need = (executors * (3 * IO_MEMORY + (512 << 10))) as u64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < need {
        let mut want = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads one rlimit struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) } != 0 {
            want.rlim_cur = lim.rlim_max;
            want.rlim_max = lim.rlim_max;
            // SAFETY: as above.
            unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) };
        }
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
        if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < GLOMMIO_MIN_MEMLOCK {
            return Err(format!(
                "io_uring needs at least {} KiB of locked memory but RLIMIT_MEMLOCK is {} KiB and cannot be raised: run `ulimit -l unlimited` (or set LimitMEMLOCK=infinity in the systemd unit) before starting percore",
                GLOMMIO_MIN_MEMLOCK / 1024,
                lim.rlim_cur / 1024
            ));
        }
        if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < need {
            log::warning(&format!(
                "RLIMIT_MEMLOCK is {} KiB, below the {} KiB that {} executors' io_uring buffers want: some executors will do disk I/O without registered buffers. Run `ulimit -l unlimited` (or set LimitMEMLOCK=infinity in the systemd unit) to avoid it.",
                lim.rlim_cur / 1024,
                need / 1024,
                executors
            ));
        }
    }
    Ok(())
}

/// Raises RLIMIT_NOFILE to fit maxclients, as Redis does; returns the maxclients that fits.
fn raise_nofile(maxclients: u64) -> u64 {
    let need = maxclients + 32 + 64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if lim.rlim_cur >= need {
        return maxclients;
    }
    let want = libc::rlimit {
        rlim_cur: need.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads one rlimit struct we own.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) };
    // SAFETY: as above.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if lim.rlim_cur >= need {
        maxclients
    } else {
        let fit = lim.rlim_cur.saturating_sub(96).max(1);
        log::warning(&format!(
            "You requested maxclients of {maxclients} requiring at least {need} max file descriptors. Server can't set maximum open files to {need} because of OS error: Operation not permitted. Current maximum open files is {}. maxclients has been reduced to {fit} to compensate for low ulimit.",
            lim.rlim_cur
        ));
        fit
    }
}

/// Serializes the polls of every executor's mesh join (see `run`): each poll may
/// clone or drop the builder's thread-unsafe shared count.
static MESH_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A future polled only while holding MESH_LOCK.
struct MeshLocked<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for MeshLocked<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let _guard = MESH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        self.0.as_mut().poll(cx)
    }
}

/// The CPUs in this process's affinity mask, or None when it cannot be read.
fn affinity_cpus() -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data for which all-zero is a valid (empty)
    // set; sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into
    // it, and CPU_ISSET reads within it for indexes below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect(),
        )
    }
}

/// Blocks SIGTERM/SIGINT in every thread and turns them into a shutdown request.
fn install_signal_thread() {
    // SAFETY: sigset_t is plain data; the calls only write the set we own and
    // change this thread's mask (inherited by the executor threads).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        // Writes to a closed socket must not kill the process.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    std::thread::Builder::new()
        .name("percore-signals".into())
        .spawn(|| loop {
            // SAFETY: as above; sigwait writes the received signal number into `sig`.
            let sig = unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigaddset(&mut set, libc::SIGINT);
                let mut sig = 0;
                libc::sigwait(&set, &mut sig);
                sig
            };
            let name = if sig == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            log::warning(&format!("Received {name} scheduling shutdown..."));
            SIGNAL_SHUTDOWN.store(true, Ordering::SeqCst);
        })
        .expect("spawn the signal thread");
}

/// Stores this core's keys of the (validated) dump file.
fn load_shard(core: &Core, data: &[u8], load_started: Instant) {
    let st = crate::persistence::state();
    let mut shard = core.shard.borrow_mut();
    match crate::persistence::load_into_shard(data, &mut shard, core.nshards, core::now_ms()) {
        Ok((loaded, expired)) => {
            st.load_keys_loaded.fetch_add(loaded, Ordering::SeqCst);
            st.load_keys_expired.fetch_add(expired, Ordering::SeqCst);
            static DONE: AtomicUsize = AtomicUsize::new(0);
            if DONE.fetch_add(1, Ordering::SeqCst) + 1 == core.nshards {
                log::notice(&format!(
                    "Done loading RDB, keys loaded: {}, keys expired: {}.",
                    st.load_keys_loaded.load(Ordering::SeqCst),
                    st.load_keys_expired.load(Ordering::SeqCst)
                ));
                log::notice(&format!(
                    "DB loaded from disk: {:.3} seconds",
                    load_started.elapsed().as_secs_f64()
                ));
            }
        }
        Err(e) => {
            // Validated before start-up: only a type this build cannot store gets here.
            log::warning(&format!("Error loading the RDB file: {e}"));
            listener::LISTEN_FAILED.store(true, Ordering::SeqCst);
            SHUTDOWN.store(true, Ordering::SeqCst);
        }
    }
}

/// Shards whose dataset is loaded (listeners start when all are).
static LOADED: AtomicUsize = AtomicUsize::new(0);

/// Runs the server until shutdown.
pub fn run(mut config: Config) -> Result<(), String> {
    log::init(&config)?;
    let shards = config.shards;
    raise_memlock(shards)?;
    config.maxclients = raise_nofile(config.maxclients);
    let _address_locks = listener::check_addresses(&config)?;
    install_signal_thread();
    // Load the dump, validated whole (structure, checksum) before any key is
    // stored: a bad file stops the start-up instead of half-loading.
    let rdb_path = std::path::Path::new(&config.dir).join(&config.dbfilename);
    let load_started = Instant::now();
    // appendonly yes: the AOF, when one exists, is the dataset; else the RDB.
    let aof_plan = if config.appendonly {
        Some(std::sync::Arc::new(
            crate::persistence::aof::prepare(&config).inspect_err(|e| log::warning(e))?,
        ))
    } else {
        None
    };
    let rdb_data = if aof_plan.as_ref().is_some_and(|p| p.replay.is_some()) {
        None
    } else {
        match crate::persistence::read_check_functions(
            &rdb_path,
            config.databases,
            config.rdbchecksum,
        )
        .inspect_err(|e| log::warning(e))?
        {
            Some((data, libs)) => {
                crate::persistence::install_functions(&rdb_path, &libs)
                    .inspect_err(|e| log::warning(e))?;
                Some(std::sync::Arc::new(data))
            }
            None => None,
        }
    };

    // The CPUs we may run on: online and in the affinity mask we were started
    // with, so that `taskset -c 0 percore` pins the shard to CPU 0.
    let allowed = affinity_cpus();
    let cpus = glommio::CpuSet::online()
        .ok()
        .map(|c| c.filter(|l| allowed.as_ref().is_none_or(|a| a.contains(&l.cpu))));
    let ncpus = cpus.as_ref().map(|c| c.len()).unwrap_or(1);
    let pinned = config.pin_cores && shards <= ncpus;
    let placement = if pinned {
        PoolPlacement::MaxSpread(shards, cpus)
    } else {
        PoolPlacement::Unbound(shards)
    };
    log::notice(&format!(
        "percore {} starting: {shards} shard(s), {} (port {})",
        env!("CARGO_PKG_VERSION"),
        if pinned {
            "one pinned executor per shard"
        } else {
            "executors not pinned"
        },
        config.port
    ));
    // Glommio 0.9's MeshBuilder is Send but shares an `Rc` between its copies:
    // cloning or dropping copies on several threads at once races on that
    // count (a lost update frees the block twice: heap corruption at start-up).
    // So every copy is made here, before any executor runs, and moved out one
    // per executor; each join (which drops its copy) runs under MESH_LOCK.
    let meshes = {
        let mesh: MeshBuilder<Msg, _> = MeshBuilder::full(shards, 1024);
        let copies: Vec<_> = (0..shards).map(|_| mesh.clone()).collect();
        std::sync::Arc::new(std::sync::Mutex::new(copies))
    };
    let started = Instant::now();
    let ncommands = crate::commands::CommandTable::get().cmds.len();
    let ready = std::sync::Arc::new(AtomicUsize::new(0));
    let mut builder = LocalExecutorPoolBuilder::new(placement)
        .name("percore")
        .io_memory(IO_MEMORY)
        .preempt_timer(Duration::from_micros(config.preempt_timer_us));
    if pinned && config.spin_before_park_us > 0 {
        builder = builder.spin_before_park(Duration::from_micros(config.spin_before_park_us));
    }
    let handles = builder
        .on_all_shards(move || {
            let config = config.clone();
            let meshes = meshes.clone();
            let ready = ready.clone();
            let rdb_data = rdb_data.clone();
            let aof_plan = aof_plan.clone();
            async move {
                // A move out of the vector: the shared count is not touched.
                let mesh = meshes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop()
                    .expect("one mesh builder per executor");
                let (senders, receivers) = if shards > 1 {
                    // Glommio 0.9 wakes a task waiting for its channel peer to
                    // connect only when its executor polls again; it sends no
                    // wake-up to a parked executor, so under load a start-up
                    // could hang for good. A 1 ms ticker keeps every executor
                    // polling until the mesh is joined.
                    let joined = Rc::new(Cell::new(false));
                    let ticker = glommio::spawn_local({
                        let joined = joined.clone();
                        async move {
                            while !joined.get() {
                                glommio::timer::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    });
                    let (s, r) = MeshLocked(Box::pin(mesh.join()))
                        .await
                        .expect("join the shard mesh");
                    joined.set(true);
                    ticker.await;
                    (Some(s), Some(r))
                } else {
                    // The only copy left: dropping it here races with no one.
                    drop(mesh);
                    (None, None)
                };
                let id = senders.as_ref().map(|s| s.peer_id()).unwrap_or(0);
                crate::util::alloc::register_thread();
                let core = Rc::new(Core::new(id, shards, config, senders, started, ncommands));
                if let Some(data) = rdb_data {
                    load_shard(&core, &data, load_started);
                }
                if let Some(plan) = aof_plan {
                    if let Some(Some(base)) = plan.base_rdb.get(core.id) {
                        // Loading never expires keys (time 0), as the AOF replay.
                        let r = crate::persistence::load_into_shard(
                            base,
                            &mut core.shard.borrow_mut(),
                            shards,
                            0,
                        );
                        match r {
                            Ok((n, _)) => log::notice(&format!(
                                "Reading RDB base file on AOF loading... (shard {}): {n} keys",
                                core.id
                            )),
                            Err(e) => {
                                log::warning(&format!("Bad RDB base file of the AOF {e}"));
                                listener::LISTEN_FAILED.store(true, Ordering::SeqCst);
                                SHUTDOWN.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                    if let Some(cmds) = plan.replay.as_ref().and_then(|r| r.get(core.id)) {
                        let (ok, failed) = crate::persistence::aof::replay(
                            &mut core.shard.borrow_mut(),
                            cmds,
                        );
                        log::notice(&format!(
                            "DB loaded from append only file (shard {}): {ok} commands replayed, {failed} refused, {:.3} seconds",
                            core.id,
                            load_started.elapsed().as_secs_f64()
                        ));
                    }
                    if let Err(e) = crate::persistence::aof::start(&core, &plan).await {
                        log::warning(&e);
                        listener::LISTEN_FAILED.store(true, Ordering::SeqCst);
                        SHUTDOWN.store(true, Ordering::SeqCst);
                    }
                }
                if let Some(mut receivers) = receivers {
                    for (_, rx) in receivers.streams() {
                        let core = core.clone();
                        glommio::spawn_local(async move {
                            while let Some(msg) = rx.recv().await {
                                match msg {
                                    Msg::Batch(req) => exec::run_remote_batch(&core, req),
                                    Msg::Call(f) => f(&core),
                                }
                            }
                        })
                        .detach();
                    }
                }
                // No core listens before every shard has loaded: a client must
                // never see part of the dataset (or no function libraries, which
                // load with shard 0) because its connection landed on a core
                // that finished first.
                LOADED.fetch_add(1, Ordering::SeqCst);
                while LOADED.load(Ordering::SeqCst) < shards && !SHUTDOWN.load(Ordering::SeqCst) {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                listener::serve_core(core, ready).await;
            }
        })
        .map_err(|e| format!("cannot start the executors: {e}"))?;
    for r in handles.join_all() {
        if let Err(e) = r {
            return Err(format!("executor failed: {e}"));
        }
    }
    if listener::LISTEN_FAILED.load(Ordering::SeqCst) {
        return Err("Failed listening on a configured address, exiting.".into());
    }
    log::warning("percore is now ready to exit, bye bye...");
    Ok(())
}
