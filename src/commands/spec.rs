//! Redis 7.0's command metadata (arity, flags, key specs, docs) that drives COMMAND and routing.
//!
//! The table is not written by hand: `redis-7.0-commands.resp` holds the raw
//! RESP3 replies of `COMMAND INFO` and `COMMAND DOCS` from a real
//! redis-server 7.0.15 (see `scripts/gen-command-spec.py`). It is parsed once
//! into [`CommandSpec`]s, which keep the parsed fields for routing and the raw
//! reply trees for re-encoding COMMAND replies byte for byte.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use smallvec::SmallVec;

use crate::protocol::reply::ReplyBuf;
use crate::util::num;

/// The embedded data: `#` comment lines, then the COMMAND INFO and COMMAND DOCS replies (RESP3).
static DATA: &[u8] = include_bytes!("redis-7.0-commands.resp");

// ---------------------------------------------------------------------------
// RESP3 tree
// ---------------------------------------------------------------------------

/// One node of a parsed RESP3 reply; strings borrow from the embedded data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecValue {
    /// A simple string (`+text`), e.g. a command flag.
    Simple(&'static str),
    /// A bulk string (`$len`).
    Bulk(&'static [u8]),
    /// An integer (`:n`).
    Int(i64),
    /// An array (`*n`).
    Array(Vec<SpecValue>),
    /// A map (`%n`), pairs in wire order.
    Map(Vec<(SpecValue, SpecValue)>),
    /// A set (`~n`), elements in wire order.
    Set(Vec<SpecValue>),
    /// A null (`_`, or a RESP2 `$-1`/`*-1`).
    Null,
}

impl SpecValue {
    /// Writes the node for `out`'s protocol: RESP2 gets maps as flat arrays and sets as arrays, as Redis sends them.
    pub fn encode(&self, out: &mut ReplyBuf) {
        match self {
            SpecValue::Simple(s) => out.simple(s),
            SpecValue::Bulk(b) => out.bulk(b),
            SpecValue::Int(n) => out.int(*n),
            SpecValue::Array(items) => {
                out.array_len(items.len());
                items.iter().for_each(|v| v.encode(out));
            }
            SpecValue::Set(items) => {
                out.set_len(items.len());
                items.iter().for_each(|v| v.encode(out));
            }
            SpecValue::Map(pairs) => {
                out.map_len(pairs.len());
                for (k, v) in pairs {
                    k.encode(out);
                    v.encode(out);
                }
            }
            SpecValue::Null => out.null(),
        }
    }

    /// The text of a simple or (UTF-8) bulk string.
    pub fn as_str(&self) -> Option<&'static str> {
        match *self {
            SpecValue::Simple(s) => Some(s),
            SpecValue::Bulk(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value of an integer node.
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            SpecValue::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The elements of an array or set (empty for anything else).
    pub fn items(&self) -> &[SpecValue] {
        match self {
            SpecValue::Array(v) | SpecValue::Set(v) => v,
            _ => &[],
        }
    }

    /// The value stored under the string key `key` of a map.
    pub fn get(&self, key: &str) -> Option<&SpecValue> {
        match self {
            SpecValue::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A minimal RESP3 reader over the embedded data, enough for what COMMAND INFO/DOCS contain.
struct Reader {
    data: &'static [u8],
    pos: usize,
}

impl Reader {
    fn line(&mut self) -> Result<&'static [u8], String> {
        let rest = &self.data[self.pos..];
        let end = memchr::memmem::find(rest, b"\r\n").ok_or("unterminated line")?;
        self.pos += end + 2;
        Ok(&rest[..end])
    }

    fn int(text: &[u8]) -> Result<i64, String> {
        num::parse_i64(text)
            .ok_or_else(|| format!("bad integer {:?}", String::from_utf8_lossy(text)))
    }

    fn value(&mut self) -> Result<SpecValue, String> {
        let line = self.line()?;
        let (&kind, rest) = line.split_first().ok_or("empty line")?;
        let len = |rest| Self::int(rest);
        Ok(match kind {
            b'+' => SpecValue::Simple(std::str::from_utf8(rest).map_err(|e| e.to_string())?),
            b':' => SpecValue::Int(Self::int(rest)?),
            b'_' => SpecValue::Null,
            b'$' => {
                let n = len(rest)?;
                if n < 0 {
                    return Ok(SpecValue::Null);
                }
                let start = self.pos;
                let end = start + n as usize;
                if self.data.get(end..end + 2) != Some(b"\r\n") {
                    return Err("bad bulk string".into());
                }
                self.pos = end + 2;
                SpecValue::Bulk(&self.data[start..end])
            }
            b'*' | b'~' => {
                let n = len(rest)?;
                if n < 0 {
                    return Ok(SpecValue::Null);
                }
                let items = (0..n)
                    .map(|_| self.value())
                    .collect::<Result<Vec<_>, _>>()?;
                if kind == b'*' {
                    SpecValue::Array(items)
                } else {
                    SpecValue::Set(items)
                }
            }
            b'%' => {
                let n = len(rest)?;
                let mut pairs = Vec::with_capacity(n.max(0) as usize);
                for _ in 0..n {
                    pairs.push((self.value()?, self.value()?));
                }
                SpecValue::Map(pairs)
            }
            other => return Err(format!("unsupported RESP type {:?}", other as char)),
        })
    }
}

/// Parses the embedded file into its two replies (COMMAND INFO, COMMAND DOCS).
fn parse_data(data: &'static [u8]) -> Result<(SpecValue, SpecValue), String> {
    let mut r = Reader { data, pos: 0 };
    // Skip the '#' header lines.
    while r.data.get(r.pos) == Some(&b'#') {
        let nl = memchr::memchr(b'\n', &r.data[r.pos..]).ok_or("unterminated header")?;
        r.pos += nl + 1;
    }
    let info = r.value()?;
    let docs = r.value()?;
    if r.pos != data.len() {
        return Err("trailing bytes after COMMAND DOCS".into());
    }
    Ok((info, docs))
}

// ---------------------------------------------------------------------------
// Flag sets
// ---------------------------------------------------------------------------

macro_rules! flag_set {
    ($(#[$meta:meta])* $name:ident($int:ty) { $($konst:ident = $bit:expr => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub $int);

        impl $name {
            $(
                #[doc = concat!("The `", $text, "` flag.")]
                pub const $konst: $name = $name(1 << $bit);
            )*
            /// No flag set.
            pub const EMPTY: $name = $name(0);
            /// Every flag with its Redis name, in the order Redis lists them in replies.
            pub const NAMES: &'static [($name, &'static str)] = &[$(($name::$konst, $text)),*];

            /// The flag Redis calls `name` (exact spelling).
            pub fn from_name(name: &str) -> Option<$name> {
                Self::NAMES.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
            }
            /// True when every flag of `other` is set.
            #[inline]
            pub fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
            /// True when any flag of `other` is set.
            #[inline]
            pub fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }
            /// True when no flag is set.
            #[inline]
            pub fn is_empty(self) -> bool {
                self.0 == 0
            }
            /// The names of the set flags, in Redis's reply order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMES.iter().filter(move |(f, _)| self.contains(*f)).map(|(_, n)| *n)
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            #[inline]
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        impl std::ops::BitOrAssign for $name {
            #[inline]
            fn bitor_assign(&mut self, rhs: $name) {
                self.0 |= rhs.0;
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_set().entries(self.names()).finish()
            }
        }
    };
}

flag_set! {
    /// Command flags (`CMD_*`); names as COMMAND INFO prints them.
    ///
    /// Redis 7.0 does not publish `may_replicate`, `sentinel`, `only_sentinel`,
    /// `protected` or `module_no_cluster`, so the data never sets them.
    CmdFlags(u64) {
        WRITE = 0 => "write",
        READONLY = 1 => "readonly",
        DENYOOM = 2 => "denyoom",
        MODULE = 3 => "module",
        ADMIN = 4 => "admin",
        PUBSUB = 5 => "pubsub",
        NOSCRIPT = 6 => "noscript",
        BLOCKING = 7 => "blocking",
        LOADING = 8 => "loading",
        STALE = 9 => "stale",
        SKIP_MONITOR = 10 => "skip_monitor",
        SKIP_SLOWLOG = 11 => "skip_slowlog",
        ASKING = 12 => "asking",
        FAST = 13 => "fast",
        NO_AUTH = 14 => "no_auth",
        MAY_REPLICATE = 15 => "may_replicate",
        NO_MANDATORY_KEYS = 16 => "no_mandatory_keys",
        NO_ASYNC_LOADING = 17 => "no_async_loading",
        NO_MULTI = 18 => "no_multi",
        MOVABLEKEYS = 19 => "movablekeys",
        ALLOW_BUSY = 20 => "allow_busy",
        SENTINEL = 21 => "sentinel",
        ONLY_SENTINEL = 22 => "only_sentinel",
        PROTECTED = 23 => "protected",
        MODULE_NO_CLUSTER = 24 => "module_no_cluster",
    }
}

flag_set! {
    /// Key-spec flags (`CMD_KEY_*`); names as COMMAND INFO and GETKEYSANDFLAGS print them.
    KeyFlags(u32) {
        RO = 0 => "RO",
        RW = 1 => "RW",
        OW = 2 => "OW",
        RM = 3 => "RM",
        ACCESS = 4 => "access",
        UPDATE = 5 => "update",
        INSERT = 6 => "insert",
        DELETE = 7 => "delete",
        NOT_KEY = 8 => "not_key",
        INCOMPLETE = 9 => "incomplete",
        VARIABLE_FLAGS = 10 => "variable_flags",
    }
}

flag_set! {
    /// ACL categories, named without the `@` that COMMAND INFO puts in front.
    AclCategories(u32) {
        KEYSPACE = 0 => "keyspace",
        READ = 1 => "read",
        WRITE = 2 => "write",
        SET = 3 => "set",
        SORTEDSET = 4 => "sortedset",
        LIST = 5 => "list",
        HASH = 6 => "hash",
        STRING = 7 => "string",
        BITMAP = 8 => "bitmap",
        HYPERLOGLOG = 9 => "hyperloglog",
        GEO = 10 => "geo",
        STREAM = 11 => "stream",
        PUBSUB = 12 => "pubsub",
        ADMIN = 13 => "admin",
        FAST = 14 => "fast",
        SLOW = 15 => "slow",
        BLOCKING = 16 => "blocking",
        DANGEROUS = 17 => "dangerous",
        CONNECTION = 18 => "connection",
        TRANSACTION = 19 => "transaction",
        SCRIPTING = 20 => "scripting",
    }
}

impl AclCategories {
    /// The category named `name` ignoring ASCII case, as `COMMAND LIST FILTERBY ACLCAT` matches it.
    pub fn from_name_nocase(name: &[u8]) -> Option<AclCategories> {
        Self::NAMES
            .iter()
            .find(|(_, n)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(f, _)| *f)
    }
}

impl KeyFlags {
    /// Writes the flags as Redis's addReplyFlagsForKeyArgs does: a set of status strings.
    pub fn encode(self, out: &mut ReplyBuf) {
        out.set_len(self.names().count());
        self.names().for_each(|n| out.simple(n));
    }
}

// ---------------------------------------------------------------------------
// Key specs
// ---------------------------------------------------------------------------

/// Where a key spec starts looking for keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    /// At a fixed argument index.
    Index(i32),
    /// After the first `keyword` found scanning from `startfrom` (negative: from the end, backwards).
    Keyword {
        /// The keyword, matched ignoring case.
        keyword: &'static str,
        /// Where the scan starts; negative counts from the end and scans backwards.
        startfrom: i32,
    },
    /// Not describable (SORT's BY/GET/STORE); the command's own key finder is used.
    Unknown,
}

/// How a key spec finds keys once it has a start position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindKeys {
    /// Keys from the start up to `lastkey` (relative; negative counts from the end), every `keystep`.
    Range {
        /// Last key relative to the start; negative counts from the end of argv.
        lastkey: i32,
        /// Distance between keys.
        keystep: i32,
        /// With lastkey -1: only the first 1/limit of the remaining args are keys.
        limit: i32,
    },
    /// The key count is an argument (`numkeys`), followed by the keys.
    Keynum {
        /// Index of numkeys relative to the start.
        keynumidx: i32,
        /// Index of the first key relative to the start.
        firstkey: i32,
        /// Distance between keys.
        keystep: i32,
    },
    /// Not describable; the command's own key finder is used.
    Unknown,
}

/// One key specification of a command, as COMMAND INFO publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// How the keys are accessed, plus `not_key`/`incomplete`/`variable_flags`.
    pub flags: KeyFlags,
    /// Where the search begins.
    pub begin_search: BeginSearch,
    /// How keys are found from there.
    pub find_keys: FindKeys,
    /// Redis's explanatory note, when it has one.
    pub notes: Option<&'static str>,
}

/// A key argument found in a command line: its argv index and access flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef {
    /// Index into argv (argv[0] is the command name).
    pub pos: usize,
    /// Access flags (empty when Redis's fallback key finder reports none).
    pub flags: KeyFlags,
}

