//! Configuration: redis.conf syntax, the command line, and the CONFIG GET/SET parameter table.

// Parsing, validation and error texts follow Redis 7.0 (config.c, sds.c,
// util.c, server.c) and were checked against redis-server 7.0.15.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::{error::ErrorKind, value_parser, Arg, ArgAction, Command};

use crate::util::glob::string_match;
use crate::util::num::parse_i64;

/// Every setting percore understands, with Redis's defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP port (`port`, default 6379).
    pub port: u16,
    /// Addresses to listen on (`bind`, default `127.0.0.1 -::1`); a leading `-` marks an optional address.
    pub bind: Vec<String>,
    /// `protected-mode`: refuse non-loopback clients while the default user has no password.
    pub protected_mode: bool,
    /// `enable-debug-command`: no, yes or local (DEBUG only from loopback clients).
    pub enable_debug_command: String,
    /// `requirepass`: the default user's password, if any.
    pub requirepass: Option<Vec<u8>>,
    /// `maxclients` (default 10000).
    pub maxclients: u64,
    /// `databases` (default 16).
    pub databases: usize,
    /// `timeout`: close clients idle this many seconds (0 = never).
    pub timeout: u64,
    /// `tcp-keepalive` seconds (default 300, 0 = off).
    pub tcp_keepalive: u64,
    /// `tcp-backlog` (default 511).
    pub tcp_backlog: i32,
    /// `dir`: the working directory; absolute and canonical after [`load`], so the server can chdir into it.
    pub dir: String,
    /// `dbfilename` (default dump.rdb).
    pub dbfilename: String,
    /// `loglevel`: debug, verbose, notice, warning.
    pub loglevel: String,
    /// `logfile`: empty = standard output; relative paths are relative to `dir`.
    pub logfile: String,
    /// `proto-max-bulk-len` (default 512mb).
    pub proto_max_bulk_len: u64,
    /// `client-query-buffer-limit` (default 1gb).
    pub client_query_buffer_limit: u64,
    /// `hz`: background task frequency (default 10), clamped to 1..=500 as Redis does.
    pub hz: u32,
    /// `busy-reply-threshold` (alias `lua-time-limit`), ms: past it a running script makes others get BUSY.
    pub busy_reply_threshold: u64,
    /// `shards` (percore): executors/shards; default the usable cores.
    pub shards: usize,
    /// `pin-cores` (percore): pin each executor to its own CPU when shards <= CPUs.
    pub pin_cores: bool,
    /// `spin-before-park-us` (percore): how long a pinned idle executor spins before sleeping.
    pub spin_before_park_us: u64,
    /// `preempt-timer-us` (percore): how long a task queue runs before yielding to others.
    pub preempt_timer_us: u64,
    /// `snapshot-shares` (percore): CPU shares of the snapshot/rewrite task queue (connections have 1000).
    pub snapshot_shares: usize,
    /// `hash-max-listpack-entries`: small hashes stay compact up to this many fields.
    pub hash_max_listpack_entries: u64,
    /// `hash-max-listpack-value`: ... and while every field and value is at most this long.
    pub hash_max_listpack_value: u64,
    /// `set-max-intset-entries`: integer-only sets stay an intset up to this size.
    pub set_max_intset_entries: u64,
    /// `zset-max-listpack-entries`: small sorted sets stay compact up to this many members.
    pub zset_max_listpack_entries: u64,
    /// `zset-max-listpack-value`: ... and while every member is at most this long.
    pub zset_max_listpack_value: u64,
    /// `list-max-listpack-size`: list node size (negative: -1..-5 = 4..64 KiB; positive: entries).
    pub list_max_listpack_size: i64,
    /// `list-compress-depth`: list nodes left uncompressed at each end (0 = none compressed).
    pub list_compress_depth: i64,
    /// `daemonize`: detach from the terminal at start-up (default no).
    pub daemonize: bool,
    /// `pidfile`: where to write the process id; empty = none (Redis falls back to a default path when daemonized).
    pub pidfile: String,
    /// `save`: snapshot points as (seconds, changes) pairs, default `3600 1 300 100 60 10000`.
    pub save: Vec<(i64, i32)>,
    /// `rdbcompression`: LZF-compress RDB strings (default yes).
    pub rdbcompression: bool,
    /// `rdbchecksum`: write and verify the RDB CRC-64 (default yes).
    pub rdbchecksum: bool,
    /// `appendonly`: keep an append-only file (default no).
    pub appendonly: bool,
    /// `appendfsync`: `always`, `everysec` (default) or `no`.
    pub appendfsync: String,
    /// `appenddirname` (default appendonlydir), inside `dir`.
    pub appenddirname: String,
    /// `appendfilename` (default appendonly.aof): the prefix of the AOF files.
    pub appendfilename: String,
    /// `aof-load-truncated`: load an AOF whose last command is cut short (default yes).
    pub aof_load_truncated: bool,
    /// `aof-use-rdb-preamble` (default yes): BGREWRITEAOF writes RDB base files.
    pub aof_use_rdb_preamble: bool,
    /// `aof-timestamp-enabled` (default no): `#TS:<unix time>` annotations in the AOF.
    pub aof_timestamp_enabled: bool,
    /// `auto-aof-rewrite-percentage` (default 100; 0 = off).
    pub auto_aof_rewrite_percentage: u64,
    /// `auto-aof-rewrite-min-size` (default 64mb).
    pub auto_aof_rewrite_min_size: u64,
    /// Absolute path of the configuration file named on the command line, if any.
    pub config_file: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: vec!["127.0.0.1".into(), "-::1".into()],
            protected_mode: true,
            enable_debug_command: "no".into(),
            requirepass: None,
            maxclients: 10000,
            databases: 16,
            timeout: 0,
            tcp_keepalive: 300,
            tcp_backlog: 511,
            dir: ".".into(),
            dbfilename: "dump.rdb".into(),
            loglevel: "notice".into(),
            logfile: String::new(),
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            hz: 10,
            busy_reply_threshold: 5000,
            shards: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            pin_cores: true,
            // Spinning briefly saves the sleep/wake-up round trip when requests
            // arrive back to back; only pinned executors spin (they own a core).
            spin_before_park_us: 50,
            // Glommio's default.
            preempt_timer_us: 100_000,
            // A twentieth of the connections' share: a snapshot of 1M keys
            // still finishes in seconds while clients barely notice it.
            snapshot_shares: 50,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            daemonize: false,
            pidfile: String::new(),
            save: vec![(3600, 1), (300, 100), (60, 10000)],
            rdbcompression: true,
            rdbchecksum: true,
            appendonly: false,
            appendfsync: "everysec".into(),
            appenddirname: "appendonlydir".into(),
            appendfilename: "appendonly.aof".into(),
            aof_load_truncated: true,
            aof_use_rdb_preamble: true,
            aof_timestamp_enabled: false,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * 1024 * 1024,
            config_file: None,
        }
    }
}

/// Builds the configuration from `percore [config-file] [--directive value ...]` (args exclude argv[0]).
pub fn load(args: &[OsString]) -> Result<Config, String> {
    // Only a first -h/--help/-v/--version is a flag (as in redis-server); clap prints it and exits 0.
    let raw = match cli().try_get_matches_from(args) {
        Ok(m) => m
            .get_many::<OsString>("args")
            .map(|v| v.cloned().collect::<Vec<_>>())
            .unwrap_or_default(),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => return Err(e.to_string().trim_end().to_string()),
    };
    load_from(&raw, &mut || {
        let mut text = Vec::new();
        io::stdin().read_to_end(&mut text).map(|_| text)
    })
}

/// `--help` text, modelled on redis-server's usage.
const HELP: &str = "\
Usage: percore [/path/to/percore.conf] [options] [-]
       percore - (read config from stdin)
       percore -v or --version
       percore -h or --help

Options are configuration directives written --name value [value ...];
they are applied after the config file and stdin, as with redis-server.

Examples:
       percore (run the server with default conf)
       echo 'maxclients 128' | percore -
       percore /etc/percore/6379.conf
       percore --port 7777
       percore --port 7777 --shards 4 --pin-cores no --save ''
       percore /etc/mypercore.conf --loglevel verbose -
       percore /etc/mypercore.conf --bind 127.0.0.1 ::1
";

/// The top-level CLI: only help/version are flags; everything else is kept raw for the redis-style parser.
fn cli() -> Command {
    Command::new("percore")
        .version(env!("CARGO_PKG_VERSION"))
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .override_help(HELP)
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::Help),
        )
        .arg(
            Arg::new("version")
                .short('v')
                .long("version")
                .action(ArgAction::Version),
        )
        .arg(
            Arg::new("args")
                .num_args(0..)
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .value_parser(value_parser!(OsString)),
        )
}

/// `load` after clap, with stdin injectable so tests can feed `-`.
fn load_from(
    args: &[OsString],
    stdin: &mut dyn FnMut() -> io::Result<Vec<u8>>,
) -> Result<Config, String> {
    let cmd = split_command_line(args)?;
    let mut loader = Loader::new();
    if let Some(file) = &cmd.config_file {
        // Redis makes the main file absolute before anything (e.g. `dir`) can move the cwd.
        let path: PathBuf = match std::env::current_dir() {
            Ok(d) if !file.is_empty() => d.join(OsStr::from_bytes(file)).components().collect(),
            _ => PathBuf::from(OsStr::from_bytes(file)),
        };
        let text = read_config(&path).map_err(|e| {
            format!(
                "can't open config file '{}': {}",
                String::from_utf8_lossy(file),
                io_reason(&e)
            )
        })?;
        loader.cfg.config_file = Some(path.to_string_lossy().into_owned());
        loader.text(&text, &format!("config file {}", path.display()))?;
    }
    if cmd.stdin {
        let text =
            stdin().map_err(|e| format!("can't read config from stdin: {}", io_reason(&e)))?;
        loader.text(&text, "stdin")?;
    }
    for (name, args) in &cmd.directives {
        // A bare `--` adds an empty line to Redis's config text, which it skips.
        if name.is_empty() && args.is_empty() {
            continue;
        }
        loader.directive(name, args, "command line")?;
    }
    loader.finish()
}

