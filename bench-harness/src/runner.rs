//! The load generator proper: one Glommio executor per client core, connections as tasks.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use futures::future::{select, Either};
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};

use crate::openloop::{corrected_latency, Schedule};
use crate::resp::{self, Reply};
use crate::stats::Stats;
use crate::workload::{validate, Bad, Expect, GenConfig, Generator, Op};

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Client executors.
    pub threads: usize,
    /// CPU of each executor (empty: not pinned; shorter than `threads`: reused round-robin).
    pub cpus: Vec<usize>,
    /// Connections over all executors.
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Open loop at this many requests/s over all connections; None = closed loop.
    pub rate: Option<f64>,
    /// Request generation.
    pub gen: GenConfig,
    /// Measured time (after warm-up).
    pub duration: Option<Duration>,
    /// Measured requests instead of a duration (closed loop).
    pub requests: Option<u64>,
    /// Fill keys `0..load` with SETs before the run (`gen.loaded` must cover them).
    pub load: u64,
    /// Unmeasured time before measuring.
    pub warmup: Duration,
    /// SETs per batch in the load phase.
    pub load_pipeline: usize,
    /// spin_before_park of the client executors.
    pub busy_poll: Option<Duration>,
    /// Print a progress line every second (stderr).
    pub progress: bool,
    /// Seed of the key and value choices.
    pub seed: u64,
}

/// What a run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Merged stats of every executor.
    pub stats: Stats,
    /// Measured seconds.
    pub duration_s: f64,
    /// Seconds the load phase took.
    pub load_s: f64,
}

/// A counter on its own cache line, so executors do not false-share.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

struct Shared {
    cfg: RunConfig,
    replies: Vec<Padded>,
    failures: AtomicU64,
    loaded: AtomicU64,
    remaining: AtomicI64,
    barrier: Barrier,
    load_done: OnceLock<Instant>,
    start: OnceLock<Instant>,
    abort: AtomicBool,
    finished: AtomicUsize,
}