/// Why no key positions could be computed; the messages are COMMAND GETKEYS's errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysError {
    /// The command never takes keys.
    NoKeyArgs,
    /// argv does not satisfy the command's arity.
    WrongArity,
    /// The arguments do not describe keys (e.g. numkeys 0 where keys are mandatory).
    InvalidArgs,
}

impl KeysError {
    /// The error reply Redis sends for this case in COMMAND GETKEYS.
    pub fn message(self) -> &'static str {
        match self {
            KeysError::NoKeyArgs => "ERR The command has no key arguments",
            KeysError::WrongArity => "ERR Invalid number of arguments specified for command",
            KeysError::InvalidArgs => "ERR Invalid arguments specified for command",
        }
    }
}

/// Redis's per-command getkeys_proc, used when the key specs can't answer (db.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeysProc {
    /// genericGetKeys(storeKeyOfs, keyCountOfs, firstKeyOfs, keyStep): numkeys-style commands.
    Generic(usize, usize, usize, usize),
    Set,
    Bitfield,
    Sort,
    SortRo,
    Migrate,
    Georadius,
    Xread,
}

impl KeysProc {
    /// The getkeys_proc Redis 7.0 registers for `name` (commands.c).
    fn for_command(name: &str) -> Option<KeysProc> {
        Some(match name {
            "set" => KeysProc::Set,
            "bitfield" => KeysProc::Bitfield,
            "sort" => KeysProc::Sort,
            "sort_ro" => KeysProc::SortRo,
            "migrate" => KeysProc::Migrate,
            "georadius" | "georadiusbymember" => KeysProc::Georadius,
            "xread" | "xreadgroup" => KeysProc::Xread,
            "zunionstore" | "zinterstore" | "zdiffstore" => KeysProc::Generic(1, 2, 3, 1),
            "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
                KeysProc::Generic(0, 1, 2, 1)
            }
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "blmpop"
            | "bzmpop" => KeysProc::Generic(0, 2, 3, 1),
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------
// Command specs
// ---------------------------------------------------------------------------

/// Everything Redis 7.0 publishes about one command or subcommand.
#[derive(Debug)]
pub struct CommandSpec {
    /// Full lowercase name: `get`, `object|encoding`.
    pub name: &'static str,
    /// Arity: exact argc when positive, minimum argc when negative (argv[0] counts).
    pub arity: i32,
    /// Command flags.
    pub flags: CmdFlags,
    /// Legacy first key index (0: no keys).
    pub first_key: i32,
    /// Legacy last key index (negative: counted from the end).
    pub last_key: i32,
    /// Legacy key step.
    pub step: i32,
    /// ACL categories.
    pub acl_categories: AclCategories,
    /// Command tips (`nondeterministic_output`, `request_policy:all_shards`, ...).
    pub tips: Vec<&'static str>,
    /// Key specs, in Redis's order (key_spec_index in the docs refers to it).
    pub key_specs: Vec<KeySpec>,
    /// The group from COMMAND DOCS (`string`, `server`, ...).
    pub group: &'static str,
    /// The one-line summary from COMMAND DOCS.
    pub summary: &'static str,
    /// The version that introduced the command.
    pub since: &'static str,
    /// The COMMAND INFO entry's first nine fields; the subcommands field is rebuilt when encoding.
    pub info: SpecValue,
    /// The COMMAND DOCS map without its `subcommands` entry, which is rebuilt when encoding.
    pub docs: SpecValue,
    parent: Option<usize>,
    subcommands: Vec<usize>,
    proc_: Option<KeysProc>,
    has_keyspec: bool,
    has_varflags: bool,
}

/// The parsed table: every command and subcommand, plus name lookup.
struct Registry {
    cmds: Vec<CommandSpec>,
    top: Vec<usize>,
    by_name: HashMap<&'static str, usize>,
}

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| build_registry(DATA).expect("embedded Redis command table is malformed"))
}

fn build_registry(data: &'static [u8]) -> Result<Registry, String> {
    let (info, docs) = parse_data(data)?;
    let SpecValue::Array(entries) = info else {
        return Err("COMMAND INFO is not an array".into());
    };
    let SpecValue::Map(doc_pairs) = docs else {
        return Err("COMMAND DOCS is not a map".into());
    };
    let mut docs_by_name: HashMap<&'static str, SpecValue> = HashMap::new();
    for (k, v) in doc_pairs {
        docs_by_name.insert(k.as_str().ok_or("docs key")?, v);
    }
    let mut reg = Registry {
        cmds: Vec::new(),
        top: Vec::new(),
        by_name: HashMap::new(),
    };
    for entry in entries {
        let idx = add_command(&mut reg, entry, &mut docs_by_name, None)?;
        reg.top.push(idx);
    }
    Ok(reg)
}

fn field_str(v: &SpecValue, what: &str) -> Result<&'static str, String> {
    v.as_str().ok_or_else(|| format!("{what}: not a string"))
}

