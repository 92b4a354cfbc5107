//! Runs short, bounded benchmarks against a real percore (2 shards) and checks every reply.
//!
//! The percore binary comes from the workspace build (`scripts/test.sh` runs
//! `cargo build --release --workspace --all-targets` first); when it is not
//! there the test says so and passes without running.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percore_bench::runner::{run, RunConfig};
use percore_bench::workload::{Distribution, GenConfig, ValueSize, Workload};

/// The percore binary of the same profile as this test, else any built one.
fn percore_path() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    // target/<profile>/deps/against_percore-<hash> -> target/<profile>/percore
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(|d| d.parent()) {
            candidates.push(profile_dir.join("percore"));
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    candidates.push(target.join("release").join("percore"));
    candidates.push(target.join("debug").join("percore"));
    candidates.into_iter().find(|p| p.is_file())
}

/// A percore process, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_percore(bin: &PathBuf, shards: usize) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--shards", &shards.to_string()])
        .args(["--pin-cores", "no", "--save", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start percore");
    let mut server = Server { child, port };
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = server.child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("percore exited at start ({status}): {err}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "percore did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn config(port: u16, workload: Workload) -> RunConfig {
    RunConfig {
        host: "127.0.0.1".into(),
        port,
        threads: 1,
        cpus: Vec::new(),
        connections: 4,
        pipeline: 8,
        rate: None,
        gen: GenConfig {
            workload,
            distribution: Distribution::Uniform,
            keyspace: 2000,
            key_prefix: "key:".into(),
            value_size: ValueSize { min: 32, max: 32 },
            loaded: 0,
        },
        duration: Some(Duration::from_millis(300)),
        requests: None,
        warmup: Duration::ZERO,
        load: 0,
        load_pipeline: 128,
        busy_poll: None,
        progress: false,
        seed: 7,
    }
}

/// True unless the server answers `-ERR unknown command` (the collection families land separately).
fn supports(port: u16, args: &[&str]) -> bool {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    let ok = !line.starts_with("-ERR unknown command");
    if !ok {
        eprintln!(
            "note: percore has no {} yet; that workload is not exercised",
            args[0]
        );
    }
    ok
}

/// Runs and asserts: replies measured, none wrong.
fn check(cfg: RunConfig, what: &str) -> u64 {
    let res = run(cfg).unwrap_or_else(|e| panic!("{what}: {e}"));
    let total = res.stats.total();
    assert_eq!(
        res.stats.failures(),
        0,
        "{what}: failures {:?}",
        res.stats.samples
    );
    assert!(total.count() > 0, "{what}: no replies measured");
    total.count()
}

#[test]
fn bounded_benchmarks_against_percore_are_error_free() {
    let Some(bin) = percore_path() else {
        eprintln!(
            "SKIPPED: no percore binary under target/ (build it first: cargo build --release --workspace --all-targets)"
        );
        return;
    };
    let server = start_percore(&bin, 2);
    let port = server.port;

    // The binary end to end: load, GET/SET 1:10 at P8 with lengths checked, JSON and HDR output.
    let dir = std::env::temp_dir().join(format!("percore-bench-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_percore-bench"))
        .args([
            "--port",
            &port.to_string(),
            "--threads",
            "2",
            "-c",
            "4",
            "-P",
            "8",
        ])
        .args([
            "--duration",
            "1.5",
            "--warmup",
            "0.3",
            "--load",
            "2000",
            "--keyspace",
            "2000",
        ])
        .args(["--ratio", "1:10", "-q", "--label", "it"])
        .arg("--json")
        .arg(&json)
        .arg("--hdr-dir")
        .arg(&dir)
        .output()
        .expect("run percore-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "percore-bench failed:\n{stdout}\n{stderr}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["totals"]["errors"], 0);
    assert_eq!(v["totals"]["bad_replies"], 0);
    let names: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["SET", "GET"]);
    let gets = v["commands"][1]["count"].as_u64().unwrap();
    let sets = v["commands"][0]["count"].as_u64().unwrap();
    assert!(gets > 100 && sets > 10, "{stdout}");
    // The mix is 1:10 up to one batch per connection.
    assert!(
        gets > sets * 8 && gets < sets * 12,
        "{sets} SETs, {gets} GETs"
    );
    assert!(dir.join("it-GET.hgrm").is_file() && dir.join("it-ALL.hgrm").is_file());
    std::fs::remove_dir_all(&dir).ok();

    // Every workload through the library, all replies validated; GET/MGET of the loaded keys check lengths.
    let mut mget = config(port, Workload::Mget { keys: 10 });
    mget.gen.loaded = 2000;
    check(mget, "mget");
    check(config(port, Workload::Incr), "incr");
    if supports(port, &["LPUSH", "probe:list", "x"]) {
        check(config(port, Workload::List { push: 1, pop: 1 }), "list");
    }
    if supports(port, &["HSET", "probe:hash", "f", "v"]) {
        check(
            config(
                port,
                Workload::Hash {
                    set: 1,
                    get: 1,
                    fields: 16,
                },
            ),
            "hash",
        );
    }
    if supports(port, &["ZADD", "probe:zset", "1", "m"]) {
        check(
            config(
                port,
                Workload::Zset {
                    add: 1,
                    range: 1,
                    members: 16,
                },
            ),
            "zset",
        );
    }
    let mut zipf = config(port, Workload::SetGet { set: 1, get: 10 });
    zipf.gen.distribution = Distribution::Zipf(0.99);
    zipf.gen.loaded = 2000;
    zipf.requests = Some(5000);
    zipf.duration = None;
    assert_eq!(check(zipf, "zipf requests"), 5000);
    // Open loop at a fixed rate: the rate is met and nothing is lost.
    let mut open = config(port, Workload::SetGet { set: 1, get: 1 });
    open.rate = Some(2000.0);
    open.duration = Some(Duration::from_millis(500));
    open.gen.distribution = Distribution::Sequential;
    let n = check(open, "open loop");
    assert_eq!(n, 1000, "open loop sends exactly rate × duration requests");
}