/// The command line split the way redis-server's `main` does it.
#[derive(Debug, Default)]
struct CommandLine {
    config_file: Option<Vec<u8>>,
    stdin: bool,
    directives: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
}

/// Splits `[file] [-] [--name values...]...` as redis-server 7.0 does.
///
/// A `--token` starts a new directive only once the previous directive has a
/// value, so `--dbfilename --foo` sets dbfilename to `--foo`; a valueless
/// `--save` before another `--option` or at the end means `save ""`.
fn split_command_line(args: &[OsString]) -> Result<CommandLine, String> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let mut out = CommandLine::default();
    let mut j = 0;
    if let Some(first) = args.first() {
        if first.first() != Some(&b'-') {
            out.config_file = Some(first.to_vec());
            j = 1;
        }
    }
    let mut has_value = true;
    while j < args.len() {
        let a = args[j];
        let last = j + 1 == args.len();
        if a == b"-" && (j == 0 || last) {
            out.stdin = true;
        } else if has_value && a.starts_with(b"--") {
            let mut parts = split_args(&a[2..]).ok_or_else(|| {
                format!(
                    "command line: Unbalanced quotes in option '{}'",
                    String::from_utf8_lossy(a)
                )
            })?;
            // "--port 6380" as one argument carries its own value.
            has_value = parts.len() > 1;
            if !has_value
                && a.eq_ignore_ascii_case(b"--save")
                && (last || args[j + 1].starts_with(b"--"))
            {
                parts.push(Vec::new());
                has_value = true;
            }
            let name = if parts.is_empty() {
                Vec::new()
            } else {
                parts.remove(0)
            };
            out.directives.push((name, parts));
        } else {
            match out.directives.last_mut() {
                Some((_, values)) => values.push(a.to_vec()),
                None => {
                    return Err(format!(
                        "command line: unexpected argument '{}' (options are written --name value)",
                        String::from_utf8_lossy(a)
                    ))
                }
            }
            has_value = true;
        }
        j += 1;
    }
    Ok(out)
}

/// Deepest include nesting accepted; Redis has no limit and overflows its stack on a loop.
const MAX_INCLUDE_DEPTH: usize = 32;

/// Applies config text, includes and command-line directives to a Config.
struct Loader {
    cfg: Config,
    ctx: Ctx,
    depth: usize,
    logfile_loc: Option<String>,
}

impl Loader {
    fn new() -> Loader {
        let mut cfg = Config::default();
        // `dir` is resolved against the current directory, as Redis's chdir is.
        if let Some(cwd) = std::env::current_dir()
            .and_then(std::fs::canonicalize)
            .ok()
            .and_then(|p| p.into_os_string().into_string().ok())
        {
            cfg.dir = cwd;
        }
        Loader {
            cfg,
            ctx: Ctx {
                loading: true,
                save_loaded: false,
            },
            depth: 0,
            logfile_loc: None,
        }
    }

    /// Parses redis.conf text; `origin` names it in errors ("config file /x", "stdin").
    fn text(&mut self, text: &[u8], origin: &str) -> Result<(), String> {
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            // Redis reads the file into a C string, so a NUL ends the line.
            let line = trim_line(until_nul(raw));
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let loc = format!("{origin} line {}", i + 1);
            let argv = split_args(line)
                .ok_or_else(|| format!("{loc}: Unbalanced quotes in configuration line"))?;
            if let Some((name, args)) = argv.split_first() {
                self.directive(name, args, &loc)?;
            }
        }
        Ok(())
    }

    /// Applies one directive; `loc` says where it came from.
    fn directive(&mut self, name: &[u8], args: &[Vec<u8>], loc: &str) -> Result<(), String> {
        let shown = String::from_utf8_lossy(name).to_ascii_lowercase();
        if let Some((_, p)) = lookup(name) {
            let split;
            let args: Vec<&[u8]> = if p.flags & MULTI_ARG != 0 {
                if args.len() == 1 && !args[0].is_empty() {
                    // 7.0 re-splits a single value, so `--bind "a b"` and `save "900 1"` work.
                    split = split_args(&args[0]).unwrap_or_default();
                    split.iter().map(Vec::as_slice).collect()
                } else {
                    args.iter().map(Vec::as_slice).collect()
                }
            } else if args.len() != 1 {
                return Err(format!(
                    "{loc}: wrong number of arguments for '{shown}' (expected 1, got {})",
                    args.len()
                ));
            } else {
                vec![args[0].as_slice()]
            };
            (p.set)(&mut self.cfg, &args, &mut self.ctx).map_err(|reason| {
                format!("{loc}: bad '{shown}' value {}: {reason}", show_args(&args))
            })?;
            if p.name == "logfile" {
                self.logfile_loc = Some(loc.to_string());
            }
            return Ok(());
        }
        if name.eq_ignore_ascii_case(b"include") {
            if args.len() != 1 {
                return Err(format!(
                    "{loc}: wrong number of arguments for 'include' (expected 1, got {})",
                    args.len()
                ));
            }
            return self.include(&args[0], loc);
        }
        Err(format!("{loc}: unknown directive '{shown}'"))
    }

    /// `include path`: relative to `dir` (Redis's cwd), wildcards allowed and may match nothing.
    fn include(&mut self, path: &[u8], loc: &str) -> Result<(), String> {
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(format!(
                "{loc}: includes nested more than {MAX_INCLUDE_DEPTH} deep (an include loop?)"
            ));
        }
        let base = PathBuf::from(&self.cfg.dir);
        let files = if path.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
            glob_paths(&base, path)
        } else if path.is_empty() {
            vec![PathBuf::new()]
        } else {
            vec![base.join(OsStr::from_bytes(path))]
        };
        for file in files {
            let text = read_config(&file).map_err(|e| {
                format!(
                    "{loc}: can't open config file '{}': {}",
                    file.display(),
                    io_reason(&e)
                )
            })?;
            self.depth += 1;
            let r = self.text(&text, &format!("config file {}", file.display()));
            self.depth -= 1;
            r?;
        }
        Ok(())
    }

    /// Final checks Redis makes after parsing, then the result.
    fn finish(self) -> Result<Config, String> {
        if !self.cfg.logfile.is_empty() {
            // Redis opens the log file once here so a bad path fails at start-up.
            let path = Path::new(&self.cfg.dir).join(&self.cfg.logfile);
            if let Err(e) = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
            {
                return Err(format!(
                    "{}: Can't open the log file '{}': {}",
                    self.logfile_loc.as_deref().unwrap_or("logfile"),
                    self.cfg.logfile,
                    io_reason(&e)
                ));
            }
        }
        Ok(self.cfg)
    }
}

/// Reads a config file; a directory reads as empty, as fopen+fgets does on Linux.
fn read_config(path: &Path) -> io::Result<Vec<u8>> {
    if path.as_os_str().is_empty() {
        // fopen("") fails, while Path::join("") would name the base directory.
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    match std::fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => Ok(Vec::new()),
        r => r,
    }
}

/// Expands an include wildcard like glob(3): per path component, sorted, dot files only by an explicit dot.
fn glob_paths(base: &Path, pattern: &[u8]) -> Vec<PathBuf> {
    let mut cands = vec![if pattern.first() == Some(&b'/') {
        PathBuf::from("/")
    } else {
        base.to_path_buf()
    }];
    for comp in pattern.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        if comp.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
            for dir in &cands {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let n = name.as_bytes();
                    if (n.first() != Some(&b'.') || comp[0] == b'.') && string_match(comp, n, false)
                    {
                        next.push(dir.join(&name));
                    }
                }
            }
        } else {
            // Outside wildcards glob(3) treats `\x` as a literal x.
            let mut lit = Vec::with_capacity(comp.len());
            let mut i = 0;
            while i < comp.len() {
                if comp[i] == b'\\' && i + 1 < comp.len() {
                    i += 1;
                }
                lit.push(comp[i]);
                i += 1;
            }
            next = cands
                .iter()
                .map(|d| d.join(OsStr::from_bytes(&lit)))
                .collect();
        }
        cands = next;
    }
    cands.retain(|p| p.symlink_metadata().is_ok());
    cands.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    cands
}

/// Context for setters: `save` accumulates while loading but replaces on CONFIG SET.
struct Ctx {
    loading: bool,
    save_loaded: bool,
}

type SetFn = fn(&mut Config, &[&[u8]], &mut Ctx) -> Result<(), String>;
type GetFn = fn(&Config) -> Vec<u8>;

/// CONFIG SET refuses it ("can't set immutable config").
const IMMUTABLE: u8 = 1;
/// Redis 7.0 refuses it unless enable-protected-configs allows (percore never does).
const PROTECTED: u8 = 2;
/// Takes any number of arguments; CONFIG SET splits its value on spaces.
const MULTI_ARG: u8 = 4;

/// One row of the parameter table shared by the config file, CONFIG GET and CONFIG SET.
struct Param {
    name: &'static str,
    /// Alternative names Redis accepts (none of the current parameters has one).
    aliases: &'static [&'static str],
    flags: u8,
    set: SetFn,
    get: GetFn,
}

/// An integer parameter stored in `$field`, bounds and parse rules as Redis's numeric configs.
macro_rules! int_param {
    ($name:literal, $flags:expr, $field:ident: $ty:ty, $lo:expr, $hi:expr, $kind:expr) => {
        Param {
            name: $name,
            aliases: &[],
            flags: $flags,
            set: |c, a, _| {
                c.$field = numeric(a[0], $kind, $lo, $hi)? as $ty;
                Ok(())
            },
            get: |c| c.$field.to_string().into_bytes(),
        }
    };
}