fn field_int(v: Option<&SpecValue>, what: &str) -> Result<i32, String> {
    v.and_then(SpecValue::as_int)
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| format!("{what}: not an integer"))
}

fn parse_key_spec(v: &SpecValue) -> Result<KeySpec, String> {
    let mut flags = KeyFlags::EMPTY;
    for f in v.get("flags").ok_or("key spec without flags")?.items() {
        let name = field_str(f, "key spec flag")?;
        flags |= KeyFlags::from_name(name).ok_or_else(|| format!("unknown key flag {name}"))?;
    }
    let bs = v.get("begin_search").ok_or("no begin_search")?;
    let bs_spec = bs.get("spec").ok_or("no begin_search spec")?;
    let begin_search = match bs.get("type").and_then(SpecValue::as_str) {
        Some("index") => BeginSearch::Index(field_int(bs_spec.get("index"), "index")?),
        Some("keyword") => BeginSearch::Keyword {
            keyword: field_str(bs_spec.get("keyword").ok_or("no keyword")?, "keyword")?,
            startfrom: field_int(bs_spec.get("startfrom"), "startfrom")?,
        },
        Some("unknown") => BeginSearch::Unknown,
        other => return Err(format!("unknown begin_search type {other:?}")),
    };
    let fk = v.get("find_keys").ok_or("no find_keys")?;
    let fk_spec = fk.get("spec").ok_or("no find_keys spec")?;
    let find_keys = match fk.get("type").and_then(SpecValue::as_str) {
        Some("range") => FindKeys::Range {
            lastkey: field_int(fk_spec.get("lastkey"), "lastkey")?,
            keystep: field_int(fk_spec.get("keystep"), "keystep")?,
            limit: field_int(fk_spec.get("limit"), "limit")?,
        },
        Some("keynum") => FindKeys::Keynum {
            keynumidx: field_int(fk_spec.get("keynumidx"), "keynumidx")?,
            firstkey: field_int(fk_spec.get("firstkey"), "firstkey")?,
            keystep: field_int(fk_spec.get("keystep"), "keystep")?,
        },
        Some("unknown") => FindKeys::Unknown,
        other => return Err(format!("unknown find_keys type {other:?}")),
    };
    let notes = v.get("notes").and_then(SpecValue::as_str);
    Ok(KeySpec {
        flags,
        begin_search,
        find_keys,
        notes,
    })
}

