//! The server log, in Redis's line format (`pid:M dd Mon yyyy hh:mm:ss.mmm * message`).

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::config::Config;

static LEVEL: AtomicU8 = AtomicU8::new(2);
// The log is written from every core, rarely; a mutex keeps lines whole.
static SINK: OnceLock<Mutex<Box<dyn Write + Send>>> = OnceLock::new();

fn level_of(name: &str) -> u8 {
    match name {
        "debug" => 0,
        "verbose" => 1,
        "notice" => 2,
        "warning" => 3,
        _ => 4,
    }
}

/// Opens the log (logfile or standard output) at the configured level.
pub fn init(config: &Config) -> Result<(), String> {
    LEVEL.store(level_of(&config.loglevel), Ordering::Relaxed);
    let sink: Box<dyn Write + Send> = if config.logfile.is_empty() {
        Box::new(std::io::stdout())
    } else {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.logfile)
            .map_err(|e| format!("Can't open the log file: {e}"))?;
        Box::new(f)
    };
    let _ = SINK.set(Mutex::new(sink));
    Ok(())
}

/// Changes the level at run time (CONFIG SET loglevel).
pub fn set_level(name: &str) {
    LEVEL.store(level_of(name), Ordering::Relaxed);
}

fn write(level: u8, mark: char, msg: &str) {
    if level < LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: tm is plain data; gmtime_r writes it and reads `secs` only.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::gmtime_r(&secs, &mut tm);
        tm
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let line = format!(
        "{}:M {:02} {} {} {:02}:{:02}:{:02}.{:03} {} {}\n",
        std::process::id(),
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis(),
        mark,
        msg
    );
    match SINK.get() {
        Some(s) => {
            if let Ok(mut w) = s.lock() {
                let _ = w.write_all(line.as_bytes());
                let _ = w.flush();
            }
        }
        None => eprint!("{line}"),
    }
}

/// Logs at `debug`.
pub fn debug(msg: &str) {
    write(0, '.', msg)
}

/// Logs at `verbose`.
pub fn verbose(msg: &str) {
    write(1, '-', msg)
}

/// Logs at `notice`.
pub fn notice(msg: &str) {
    write(2, '*', msg)
}

/// Logs at `warning`.
pub fn warning(msg: &str) {
    write(3, '#', msg)
}
