//! percore-bench: RESP load generator (closed and open loop) and result comparison for percore and redis-server.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};

use percore_bench::compare;
use percore_bench::report::{self, cmd_report, Report, RunInfo};
use percore_bench::runner::{self, RunConfig};
use percore_bench::workload::{
    parse_ratio, Distribution, GenConfig, Op, Template, ValueSize, Workload,
};

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "percore-bench",
    version,
    about = "RESP load generator on Glommio: closed/open loop, per-command HDR latencies",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Compare result files (--json output of earlier runs): table and optional SVG plot.
    Compare(CompareArgs),
}

/// `compare` options.
#[derive(Args, Debug)]
struct CompareArgs {
    /// Result files; ratios are against the first.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write a latency-percentile plot here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Command to compare (ALL = every command together).
    #[arg(long, default_value = "ALL")]
    command: String,
    /// Plot title.
    #[arg(long, default_value = "latency by percentile")]
    title: String,
}

/// Benchmark options.
#[derive(Args, Debug)]
struct RunArgs {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short, long, default_value_t = 6379)]
    port: u16,
    /// Client executors (threads), one per client core.
    #[arg(short, long, default_value_t = 1)]
    threads: usize,
    /// Pin the executors to these CPUs (e.g. `1,2` or `2-3`).
    #[arg(long)]
    cpus: Option<String>,
    /// Connections in total (spread over the threads).
    #[arg(short, long, default_value_t = 50)]
    connections: usize,
    /// Pipeline depth: requests in flight per connection.
    #[arg(short = 'P', long, default_value_t = 1)]
    pipeline: usize,
    /// Open loop at this many requests/s in total (coordinated-omission corrected); default closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Workload: setget, mget, incr, list (lpush/lpop), hash (hset/hget), zset (zadd/zrange).
    #[arg(short, long, default_value = "setget")]
    workload: String,
    /// WRITES:READS mix for setget, list, hash and zset (memtier's SET:GET convention).
    #[arg(long, default_value = "1:10")]
    ratio: String,
    /// Keys per MGET (1-64).
    #[arg(long, default_value_t = 10)]
    mget_keys: usize,
    /// Distinct fields per hash / members per sorted set.
    #[arg(long, default_value_t = 16)]
    fields: u64,
    /// Custom command template, e.g. "SET __key__ __data__" (overrides --workload).
    #[arg(long)]
    command: Option<String>,
    /// Key distribution: uniform, zipf, zipf:THETA, sequential.
    #[arg(short, long, default_value = "uniform")]
    distribution: String,
    /// Zipf exponent when --distribution zipf has none.
    #[arg(long, default_value_t = 0.99)]
    zipf_theta: f64,
    /// Distinct keys.
    #[arg(short, long, default_value_t = 100_000)]
    keyspace: u64,
    /// Prefix of string keys (key:%012d).
    #[arg(long, default_value = "key:")]
    key_prefix: String,
    /// Value size in bytes: N or MIN-MAX.
    #[arg(short = 's', long, default_value = "32")]
    data_size: String,
    /// Measured seconds (default 10 unless --requests).
    #[arg(long)]
    duration: Option<f64>,
    /// Measured requests instead of a duration.
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Unmeasured seconds before measuring.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Fill keys 0..N with SETs (pipelined) before the run; GETs of them then check the value length.
    #[arg(long, default_value_t = 0)]
    load: u64,
    /// Keys 0..N were already filled (an earlier --load-only with the same --data-size): check GET lengths.
    #[arg(long, default_value_t = 0)]
    assume_loaded: u64,
    /// SETs per pipelined batch while loading.
    #[arg(long, default_value_t = 256)]
    load_pipeline: usize,
    /// Only load, then exit (with --load).
    #[arg(long)]
    load_only: bool,
    /// Busy-poll µs before a client executor parks (glommio spin_before_park).
    #[arg(long)]
    busy_poll: Option<u64>,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write HDR percentile-distribution files (<label>-<CMD>.hgrm) here.
    #[arg(long)]
    hdr_dir: Option<PathBuf>,
    /// Name of this run in results and comparisons.
    #[arg(long, default_value = "")]
    label: String,
    /// No progress line.
    #[arg(short, long)]
    quiet: bool,
    /// Seed for key and value choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let mut v = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("bad CPU list {s:?}");
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.parse().map_err(|_| bad())?;
                let b: usize = b.parse().map_err(|_| bad())?;
                if a > b {
                    return Err(bad());
                }
                v.extend(a..=b);
            }
            None => v.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(v)
}

