//! The percore binary: parse the configuration, then run the server on every core.

use std::ffi::CString;

fn main() {
    percore::server::early_init();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let config = match percore::config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("percore: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = std::env::set_current_dir(&config.dir) {
        eprintln!("percore: can't chdir to '{}': {e}", config.dir);
        std::process::exit(1);
    }
    if config.daemonize {
        daemonize(config.logfile.is_empty());
    }
    let pidfile = if !config.pidfile.is_empty() {
        Some(config.pidfile.clone())
    } else if config.daemonize {
        Some("/var/run/redis.pid".to_string())
    } else {
        None
    };
    if let Some(p) = &pidfile {
        // As Redis: a pidfile that can't be written is logged, not fatal.
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            eprintln!("percore: failed to write PID file {p}: {e}");
        }
    }
    let res = percore::server::run(config);
    if let Some(p) = &pidfile {
        let _ = std::fs::remove_file(p);
    }
    if let Err(e) = res {
        eprintln!("percore: {e}");
        std::process::exit(1);
    }
}

/// Detaches from the terminal as Redis's daemonize(): fork, setsid, stdio to /dev/null.
///
/// Runs before any thread exists, so fork is safe.
fn daemonize(quiet: bool) {
    // SAFETY: single-threaded here (before the executors start); the parent
    // exits at once without touching shared state.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("percore: fork failed: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    if pid > 0 {
        std::process::exit(0);
    }
    // SAFETY: setsid takes no arguments; open/dup2/close take valid fds and a
    // NUL-terminated path that outlives the call.
    unsafe {
        libc::setsid();
        let devnull = CString::new("/dev/null").expect("no NUL");
        let fd = libc::open(devnull.as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            libc::dup2(fd, 0);
            if quiet {
                libc::dup2(fd, 1);
            }
            libc::dup2(fd, 2);
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
}
