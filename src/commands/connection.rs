//! Connection commands: PING, ECHO, SELECT, AUTH, HELLO, QUIT, RESET and the CLIENT family.

use std::future::Future;
use std::pin::Pin;

use super::{arg_i64, errors, is, ConnCtx, MultiCtx};
use crate::protocol::reply::{Proto, ReplyBuf};
use crate::server::client::{Client, ReplyMode};

/// PING [message]
pub fn ping(ctx: &mut ConnCtx<'_>, argv: &[&[u8]]) {
    // Arity -1 lets any count through the table; pingCommand itself refuses more than one argument.
    if argv.len() > 2 {
        return ctx
            .out
            .error("ERR wrong number of arguments for 'ping' command");
    }
    match argv.get(1) {
        Some(m) => ctx.out.bulk(m),
        None => ctx.out.simple("PONG"),
    }
}

/// ECHO message
pub fn echo(ctx: &mut ConnCtx<'_>, argv: &[&[u8]]) {
    ctx.out.bulk(argv[1]);
}

/// SELECT index
pub fn select(ctx: &mut ConnCtx<'_>, argv: &[&[u8]]) {
    let idx = match super::arg_int(argv[1]) {
        Ok(i) => i,
        Err(e) => return ctx.out.error(e),
    };
    let dbs = ctx.core.config.borrow().databases as i64;
    if idx < 0 || idx >= dbs {
        return ctx.out.error(errors::DB_INDEX);
    }
    ctx.client.info.borrow_mut().db = idx as usize;
    ctx.out.ok();
}