/// Adds one COMMAND INFO entry (and, recursively, its subcommands) to `reg`.
fn add_command(
    reg: &mut Registry,
    entry: SpecValue,
    docs_by_name: &mut HashMap<&'static str, SpecValue>,
    parent: Option<usize>,
) -> Result<usize, String> {
    let SpecValue::Array(mut fields) = entry else {
        return Err("COMMAND INFO entry is not an array".into());
    };
    if fields.len() != 10 {
        return Err("COMMAND INFO entry does not have 10 fields".into());
    }
    let subs = fields.pop().unwrap_or(SpecValue::Null);
    let name = field_str(&fields[0], "name")?;
    let arity = field_int(fields.get(1), "arity")?;
    let mut flags = CmdFlags::EMPTY;
    for f in fields[2].items() {
        let n = field_str(f, "flag")?;
        flags |= CmdFlags::from_name(n).ok_or_else(|| format!("{name}: unknown flag {n}"))?;
    }
    let first_key = field_int(fields.get(3), "first key")?;
    let last_key = field_int(fields.get(4), "last key")?;
    let step = field_int(fields.get(5), "step")?;
    let mut acl_categories = AclCategories::EMPTY;
    for c in fields[6].items() {
        let n = field_str(c, "category")?;
        let bare = n.strip_prefix('@').unwrap_or(n);
        acl_categories |= AclCategories::from_name(bare)
            .ok_or_else(|| format!("{name}: unknown ACL category {n}"))?;
    }
    let tips = fields[7]
        .items()
        .iter()
        .map(|t| field_str(t, "tip"))
        .collect::<Result<Vec<_>, _>>()?;
    let key_specs = fields[8]
        .items()
        .iter()
        .map(parse_key_spec)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{name}: {e}"))?;

    let mut docs = docs_by_name
        .remove(name)
        .ok_or_else(|| format!("{name}: no COMMAND DOCS entry"))?;
    // Subcommand docs live inside the container's docs; hand them down.
    let mut sub_docs: HashMap<&'static str, SpecValue> = HashMap::new();
    if let SpecValue::Map(pairs) = &mut docs {
        if let Some(i) = pairs
            .iter()
            .position(|(k, _)| k.as_str() == Some("subcommands"))
        {
            if let (_, SpecValue::Map(subpairs)) = pairs.remove(i) {
                for (k, v) in subpairs {
                    sub_docs.insert(field_str(&k, "subcommand docs key")?, v);
                }
            }
        }
    }
    let doc_str = |key: &str| docs.get(key).and_then(SpecValue::as_str).unwrap_or("");
    let (group, summary, since) = (doc_str("group"), doc_str("summary"), doc_str("since"));

    let not_key = |s: &KeySpec| s.flags.contains(KeyFlags::NOT_KEY);
    let spec = CommandSpec {
        name,
        arity,
        flags,
        first_key,
        last_key,
        step,
        acl_categories,
        tips,
        has_keyspec: key_specs.iter().any(|s| !not_key(s)),
        has_varflags: key_specs
            .iter()
            .any(|s| s.flags.contains(KeyFlags::VARIABLE_FLAGS)),
        key_specs,
        group,
        summary,
        since,
        info: SpecValue::Array(fields),
        docs,
        parent,
        subcommands: Vec::new(),
        proc_: KeysProc::for_command(name),
    };
    let idx = reg.cmds.len();
    reg.cmds.push(spec);
    if reg.by_name.insert(name, idx).is_some() {
        return Err(format!("duplicate command {name}"));
    }
    if let SpecValue::Array(sub_entries) = subs {
        let mut children = Vec::with_capacity(sub_entries.len());
        for sub in sub_entries {
            children.push(add_command(reg, sub, &mut sub_docs, Some(idx))?);
        }
        reg.cmds[idx].subcommands = children;
    }
    Ok(idx)
}

/// The command or subcommand with full lowercase name `name` (`get`, `object|encoding`).
pub fn find(name: &str) -> Option<&'static CommandSpec> {
    let reg = registry();
    reg.by_name.get(name).map(|&i| &reg.cmds[i])
}

/// Like [`find`], but `name` may be in any ASCII case (as clients send it).
pub fn find_nocase(name: &[u8]) -> Option<&'static CommandSpec> {
    // Every full name fits; longer input can't match, so it needs no allocation.
    let mut buf = [0u8; 64];
    let lower = buf.get_mut(..name.len())?;
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    find(std::str::from_utf8(lower).ok()?)
}

/// All top-level commands, in the order the generating server listed them.
pub fn all() -> impl Iterator<Item = &'static CommandSpec> {
    let reg = registry();
    reg.top.iter().map(move |&i| &reg.cmds[i])
}

impl CommandSpec {
    /// The subcommands of a container command (empty for plain commands).
    pub fn subcommands(&self) -> impl Iterator<Item = &'static CommandSpec> + '_ {
        let reg = registry();
        self.subcommands.iter().map(move |&i| &reg.cmds[i])
    }