/// Runs the load phase and the benchmark; blocks until done.
pub fn run(cfg: RunConfig) -> Result<RunResult, String> {
    if cfg.threads == 0 || cfg.connections == 0 || cfg.pipeline == 0 {
        return Err("threads, connections and pipeline must be at least 1".into());
    }
    if cfg.connections < cfg.threads {
        return Err(format!(
            "{} connections cannot keep {} client threads busy",
            cfg.connections, cfg.threads
        ));
    }
    let threads = cfg.threads;
    let sh = Arc::new(Shared {
        replies: (0..threads).map(|_| Padded::default()).collect(),
        failures: AtomicU64::new(0),
        loaded: AtomicU64::new(0),
        remaining: AtomicI64::new(cfg.requests.map(|r| r as i64).unwrap_or(i64::MAX)),
        barrier: Barrier::new(threads),
        load_done: OnceLock::new(),
        start: OnceLock::new(),
        abort: AtomicBool::new(false),
        finished: AtomicUsize::new(0),
        cfg,
    });
    let t_begin = Instant::now();
    let mut handles = Vec::new();
    for t in 0..threads {
        let placement = if sh.cfg.cpus.is_empty() {
            Placement::Unbound
        } else {
            Placement::Fixed(sh.cfg.cpus[t % sh.cfg.cpus.len()])
        };
        let mut b = LocalExecutorBuilder::new(placement)
            .name(&format!("bench-{t}"))
            .io_memory(1 << 20);
        if let Some(d) = sh.cfg.busy_poll {
            b = b.spin_before_park(d);
        }
        let sh2 = sh.clone();
        let h = b
            .spawn(move || async move {
                let r = thread_main(sh2.clone(), t).await;
                if r.is_err() {
                    sh2.abort.store(true, Ordering::SeqCst);
                }
                sh2.finished.fetch_add(1, Ordering::SeqCst);
                r
            })
            .map_err(|e| format!("cannot start client executor {t}: {e}"))?;
        handles.push(h);
    }
    progress_loop(&sh);
    let mut stats = Stats::new();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => stats.merge(&s),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(format!("client executor failed: {e}"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let start = sh.start.get().copied().unwrap_or(t_begin);
    let measured_from = start + sh.cfg.warmup;
    let duration_s = Instant::now()
        .saturating_duration_since(measured_from)
        .as_secs_f64();
    // Duration runs are measured over the nominal window (stragglers' replies are counted, they were sent in it).
    let duration_s = match (sh.cfg.duration, sh.cfg.requests, sh.cfg.rate) {
        (Some(d), None, _) | (Some(d), _, Some(_)) => d.as_secs_f64(),
        _ => duration_s,
    };
    let load_s = sh
        .load_done
        .get()
        .map(|t| t.duration_since(t_begin).as_secs_f64())
        .unwrap_or(0.0);
    Ok(RunResult {
        stats,
        duration_s,
        load_s,
    })
}

/// Prints a progress line each second until every executor is done.
fn progress_loop(sh: &Shared) {
    let threads = sh.cfg.threads;
    let mut last_print = Instant::now();
    let mut last_replies = 0u64;
    let mut last_loaded = 0u64;
    let mut printed_load = false;
    while sh.finished.load(Ordering::SeqCst) < threads {
        std::thread::sleep(Duration::from_millis(50));
        if !sh.cfg.progress || last_print.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let now = Instant::now();
        let dt = now.duration_since(last_print).as_secs_f64();
        last_print = now;
        match sh.start.get() {
            None => {
                let done = sh.loaded.load(Ordering::Relaxed);
                eprint!(
                    "\rloading: {done}/{} keys ({:.0} keys/s)        ",
                    sh.cfg.load,
                    done.saturating_sub(last_loaded) as f64 / dt
                );
                last_loaded = done;
                printed_load = true;
            }
            Some(t0) => {
                if printed_load {
                    eprintln!();
                    printed_load = false;
                }
                let replies: u64 = sh.replies.iter().map(|c| c.0.load(Ordering::Relaxed)).sum();
                let fails = sh.failures.load(Ordering::Relaxed);
                let el = now.saturating_duration_since(*t0).as_secs_f64();
                let phase = if el < sh.cfg.warmup.as_secs_f64() {
                    "warm-up"
                } else {
                    "run"
                };
                eprint!(
                    "\r[{el:6.1}s {phase:>7}] {:>10.0} ops/s  {replies:>12} replies  {fails} errors   ",
                    replies.saturating_sub(last_replies) as f64 / dt
                );
                last_replies = replies;
            }
        }
    }
    if sh.cfg.progress {
        eprintln!();
    }
}

/// How long a connection waits for reply bytes before it gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// One client connection: socket, receive buffer, send buffer.
struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    head: usize,
    tail: usize,
    out: Vec<u8>,
    read_at: Instant,
}

impl Conn {
    async fn open(host: &str, port: u16) -> Result<Conn, String> {
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        stream.set_nodelay(true).ok();
        // A server that stops answering fails the run instead of hanging it.
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).ok();
        Ok(Conn {
            stream,
            inbuf: vec![0; 64 << 10],
            head: 0,
            tail: 0,
            out: Vec::with_capacity(16 << 10),
            read_at: Instant::now(),
        })
    }

    async fn send(&mut self) -> Result<(), String> {
        let r = self.stream.write_all(&self.out).await;
        self.out.clear();
        r.map_err(|e| format!("write: {e}"))
    }

    /// Reads more bytes; `read_at` becomes their arrival time.
    async fn read_more(&mut self) -> Result<(), String> {
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        } else if self.tail == self.inbuf.len() {
            if self.head > 0 {
                self.inbuf.copy_within(self.head..self.tail, 0);
                self.tail -= self.head;
                self.head = 0;
            } else {
                // One reply larger than the buffer (a big MGET or ZRANGE): grow.
                let n = self.inbuf.len() * 2;
                self.inbuf.resize(n, 0);
            }
        }
        let n = self
            .stream
            .read(&mut self.inbuf[self.tail..])
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    format!(
                        "no reply from the server within {} s",
                        REPLY_TIMEOUT.as_secs()
                    )
                } else {
                    format!("read: {e}")
                }
            })?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        self.tail += n;
        self.read_at = Instant::now();
        Ok(())
    }

    /// The next complete reply in the buffer, if any.
    fn next_reply(&mut self) -> Result<Option<Reply>, String> {
        match resp::parse(&self.inbuf[self.head..self.tail])? {
            Some((r, used)) => {
                self.head += used;
                Ok(Some(r))
            }
            None => Ok(None),
        }
    }
}

/// Per-executor context shared by its connection tasks.
struct Local {
    sh: Arc<Shared>,
    thread: usize,
    stats: RefCell<Stats>,
}