/// An integer parameter with one alias (Redis 7 keeps the old `ziplist` names).
macro_rules! aliased_int_param {
    ($name:literal, $alias:literal, $field:ident: $ty:ty, $lo:expr, $hi:expr, $kind:expr) => {
        Param {
            name: $name,
            aliases: &[$alias],
            flags: 0,
            set: |c, a, _| {
                c.$field = numeric(a[0], $kind, $lo, $hi)? as $ty;
                Ok(())
            },
            get: |c| c.$field.to_string().into_bytes(),
        }
    };
}

/// A yes/no parameter stored in `$field`.
macro_rules! bool_param {
    ($name:literal, $flags:expr, $field:ident) => {
        bool_param!($name, $flags, $field, |_| {})
    };
    // `$on_set` also gets the new value (for state read outside the config).
    ($name:literal, $flags:expr, $field:ident, $on_set:expr) => {
        Param {
            name: $name,
            aliases: &[],
            flags: $flags,
            set: |c, a, _| {
                c.$field = yes_no(a[0])?;
                ($on_set)(c.$field);
                Ok(())
            },
            get: |c| {
                if c.$field {
                    b"yes".to_vec()
                } else {
                    b"no".to_vec()
                }
            },
        }
    };
}

const INT_MAX: i128 = i32::MAX as i128;
/// C INT_MIN, the lower bound of Redis int configs.
const INT_MIN: i128 = i32::MIN as i128;
const MB: i128 = 1024 * 1024;