/// Checks a username/password pair against the default user; sets the client's auth state.
fn check_auth(ctx: &ConnCtx<'_>, user: &[u8], pass: &[u8]) -> Result<(), &'static str> {
    let required = ctx.core.config.borrow().requirepass.clone();
    let ok = user == b"default"
        && match &required {
            Some(p) => p.as_slice() == pass,
            None => true,
        };
    if ok {
        ctx.client.info.borrow_mut().authenticated = true;
        Ok(())
    } else {
        Err("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

/// AUTH [username] password
pub fn auth(ctx: &mut ConnCtx<'_>, argv: &[&[u8]]) {
    if argv.len() > 3 {
        return ctx.out.error(errors::SYNTAX);
    }
    let (user, pass): (&[u8], &[u8]) = if argv.len() == 2 {
        if ctx.core.config.borrow().requirepass.is_none() {
            return ctx.out.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
        }
        (b"default", argv[1])
    } else {
        (argv[1], argv[2])
    };
    match check_auth(ctx, user, pass) {
        Ok(()) => ctx.out.ok(),
        Err(e) => ctx.out.error(e),
    }
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
pub fn hello(ctx: &mut ConnCtx<'_>, argv: &[&[u8]]) {
    let mut proto = None;
    if argv.len() >= 2 {
        match arg_i64(argv[1]) {
            Some(2) => proto = Some(Proto::Resp2),
            Some(3) => proto = Some(Proto::Resp3),
            Some(_) => return ctx.out.error("NOPROTO unsupported protocol version"),
            None => {
                return ctx
                    .out
                    .error("ERR Protocol version is not an integer or out of range")
            }
        }
    }
    // Redis 7.0 acts on each option as it parses it: AUTH authenticates and
    // SETNAME renames at once, so both stick even when a later option fails.
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        if is(argv[i], "auth") && more >= 2 {
            if let Err(e) = check_auth(ctx, argv[i + 1], argv[i + 2]) {
                return ctx.out.error(e);
            }
            i += 3;
        } else if is(argv[i], "setname") && more >= 1 {
            if let Err(e) = valid_name(argv[i + 1]) {
                return ctx.out.error(e);
            }
            ctx.client.info.borrow_mut().name = argv[i + 1].to_vec();
            i += 2;
        } else {
            let mut msg = b"ERR Syntax error in HELLO option '".to_vec();
            msg.extend(argv[i].iter().copied().take_while(|&c| c != 0));
            msg.push(b'\'');
            return ctx.out.error_bytes(&msg);
        }
    }
    // Redis checks the client's own flag here, not whether a password is
    // required now: a client that connected while one was set must still
    // authenticate before HELLO, even after `CONFIG SET requirepass ""`.
    if !ctx.client.info.borrow().authenticated {
        return ctx.out.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(p) = proto {
        ctx.client.info.borrow_mut().proto = p;
        ctx.out.proto = p;
    }
    let out = &mut *ctx.out;
    out.map_len(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(crate::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if out.resp3() { 3 } else { 2 });
    out.bulk(b"id");
    out.int(ctx.client.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array_len(0);
}

/// QUIT: reply OK, then close once the reply is written.
pub fn quit(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    ctx.out.ok();
    ctx.client.close_after_reply.set(true);
}

/// RESET: back to a fresh connection's state.
pub fn reset(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    let needs_auth = ctx.core.config.borrow().requirepass.is_some();
    {
        let mut info = ctx.client.info.borrow_mut();
        info.db = 0;
        info.proto = Proto::Resp2;
        info.name.clear();
        // Redis clears REPLY OFF and a SKIP still to come, but not the skip of
        // this very command: after CLIENT REPLY SKIP, RESET's reply is dropped.
        if info.reply_mode != ReplyMode::Skip {
            info.reply_mode = ReplyMode::On;
        }
        info.no_evict = false;
        info.authenticated = !needs_auth;
    }
    // RESET also discards MULTI and UNWATCHes, as Redis's clearClientConnectionState.
    crate::server::tx::reset_client(ctx.core, ctx.client.id);
    ctx.out.proto = Proto::Resp2;
    ctx.out.simple("RESET");
}

/// Redis's rule for client names: printable ASCII without spaces.
fn valid_name(name: &[u8]) -> Result<(), &'static str> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        Err("ERR Client names cannot contain spaces, newlines or special characters.")
    } else {
        Ok(())
    }
}

/// CLIENT ID
pub fn client_id(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    ctx.out.int(ctx.client.id as i64);
}

/// CLIENT SETNAME name
pub fn client_setname(ctx: &mut ConnCtx<'_>, argv: &[&[u8]]) {
    if let Err(e) = valid_name(argv[2]) {
        return ctx.out.error(e);
    }
    ctx.client.info.borrow_mut().name = argv[2].to_vec();
    ctx.out.ok();
}

/// CLIENT GETNAME
pub fn client_getname(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    let info = ctx.client.info.borrow();
    if info.name.is_empty() {
        ctx.out.null();
    } else {
        ctx.out.bulk(&info.name);
    }
}

/// CLIENT INFO
pub fn client_info(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    let mut line = ctx.client.describe(ctx.now_ms);
    line.push('\n');
    ctx.out.verbatim(b"txt", line.as_bytes());
}

/// CLIENT NO-EVICT ON|OFF
pub fn client_no_evict(ctx: &mut ConnCtx<'_>, argv: &[&[u8]]) {
    let v = if is(argv[2], "on") {
        true
    } else if is(argv[2], "off") {
        false
    } else {
        return ctx.out.error(errors::SYNTAX);
    };
    ctx.client.info.borrow_mut().no_evict = v;
    ctx.out.ok();
}

/// CLIENT REPLY ON|OFF|SKIP
pub fn client_reply(ctx: &mut ConnCtx<'_>, argv: &[&[u8]]) {
    let mut info = ctx.client.info.borrow_mut();
    if is(argv[2], "on") {
        info.reply_mode = ReplyMode::On;
        ctx.out.ok();
    } else if is(argv[2], "off") {
        info.reply_mode = ReplyMode::Off;
    } else if is(argv[2], "skip") {
        if info.reply_mode != ReplyMode::Off {
            info.reply_mode = ReplyMode::SkipNext;
        }
    } else {
        ctx.out.error(errors::SYNTAX);
    }
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

/// Writes a HELP reply: status lines, as Redis's addReplyHelp.
pub fn help_reply(out: &mut ReplyBuf, lines: &[&str]) {
    out.array_len(lines.len());
    for l in lines {
        out.simple(l);
    }
}

/// CLIENT HELP
pub fn client_help(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    help_reply(ctx.out, CLIENT_HELP);
}

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// Client types CLIENT LIST/KILL accept; percore only has normal clients (no replication or pub/sub yet).
fn client_type_ok(t: &[u8]) -> Option<bool> {
    if is(t, "normal") {
        Some(true)
    } else if is(t, "master") || is(t, "replica") || is(t, "slave") || is(t, "pubsub") {
        Some(false)
    } else {
        None
    }
}

/// CLIENT LIST [TYPE type] [ID id ...]
pub fn client_list(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let argv = &ctx.argv;
        let mut ids: Option<Vec<i64>> = None;
        let mut type_ok = true;
        if argv.len() == 4 && is(&argv[2], "type") {
            match client_type_ok(&argv[3]) {
                Some(ok) => type_ok = ok,
                None => {
                    out.error(&format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(&argv[3])
                    ));
                    return out;
                }
            }
        } else if argv.len() > 3 && is(&argv[2], "id") {
            // Any integer parses; ids of no client (0, negative) are just not found.
            let mut v = Vec::new();
            for a in &argv[3..] {
                match arg_i64(a) {
                    Some(id) => v.push(id),
                    None => {
                        out.error("ERR Invalid client ID");
                        return out;
                    }
                }
            }
            ids = Some(v);
        } else if argv.len() != 2 {
            out.error(errors::SYNTAX);
            return out;
        }
        if !type_ok {
            out.verbatim(b"txt", b"");
            return out;
        }
        let now = ctx.now_ms;
        let ids2 = ids.clone();
        let lines = ctx
            .core
            .run_on_all(move |core| {
                let clients = core.clients.borrow();
                let mut v: Vec<(u64, String)> = clients
                    .by_id
                    .values()
                    .filter(|c| ids2.as_ref().is_none_or(|ids| ids.contains(&(c.id as i64))))
                    .map(|c| (c.id, c.describe(now)))
                    .collect();
                v.sort_by_key(|x| x.0);
                v
            })
            .await;
        let mut all: Vec<(u64, String)> = lines.into_iter().flatten().collect();
        all.sort_by_key(|x| x.0);
        let mut text = String::new();
        match ids {
            // With ID, Redis lists in argument order, a repeated id once per mention.
            Some(ids) => {
                for id in ids {
                    if let Some((_, l)) = all.iter().find(|(cid, _)| *cid as i64 == id) {
                        text.push_str(l);
                        text.push('\n');
                    }
                }
            }
            None => {
                for (_, l) in all {
                    text.push_str(&l);
                    text.push('\n');
                }
            }
        }
        out.verbatim(b"txt", text.as_bytes());
        out
    })
}

/// A CLIENT KILL filter, as Redis 7.0 parses it.
#[derive(Clone, Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    user: Option<Vec<u8>>,
    normal_only: Option<bool>,
    skipme: bool,
}

impl KillFilter {
    fn matches(&self, c: &Client, me: u64) -> bool {
        if self.skipme && c.id == me {
            return false;
        }
        if let Some(id) = self.id {
            if c.id != id {
                return false;
            }
        }
        if let Some(a) = &self.addr {
            if c.addr.to_string() != *a {
                return false;
            }
        }
        if let Some(a) = &self.laddr {
            if c.laddr.to_string() != *a {
                return false;
            }
        }
        if let Some(u) = &self.user {
            if u.as_slice() != b"default" {
                return false;
            }
        }
        if let Some(normal) = self.normal_only {
            if !normal {
                return false;
            }
        }
        true
    }
}

/// CLIENT KILL ip:port | CLIENT KILL <filter> <value> ...
pub fn client_kill(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let argv = &ctx.argv;
        let me = ctx.client.id;
        let old_style = argv.len() == 3;
        let mut f = KillFilter {
            skipme: true,
            ..KillFilter::default()
        };
        if old_style {
            f.addr = Some(String::from_utf8_lossy(&argv[2]).into_owned());
            f.skipme = false;
        } else if argv.len() > 3 {
            let mut i = 2;
            while i < argv.len() {
                if i + 1 >= argv.len() {
                    out.error(errors::SYNTAX);
                    return out;
                }
                let (opt, val) = (&argv[i], &argv[i + 1]);
                if is(opt, "id") {
                    match arg_i64(val) {
                        Some(id) if id > 0 => f.id = Some(id as u64),
                        _ => {
                            out.error("ERR client-id should be greater than 0");
                            return out;
                        }
                    }
                } else if is(opt, "type") {
                    match client_type_ok(val) {
                        Some(ok) => f.normal_only = Some(ok),
                        None => {
                            out.error(&format!(
                                "ERR Unknown client type '{}'",
                                String::from_utf8_lossy(val)
                            ));
                            return out;
                        }
                    }
                } else if is(opt, "addr") {
                    f.addr = Some(String::from_utf8_lossy(val).into_owned());
                } else if is(opt, "laddr") {
                    f.laddr = Some(String::from_utf8_lossy(val).into_owned());
                } else if is(opt, "user") {
                    // The only user is `default` (no ACL yet); Redis names an unknown one.
                    if &val[..] != b"default" {
                        let mut msg = b"ERR No such user '".to_vec();
                        msg.extend(val.iter().copied().take_while(|&c| c != 0));
                        msg.push(b'\'');
                        out.error_bytes(&msg);
                        return out;
                    }
                    f.user = Some(val.to_vec());
                } else if is(opt, "skipme") {
                    if is(val, "yes") {
                        f.skipme = true;
                    } else if is(val, "no") {
                        f.skipme = false;
                    } else {
                        out.error(errors::SYNTAX);
                        return out;
                    }
                } else {
                    out.error(errors::SYNTAX);
                    return out;
                }
                i += 2;
            }
        } else {
            out.error(errors::SYNTAX);
            return out;
        }
        let filter = f.clone();
        let killed: usize = ctx
            .core
            .run_on_all(move |core| {
                let victims: Vec<_> = core
                    .clients
                    .borrow()
                    .by_id
                    .values()
                    .filter(|c| filter.matches(c, me))
                    .cloned()
                    .collect();
                for c in &victims {
                    if c.id == me {
                        // Our own connection: close after this reply is written.
                        c.close_after_reply.set(true);
                    } else {
                        c.kill();
                    }
                }
                victims.len()
            })
            .await
            .into_iter()
            .sum();
        if old_style {
            if killed == 0 {
                out.error("ERR No such client");
            } else {
                out.ok();
            }
        } else {
            out.int(killed as i64);
        }
        out
    })
}
