//! Helpers of the persistence tests: scratch directories that outlive the
//! servers using them, percore processes restarted on the same files, kill -9.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{free_port, Raw};

/// Runs the tests of a file one at a time: each starts several multi-shard
/// servers, and many of them starting at once on a loaded 2-core machine
/// sometimes never finish starting.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scratch directory kept across restarts of the servers using it.
pub struct Dir(pub PathBuf);

impl Dir {
    /// A new empty directory named after `tag`.
    pub fn new(tag: &str) -> Dir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let d =
            std::env::temp_dir().join(format!("percore-persist-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        Dir(d)
    }

    /// The default appenddirname.
    pub fn aofdir(&self) -> PathBuf {
        self.0.join("appendonlydir")
    }

    /// The default dbfilename.
    pub fn dump(&self) -> PathBuf {
        self.0.join("dump.rdb")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process (percore or redis-server) working in a given directory.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Its port.
    pub port: u16,
    /// Its directory (where percore.log is).
    pub dir: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// A new raw RESP connection.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    /// percore's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("percore.log")).unwrap_or_default()
    }

    /// kill -9.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SHUTDOWN with `args` and wait for the exit.
    pub fn shutdown(&mut self, args: &[&str]) {
        let mut c = self.raw();
        let mut cmd = vec!["SHUTDOWN"];
        cmd.extend_from_slice(args);
        c.send_cmd(&cmd);
        assert!(
            self.wait_exit(Duration::from_secs(60)).is_some(),
            "server did not exit after SHUTDOWN {args:?}"
        );
    }

    /// Waits until the server answers +PONG (redis-server answers -LOADING
    /// while it loads); panics with its log if it exits or takes a minute.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("server exited early ({st}): {}", self.log());
            }
            if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 64];
                if c.write_all(b"PING\r\n").is_ok()
                    && matches!(c.read(&mut buf), Ok(n) if n > 0)
                    && buf.starts_with(b"+PONG")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not start: {}", self.log());
    }
}

/// Starts percore in `dir` (unpinned, DEBUG enabled), logging to percore.log.
pub fn spawn_percore(dir: &Path, shards: usize, extra: &[&str]) -> Proc {
    let port = free_port();
    let log = std::fs::File::create(dir.join("percore.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["--port", &port.to_string(), "--shards", &shards.to_string()])
        .args(["--pin-cores", "no", "--enable-debug-command", "yes"])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start percore");
    Proc {
        child,
        port,
        dir: dir.to_path_buf(),
    }
}

/// Starts percore in `dir` and waits until it serves.
pub fn percore(dir: &Path, shards: usize, extra: &[&str]) -> Proc {
    let mut p = spawn_percore(dir, shards, extra);
    p.wait_ready();
    p
}

/// Starts percore in `dir`, which must refuse to start; its log.
pub fn refused(dir: &Path, shards: usize, extra: &[&str]) -> String {
    let mut p = spawn_percore(dir, shards, extra);
    let st = p.wait_exit(Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| !s.success()),
        "server did not refuse: {}",
        p.log()
    );
    p.log()
}
