//! The command table and the command families.
//!
//! A family is one file of handlers. A handler never sees a socket: shard
//! handlers get the shard's keyspace and argv, connection handlers get the
//! connection's state, coordinators (multi-shard or admin commands) get a
//! handle to every core. `table.rs` lists which handler serves which command;
//! everything else about a command (arity, flags, key positions, docs) comes
//! from Redis 7.0's own metadata in `spec`.

pub mod blocking;
pub mod connection;
pub mod functions;
pub mod hashes;
pub mod introspect;
pub mod keys;
pub mod lists;
pub mod persistence;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod spec;
pub mod strings;
pub mod table;
pub mod transactions;
pub mod zsets;

// Command names are looked up once per command: a fast hash, not SipHash.
use foldhash::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::protocol::reply::{Proto, ReplyBuf};
use crate::server::client::Client;
use crate::server::core::Core;
use crate::server::shard::Shard;
use crate::storage::db::Db;
use spec::{CmdFlags, CommandSpec};

/// What a shard handler sees: the shard, the selected database, the time, the reply buffer.
pub struct ShardCtx<'a> {
    /// The shard owning the command's keys.
    pub shard: &'a mut Shard,
    /// The selected database.
    pub db: usize,
    /// The command's time (ms since the epoch), fixed for the whole command.
    pub now_ms: u64,
    /// Where the reply goes.
    pub out: &'a mut ReplyBuf,
}

impl ShardCtx<'_> {
    /// The selected database and the reply buffer, borrowed together.
    #[inline]
    pub fn db_out(&mut self) -> (&mut Db, &mut ReplyBuf) {
        (&mut self.shard.dbs[self.db], self.out)
    }
}

/// What a connection handler sees: the core, the client, the reply buffer.
pub struct ConnCtx<'a> {
    /// The core the connection lives on.
    pub core: &'a Rc<Core>,
    /// The connection.
    pub client: &'a Rc<Client>,
    /// Where the reply goes.
    pub out: &'a mut ReplyBuf,
    /// The command's time (ms since the epoch).
    pub now_ms: u64,
}

/// What a coordinator gets: owned arguments and handles, since it awaits other cores.
pub struct MultiCtx {
    /// The core the connection lives on.
    pub core: Rc<Core>,
    /// The connection.
    pub client: Rc<Client>,
    /// The command being run.
    pub cmd: &'static Command,
    /// The arguments (slices of the connection's read buffer).
    pub argv: Vec<Bytes>,
    /// The selected database.
    pub db: usize,
    /// Reply protocol.
    pub proto: Proto,
    /// The command's time (ms since the epoch).
    pub now_ms: u64,
}

impl MultiCtx {
    /// A reply buffer in the client's protocol.
    pub fn reply(&self) -> ReplyBuf {
        ReplyBuf::new(self.proto)
    }
}