impl Local {
    /// Validates one reply and records its latency if it belongs to the measurement.
    fn check(&self, op: Op, exp: Expect, reply: &Reply, latency_ns: u64, measured: bool) {
        let mut st = self.stats.borrow_mut();
        match validate(exp, reply, self.sh.cfg.gen.value_size) {
            Ok(()) => {}
            Err(Bad::ErrorReply(e)) => {
                st.op(op).errors += 1;
                if st.wants_samples() {
                    st.sample(format!("{}: error reply: {e}", op.name()));
                }
                self.sh.failures.fetch_add(1, Ordering::Relaxed);
            }
            Err(Bad::Wrong(w)) => {
                st.op(op).bad += 1;
                if st.wants_samples() {
                    st.sample(format!("{}: {w}", op.name()));
                }
                self.sh.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        if measured {
            st.op(op).record(latency_ns);
        }
    }

    fn count(&self, n: u64) {
        self.sh.replies[self.thread]
            .0
            .fetch_add(n, Ordering::Relaxed);
    }

    fn aborted(&self) -> bool {
        self.sh.abort.load(Ordering::Relaxed)
    }
}

async fn thread_main(sh: Arc<Shared>, thread: usize) -> Result<Stats, String> {
    let cfg = &sh.cfg;
    let my_conns: Vec<usize> = (0..cfg.connections)
        .filter(|c| c % cfg.threads == thread)
        .collect();
    // Connect and load; whatever happens, meet the other executors at the barrier.
    let prepared: Result<Vec<Conn>, String> = async {
        let mut conns = Vec::with_capacity(my_conns.len());
        for _ in &my_conns {
            conns.push(Conn::open(&cfg.host, cfg.port).await?);
        }
        if cfg.load > 0 {
            let mut tasks = Vec::new();
            for (conn, &c) in conns.drain(..).zip(&my_conns) {
                let sh = sh.clone();
                tasks.push(glommio::spawn_local(async move { load(sh, conn, c).await }));
            }
            for t in tasks {
                conns.push(t.await?);
            }
        }
        Ok(conns)
    }
    .await;
    if prepared.is_err() {
        sh.abort.store(true, Ordering::SeqCst);
    }
    sh.barrier.wait();
    sh.load_done.get_or_init(Instant::now);
    let conns = prepared?;
    if sh.abort.load(Ordering::SeqCst) {
        return Err("another client executor failed".into());
    }
    let t0 = *sh.start.get_or_init(Instant::now);
    let measure_from = t0 + cfg.warmup;
    let end = match (cfg.duration, cfg.requests, cfg.rate) {
        (Some(d), _, _) => Some(measure_from + d),
        (None, Some(n), Some(rate)) => {
            Some(measure_from + Duration::from_secs_f64(n as f64 / rate))
        }
        _ => None,
    };
    let local = Rc::new(Local {
        sh: sh.clone(),
        thread,
        stats: RefCell::new(Stats::new()),
    });
    let mut tasks = Vec::new();
    for (conn, &c) in conns.into_iter().zip(&my_conns) {
        let gen = Generator::new(cfg.gen.clone(), c as u64, cfg.connections as u64, cfg.seed)?;
        let local = local.clone();
        let task = match cfg.rate {
            Some(rate) => {
                let per_conn = rate / cfg.connections as f64;
                let phase = c as f64 / cfg.connections as f64;
                let end = end.unwrap_or(measure_from);
                glommio::spawn_local(async move {
                    open_loop(&local, conn, gen, t0, measure_from, end, per_conn, phase).await
                })
            }
            None => glommio::spawn_local(async move {
                closed_loop(&local, conn, gen, measure_from, end).await
            }),
        };
        tasks.push(task);
    }
    let mut first_err = None;
    for t in tasks {
        if let Err(e) = t.await {
            sh.abort.store(true, Ordering::SeqCst);
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let stats = std::mem::take(&mut *local.stats.borrow_mut());
    Ok(stats)
}

/// Fills this connection's share of keys `0..load` with pipelined SETs.
async fn load(sh: Arc<Shared>, mut conn: Conn, c: usize) -> Result<Conn, String> {
    let cfg = &sh.cfg;
    let n = cfg.load;
    let nconns = cfg.connections as u64;
    let lo = n * c as u64 / nconns;
    let hi = n * (c as u64 + 1) / nconns;
    let mut gen = Generator::new(cfg.gen.clone(), c as u64, nconns, cfg.seed ^ 0x10ad)?;
    let batch = cfg.load_pipeline.max(1) as u64;
    let mut k = lo;
    while k < hi {
        if sh.abort.load(Ordering::Relaxed) {
            return Err("aborted".into());
        }
        let m = batch.min(hi - k);
        for i in k..k + m {
            gen.push_set(&mut conn.out, i);
        }
        conn.send().await?;
        let mut got = 0;
        while got < m {
            match conn.next_reply()? {
                Some(Reply::Simple(true)) => got += 1,
                Some(other) => return Err(format!("load: SET replied {other:?}")),
                None => conn.read_more().await?,
            }
        }
        k += m;
        sh.loaded.fetch_add(m, Ordering::Relaxed);
    }
    Ok(conn)
}

/// N requests in flight, send the next batch when the previous one is answered (as redis-benchmark -P).
async fn closed_loop(
    local: &Local,
    mut conn: Conn,
    mut gen: Generator,
    measure_from: Instant,
    end: Option<Instant>,
) -> Result<(), String> {
    let cfg = &local.sh.cfg;
    let depth = cfg.pipeline;
    let mut pending: Vec<(Op, Expect)> = Vec::with_capacity(depth);
    loop {
        if local.aborted() {
            return Ok(());
        }
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            return Ok(());
        }
        let measured = now >= measure_from;
        let mut n = depth;
        if measured && cfg.requests.is_some() {
            let prev = local
                .sh
                .remaining
                .fetch_sub(depth as i64, Ordering::Relaxed);
            if prev <= 0 {
                return Ok(());
            }
            n = n.min(prev as usize);
        }
        pending.clear();
        for _ in 0..n {
            pending.push(gen.next(&mut conn.out));
        }
        let sent = Instant::now();
        conn.send().await?;
        for &(op, exp) in &pending {
            let reply = loop {
                match conn.next_reply()? {
                    Some(r) => break r,
                    None => conn.read_more().await?,
                }
            };
            local.check(
                op,
                exp,
                &reply,
                conn.read_at.saturating_duration_since(sent).as_nanos() as u64,
                measured,
            );
        }
        local.count(n as u64);
    }
}

/// Fixed-rate sending with coordinated-omission correction (latency from the intended send time).
#[allow(clippy::too_many_arguments)]
async fn open_loop(
    local: &Local,
    mut conn: Conn,
    mut gen: Generator,
    t0: Instant,
    measure_from: Instant,
    end: Instant,
    rate: f64,
    phase: f64,
) -> Result<(), String> {
    let depth = local.sh.cfg.pipeline;
    let mut sched = Schedule::new(t0, rate, phase, end);
    let mut pending: VecDeque<(Op, Expect, Instant)> = VecDeque::with_capacity(depth);
    loop {
        if local.aborted() {
            return Ok(());
        }
        let now = Instant::now();
        while pending.len() < depth {
            match sched.take_due(now) {
                Some(intended) => {
                    let (op, exp) = gen.next(&mut conn.out);
                    pending.push_back((op, exp, intended));
                }
                None => break,
            }
        }
        if !conn.out.is_empty() {
            conn.send().await?;
        }
        // Account for every reply already buffered.
        let mut done = 0u64;
        while !pending.is_empty() {
            match conn.next_reply()? {
                Some(reply) => {
                    let (op, exp, intended) = pending.pop_front().expect("not empty");
                    let lat = corrected_latency(intended, conn.read_at);
                    local.check(op, exp, &reply, lat, intended >= measure_from);
                    done += 1;
                }
                None => break,
            }
        }
        if done > 0 {
            local.count(done);
            continue;
        }
        if pending.is_empty() {
            if sched.finished() {
                return Ok(());
            }
            glommio::timer::sleep(sched.next_due().saturating_duration_since(Instant::now())).await;
            continue;
        }
        if pending.len() < depth && !sched.finished() {
            // Wait for replies, but wake up in time to send the next request on schedule.
            let wait = sched.next_due().saturating_duration_since(Instant::now());
            let res = {
                let read = pin!(conn.read_more());
                let timer = pin!(glommio::timer::sleep(wait));
                match select(read, timer).await {
                    Either::Left((r, _)) => Some(r),
                    Either::Right(_) => None,
                }
            };
            if let Some(r) = res {
                r?;
            }
        } else {
            conn.read_more().await?;
        }
    }
}