    /// The subcommand `sub` (any case) of this container.
    pub fn subcommand(&self, sub: &[u8]) -> Option<&'static CommandSpec> {
        if self.subcommands.is_empty() {
            return None;
        }
        // "container|sub" in a stack buffer: too long can't be a command.
        let mut buf = [0u8; 64];
        let len = self.name.len() + 1 + sub.len();
        let full = buf.get_mut(..len)?;
        full[..self.name.len()].copy_from_slice(self.name.as_bytes());
        full[self.name.len()] = b'|';
        full[self.name.len() + 1..].copy_from_slice(sub);
        find_nocase(full).filter(|s| s.parent.is_some())
    }

    /// The container this subcommand belongs to.
    pub fn parent(&self) -> Option<&'static CommandSpec> {
        self.parent.map(|i| &registry().cmds[i])
    }

    /// True for container commands (CONFIG, OBJECT, ...), which have subcommands.
    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// True when `argc` arguments (argv[0] included) satisfy the arity.
    #[inline]
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = self.arity as i64;
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// True when the command may take keys (Redis's doesCommandHaveKeys).
    pub fn has_keys(&self) -> bool {
        self.proc_.is_some() || self.has_keyspec
    }

    /// The argv indices of the keys, as `COMMAND GETKEYS` computes them.
    pub fn keys(&self, argv: &[&[u8]]) -> Result<SmallVec<[usize; 4]>, KeysError> {
        Ok(self.keys_and_flags(argv)?.iter().map(|k| k.pos).collect())
    }

    /// The keys with their access flags, as `COMMAND GETKEYSANDFLAGS` computes them.
    ///
    /// argv[0] is the command name (for a subcommand argv[1] is its name).
    /// Checks run in Redis's order: has keys, arity, then extraction; an empty
    /// result is an error unless the command is `no_mandatory_keys`.
    pub fn keys_and_flags(&self, argv: &[&[u8]]) -> Result<SmallVec<[KeyRef; 4]>, KeysError> {
        if !self.has_keys() {
            return Err(KeysError::NoKeyArgs);
        }
        if !self.arity_ok(argv.len()) {
            return Err(KeysError::WrongArity);
        }
        let keys = self.extract_keys(argv);
        if keys.is_empty() && !self.flags.contains(CmdFlags::NO_MANDATORY_KEYS) {
            return Err(KeysError::InvalidArgs);
        }
        Ok(keys)
    }

    /// The key positions Redis 7.0 uses for cluster slot routing and client tracking (getKeysFromCommand).
    ///
    /// Unlike [`keys`](Self::keys) this ignores key specs: a command with a
    /// getkeys proc uses it (so XREAD finds the real STREAMS option), anything
    /// else the legacy first/last/step range, which still counts shard
    /// channels (SPUBLISH) as keys. Never an error: no keys is empty.
    pub fn legacy_keys(&self, argv: &[&[u8]]) -> SmallVec<[usize; 4]> {
        if let Some(p) = self.proc_ {
            return run_proc(p, argv).iter().map(|k| k.pos).collect();
        }
        let mut keys = SmallVec::new();
        if self.first_key <= 0 || self.step <= 0 {
            return keys;
        }
        let argc = argv.len() as i64;
        let (first, step) = (self.first_key as i64, self.step as i64);
        let last = match self.last_key as i64 {
            l if l < 0 => argc + l,
            l => l,
        };
        let mut j = first;
        while j <= last {
            if j >= argc {
                // Too few arguments: Redis returns no keys and lets the command fail.
                return SmallVec::new();
            }
            keys.push(j as usize);
            j += step;
        }
        keys
    }

    /// getKeysFromCommandWithSpecs: key specs when they are reliable, else the getkeys proc.
    fn extract_keys(&self, argv: &[&[u8]]) -> SmallVec<[KeyRef; 4]> {
        if self.has_keyspec && !self.has_varflags {
            if let Some(keys) = self.keys_from_specs(argv) {
                return keys;
            }
        }
        match self.proc_ {
            Some(p) => run_proc(p, argv),
            None => SmallVec::new(),
        }
    }

    /// getKeysUsingKeySpecs with GET_KEYSPEC_DEFAULT; None where Redis returns -1.
    fn keys_from_specs(&self, argv: &[&[u8]]) -> Option<SmallVec<[KeyRef; 4]>> {
        let argc = argv.len() as i64;
        let mut keys = SmallVec::new();
        for spec in &self.key_specs {
            if spec.flags.contains(KeyFlags::NOT_KEY) {
                continue;
            }
            let mut first: i64 = 0;
            match spec.begin_search {
                BeginSearch::Index(pos) => first = pos as i64,
                BeginSearch::Keyword { keyword, startfrom } => {
                    let startfrom = startfrom as i64;
                    // Bounds and direction exactly as db.c: end_index is exclusive.
                    let start = if startfrom > 0 {
                        startfrom
                    } else {
                        argc + startfrom
                    };
                    let end = if startfrom > 0 { argc - 1 } else { 1 };
                    let mut i = start;
                    while i != end {
                        if i >= argc || i < 1 {
                            break;
                        }
                        if c_str_eq_nocase(argv[i as usize], keyword.as_bytes()) {
                            first = i + 1;
                            break;
                        }
                        i = if start <= end { i + 1 } else { i - 1 };
                    }
                    if first == 0 {
                        continue; // keyword not found: this spec has no keys
                    }
                }
                BeginSearch::Unknown => return None,
            }
            let (last, step) = match spec.find_keys {
                FindKeys::Range {
                    lastkey,
                    keystep,
                    limit,
                } => {
                    let (lastkey, limit) = (lastkey as i64, limit as i64);
                    let last = if lastkey >= 0 {
                        first + lastkey
                    } else if limit == 0 {
                        argc + lastkey
                    } else {
                        first + ((argc - first) / limit + lastkey)
                    };
                    (last, keystep as i64)
                }
                FindKeys::Keynum {
                    keynumidx,
                    firstkey,
                    keystep,
                } => {
                    let idx = first + keynumidx as i64;
                    if idx < 0 || idx >= argc {
                        return None;
                    }
                    let n = num::parse_i64(argv[idx as usize]).filter(|&n| n >= 0)?;
                    first += firstkey as i64;
                    // Redis adds numkeys as a C int: truncation included.
                    let last = (first as i32).wrapping_add(n as i32).wrapping_sub(1) as i64;
                    (last, keystep as i64)
                }
                FindKeys::Unknown => return None,
            };
            if last >= argc || last < first || first >= argc || step <= 0 {
                return None;
            }
            let mut i = first;
            while i <= last {
                keys.push(KeyRef {
                    pos: i as usize,
                    flags: spec.flags,
                });
                i += step;
            }
            if spec.flags.contains(KeyFlags::INCOMPLETE) {
                return None;
            }
        }
        Some(keys)
    }

    /// Writes this command's COMMAND INFO entry; only subcommands passing `visible` are listed.
    pub fn encode_info(&self, out: &mut ReplyBuf, visible: &dyn Fn(&CommandSpec) -> bool) {
        out.array_len(10);
        self.info.items().iter().for_each(|f| f.encode(out));
        if self.is_container() {
            let subs: SmallVec<[&CommandSpec; 16]> =
                self.subcommands().filter(|s| visible(s)).collect();
            out.array_len(subs.len());
            subs.iter().for_each(|s| s.encode_info(out, visible));
        } else {
            // Redis sends an empty set, not an empty array, for plain commands.
            out.set_len(0);
        }
    }

    /// Writes this command's COMMAND DOCS map; only subcommands passing `visible` are listed.
    pub fn encode_docs(&self, out: &mut ReplyBuf, visible: &dyn Fn(&CommandSpec) -> bool) {
        let pairs: &[(SpecValue, SpecValue)] = match &self.docs {
            SpecValue::Map(p) => p,
            _ => &[],
        };
        out.map_len(pairs.len() + self.is_container() as usize);
        for (k, v) in pairs {
            k.encode(out);
            v.encode(out);
        }
        if self.is_container() {
            let subs: SmallVec<[&CommandSpec; 16]> =
                self.subcommands().filter(|s| visible(s)).collect();
            out.bulk(b"subcommands");
            out.map_len(subs.len());
            for s in subs {
                out.bulk(s.name.as_bytes());
                s.encode_docs(out, visible);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// getkeys procs (db.c), for specs Redis can't or won't use
// ---------------------------------------------------------------------------

/// The bytes of `arg` up to its first NUL: Redis compares arguments with strcasecmp.
fn c_str(arg: &[u8]) -> &[u8] {
    match memchr::memchr(0, arg) {
        Some(n) => &arg[..n],
        None => arg,
    }
}

fn c_str_eq_nocase(arg: &[u8], word: &[u8]) -> bool {
    c_str(arg).eq_ignore_ascii_case(word)
}

/// C's atoi ((int)strtol): leading spaces, a sign, digits, saturating at long range, truncated to int.
fn atoi(arg: &[u8]) -> i32 {
    let s = c_str(arg);
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    for &c in s[i..].iter().take_while(|c| c.is_ascii_digit()) {
        let d = (c - b'0') as i64;
        v = if neg {
            v.saturating_mul(10).saturating_sub(d)
        } else {
            v.saturating_mul(10).saturating_add(d)
        };
    }
    v as i32
}

fn key(pos: usize, flags: KeyFlags) -> KeyRef {
    KeyRef { pos, flags }
}

fn run_proc(p: KeysProc, argv: &[&[u8]]) -> SmallVec<[KeyRef; 4]> {
    let argc = argv.len();
    let is = |i: usize, w: &str| c_str_eq_nocase(argv[i], w.as_bytes());
    let mut keys = SmallVec::new();
    match p {
        KeysProc::Generic(store, count, first, step) => {
            let Some(arg) = argv.get(count) else {
                return keys;
            };
            let n = atoi(arg) as i64;
            if n < 1 || n > (argc as i64 - first as i64) / step as i64 {
                return keys;
            }
            for i in 0..n as usize {
                keys.push(key(first + i * step, KeyFlags::EMPTY));
            }
            if store != 0 {
                keys.push(key(store, KeyFlags::EMPTY));
            }
        }
        KeysProc::Set => {
            let get = (3..argc).any(|i| is(i, "get"));
            let flags = if get {
                KeyFlags::RW | KeyFlags::ACCESS | KeyFlags::UPDATE
            } else {
                KeyFlags::OW | KeyFlags::UPDATE
            };
            keys.push(key(1, flags));
        }
        KeysProc::Bitfield => {
            let mut readonly = true;
            let mut i = 2;
            while i < argc {
                let remargs = argc - i - 1;
                if is(i, "get") && remargs >= 2 {
                    i += 2;
                } else if (is(i, "set") || is(i, "incrby")) && remargs >= 3 {
                    readonly = false;
                    break;
                } else if is(i, "overflow") && remargs >= 1 {
                    i += 1;
                } else {
                    readonly = false; // syntax error: assume it writes
                    break;
                }
                i += 1;
            }
            let flags = if readonly {
                KeyFlags::RO | KeyFlags::ACCESS
            } else {
                KeyFlags::RW | KeyFlags::ACCESS | KeyFlags::UPDATE
            };
            keys.push(key(1, flags));
        }
        KeysProc::SortRo => keys.push(key(1, KeyFlags::RO | KeyFlags::ACCESS)),
        KeysProc::Sort => {
            keys.push(key(1, KeyFlags::RO | KeyFlags::ACCESS));
            let mut store = None;
            let mut i = 2;
            while i < argc {
                // Mirrors sortGetKeys's skip list loop, including that the
                // STORE target is scanned again as a possible option.
                if is(i, "limit") {
                    i += 2;
                } else if is(i, "store") && i + 1 < argc {
                    store = Some(i + 1);
                } else if is(i, "get") || is(i, "by") {
                    i += 1;
                }
                i += 1;
            }
            if let Some(pos) = store {
                keys.push(key(pos, KeyFlags::OW | KeyFlags::UPDATE));
            }
        }
        KeysProc::Migrate => {
            let (mut first, mut n) = (3, 1);
            if argc > 6 {
                let mut i = 6;
                while i < argc {
                    if is(i, "keys") {
                        if !c_str(argv[3]).is_empty() {
                            n = 0; // syntax error, left for MIGRATE itself to report
                        } else {
                            first = i + 1;
                            n = argc - first;
                        }
                        break;
                    }
                    if is(i, "auth") {
                        i += 1;
                    } else if is(i, "auth2") {
                        i += 2;
                    }
                    i += 1;
                }
            }
            let flags = KeyFlags::RW | KeyFlags::ACCESS | KeyFlags::DELETE;
            keys.extend((first..first + n).map(|p| key(p, flags)));
        }
        KeysProc::Georadius => {
            keys.push(key(1, KeyFlags::EMPTY));
            let mut stored = None;
            let mut i = 5;
            while i < argc {
                if (is(i, "store") || is(i, "storedist")) && i + 1 < argc {
                    stored = Some(i + 1);
                    i += 1;
                }
                i += 1;
            }
            if let Some(pos) = stored {
                keys.push(key(pos, KeyFlags::EMPTY));
            }
        }
        KeysProc::Xread => {
            let mut streams = None;
            let mut i = 1;
            while i < argc {
                if is(i, "block") || is(i, "count") {
                    i += 1;
                } else if is(i, "group") {
                    i += 2;
                } else if is(i, "noack") {
                } else if is(i, "streams") {
                    streams = Some(i);
                    break;
                } else {
                    break;
                }
                i += 1;
            }
            let Some(s) = streams else { return keys };
            let n = argc - s - 1;
            if n == 0 || !n.is_multiple_of(2) {
                return keys;
            }
            keys.extend((s + 1..s + 1 + n / 2).map(|p| key(p, KeyFlags::EMPTY)));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::reply::Proto;

    fn keys_of(line: &str) -> Result<Vec<String>, KeysError> {
        let argv: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        let spec = match find_nocase(argv[0]) {
            Some(s) if s.is_container() && argv.len() > 1 => s.subcommand(argv[1]).unwrap(),
            Some(s) => s,
            None => panic!("unknown command in {line}"),
        };
        spec.keys(&argv).map(|ks| {
            ks.iter()
                .map(|&p| String::from_utf8(argv[p].to_vec()).unwrap())
                .collect()
        })
    }

    #[test]
    fn data_parses() {
        let reg = build_registry(DATA).unwrap();
        assert_eq!(reg.top.len(), 240);
        assert!(reg.cmds.len() > 300);
        assert!(all().any(|c| c.name == "config"));
        assert_eq!(all().count(), 240);
    }

    #[test]
    fn get_spec() {
        let get = find("get").unwrap();
        assert_eq!(get.arity, 2);
        assert_eq!(get.flags, CmdFlags::READONLY | CmdFlags::FAST);
        assert_eq!((get.first_key, get.last_key, get.step), (1, 1, 1));
        assert_eq!(
            get.acl_categories,
            AclCategories::READ | AclCategories::STRING | AclCategories::FAST
        );
        assert_eq!(get.group, "string");
        assert_eq!(get.summary, "Get the value of a key");
        assert_eq!(
            get.key_specs,
            vec![KeySpec {
                flags: KeyFlags::RO | KeyFlags::ACCESS,
                begin_search: BeginSearch::Index(1),
                find_keys: FindKeys::Range {
                    lastkey: 0,
                    keystep: 1,
                    limit: 0
                },
                notes: None,
            }]
        );
        assert_eq!(get.keys(&[b"get", b"k"]).unwrap().as_slice(), &[1]);
        assert!(find("GET").is_none());
        assert!(std::ptr::eq(find_nocase(b"GeT").unwrap(), get));
    }

    #[test]
    fn subcommands() {
        let enc = find("object|encoding").unwrap();
        assert_eq!(enc.arity, 3);
        assert_eq!(enc.parent().unwrap().name, "object");
        assert_eq!(
            enc.keys(&[b"OBJECT", b"ENCODING", b"k"])
                .unwrap()
                .as_slice(),
            &[2]
        );
        let object = find("object").unwrap();
        assert!(object.is_container());
        assert!(std::ptr::eq(object.subcommand(b"Encoding").unwrap(), enc));
        assert!(object.subcommand(b"nosuch").is_none());
        assert!(find("get").unwrap().subcommand(b"x").is_none());
        assert_eq!(find("command|getkeys").unwrap().arity, -4);
    }

    #[test]
    fn flags_and_key_specs_parse() {
        let xread = find("xread").unwrap();
        assert!(xread
            .flags
            .contains(CmdFlags::MOVABLEKEYS | CmdFlags::BLOCKING));
        assert_eq!(
            xread.key_specs[0].begin_search,
            BeginSearch::Keyword {
                keyword: "STREAMS",
                startfrom: 1
            }
        );
        assert_eq!(
            xread.key_specs[0].find_keys,
            FindKeys::Range {
                lastkey: -1,
                keystep: 1,
                limit: 2
            }
        );
        let zu = find("zunionstore").unwrap();
        assert_eq!(
            zu.key_specs[1].find_keys,
            FindKeys::Keynum {
                keynumidx: 0,
                firstkey: 1,
                keystep: 1
            }
        );
        let sort = find("sort").unwrap();
        assert_eq!(sort.key_specs[1].begin_search, BeginSearch::Unknown);
        assert!(sort.key_specs[1].notes.is_some());
        let set = find("set").unwrap();
        assert!(set.key_specs[0].flags.contains(KeyFlags::VARIABLE_FLAGS));
        assert_eq!(
            format!("{:?}", KeyFlags::RW | KeyFlags::ACCESS),
            r#"{"RW", "access"}"#
        );
        assert_eq!(
            AclCategories::from_name_nocase(b"SortedSet"),
            Some(AclCategories::SORTEDSET)
        );
    }

    /// Expected values were taken from redis-server 7.0.15's `COMMAND GETKEYS`.
    #[test]
    fn keys_match_redis() {
        let ok = |line: &str, want: &[&str]| {
            assert_eq!(
                keys_of(line),
                Ok(want.iter().map(|s| s.to_string()).collect()),
                "{line}"
            )
        };
        ok("SET k v", &["k"]);
        ok("SET k v GET", &["k"]);
        ok("MSET a 1 b 2 c 3", &["a", "b", "c"]);
        ok("MGET a b c", &["a", "b", "c"]);
        ok("DEL a b", &["a", "b"]);
        ok("ZUNIONSTORE dest 2 a b", &["dest", "a", "b"]);
        ok("ZUNIONSTORE dest 2x a b", &["a", "b", "dest"]);
        ok("EVAL script 2 k1 k2 arg", &["k1", "k2"]);
        ok("EVAL script 0", &[]);
        ok("EVAL script 4294967297 k", &["k"]);
        ok("EVAL script +1 k", &["k"]);
        ok("LMPOP 2 a b LEFT", &["a", "b"]);
        ok("BLMPOP 0 2 a b LEFT", &["a", "b"]);
        ok("SINTERCARD 2 a b LIMIT 1", &["a", "b"]);
        ok("XREAD COUNT 2 STREAMS s1 s2 0 0", &["s1", "s2"]);
        ok("XREAD COUNT streams STREAMS a 0", &["STREAMS"]);
        ok("XREADGROUP GROUP g c STREAMS a 0", &["a"]);
        ok("MIGRATE h p k 0 5", &["k"]);
        ok("MIGRATE h p  0 5 AUTH KEYS KEYS a", &["a"]);
        ok("SORT k BY w GET x STORE d", &["k", "d"]);
        ok("SORT_RO k BY x", &["k"]);
        ok("GEORADIUS k 1 2 3 m STORE", &["k"]);
        ok("GEORADIUS k 1 2 3 m STORE a STOREDIST b", &["k", "a", "b"]);
        ok("OBJECT ENCODING k", &["k"]);
        ok("BITFIELD k GET u8 0", &["k"]);
        ok("LMOVE a b LEFT RIGHT", &["a", "b"]);
        let err = |line: &str, e: KeysError| assert_eq!(keys_of(line), Err(e), "{line}");
        err("ZUNIONSTORE d 0 a", KeysError::InvalidArgs);
        err("MIGRATE h p k 0 5 KEYS a b", KeysError::InvalidArgs);
        err("GET a b", KeysError::WrongArity);
        err("MSET a", KeysError::WrongArity);
        err("ECHO a b", KeysError::NoKeyArgs);
        err("SPUBLISH a b", KeysError::NoKeyArgs);
        err("CONFIG GET x", KeysError::NoKeyArgs);
    }

    #[test]
    fn legacy_keys_follow_get_keys_from_command() {
        let legacy = |line: &str| -> Vec<usize> {
            let argv: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            find_nocase(argv[0]).unwrap().legacy_keys(&argv).to_vec()
        };
        assert_eq!(legacy("GET k"), [1]);
        assert_eq!(legacy("MSET a 1 b 2"), [1, 3]);
        assert_eq!(legacy("BLPOP a b 0"), [1, 2]);
        assert_eq!(legacy("SPUBLISH ch msg"), [1]);
        assert_eq!(legacy("XREAD COUNT streams STREAMS a 0"), [4]);
        assert_eq!(legacy("ZUNIONSTORE d 2 a b"), [3, 4, 1]);
        assert_eq!(legacy("EVAL s 0"), [0usize; 0]);
        assert_eq!(legacy("PING"), [0usize; 0]);
        assert_eq!(
            find("object|encoding")
                .unwrap()
                .legacy_keys(&[b"object", b"encoding", b"k"])
                .to_vec(),
            [2]
        );
    }

    #[test]
    fn key_flags_match_redis() {
        let flags = |line: &str| -> Vec<KeyFlags> {
            let argv: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            let spec = find_nocase(argv[0]).unwrap();
            spec.keys_and_flags(&argv)
                .unwrap()
                .iter()
                .map(|k| k.flags)
                .collect()
        };
        use KeyFlags as F;
        assert_eq!(flags("SET k v GET"), [F::RW | F::ACCESS | F::UPDATE]);
        assert_eq!(flags("SET k v"), [F::OW | F::UPDATE]);
        assert_eq!(flags("EVAL s 1x k"), [F::EMPTY]);
        assert_eq!(
            flags("LMOVE a b LEFT RIGHT"),
            [F::RW | F::ACCESS | F::DELETE, F::RW | F::INSERT]
        );
        assert_eq!(
            flags("BITFIELD k SET u8 0 1"),
            [F::RW | F::ACCESS | F::UPDATE]
        );
        assert_eq!(
            flags("SORT k STORE d"),
            [F::RO | F::ACCESS, F::OW | F::UPDATE]
        );
    }

    #[test]
    fn atoi_is_c_atoi() {
        assert_eq!(atoi(b" 12x"), 12);
        assert_eq!(atoi(b"+3"), 3);
        assert_eq!(atoi(b"-3"), -3);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b"4294967297"), 1);
        assert_eq!(atoi(b"99999999999999999999"), -1);
        assert_eq!(atoi(b"1\x002"), 1);
    }

    fn encoded(proto: Proto, f: impl FnOnce(&mut ReplyBuf)) -> Vec<u8> {
        let mut out = ReplyBuf::new(proto);
        f(&mut out);
        out.buf
    }

    /// The fixtures are redis-server 7.0.15's replies to `COMMAND INFO get` / `COMMAND DOCS get`.
    #[test]
    fn reencoding_matches_redis() {
        let all = |_: &CommandSpec| true;
        let get = find("get").unwrap();
        let info = |proto| {
            encoded(proto, |o| {
                o.array_len(1);
                get.encode_info(o, &all)
            })
        };
        let docs = |proto| {
            encoded(proto, |o| {
                o.map_len(1);
                o.bulk(b"get");
                get.encode_docs(o, &all)
            })
        };
        let fixture = |name: &str| -> Vec<u8> {
            let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        assert_eq!(info(Proto::Resp2), fixture("command-info-get.resp2"));
        assert_eq!(info(Proto::Resp3), fixture("command-info-get.resp3"));
        assert_eq!(docs(Proto::Resp2), fixture("command-docs-get.resp2"));
        assert_eq!(docs(Proto::Resp3), fixture("command-docs-get.resp3"));
    }

    /// Every command re-encodes (RESP3) to exactly the bytes it was parsed from.
    #[test]
    fn whole_table_round_trips() {
        let (info, docs) = parse_data(DATA).unwrap();
        let every = |_: &CommandSpec| true;
        let mut want = ReplyBuf::new(Proto::Resp3);
        info.encode(&mut want);
        docs.encode(&mut want);
        let start = DATA.len() - want.buf.len();
        assert_eq!(&DATA[start..], &want.buf[..]);
        let n = all().count();
        let got = encoded(Proto::Resp3, |o| {
            o.array_len(n);
            all().for_each(|c| c.encode_info(o, &every));
            o.map_len(n);
            for c in all() {
                o.bulk(c.name.as_bytes());
                c.encode_docs(o, &every);
            }
        });
        assert_eq!(got, want.buf);
    }
}