/// A handler run on the shard that owns the keys.
pub type ShardFn = fn(&mut ShardCtx<'_>, &[&[u8]]);
/// A handler run on the connection's core with the connection's state.
pub type ConnFn = fn(&mut ConnCtx<'_>, &[&[u8]]);
/// A coordinator: runs on the connection's core, may await other cores.
pub type MultiFn = fn(MultiCtx) -> Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// How a command is executed.
#[derive(Clone, Copy)]
pub enum Exec {
    /// On the shard owning its key(s); all keys must map to one shard.
    Shard(ShardFn),
    /// Several keys: on their shard when they share one, else by the coordinator.
    Keys(ShardFn, MultiFn),
    /// Connection-level, no state change: batched with the commands around it.
    Conn(ConnFn),
    /// Connection-level, changes connection state (db, protocol, auth): runs alone, in order.
    ConnBarrier(ConnFn),
    /// A coordinator over several cores: runs alone, in order.
    Multi(MultiFn),
    /// A container (CLIENT, OBJECT...): the subcommand decides.
    Container,
}

/// One row of the command table: Redis's metadata plus percore's handler.
pub struct Command {
    /// Index in the table (for per-command statistics).
    pub id: u16,
    /// Full lowercase name (`get`, `object|encoding`).
    pub name: &'static str,
    /// Redis 7.0's metadata.
    pub spec: &'static CommandSpec,
    /// The handler.
    pub exec: Exec,
    /// Subcommands by lowercase name (containers only).
    subcommands: HashMap<&'static [u8], u16>,
}

impl Command {
    /// Redis's arity (negative = at least).
    #[inline]
    pub fn arity(&self) -> i32 {
        self.spec.arity
    }

    /// Redis's command flags.
    #[inline]
    pub fn flags(&self) -> CmdFlags {
        self.spec.flags
    }

    /// True when `argc` satisfies the arity.
    #[inline]
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.spec.arity;
        if a >= 0 {
            argc == a as usize
        } else {
            argc >= (-a) as usize
        }
    }

    /// Argument positions of the keys, as Redis Cluster routes them.
    #[inline]
    pub fn key_positions(&self, argv: &[&[u8]]) -> smallvec::SmallVec<[usize; 4]> {
        let s = self.spec;
        if s.first_key > 0 && s.first_key == s.last_key && !s.flags.contains(CmdFlags::MOVABLEKEYS)
        {
            let mut v = smallvec::SmallVec::new();
            if (s.first_key as usize) < argv.len() {
                v.push(s.first_key as usize);
            }
            return v;
        }
        s.legacy_keys(argv)
    }
}

/// The command table: every command percore implements.
pub struct CommandTable {
    /// All commands and subcommands, by id.
    pub cmds: Vec<Command>,
    by_name: HashMap<&'static [u8], u16>,
}

/// The outcome of looking up argv[0] (and argv[1] for containers).
pub enum Lookup {
    /// Found, arity satisfied.
    Found(&'static Command),
    /// No such command.
    Unknown,
    /// A container without that subcommand.
    UnknownSubcommand,
    /// Found, but with the wrong number of arguments.
    WrongArity(&'static Command),
}

/// The last command a connection looked up, by its name as sent: clients
/// mostly repeat a few commands, and a repeat skips lowercasing and hashing
/// the name.
#[derive(Default)]
pub struct LookupMemo {
    name: [u8; 15],
    len: u8,
    cmd: Option<&'static Command>,
}

impl CommandTable {
    fn build() -> CommandTable {
        let mut cmds: Vec<Command> = Vec::new();
        let mut by_name = HashMap::default();
        let add = |name: &'static str, exec: Exec, cmds: &mut Vec<Command>| -> u16 {
            let spec = spec::find(name)
                .unwrap_or_else(|| panic!("command '{name}' is not in Redis 7.0's table"));
            let id = cmds.len() as u16;
            cmds.push(Command {
                id,
                name: spec.name,
                spec,
                exec,
                subcommands: HashMap::default(),
            });
            id
        };
        for &(name, exec) in table::COMMANDS {
            match name.split_once('|') {
                None => {
                    let id = add(name, exec, &mut cmds);
                    by_name.insert(name.as_bytes(), id);
                }
                Some((parent, sub)) => {
                    let pid = match by_name.get(parent.as_bytes()) {
                        Some(&id) => id,
                        None => {
                            let id = add(parent, Exec::Container, &mut cmds);
                            by_name.insert(parent.as_bytes(), id);
                            id
                        }
                    };
                    let id = add(name, exec, &mut cmds);
                    cmds[pid as usize].subcommands.insert(sub.as_bytes(), id);
                }
            }
        }
        CommandTable { cmds, by_name }
    }

    /// The table (built once).
    pub fn get() -> &'static CommandTable {
        static T: OnceLock<CommandTable> = OnceLock::new();
        T.get_or_init(CommandTable::build)
    }

    /// The command with this full lowercase name.
    pub fn by_name(&self, name: &str) -> Option<&Command> {
        if let Some((p, s)) = name.split_once('|') {
            let pc = &self.cmds[*self.by_name.get(p.as_bytes())? as usize];
            return Some(&self.cmds[*pc.subcommands.get(s.as_bytes())? as usize]);
        }
        self.by_name
            .get(name.as_bytes())
            .map(|&i| &self.cmds[i as usize])
    }

    /// True when percore implements the command or subcommand `fullname` (for COMMAND).
    pub fn implements(&self, fullname: &str) -> bool {
        self.by_name(fullname).is_some()
    }

    /// As [`CommandTable::lookup`], answering a repeat of the name `memo` holds
    /// (byte for byte) without the table. Only top-level commands without
    /// subcommands are remembered: their lookup depends on argv[0] alone.
    #[inline]
    pub fn lookup_memo(&'static self, memo: &mut LookupMemo, argv: &[&[u8]]) -> Lookup {
        if let Some(cmd) = memo.cmd {
            if &memo.name[..memo.len as usize] == argv[0] {
                return if cmd.arity_ok(argv.len()) {
                    Lookup::Found(cmd)
                } else {
                    Lookup::WrongArity(cmd)
                };
            }
        }
        let found = self.lookup(argv);
        if let Lookup::Found(cmd) | Lookup::WrongArity(cmd) = found {
            // Neither a container nor one of its subcommands (`config|get`):
            // those depend on argv[1] too.
            let name = argv[0];
            if cmd.subcommands.is_empty()
                && !cmd.name.contains('|')
                && name.len() <= memo.name.len()
            {
                memo.name[..name.len()].copy_from_slice(name);
                memo.len = name.len() as u8;
                memo.cmd = Some(cmd);
            }
        }
        found
    }

    /// Resolves argv[0] (and the subcommand) and checks arity, as processCommand does.
    pub fn lookup(&'static self, argv: &[&[u8]]) -> Lookup {
        let mut buf = [0u8; 32];
        let Some(id) = lower_lookup(&self.by_name, argv[0], &mut buf) else {
            return Lookup::Unknown;
        };
        let mut cmd = &self.cmds[id as usize];
        if matches!(cmd.exec, Exec::Container) && argv.len() < 2 {
            return Lookup::WrongArity(cmd);
        }
        // As lookupCommandLogic: with a second argument, a command that has
        // subcommands (a container, or COMMAND) is looked up by it.
        if argv.len() >= 2 && !cmd.subcommands.is_empty() {
            match lower_lookup(&cmd.subcommands, argv[1], &mut buf) {
                Some(sid) => cmd = &self.cmds[sid as usize],
                None => return Lookup::UnknownSubcommand,
            }
        }
        if !cmd.arity_ok(argv.len()) {
            return Lookup::WrongArity(cmd);
        }
        Lookup::Found(cmd)
    }
}

fn lower_lookup(map: &HashMap<&'static [u8], u16>, name: &[u8], buf: &mut [u8; 32]) -> Option<u16> {
    if name.len() > buf.len() {
        return None;
    }
    let b = &mut buf[..name.len()];
    b.copy_from_slice(name);
    b.make_ascii_lowercase();
    map.get(&b[..]).copied()
}

/// Redis's shared error replies.
pub mod errors {
    /// Wrong type of value for the command.
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    /// Generic syntax error.
    pub const SYNTAX: &str = "ERR syntax error";
    /// An argument is not an integer.
    pub const NOT_INT: &str = "ERR value is not an integer or out of range";
    /// An argument is not a float.
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    /// Missing key for RENAME and friends.
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    /// DB index out of range.
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    /// Authentication required.
    pub const NOAUTH: &str = "NOAUTH Authentication required.";
    /// Increment or decrement would overflow.
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    /// An integer argument that parses but does not fit a C int (getIntFromObjectOrReply).
    pub const INT_RANGE: &str =
        "ERR value is out of range, value must between -2147483648 and 2147483647";
    /// Expire time out of range.
    pub fn invalid_expire(cmd: &str) -> String {
        format!("ERR invalid expire time in '{cmd}' command")
    }
}

/// Parses an integer argument as Redis's getLongLongFromObject does.
#[inline]
pub fn arg_i64(a: &[u8]) -> Option<i64> {
    crate::util::num::parse_i64(a)
}

/// Parses an argument that must fit a C int, as Redis's getIntFromObjectOrReply:
/// a non-integer and an integer out of range get different errors.
#[inline]
pub fn arg_int(a: &[u8]) -> Result<i64, &'static str> {
    match arg_i64(a) {
        Some(v) if (i32::MIN as i64..=i32::MAX as i64).contains(&v) => Ok(v),
        Some(_) => Err(errors::INT_RANGE),
        None => Err(errors::NOT_INT),
    }
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
#[inline]
pub fn is(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(l: Lookup) -> String {
        match l {
            Lookup::Found(c) => format!("found {}", c.name),
            Lookup::WrongArity(c) => format!("arity {}", c.name),
            Lookup::Unknown => "unknown".into(),
            Lookup::UnknownSubcommand => "unknown subcommand".into(),
        }
    }

    #[test]
    fn a_memo_never_changes_what_a_lookup_finds() {
        let table = CommandTable::get();
        let cmds: &[&[&[u8]]] = &[
            &[b"GET", b"k"],
            &[b"GET", b"k"],
            &[b"get", b"k"],
            &[b"GET"],
            &[b"GET", b"k"],
            &[b"CONFIG", b"GET", b"x"],
            &[b"CONFIG", b"SET", b"x", b"y"],
            &[b"CONFIG", b"NOPE"],
            &[b"CONFIG"],
            &[b"CONFIG", b"GET", b"x"],
            &[b"COMMAND", b"COUNT"],
            &[b"COMMAND"],
            &[b"COMMAND", b"COUNT"],
            &[b"NOSUCH"],
            &[b"NOSUCH"],
            &[b"SET", b"k", b"v"],
            &[b"SET", b"k"],
            &[b"SET", b"k", b"v"],
            &[b"ZREMRANGEBYSCORE", b"z", b"0", b"1"],
            &[b"ZREMRANGEBYSCORE", b"z", b"0"],
            &[b"GET", b"k"],
        ];
        let mut memo = LookupMemo::default();
        for argv in cmds {
            assert_eq!(
                outcome(table.lookup_memo(&mut memo, argv)),
                outcome(table.lookup(argv)),
                "{argv:?}"
            );
        }
    }
}