/// The parameter table, in redis.conf order.
///
/// Redis 7.0 can change `port` and `bind` at run time, but percore would have
/// to re-listen on every core, so here they are immutable, as are the
/// percore-only `shards` and `pin-cores`. `dir` and `dbfilename` are
/// protected configs in 7.0, refused by CONFIG SET by default.
static PARAMS: &[Param] = &[
    int_param!("port", IMMUTABLE, port: u16, 0, 65535, Num::Int),
    Param {
        name: "bind",
        aliases: &[],
        flags: IMMUTABLE | MULTI_ARG,
        set: set_bind,
        get: |c| c.bind.join(" ").into_bytes(),
    },
    bool_param!("protected-mode", 0, protected_mode),
    Param {
        name: "enable-debug-command",
        aliases: &[],
        flags: IMMUTABLE,
        set: |c, a, _| match ["no", "yes", "local"]
            .iter()
            .find(|l| a[0].eq_ignore_ascii_case(l.as_bytes()))
        {
            Some(l) => {
                c.enable_debug_command = l.to_string();
                Ok(())
            }
            None => Err("argument(s) must be one of the following: no, yes, local".into()),
        },
        get: |c| c.enable_debug_command.clone().into_bytes(),
    },
    Param {
        name: "requirepass",
        aliases: &[],
        flags: 0,
        set: |c, a, _| {
            c.requirepass = (!a[0].is_empty()).then(|| a[0].to_vec());
            Ok(())
        },
        get: |c| c.requirepass.clone().unwrap_or_default(),
    },
    int_param!("maxclients", 0, maxclients: u64, 1, u32::MAX as i128, Num::UInt),
    int_param!("databases", IMMUTABLE, databases: usize, 1, INT_MAX, Num::Int),
    int_param!("timeout", 0, timeout: u64, 0, INT_MAX, Num::Int),
    int_param!("tcp-keepalive", 0, tcp_keepalive: u64, 0, INT_MAX, Num::Int),
    int_param!("tcp-backlog", IMMUTABLE, tcp_backlog: i32, 0, INT_MAX, Num::Int),
    Param {
        name: "dir",
        aliases: &[],
        flags: PROTECTED,
        set: set_dir,
        get: get_dir,
    },
    Param {
        name: "dbfilename",
        aliases: &[],
        flags: PROTECTED,
        set: |c, a, _| {
            if a[0].contains(&b'/') || a[0].contains(&b'\\') {
                return Err("dbfilename can't be a path, just a filename".into());
            }
            c.dbfilename = utf8(a[0])?;
            Ok(())
        },
        get: |c| c.dbfilename.clone().into_bytes(),
    },
    Param {
        name: "loglevel",
        aliases: &[],
        flags: 0,
        set: |c, a, _| match LOGLEVELS
            .iter()
            .find(|l| a[0].eq_ignore_ascii_case(l.as_bytes()))
        {
            Some(l) => {
                c.loglevel = l.to_string();
                Ok(())
            }
            None => Err(format!(
                "argument(s) must be one of the following: {}",
                LOGLEVELS.join(", ")
            )),
        },
        get: |c| c.loglevel.clone().into_bytes(),
    },
    Param {
        name: "logfile",
        aliases: &[],
        flags: IMMUTABLE,
        set: |c, a, _| {
            c.logfile = utf8(a[0])?;
            Ok(())
        },
        get: |c| c.logfile.clone().into_bytes(),
    },
    int_param!(
        "proto-max-bulk-len",
        0,
        proto_max_bulk_len: u64,
        MB,
        i64::MAX as i128,
        Num::Memory
    ),
    int_param!(
        "client-query-buffer-limit",
        0,
        client_query_buffer_limit: u64,
        MB,
        i64::MAX as i128,
        Num::MemoryUnsigned
    ),
    Param {
        name: "hz",
        aliases: &[],
        flags: 0,
        set: |c, a, _| {
            // Redis accepts any non-negative int but runs (and reports) it clamped.
            c.hz = numeric(a[0], Num::Int, 0, INT_MAX)?.clamp(1, 500) as u32;
            Ok(())
        },
        get: |c| c.hz.to_string().into_bytes(),
    },
    bool_param!("daemonize", IMMUTABLE, daemonize),
    Param {
        name: "pidfile",
        aliases: &[],
        flags: IMMUTABLE,
        set: |c, a, _| {
            c.pidfile = utf8(a[0])?;
            Ok(())
        },
        get: |c| c.pidfile.clone().into_bytes(),
    },
    Param {
        name: "save",
        aliases: &[],
        flags: MULTI_ARG,
        set: set_save,
        get: |c| {
            let parts: Vec<String> = c.save.iter().map(|(s, n)| format!("{s} {n}")).collect();
            parts.join(" ").into_bytes()
        },
    },
    // DUMP reads it on every core.
    bool_param!("rdbcompression", 0, rdbcompression, |on| {
        crate::persistence::rdb::DUMP_COMPRESSION.store(on, std::sync::atomic::Ordering::Relaxed)
    }),
    bool_param!("rdbchecksum", IMMUTABLE, rdbchecksum),
    Param {
        name: "busy-reply-threshold",
        aliases: &["lua-time-limit"],
        flags: 0,
        set: |c, a, _| {
            c.busy_reply_threshold = numeric(a[0], Num::Int, 0, i64::MAX as i128)? as u64;
            // Read by running scripts on every core.
            crate::scripting::BUSY_THRESHOLD_MS
                .store(c.busy_reply_threshold, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        },
        get: |c| c.busy_reply_threshold.to_string().into_bytes(),
    },
    // Switched at run time by CONFIG SET (`persistence::aof::set_enabled`).
    bool_param!("appendonly", 0, appendonly),
    Param {
        name: "appendfsync",
        aliases: &[],
        flags: 0,
        set: |c, a, _| match ["always", "everysec", "no"]
            .iter()
            .find(|l| a[0].eq_ignore_ascii_case(l.as_bytes()))
        {
            Some(l) => {
                c.appendfsync = l.to_string();
                crate::persistence::aof::set_fsync(l);
                Ok(())
            }
            None => Err("argument(s) must be one of the following: always, everysec, no".into()),
        },
        get: |c| c.appendfsync.clone().into_bytes(),
    },
    Param {
        name: "appenddirname",
        aliases: &[],
        flags: IMMUTABLE,
        set: |c, a, _| {
            if a[0].contains(&b'/') || a[0].contains(&b'\\') {
                return Err("appenddirname can't be a path, just a dirname".into());
            }
            c.appenddirname = utf8(a[0])?;
            Ok(())
        },
        get: |c| c.appenddirname.clone().into_bytes(),
    },
    Param {
        name: "appendfilename",
        aliases: &[],
        flags: IMMUTABLE,
        set: |c, a, _| {
            if a[0].contains(&b'/') || a[0].contains(&b'\\') {
                return Err("appendfilename can't be a path, just a filename".into());
            }
            c.appendfilename = utf8(a[0])?;
            Ok(())
        },
        get: |c| c.appendfilename.clone().into_bytes(),
    },
    bool_param!("aof-load-truncated", 0, aof_load_truncated),
    bool_param!("aof-use-rdb-preamble", 0, aof_use_rdb_preamble),
    bool_param!(
        "aof-timestamp-enabled",
        0,
        aof_timestamp_enabled,
        crate::persistence::aof::set_timestamps
    ),
    int_param!(
        "auto-aof-rewrite-percentage",
        0,
        auto_aof_rewrite_percentage: u64,
        0,
        INT_MAX,
        Num::Int
    ),
    int_param!(
        "auto-aof-rewrite-min-size",
        0,
        auto_aof_rewrite_min_size: u64,
        0,
        i64::MAX as i128,
        Num::Memory
    ),
    aliased_int_param!(
        "hash-max-listpack-entries",
        "hash-max-ziplist-entries",
        hash_max_listpack_entries: u64,
        0,
        i64::MAX as i128,
        Num::Int
    ),
    aliased_int_param!(
        "hash-max-listpack-value",
        "hash-max-ziplist-value",
        hash_max_listpack_value: u64,
        0,
        i64::MAX as i128,
        Num::Memory
    ),
    int_param!(
        "set-max-intset-entries",
        0,
        set_max_intset_entries: u64,
        0,
        i64::MAX as i128,
        Num::Int
    ),
    aliased_int_param!(
        "zset-max-listpack-entries",
        "zset-max-ziplist-entries",
        zset_max_listpack_entries: u64,
        0,
        i64::MAX as i128,
        Num::Int
    ),
    aliased_int_param!(
        "zset-max-listpack-value",
        "zset-max-ziplist-value",
        zset_max_listpack_value: u64,
        0,
        i64::MAX as i128,
        Num::Memory
    ),
    aliased_int_param!(
        "list-max-listpack-size",
        "list-max-ziplist-size",
        list_max_listpack_size: i64,
        INT_MIN,
        INT_MAX,
        Num::Int
    ),
    int_param!("list-compress-depth", 0, list_compress_depth: i64, 0, INT_MAX, Num::Int),
    int_param!("shards", IMMUTABLE, shards: usize, 1, 1024, Num::Int),
    bool_param!("pin-cores", IMMUTABLE, pin_cores),
    int_param!("spin-before-park-us", IMMUTABLE, spin_before_park_us: u64, 0, 1_000_000, Num::Int),
    int_param!("preempt-timer-us", IMMUTABLE, preempt_timer_us: u64, 100, 10_000_000, Num::Int),
    int_param!("snapshot-shares", IMMUTABLE, snapshot_shares: usize, 1, 1000, Num::Int),
];

/// `loglevel` names, as Redis 7.0 (`nothing` came in 7.2, and 7.0 refuses it).
const LOGLEVELS: [&str; 4] = ["debug", "verbose", "notice", "warning"];

/// Finds a parameter by name or alias, case-insensitively; returns the table spelling matched.
fn lookup(name: &[u8]) -> Option<(&'static str, &'static Param)> {
    PARAMS.iter().find_map(|p| {
        std::iter::once(p.name)
            .chain(p.aliases.iter().copied())
            .find(|n| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|n| (n, p))
    })
}

impl Config {
    /// CONFIG GET: (name, Redis-formatted value) for each parameter or alias matching any pattern, once each.
    ///
    /// Redis collects matches in a case-insensitive dict keyed by the name
    /// that first matched: for an exact (glob-free) pattern that is the
    /// client's own spelling (`CONFIG GET TIMEOUT` answers `TIMEOUT`).
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        let seen = |out: &[(String, Vec<u8>)], name: &str| {
            out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        for pat in patterns {
            // Without `*?[` Redis does an exact, case-insensitive lookup.
            if !pat.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
                if let Some((name, p)) = lookup(pat) {
                    if !seen(&out, name) {
                        // A match is ASCII, so the client's spelling is too.
                        out.push((String::from_utf8_lossy(pat).into_owned(), (p.get)(self)));
                    }
                }
                continue;
            }
            for p in PARAMS {
                for name in std::iter::once(p.name).chain(p.aliases.iter().copied()) {
                    if !seen(&out, name) && string_match(pat, name.as_bytes(), true) {
                        out.push((name.to_string(), (p.get)(self)));
                    }
                }
            }
        }
        out
    }

    /// CONFIG SET, all or nothing with Redis 7.0's error texts (no leading `-`); returns the parameters that changed.
    pub fn set(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<Vec<&'static str>, String> {
        // As in Redis the first name-level problem (unknown, immutable,
        // protected, duplicate) wins; only then are values parsed, in order.
        // port, bind, shards and pin-cores are immutable here: see PARAMS.
        let mut chosen: Vec<(&'static str, &'static Param, &[u8])> = Vec::new();
        let mut first_err: Option<String> = None;
        for &(name, value) in pairs {
            let shown = String::from_utf8_lossy(name);
            let Some((matched, p)) = lookup(name) else {
                first_err.get_or_insert_with(|| {
                    format!("ERR Unknown option or number of arguments for CONFIG SET - '{shown}'")
                });
                continue;
            };
            if first_err.is_some() {
                continue;
            }
            let reason = if p.flags & IMMUTABLE != 0 {
                "can't set immutable config"
            } else if p.flags & PROTECTED != 0 {
                "can't set protected config"
            } else if chosen.iter().any(|(_, q, _)| std::ptr::eq(*q, p)) {
                "duplicate parameter"
            } else {
                chosen.push((matched, p, value));
                continue;
            };
            first_err = Some(set_failed(&shown, reason));
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        // Work on a copy so a bad value leaves everything as it was.
        let mut new = self.clone();
        let mut ctx = Ctx {
            loading: false,
            save_loaded: false,
        };
        for &(matched, p, value) in &chosen {
            let args: Vec<&[u8]> = if p.flags & MULTI_ARG != 0 {
                // Redis splits on single spaces (sdssplitlen), so "" means no arguments.
                if value.is_empty() {
                    Vec::new()
                } else {
                    value.split(|&b| b == b' ').collect()
                }
            } else {
                vec![value]
            };
            (p.set)(&mut new, &args, &mut ctx).map_err(|reason| set_failed(matched, &reason))?;
        }
        let changed = chosen
            .iter()
            .filter(|(_, p, _)| (p.get)(self) != (p.get)(&new))
            .map(|(_, p, _)| p.name)
            .collect();
        *self = new;
        Ok(changed)
    }
}

/// The CONFIG SET failure text naming the offending argument.
fn set_failed(name: &str, reason: &str) -> String {
    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
}

/// How a numeric parameter's value is parsed and range-checked (Redis's numeric config types).
#[derive(Clone, Copy)]
enum Num {
    /// string2ll, signed compare.
    Int,
    /// string2ll, compared as unsigned (so -1 is out of range, not negative).
    UInt,
    /// memtoull with units, compared as signed long long.
    Memory,
    /// memtoull with units, compared as unsigned (size_t).
    MemoryUnsigned,
}

/// Parses and bounds-checks a numeric value with Redis's error texts.
fn numeric(arg: &[u8], kind: Num, lo: i128, hi: i128) -> Result<i128, String> {
    let bits = match kind {
        Num::Int | Num::UInt => {
            parse_i64(arg).ok_or("argument couldn't be parsed into an integer")? as u64
        }
        Num::Memory | Num::MemoryUnsigned => {
            memtoull(arg).ok_or("argument must be a memory value")?
        }
    };
    // Redis casts the parsed long long to the config's C type before comparing.
    let v = match kind {
        Num::UInt | Num::MemoryUnsigned => bits as i128,
        Num::Int | Num::Memory => bits as i64 as i128,
    };
    if v < lo || v > hi {
        return Err(format!("argument must be between {lo} and {hi} inclusive"));
    }
    Ok(v)
}

/// Redis's memtoull: digits plus an optional case-insensitive b/k/kb/m/mb/g/gb unit.
///
/// Like 7.0 it saturates on too many digits and wraps on unit overflow,
/// and an empty number (``, `kb`) is 0.
fn memtoull(s: &[u8]) -> Option<u64> {
    let s = until_nul(s);
    if s.first() == Some(&b'-') {
        return None;
    }
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let unit = s[digits..].to_ascii_lowercase();
    let mul: u64 = match unit.as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits >= 128 {
        return None;
    }
    let val = s[..digits].iter().fold(0u64, |v, &d| {
        v.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .unwrap_or(u64::MAX)
    });
    Some(val.wrapping_mul(mul))
}

/// C `strtoll(s, &end, 10)` accepted only when `*end == '\0'` (save's parsing).
fn strtoll_full(s: &[u8]) -> Option<i64> {
    let s = until_nul(s);
    let mut i = s.iter().take_while(|&&c| is_c_space(c)).count();
    let neg = matches!(s.get(i), Some(b'-'));
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let start = i;
    let mut v: i128 = 0;
    while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
        v = (v * 10 + i128::from(d - b'0')).min(i128::from(u64::MAX));
        i += 1;
    }
    if i == start {
        // No digits: end points at the start, so only "" passes.
        return s.is_empty().then_some(0);
    }
    if i != s.len() {
        return None;
    }
    let v = if neg { -v } else { v };
    Some(v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// Redis's yesnotoi.
fn yes_no(a: &[u8]) -> Result<bool, String> {
    if a.eq_ignore_ascii_case(b"yes") {
        Ok(true)
    } else if a.eq_ignore_ascii_case(b"no") {
        Ok(false)
    } else {
        Err("argument must be 'yes' or 'no'".into())
    }
}

/// String fields are Rust Strings, so reject bytes that are not UTF-8.
fn utf8(a: &[u8]) -> Result<String, String> {
    String::from_utf8(a.to_vec()).map_err(|_| "argument must be valid UTF-8".into())
}

/// `bind`: up to 16 addresses; a single empty argument means none.
fn set_bind(c: &mut Config, a: &[&[u8]], _: &mut Ctx) -> Result<(), String> {
    if a.len() > 16 {
        return Err("Too many bind addresses specified.".into());
    }
    let a = if a.len() == 1 && a[0].is_empty() {
        &[][..]
    } else {
        a
    };
    c.bind = a.iter().map(|x| utf8(x)).collect::<Result<_, _>>()?;
    Ok(())
}

/// `dir`: must name an existing directory, resolved against the current `dir` like chdir.
fn set_dir(c: &mut Config, a: &[&[u8]], _: &mut Ctx) -> Result<(), String> {
    if a[0].is_empty() {
        return Err(io_reason(&io::Error::from(io::ErrorKind::NotFound)));
    }
    let target = Path::new(&c.dir).join(OsStr::from_bytes(a[0]));
    let canon = std::fs::canonicalize(&target).map_err(|e| io_reason(&e))?;
    if !canon.is_dir() {
        return Err(io_reason(&io::Error::from(io::ErrorKind::NotADirectory)));
    }
    c.dir = canon
        .into_os_string()
        .into_string()
        .map_err(|_| "argument must be valid UTF-8".to_string())?;
    Ok(())
}

/// CONFIG GET dir reports the absolute directory, as Redis's getcwd does.
fn get_dir(c: &Config) -> Vec<u8> {
    let p = Path::new(&c.dir);
    if p.is_absolute() {
        return c.dir.clone().into_bytes();
    }
    std::env::current_dir()
        .and_then(|d| std::fs::canonicalize(d.join(p)))
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .unwrap_or_else(|_| c.dir.clone().into_bytes())
}

/// `save`: seconds/changes pairs; `""` clears. Loading appends after the first
/// line replaces the defaults; CONFIG SET replaces.
fn set_save(c: &mut Config, a: &[&[u8]], ctx: &mut Ctx) -> Result<(), String> {
    let mut args = a;
    if a.len() == 1 && a[0].is_empty() {
        c.save.clear();
        args = &[];
    }
    if args.len() % 2 == 1 {
        return Err("Invalid save parameters".into());
    }
    let mut pairs = Vec::with_capacity(args.len() / 2);
    for pair in args.chunks(2) {
        match (strtoll_full(pair[0]), strtoll_full(pair[1])) {
            // Redis stores changes in an int, truncating.
            (Some(s), Some(n)) if s >= 1 && n >= 0 => pairs.push((s, n as i32)),
            _ => return Err("Invalid save parameters".into()),
        }
    }
    if !ctx.loading || !ctx.save_loaded {
        ctx.save_loaded = true;
        c.save.clear();
    }
    c.save.extend(pairs);
    Ok(())
}

/// Redis's sdssplitargs: whitespace-separated tokens with "double" (escapes) and 'single' quotes.
///
/// Returns None on unbalanced quotes or a closing quote not followed by space.
pub(crate) fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut p = 0;
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    loop {
        while p < line.len() && is_c_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            let c = at(p);
            if inq {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && hex(at(p + 2)).is_some()
                    && hex(at(p + 3)).is_some()
                {
                    cur.push(hex(at(p + 2))? * 16 + hex(at(p + 3))?);
                    p += 3;
                } else if c == b'\\' && p + 1 < line.len() {
                    p += 1;
                    cur.push(match line[p] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if p + 1 < line.len() && !is_c_space(line[p + 1]) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if p >= line.len() {
                    return None;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if p + 1 < line.len() && !is_c_space(line[p + 1]) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if p >= line.len() {
                    return None;
                } else {
                    cur.push(c);
                }
            } else if p >= line.len() || matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            } else if c == b'"' {
                inq = true;
            } else if c == b'\'' {
                insq = true;
            } else {
                cur.push(c);
            }
            p += 1;
        }
        out.push(cur);
    }
}

/// Value of a hex digit.
fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// C isspace in the C locale.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The bytes before the first NUL, as C string functions see them.
fn until_nul(s: &[u8]) -> &[u8] {
    s.iter().position(|&b| b == 0).map_or(s, |i| &s[..i])
}

/// sdstrim(line, " \t\r\n").
fn trim_line(s: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let start = s.iter().position(|c| !ws(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !ws(c)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// strerror-style text of an I/O error, without Rust's " (os error N)" suffix.
fn io_reason(e: &io::Error) -> String {
    let s = match e.raw_os_error() {
        Some(_) => e.to_string(),
        // Errors built from a kind carry no errno; map the two we create.
        None => match e.kind() {
            io::ErrorKind::NotFound => "No such file or directory".to_string(),
            io::ErrorKind::NotADirectory => "Not a directory".to_string(),
            _ => e.to_string(),
        },
    };
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Arguments quoted for an error message, control bytes escaped.
fn show_args(args: &[&[u8]]) -> String {
    let joined = args.join(&b' ');
    let escaped: String = joined
        .iter()
        .flat_map(|&b| {
            if b == b'\'' || b == b'\\' || b.is_ascii_graphic() || b == b' ' {
                vec![b as char]
            } else {
                format!("\\x{b:02x}").chars().collect()
            }
        })
        .collect();
    format!("'{escaped}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, canonical scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("percore-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::canonicalize(d).unwrap()
    }

    fn write(dir: &Path, file: &str, text: &str) -> String {
        let p = dir.join(file);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn load_args(args: &[&str]) -> Result<Config, String> {
        load_from(&os(args), &mut || panic!("stdin not expected"))
    }

    fn load_file(dir: &Path, text: &str) -> Result<Config, String> {
        let f = write(dir, "percore.conf", text);
        load_args(&[&f])
    }

    fn get1(c: &Config, name: &str) -> String {
        let r = c.get(&[name.as_bytes()]);
        assert_eq!(r.len(), 1, "{name}: {r:?}");
        String::from_utf8(r[0].1.clone()).unwrap()
    }

    fn set(c: &mut Config, pairs: &[(&str, &str)]) -> Result<Vec<&'static str>, String> {
        let pairs: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        c.set(&pairs)
    }

    fn split(line: &str) -> Option<Vec<Vec<u8>>> {
        split_args(line.as_bytes())
    }

    fn toks(v: &[&str]) -> Option<Vec<Vec<u8>>> {
        Some(v.iter().map(|s| s.as_bytes().to_vec()).collect())
    }

    #[test]
    fn split_args_follows_sdssplitargs() {
        assert_eq!(
            split(r#"set "a\x41\n\"b\t\r\a\b\z""#),
            Some(vec![b"set".to_vec(), b"aA\n\"b\t\r\x07\x08z".to_vec()])
        );
        assert_eq!(split(r#"x 'a\'b"c'"#), toks(&["x", "a'b\"c"]));
        assert_eq!(split(r#"x '\x41'"#), toks(&["x", r"\x41"]));
        assert_eq!(split(r#""\x4" "\xzz""#), toks(&["x4", "xzz"]));
        assert_eq!(split(r#""a b"   c"#), toks(&["a b", "c"]));
        assert_eq!(split(r#"ab"c" d"#), toks(&["abc", "d"]));
        assert_eq!(split("'a'   "), toks(&["a"]));
        assert_eq!(split(r#""""#), toks(&[""]));
        assert_eq!(split(" \t "), toks(&[]));
        assert_eq!(split(r#""foo"bar"#), None);
        assert_eq!(split(r#"a"b"#), None);
        assert_eq!(split(r#"ab"c"d"#), None);
        assert_eq!(split("'a''b'"), None);
        assert_eq!(split(r#""unterminated"#), None);
        assert_eq!(split(r#""ends in backslash\"#), None);
    }

    #[test]
    fn memtoull_matches_redis_7_0() {
        let m = |s: &str| memtoull(s.as_bytes());
        assert_eq!(m("1"), Some(1));
        assert_eq!(m("1b"), Some(1));
        assert_eq!(m("1k"), Some(1000));
        assert_eq!(m("1K"), Some(1000));
        assert_eq!(m("1kb"), Some(1024));
        assert_eq!(m("1m"), Some(1_000_000));
        assert_eq!(m("1Mb"), Some(1 << 20));
        assert_eq!(m("1g"), Some(1_000_000_000));
        assert_eq!(m("2GB"), Some(2 << 30));
        assert_eq!(m("01mb"), Some(1 << 20));
        assert_eq!(m(""), Some(0));
        assert_eq!(m("kb"), Some(0));
        assert_eq!(m("99999999999999999999999"), Some(u64::MAX));
        // 7.0 does not detect unit overflow: (2^34 + 1) GiB wraps to 1 GiB.
        assert_eq!(m("17179869185gb"), Some(1 << 30));
        for bad in ["-1", "1.5mb", " 2mb", "+2mb", "2mbb", "1t"] {
            assert_eq!(m(bad), None, "{bad}");
        }
    }

    #[test]
    fn strtoll_full_matches_c() {
        let s = |x: &str| strtoll_full(x.as_bytes());
        assert_eq!(s(""), Some(0));
        assert_eq!(s(" 5"), Some(5));
        assert_eq!(s("+5"), Some(5));
        assert_eq!(s("-1"), Some(-1));
        assert_eq!(s("99999999999999999999"), Some(i64::MAX));
        assert_eq!(s("1x"), None);
        assert_eq!(s(" "), None);
        assert_eq!(s("+"), None);
    }

    #[test]
    fn defaults_format_like_redis() {
        let c = Config::default();
        // Literal values from a default redis-server 7.0.15 (bind and pidfile differ by design).
        for (name, want) in [
            ("port", "6379"),
            ("protected-mode", "yes"),
            ("requirepass", ""),
            ("maxclients", "10000"),
            ("databases", "16"),
            ("timeout", "0"),
            ("tcp-keepalive", "300"),
            ("tcp-backlog", "511"),
            ("dbfilename", "dump.rdb"),
            ("loglevel", "notice"),
            ("logfile", ""),
            ("proto-max-bulk-len", "536870912"),
            ("client-query-buffer-limit", "1073741824"),
            ("hz", "10"),
            ("daemonize", "no"),
            ("save", "3600 1 300 100 60 10000"),
            ("bind", "127.0.0.1 -::1"),
            ("pidfile", ""),
            ("pin-cores", "yes"),
        ] {
            assert_eq!(get1(&c, name), want, "{name}");
        }
        let cwd = std::fs::canonicalize(std::env::current_dir().unwrap()).unwrap();
        assert_eq!(get1(&c, "dir"), cwd.to_str().unwrap());
        assert_eq!(get1(&c, "shards"), c.shards.to_string());
    }

    #[test]
    fn full_file_formats_like_redis() {
        let d = scratch("full");
        std::fs::create_dir(d.join("d1")).unwrap();
        let dir = d.join("d1");
        let dir = dir.to_str().unwrap();
        let text = format!(
            "# a comment\n\n   \nport 16398\nbind 127.0.0.1 -::1\nprotected-mode no\n\
             requirepass \"s3cr et\"\nmaxclients 1000\ndatabases 32\ntimeout 300\n\
             tcp-keepalive 0\ntcp-backlog 128\ndir {dir}\ndbfilename \"my dump.rdb\"\n\
             loglevel VERBOSE\nlogfile {dir}/log.txt\nproto-max-bulk-len 64mb\n\
             client-query-buffer-limit 2GB\nhz 1000\ndaemonize yes\npidfile {dir}/r.pid\n\
             save 900 1 300 10\nshards 3\npin-cores no\n"
        );
        let c = load_file(&d, &text).unwrap();
        // The values redis-server 7.0.15 returned for the same file (shards/pin-cores are percore's).
        for (name, want) in [
            ("hz", "500"),
            ("client-query-buffer-limit", "2147483648"),
            ("proto-max-bulk-len", "67108864"),
            ("requirepass", "s3cr et"),
            ("dir", dir),
            ("tcp-keepalive", "0"),
            ("tcp-backlog", "128"),
            ("logfile", &format!("{dir}/log.txt")),
            ("port", "16398"),
            ("bind", "127.0.0.1 -::1"),
            ("loglevel", "verbose"),
            ("daemonize", "yes"),
            ("timeout", "300"),
            ("protected-mode", "no"),
            ("databases", "32"),
            ("maxclients", "1000"),
            ("pidfile", &format!("{dir}/r.pid")),
            ("dbfilename", "my dump.rdb"),
            ("save", "900 1 300 10"),
            ("shards", "3"),
            ("pin-cores", "no"),
        ] {
            assert_eq!(get1(&c, name), want, "{name}");
        }
        // Redis creates the log file while loading, to fail early.
        assert!(Path::new(dir).join("log.txt").exists());
        assert_eq!(c.port, 16398);
        assert_eq!(c.requirepass.as_deref(), Some(&b"s3cr et"[..]));
        assert_eq!(c.loglevel, "verbose");
        assert_eq!(c.save, vec![(900, 1), (300, 10)]);
        assert_eq!(
            c.config_file.as_deref(),
            Some(d.join("percore.conf").to_str().unwrap())
        );
    }

    #[test]
    fn file_syntax_details() {
        let d = scratch("syntax");
        let c = load_file(
            &d,
            "\t PORT\t 7000 \r\n#timeout 5\n  # indented comment\nTimeout 9\r\n\
             dbfilename \"a\\x41\\n\\\"b\"\nrequirepass ''\nloglevel warning\nhz 0\n\
             save 100 1\nsave \"\"\nsave 8 8\nbind \"127.0.0.1  ::1\"\n",
        )
        .unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.timeout, 9);
        assert_eq!(c.dbfilename, "aA\n\"b");
        assert_eq!(c.requirepass, None);
        assert_eq!(c.loglevel, "warning");
        assert_eq!(c.hz, 1);
        // As 7.0: `save ""` clears, later lines append.
        assert_eq!(get1(&c, "save"), "8 8");
        assert_eq!(c.bind, vec!["127.0.0.1", "::1"]);

        let c = load_file(&d, "save \"5 5 6 6\"\nbind \"\"\n").unwrap();
        assert_eq!(get1(&c, "save"), "5 5 6 6");
        assert!(c.bind.is_empty());
        let c = load_file(&d, "save\nbind\n").unwrap();
        assert!(c.save.is_empty() && c.bind.is_empty());
        let c = load_file(&d, "save 1 4294967297\n").unwrap();
        assert_eq!(c.save, vec![(1, 1)], "changes is a C int");
    }

    #[test]
    fn includes() {
        let d = scratch("include");
        std::fs::create_dir_all(d.join("inc/sub")).unwrap();
        write(&d, "inc/a.conf", "timeout 11\n");
        write(&d, "inc/b.conf", "timeout 22\nport 6001\n");
        write(
            &d,
            "inc/sub/c.conf",
            "\n\ninclude ../a.conf\nmaxclients 33\n",
        );
        write(&d, "inc/sub/bad.conf", "# x\nport 99999\n");
        let inc = d.join("inc");
        let inc = inc.to_str().unwrap();

        let c = load_file(&d, &format!("include {inc}/b.conf\ntimeout 1\n")).unwrap();
        assert_eq!(
            (c.timeout, c.port),
            (1, 6001),
            "later lines override included ones"
        );
        let c = load_file(&d, &format!("timeout 1\ninclude {inc}/b.conf\n")).unwrap();
        assert_eq!(c.timeout, 22);

        // Relative includes follow `dir`, as Redis's chdir makes them.
        let c = load_file(&d, &format!("dir {inc}/sub\ninclude c.conf\n")).unwrap();
        assert_eq!((c.timeout, c.maxclients), (11, 33));

        let e = load_file(&d, &format!("\ninclude {inc}/sub/bad.conf\n")).unwrap_err();
        assert_eq!(
            e,
            format!(
                "config file {inc}/sub/bad.conf line 2: bad 'port' value '99999': \
                 argument must be between 0 and 65535 inclusive"
            )
        );
        let e = load_file(&d, "include /nonexistent/x.conf\n").unwrap_err();
        assert_eq!(
            e,
            format!(
                "config file {}/percore.conf line 1: can't open config file \
                 '/nonexistent/x.conf': No such file or directory",
                d.display()
            )
        );
        let e = load_file(&d, "include \"\"\n").unwrap_err();
        assert!(
            e.ends_with("line 1: can't open config file '': No such file or directory"),
            "{e}"
        );
        let e = load_args(&[""]).unwrap_err();
        assert_eq!(e, "can't open config file '': No such file or directory");
        let e = load_file(&d, "include\n").unwrap_err();
        assert!(
            e.ends_with("line 1: wrong number of arguments for 'include' (expected 1, got 0)"),
            "{e}"
        );
        let e = load_file(&d, "include a b\n").unwrap_err();
        assert!(e.ends_with("(expected 1, got 2)"), "{e}");

        // A directory reads as empty, like fopen+fgets.
        let c = load_file(&d, &format!("include {inc}\n")).unwrap();
        assert_eq!(c.timeout, 0);

        let loop_file = write(&d, "loop.conf", "");
        std::fs::write(&loop_file, format!("include {loop_file}\n")).unwrap();
        let e = load_args(&[&loop_file]).unwrap_err();
        assert!(e.contains("includes nested more than 32 deep"), "{e}");
    }

    #[test]
    fn include_wildcards() {
        let d = scratch("include-glob");
        std::fs::create_dir_all(d.join("inc/sub")).unwrap();
        write(&d, "inc/a.conf", "timeout 11\n");
        write(&d, "inc/b.conf", "timeout 22\n");
        write(&d, "inc/.hidden.conf", "timeout 99\n");
        write(&d, "inc/sub/c.conf", "timeout 33\n");
        let inc = d.join("inc");
        let inc = inc.to_str().unwrap();
        // Matches are read in sorted order; hidden files need an explicit dot.
        let c = load_file(&d, &format!("include {inc}/*.conf\n")).unwrap();
        assert_eq!(c.timeout, 22);
        let c = load_file(&d, &format!("include {inc}/[a].conf\n")).unwrap();
        assert_eq!(c.timeout, 11);
        let c = load_file(&d, &format!("include {inc}/*/c.conf\n")).unwrap();
        assert_eq!(c.timeout, 33);
        let c = load_file(&d, &format!("dir {inc}\ninclude ?.conf\n")).unwrap();
        assert_eq!(c.timeout, 22);
        // No match is not an error, so empty conf.d directories work.
        let c = load_file(&d, &format!("include {inc}/none*.conf\n")).unwrap();
        assert_eq!(c.timeout, 0);
    }

    /// Loads `text` and returns the error after the "config file ... line N: " prefix.
    fn file_err(d: &Path, text: &str) -> String {
        let e = load_file(d, text).unwrap_err();
        let prefix = format!("config file {}/percore.conf line ", d.display());
        assert!(e.starts_with(&prefix), "{e}");
        e[prefix.len()..].to_string()
    }

    #[test]
    fn file_errors() {
        let d = scratch("errors");
        let cases: &[(&str, &str)] = &[
            ("foo bar", "1: unknown directive 'foo'"),
            ("\nFOO", "2: unknown directive 'foo'"),
            ("port", "1: wrong number of arguments for 'port' (expected 1, got 0)"),
            ("port 1 2", "1: wrong number of arguments for 'port' (expected 1, got 2)"),
            ("port 1 # comment", "1: wrong number of arguments for 'port' (expected 1, got 3)"),
            ("requirepass", "1: wrong number of arguments for 'requirepass' (expected 1, got 0)"),
            ("timeout \"unbalanced", "1: Unbalanced quotes in configuration line"),
            ("port abc", "1: bad 'port' value 'abc': argument couldn't be parsed into an integer"),
            ("hz 0\nport 99999", "2: bad 'port' value '99999': argument must be between 0 and 65535 inclusive"),
            ("port -1", "1: bad 'port' value '-1': argument must be between 0 and 65535 inclusive"),
            ("port 05", "1: bad 'port' value '05': argument couldn't be parsed into an integer"),
            ("databases 0", "1: bad 'databases' value '0': argument must be between 1 and 2147483647 inclusive"),
            ("maxclients 0", "1: bad 'maxclients' value '0': argument must be between 1 and 4294967295 inclusive"),
            ("maxclients 1k", "1: bad 'maxclients' value '1k': argument couldn't be parsed into an integer"),
            ("maxclients -1", "1: bad 'maxclients' value '-1': argument must be between 1 and 4294967295 inclusive"),
            ("timeout 2147483648", "1: bad 'timeout' value '2147483648': argument must be between 0 and 2147483647 inclusive"),
            ("tcp-keepalive -1", "1: bad 'tcp-keepalive' value '-1': argument must be between 0 and 2147483647 inclusive"),
            ("tcp-backlog x", "1: bad 'tcp-backlog' value 'x': argument couldn't be parsed into an integer"),
            ("hz -5", "1: bad 'hz' value '-5': argument must be between 0 and 2147483647 inclusive"),
            ("loglevel foo", "1: bad 'loglevel' value 'foo': argument(s) must be one of the following: debug, verbose, notice, warning"),
            ("protected-mode maybe", "1: bad 'protected-mode' value 'maybe': argument must be 'yes' or 'no'"),
            ("daemonize \"\"", "1: bad 'daemonize' value '': argument must be 'yes' or 'no'"),
            ("pin-cores 1", "1: bad 'pin-cores' value '1': argument must be 'yes' or 'no'"),
            ("dbfilename a/b", "1: bad 'dbfilename' value 'a/b': dbfilename can't be a path, just a filename"),
            ("dbfilename \"a\\\\b\"", "1: bad 'dbfilename' value 'a\\b': dbfilename can't be a path, just a filename"),
            ("dir /nonexistent", "1: bad 'dir' value '/nonexistent': No such file or directory"),
            ("dir \"\"", "1: bad 'dir' value '': No such file or directory"),
            ("proto-max-bulk-len 1000", "1: bad 'proto-max-bulk-len' value '1000': argument must be between 1048576 and 9223372036854775807 inclusive"),
            ("proto-max-bulk-len 1.5mb", "1: bad 'proto-max-bulk-len' value '1.5mb': argument must be a memory value"),
            ("proto-max-bulk-len 8589934592gb", "1: bad 'proto-max-bulk-len' value '8589934592gb': argument must be between 1048576 and 9223372036854775807 inclusive"),
            ("client-query-buffer-limit 1K", "1: bad 'client-query-buffer-limit' value '1K': argument must be between 1048576 and 9223372036854775807 inclusive"),
            ("client-query-buffer-limit -1", "1: bad 'client-query-buffer-limit' value '-1': argument must be a memory value"),
            ("bind 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17", "1: bad 'bind' value '1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17': Too many bind addresses specified."),
            ("save 100", "1: bad 'save' value '100': Invalid save parameters"),
            ("save 0 1", "1: bad 'save' value '0 1': Invalid save parameters"),
            ("save 1 -1", "1: bad 'save' value '1 -1': Invalid save parameters"),
            ("save 1x 1", "1: bad 'save' value '1x 1': Invalid save parameters"),
            ("shards 0", "1: bad 'shards' value '0': argument must be between 1 and 1024 inclusive"),
            ("shards 1025", "1: bad 'shards' value '1025': argument must be between 1 and 1024 inclusive"),
            ("shards many", "1: bad 'shards' value 'many': argument couldn't be parsed into an integer"),
            ("dbfilename \"\\x01\"\nport x", "2: bad 'port' value 'x': argument couldn't be parsed into an integer"),
            ("timeout \"\\x01\\xff\"", "1: bad 'timeout' value '\\x01\\xff': argument couldn't be parsed into an integer"),
        ];
        for (text, want) in cases {
            assert_eq!(file_err(&d, text), *want, "{text}");
        }
        // `dir` naming a file: chdir's ENOTDIR.
        let f = write(&d, "plain", "");
        assert_eq!(
            file_err(&d, &format!("dir {f}")),
            format!("1: bad 'dir' value '{f}': Not a directory")
        );
        // The log file is opened at the end, blamed on the line that set it.
        assert_eq!(
            file_err(&d, "logfile /nonexistent/x.log\ntimeout 1"),
            "1: Can't open the log file '/nonexistent/x.log': No such file or directory"
        );
        let e = load_args(&["/nonexistent/percore.conf"]).unwrap_err();
        assert_eq!(
            e,
            "can't open config file '/nonexistent/percore.conf': No such file or directory"
        );
    }

    #[test]
    fn relative_logfile_follows_dir() {
        let d = scratch("logfile");
        let c = load_file(&d, &format!("dir {}\nlogfile rel.log\n", d.display())).unwrap();
        assert_eq!(c.logfile, "rel.log");
        assert!(d.join("rel.log").exists());
    }

    #[test]
    fn command_line_overrides_file() {
        let d = scratch("cmdline");
        let f = write(&d, "p.conf", "port 7000\ntimeout 5\nsave 5 5\n");
        let c = load_args(&[&f, "--port", "7001", "--save", "6", "6"]).unwrap();
        assert_eq!((c.port, c.timeout), (7001, 5));
        // `save` lines accumulate across file and command line, as in 7.0.
        assert_eq!(get1(&c, "save"), "5 5 6 6");
        let c = load_args(&[&f, "--save", ""]).unwrap();
        assert!(c.save.is_empty());
        let c = load_args(&[&f, "--save", "", "--save", "7", "7"]).unwrap();
        assert_eq!(get1(&c, "save"), "7 7");

        let e = load_args(&[&f, "--port", "70000"]).unwrap_err();
        assert_eq!(
            e,
            "command line: bad 'port' value '70000': argument must be between 0 and 65535 inclusive"
        );
        let e = load_args(&["--nosuch", "1"]).unwrap_err();
        assert_eq!(e, "command line: unknown directive 'nosuch'");
    }

    #[test]
    fn command_line_shapes() {
        let c = load_args(&["--bind", "127.0.0.1", "::1", "--timeout", "5"]).unwrap();
        assert_eq!((c.bind.join(" ").as_str(), c.timeout), ("127.0.0.1 ::1", 5));
        let c = load_args(&["--bind", "127.0.0.1 -::1"]).unwrap();
        assert_eq!(c.bind, vec!["127.0.0.1", "-::1"]);
        let c = load_args(&["--port 6380", "--Timeout 6"]).unwrap();
        assert_eq!((c.port, c.timeout), (6380, 6));
        // A valueless option swallows the next token, even one starting with --.
        let c = load_args(&["--dbfilename", "--foo"]).unwrap();
        assert_eq!(c.dbfilename, "--foo");
        let c = load_args(&["--dbfilename", "a b"]).unwrap();
        assert_eq!(c.dbfilename, "a b");
        // ...except `--save`, which then means `save ""`.
        let c = load_args(&["--save", "--timeout", "4"]).unwrap();
        assert_eq!((c.save.len(), c.timeout), (0, 4));
        let c = load_args(&["--timeout", "4", "--save"]).unwrap();
        assert_eq!((c.save.len(), c.timeout), (0, 4));
        let c = load_args(&["--save", "100 1"]).unwrap();
        assert_eq!(c.save, vec![(100, 1)]);
        let c = load_args(&["--save", "100", "1", "200", "2"]).unwrap();
        assert_eq!(get1(&c, "save"), "100 1 200 2");
        let c = load_args(&["--requirepass", "-x", "--pin-cores", "no", "--shards", "2"]).unwrap();
        assert_eq!(
            (c.requirepass.as_deref(), c.pin_cores, c.shards),
            (Some(&b"-x"[..]), false, 2)
        );
        let c = load_args(&["--"]).unwrap();
        assert_eq!(c.port, 6379);
        assert_eq!(load_args(&[]).unwrap().config_file, None);

        let e = load_args(&["--timeout", "1", "2"]).unwrap_err();
        assert_eq!(
            e,
            "command line: wrong number of arguments for 'timeout' (expected 1, got 2)"
        );
        let e = load_args(&["--port", "1", "foo"]).unwrap_err();
        assert_eq!(
            e,
            "command line: wrong number of arguments for 'port' (expected 1, got 2)"
        );
        let e = load_args(&["--timeout", "--daemonize", "yes"]).unwrap_err();
        assert_eq!(
            e,
            "command line: wrong number of arguments for 'timeout' (expected 1, got 2)"
        );
        let e = load_args(&["-x"]).unwrap_err();
        assert!(
            e.starts_with("command line: unexpected argument '-x'"),
            "{e}"
        );
        let e = load_args(&["a.conf", "b.conf"]).unwrap_err();
        assert!(
            e.starts_with("command line: unexpected argument 'b.conf'"),
            "{e}"
        );
        let e = load_args(&["--help"]).unwrap_err();
        assert_eq!(
            e, "command line: unknown directive 'help'",
            "only clap handles help"
        );
        let e = load_args(&["--port 'x"]).unwrap_err();
        assert!(e.starts_with("command line: Unbalanced quotes"), "{e}");
    }

    #[test]
    fn split_command_line_positions() {
        let s = |v: &[&str]| split_command_line(&os(v)).unwrap();
        // "-" counts only first or last; elsewhere it is a value, here with no option to take it.
        let e = split_command_line(&os(&["p.conf", "-", "--port", "1"])).unwrap_err();
        assert!(
            e.starts_with("command line: unexpected argument '-'"),
            "{e}"
        );
        let r = s(&["-", "--port", "1"]);
        assert!(r.stdin && r.config_file.is_none());
        let r = s(&["p.conf", "--port", "1", "-"]);
        assert!(r.stdin);
        assert_eq!(r.directives, vec![(b"port".to_vec(), vec![b"1".to_vec()])]);
        // `--save -`: the dash is stdin, leaving `save` with no arguments (also "clear").
        let r = s(&["--save", "-"]);
        assert!(r.stdin);
        assert_eq!(r.directives, vec![(b"save".to_vec(), vec![])]);
        let r = s(&["--port", "-", "x"]);
        assert!(!r.stdin);
        assert_eq!(
            r.directives,
            vec![(b"port".to_vec(), vec![b"-".to_vec(), b"x".to_vec()])]
        );
    }

    #[test]
    fn stdin_is_read_between_file_and_options() {
        let d = scratch("stdin");
        let f = write(&d, "p.conf", "port 7000\ntimeout 5\nmaxclients 9\n");
        let mut feed = || Ok(b"timeout 6\nport 7002\n".to_vec());
        let c = load_from(&os(&[&f, "--port", "7001", "-"]), &mut feed).unwrap();
        assert_eq!((c.port, c.timeout, c.maxclients), (7001, 6, 9));
        let mut feed = || Ok(b"\nbogus\n".to_vec());
        let e = load_from(&os(&["-"]), &mut feed).unwrap_err();
        assert_eq!(e, "stdin line 2: unknown directive 'bogus'");
    }

    #[test]
    fn clap_handles_only_help_and_version() {
        let kind = |v: &[&str]| cli().try_get_matches_from(os(v)).map_err(|e| e.kind());
        assert_eq!(kind(&["--help"]).unwrap_err(), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["-h"]).unwrap_err(), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["--version"]).unwrap_err(), ErrorKind::DisplayVersion);
        assert_eq!(kind(&["-v"]).unwrap_err(), ErrorKind::DisplayVersion);
        for v in [
            &["--port", "1", "--help"][..],
            &["/x.conf", "-v"],
            &["-"],
            &["--save", ""],
            &["-x"],
            &[],
        ] {
            let m = cli().try_get_matches_from(os(v)).unwrap();
            let got: Vec<OsString> = m
                .get_many::<OsString>("args")
                .map(|a| a.cloned().collect())
                .unwrap_or_default();
            assert_eq!(got, os(v));
        }
    }

    #[test]
    fn config_get_lookup() {
        let c = Config::default();
        // The client's spelling is echoed, as Redis does.
        assert_eq!(
            c.get(&[b"PORT"]),
            vec![("PORT".to_string(), b"6379".to_vec())]
        );
        assert_eq!(
            c.get(&[b"port", b"timeout", b"Port", b"nosuch"]),
            vec![
                ("port".to_string(), b"6379".to_vec()),
                ("timeout".to_string(), b"0".to_vec())
            ]
        );
        assert!(c.get(&[b"nosuch"]).is_empty());
    }

    #[test]
    fn config_get_patterns() {
        let c = Config::default();
        let all = c.get(&[b"*"]);
        // As Redis 7.0, `*` lists the old alias names too.
        let names_and_aliases: usize = PARAMS.iter().map(|p| 1 + p.aliases.len()).sum();
        assert_eq!(all.len(), names_and_aliases);
        let names: Vec<String> = c
            .get(&[b"*ort", b"port"])
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["port"]);
        let names: Vec<String> = c
            .get(&[b"TIMEOUT", b"*MAX*B*"])
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["TIMEOUT", "proto-max-bulk-len"]);
    }

    #[test]
    fn config_set_values() {
        let mut c = Config::default();
        assert_eq!(set(&mut c, &[("timeout", "10")]), Ok(vec!["timeout"]));
        assert_eq!(c.timeout, 10);
        assert_eq!(set(&mut c, &[("Timeout", "10")]), Ok(vec![]), "unchanged");
        assert_eq!(set(&mut c, &[("hz", "1000")]), Ok(vec!["hz"]));
        assert_eq!(get1(&c, "hz"), "500");
        assert_eq!(set(&mut c, &[("hz", "0")]), Ok(vec!["hz"]));
        assert_eq!(get1(&c, "hz"), "1");
        set(&mut c, &[("loglevel", "WARNING"), ("protected-mode", "NO")]).unwrap();
        assert_eq!(
            (get1(&c, "loglevel").as_str(), c.protected_mode),
            ("warning", false)
        );
        set(&mut c, &[("requirepass", "pw")]).unwrap();
        assert_eq!(get1(&c, "requirepass"), "pw");
        assert_eq!(set(&mut c, &[("requirepass", "")]), Ok(vec!["requirepass"]));
        assert_eq!(c.requirepass, None);
        set(&mut c, &[("save", "100 1 200 2")]).unwrap();
        assert_eq!(get1(&c, "save"), "100 1 200 2");
        set(&mut c, &[("save", "300 3")]).unwrap();
        assert_eq!(get1(&c, "save"), "300 3", "CONFIG SET replaces");
        set(&mut c, &[("save", "")]).unwrap();
        assert_eq!(get1(&c, "save"), "");
        set(
            &mut c,
            &[
                ("proto-max-bulk-len", "1Mb"),
                ("client-query-buffer-limit", "2gb"),
            ],
        )
        .unwrap();
        assert_eq!(get1(&c, "proto-max-bulk-len"), "1048576");
        assert_eq!(get1(&c, "client-query-buffer-limit"), "2147483648");
        set(&mut c, &[("proto-max-bulk-len", "17179869185gb")]).unwrap();
        assert_eq!(get1(&c, "proto-max-bulk-len"), "1073741824");
        set(
            &mut c,
            &[
                ("maxclients", "4294967295"),
                ("tcp-keepalive", "2147483647"),
            ],
        )
        .unwrap();
        assert_eq!(get1(&c, "maxclients"), "4294967295");
    }

    /// Every parameter's CONFIG GET value, by exact name (no glob needed).
    fn snapshot(c: &Config) -> Vec<(String, Vec<u8>)> {
        PARAMS
            .iter()
            .flat_map(|p| c.get(&[p.name.as_bytes()]))
            .collect()
    }

    /// CONFIG SET arguments and the expected result.
    type SetCase<'a> = (&'a [(&'a str, &'a str)], Result<Vec<&'static str>, String>);

    #[test]
    fn config_set_errors() {
        let mut c = Config::default();
        let failed = |name: &str, why: &str| {
            Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
            ))
        };
        let unknown = |name: &str| {
            Err(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            ))
        };
        let imm = "can't set immutable config";
        let int = "argument couldn't be parsed into an integer";
        // One case per line, as a table (rustfmt would spread them out).
        #[rustfmt::skip]
        let cases: &[SetCase] = &[
            (&[("foo", "bar")], unknown("foo")),
            (&[("timeout", "1"), ("foo", "3")], unknown("foo")),
            (&[("foo", "1"), ("databases", "3")], unknown("foo")),
            (&[("databases", "3"), ("foo", "1")], failed("databases", imm)),
            (&[("DATABASES", "1")], failed("DATABASES", imm)),
            (&[("timeout", "1"), ("databases", "3")], failed("databases", imm)),
            (&[("timeout", "abc"), ("databases", "3")], failed("databases", imm)),
            (&[("timeout", "1"), ("timeout", "2")], failed("timeout", "duplicate parameter")),
            (&[("timeout", "1"), ("TIMEOUT", "2")], failed("TIMEOUT", "duplicate parameter")),
            (&[("timeout", "7"), ("databases", "3"), ("timeout", "8")], failed("databases", imm)),
            (&[("timeout", "7"), ("timeout", "8"), ("databases", "3")], failed("timeout", "duplicate parameter")),
            (&[("TIMEOUT", "abc")], failed("timeout", int)),
            (&[("timeout", "1"), ("maxclients", "x")], failed("maxclients", int)),
            (&[("timeout", "-1")], failed("timeout", "argument must be between 0 and 2147483647 inclusive")),
            (&[("timeout", "2147483648")], failed("timeout", "argument must be between 0 and 2147483647 inclusive")),
            (&[("timeout", "")], failed("timeout", int)),
            (&[("timeout", " 5")], failed("timeout", int)),
            (&[("timeout", "+5")], failed("timeout", int)),
            (&[("timeout", "-0")], failed("timeout", int)),
            (&[("timeout", "1k")], failed("timeout", int)),
            (&[("maxclients", "0")], failed("maxclients", "argument must be between 1 and 4294967295 inclusive")),
            (&[("maxclients", "4294967296")], failed("maxclients", "argument must be between 1 and 4294967295 inclusive")),
            (&[("hz", "-1")], failed("hz", "argument must be between 0 and 2147483647 inclusive")),
            (&[("loglevel", "foo")], failed("loglevel", "argument(s) must be one of the following: debug, verbose, notice, warning")),
            (&[("protected-mode", "maybe")], failed("protected-mode", "argument must be 'yes' or 'no'")),
            (&[("protected-mode", "")], failed("protected-mode", "argument must be 'yes' or 'no'")),
            (&[("proto-max-bulk-len", "1000")], failed("proto-max-bulk-len", "argument must be between 1048576 and 9223372036854775807 inclusive")),
            (&[("proto-max-bulk-len", "1K")], failed("proto-max-bulk-len", "argument must be between 1048576 and 9223372036854775807 inclusive")),
            (&[("proto-max-bulk-len", "")], failed("proto-max-bulk-len", "argument must be between 1048576 and 9223372036854775807 inclusive")),
            (&[("proto-max-bulk-len", "9223372036854775808")], failed("proto-max-bulk-len", "argument must be between 1048576 and 9223372036854775807 inclusive")),
            (&[("proto-max-bulk-len", "abc")], failed("proto-max-bulk-len", "argument must be a memory value")),
            (&[("proto-max-bulk-len", "-1")], failed("proto-max-bulk-len", "argument must be a memory value")),
            (&[("proto-max-bulk-len", "2mbb")], failed("proto-max-bulk-len", "argument must be a memory value")),
            (&[("client-query-buffer-limit", "100")], failed("client-query-buffer-limit", "argument must be between 1048576 and 9223372036854775807 inclusive")),
            (&[("client-query-buffer-limit", "99999999999999999999999")], failed("client-query-buffer-limit", "argument must be between 1048576 and 9223372036854775807 inclusive")),
            (&[("save", "100 1 200")], failed("save", "Invalid save parameters")),
            (&[("save", " 100 1")], failed("save", "Invalid save parameters")),
            (&[("save", "100  1")], failed("save", "Invalid save parameters")),
            (&[("save", "100 1 ")], failed("save", "Invalid save parameters")),
            (&[("dbfilename", "x.rdb")], failed("dbfilename", "can't set protected config")),
            (&[("dir", "/tmp")], failed("dir", "can't set protected config")),
        ];
        for (pairs, want) in cases {
            let before = snapshot(&c);
            assert_eq!(&set(&mut c, pairs), want, "{pairs:?}");
            assert_eq!(snapshot(&c), before, "{pairs:?} changed something");
        }
        // Immutable in Redis 7.0, and in percore also port/bind (re-listening) and percore's own.
        for name in [
            "databases",
            "tcp-backlog",
            "logfile",
            "daemonize",
            "pidfile",
            "port",
            "bind",
            "shards",
            "pin-cores",
        ] {
            assert_eq!(set(&mut c, &[(name, "1")]), failed(name, imm), "{name}");
        }
    }
}