fn build(a: &RunArgs) -> Result<(RunConfig, RunInfo), String> {
    let (w, r) = parse_ratio(&a.ratio)?;
    let workload = match &a.command {
        Some(t) => Workload::Custom(Template::parse(t)?),
        None => match a.workload.as_str() {
            "setget" | "set-get" | "ratio" => Workload::SetGet { set: w, get: r },
            "mget" => {
                if !(1..=64).contains(&a.mget_keys) {
                    return Err("--mget-keys must be in 1..=64".into());
                }
                Workload::Mget { keys: a.mget_keys }
            }
            "incr" => Workload::Incr,
            "list" | "lpush" | "lpop" => Workload::List { push: w, pop: r },
            "hash" | "hset" | "hget" => Workload::Hash {
                set: w,
                get: r,
                fields: a.fields,
            },
            "zset" | "zadd" | "zrange" => Workload::Zset {
                add: w,
                range: r,
                members: a.fields,
            },
            other => return Err(format!("unknown workload {other:?}")),
        },
    };
    let distribution = Distribution::parse(&a.distribution, a.zipf_theta)?;
    if a.keyspace == 0 {
        return Err("--keyspace must be at least 1".into());
    }
    let value_size = ValueSize::parse(&a.data_size)?;
    let cpus = match &a.cpus {
        Some(s) => parse_cpus(s)?,
        None => Vec::new(),
    };
    if let Some(rate) = a.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err("--rate must be positive".into());
        }
    }
    let duration = match (a.duration, a.requests) {
        (Some(d), _) if !(d > 0.0 && d.is_finite()) => {
            return Err("--duration must be positive".into())
        }
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    if !(a.warmup >= 0.0 && a.warmup.is_finite()) {
        return Err("--warmup must be >= 0".into());
    }
    let gen = GenConfig {
        workload: workload.clone(),
        distribution: distribution.clone(),
        keyspace: a.keyspace,
        key_prefix: a.key_prefix.clone(),
        value_size,
        loaded: a.load.max(a.assume_loaded),
    };
    let cfg = RunConfig {
        host: a.host.clone(),
        port: a.port,
        threads: a.threads,
        cpus: cpus.clone(),
        connections: a.connections,
        pipeline: a.pipeline,
        rate: a.rate,
        gen,
        duration,
        requests: a.requests,
        warmup: Duration::from_secs_f64(a.warmup),
        load: a.load,
        load_pipeline: a.load_pipeline,
        busy_poll: a.busy_poll.map(Duration::from_micros),
        progress: !a.quiet,
        seed: a.seed,
    };
    let info = RunInfo {
        threads: a.threads,
        cpus,
        connections: a.connections,
        pipeline: a.pipeline,
        mode: if a.rate.is_some() { "open" } else { "closed" }.into(),
        rate: a.rate,
        workload: workload.describe(),
        distribution: distribution.describe(),
        keyspace: a.keyspace,
        value_size: [value_size.min, value_size.max],
        duration_s: duration.map(|d| d.as_secs_f64()),
        requests: a.requests,
        warmup_s: a.warmup,
        load: a.load,
        busy_poll_us: a.busy_poll,
    };
    Ok((cfg, info))
}

fn run_bench(a: &RunArgs) -> Result<bool, String> {
    let (mut cfg, info) = build(a)?;
    if a.load_only {
        if a.load == 0 {
            return Err("--load-only needs --load N".into());
        }
        // A zero-length measured phase: the executors load, meet, and stop.
        cfg.duration = Some(Duration::ZERO);
        cfg.requests = None;
        cfg.rate = None;
        cfg.warmup = Duration::ZERO;
    }
    let custom_name = match &cfg.gen.workload {
        Workload::Custom(t) => t.name.clone(),
        _ => String::new(),
    };
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let res = runner::run(cfg.clone())?;
    if a.load_only {
        println!(
            "loaded {} keys in {:.2} s ({:.0} keys/s)",
            a.load,
            res.load_s,
            a.load as f64 / res.load_s.max(1e-9)
        );
        return Ok(true);
    }
    let secs = res.duration_s;
    let mut commands = Vec::new();
    for (i, s) in res.stats.per_op.iter().enumerate() {
        let Some(s) = s else { continue };
        let op = ALL_OPS[i];
        let name = if op == Op::Custom {
            custom_name.as_str()
        } else {
            op.name()
        };
        commands.push((name.to_string(), s.clone()));
    }
    let total = res.stats.total();
    let report = Report {
        tool: "percore-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        label: a.label.clone(),
        target: format!("{}:{}", a.host, a.port),
        timestamp,
        config: info,
        duration_s: secs,
        load_s: res.load_s,
        totals: cmd_report("ALL", &total, secs),
        commands: commands
            .iter()
            .map(|(n, s)| cmd_report(n, s, secs))
            .collect(),
        failures: res.stats.samples.clone(),
    };
    println!(
        "{} {}: {} thread(s), {} connection(s), pipeline {}, {} loop{}, {:.2} s measured{}",
        if a.label.is_empty() { "run" } else { &a.label },
        report.target,
        a.threads,
        a.connections,
        a.pipeline,
        report.config.mode,
        a.rate
            .map(|r| format!(" at {r:.0} req/s"))
            .unwrap_or_default(),
        secs,
        if a.load > 0 {
            format!(", {} keys loaded in {:.2} s", a.load, res.load_s)
        } else {
            String::new()
        }
    );
    print!("{}", report::table(&report));
    for f in &report.failures {
        eprintln!("failure: {f}");
    }
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(dir) = &a.hdr_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let label = if a.label.is_empty() { "run" } else { &a.label };
        let mut all = commands;
        all.push(("ALL".into(), total));
        for (name, s) in &all {
            let p = dir.join(format!("{label}-{name}.hgrm"));
            report::write_hgrm(&s.hist, &p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    Ok(report.totals.errors + report.totals.bad_replies == 0)
}

/// Every op, in index order.
const ALL_OPS: [Op; percore_bench::workload::NOPS] = [
    Op::Set,
    Op::Get,
    Op::Mget,
    Op::Incr,
    Op::Lpush,
    Op::Lpop,
    Op::Hset,
    Op::Hget,
    Op::Zadd,
    Op::Zrange,
    Op::Custom,
];

fn run_compare(c: &CompareArgs) -> Result<(), String> {
    let mut runs = Vec::new();
    for f in &c.files {
        let r = compare::load(f)?;
        runs.push((compare::run_name(&r, f), r));
    }
    print!("{}", compare::table(&runs, &c.command));
    if let Some(svg) = &c.svg {
        compare::svg(&runs, &c.command, &c.title, svg)?;
        println!("wrote {}", svg.display());
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Some(Cmd::Compare(c)) => run_compare(c).map(|_| true),
        None => run_bench(&cli.run),
    };
    match result {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("percore-bench: some replies were errors or wrong (see above)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("percore-bench: {e}");
            std::process::exit(2);
        }
    }
}
