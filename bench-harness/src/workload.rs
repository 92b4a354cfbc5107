//! What each connection sends: workloads, key choice, values, and what a correct reply looks like.

use crate::resp::{self, Reply};
use crate::rng::Rng;
use crate::zipf::Zipf;

/// The commands the generator tracks separately (one histogram each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// SET key value.
    Set,
    /// GET key.
    Get,
    /// MGET key...
    Mget,
    /// INCR counter.
    Incr,
    /// LPUSH list value.
    Lpush,
    /// LPOP list.
    Lpop,
    /// HSET hash field value.
    Hset,
    /// HGET hash field.
    Hget,
    /// ZADD zset score member.
    Zadd,
    /// ZRANGE zset 0 9.
    Zrange,
    /// The `--command` template.
    Custom,
}

/// Number of [`Op`] variants (histogram slots).
pub const NOPS: usize = 11;

impl Op {
    /// Upper-case command name (the custom template's own name is kept by the caller).
    pub fn name(self) -> &'static str {
        match self {
            Op::Set => "SET",
            Op::Get => "GET",
            Op::Mget => "MGET",
            Op::Incr => "INCR",
            Op::Lpush => "LPUSH",
            Op::Lpop => "LPOP",
            Op::Hset => "HSET",
            Op::Hget => "HGET",
            Op::Zadd => "ZADD",
            Op::Zrange => "ZRANGE",
            Op::Custom => "CUSTOM",
        }
    }

    /// Slot in per-op arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How keys are picked.
#[derive(Clone, Debug)]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian with this exponent; rank 1 is key 0.
    Zipf(f64),
    /// Keys in order, each connection starting at its own offset, wrapping.
    Sequential,
}

impl Distribution {
    /// Parses `uniform`, `sequential`, `zipf` (theta from `default_theta`) or `zipf:THETA`.
    pub fn parse(s: &str, default_theta: f64) -> Result<Self, String> {
        match s {
            "uniform" | "random" => Ok(Distribution::Uniform),
            "sequential" | "seq" => Ok(Distribution::Sequential),
            "zipf" | "zipfian" => Ok(Distribution::Zipf(default_theta)),
            _ => match s.strip_prefix("zipf:") {
                Some(t) => t
                    .parse::<f64>()
                    .map(Distribution::Zipf)
                    .map_err(|_| format!("bad zipf exponent in {s:?}")),
                None => Err(format!(
                    "unknown key distribution {s:?} (uniform, zipf, zipf:THETA, sequential)"
                )),
            },
        }
    }

    /// Name for reports.
    pub fn describe(&self) -> String {
        match self {
            Distribution::Uniform => "uniform".into(),
            Distribution::Zipf(t) => format!("zipf:{t}"),
            Distribution::Sequential => "sequential".into(),
        }
    }
}

/// Value sizes: fixed (`min == max`) or uniform in `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueSize {
    /// Smallest value length in bytes.
    pub min: usize,
    /// Largest value length in bytes.
    pub max: usize,
}

impl ValueSize {
    /// Parses `32` or `16-64`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("bad value size {s:?} (N or MIN-MAX)");
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a, b),
            None => (s, s),
        };
        let min: usize = a.trim().parse().map_err(|_| bad())?;
        let max: usize = b.trim().parse().map_err(|_| bad())?;
        if min > max || max > 512 * 1024 * 1024 {
            return Err(bad());
        }
        Ok(ValueSize { min, max })
    }
}

/// One piece of a custom command argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    /// Literal bytes.
    Lit(Vec<u8>),
    /// `__key__`: the chosen key.
    Key,
    /// `__data__`: a value of the configured size.
    Data,
}

/// A parsed `--command` template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// Upper-cased first word: the histogram name.
    pub name: String,
    /// Arguments, each a sequence of pieces.
    pub args: Vec<Vec<Piece>>,
}

impl Template {
    /// Splits on whitespace and finds the `__key__` / `__data__` placeholders in each word.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut args = Vec::new();
        for word in s.split_whitespace() {
            let mut pieces = Vec::new();
            let mut rest = word;
            while !rest.is_empty() {
                let k = rest.find("__key__");
                let d = rest.find("__data__");
                let (at, piece, len) = match (k, d) {
                    (Some(k), Some(d)) if d < k => (d, Piece::Data, 8),
                    (Some(k), _) => (k, Piece::Key, 7),
                    (None, Some(d)) => (d, Piece::Data, 8),
                    (None, None) => (rest.len(), Piece::Lit(Vec::new()), 0),
                };
                if at > 0 {
                    pieces.push(Piece::Lit(rest.as_bytes()[..at].to_vec()));
                }
                if len > 0 {
                    pieces.push(piece);
                }
                rest = &rest[at + len..];
            }
            args.push(pieces);
        }
        let name = s
            .split_whitespace()
            .next()
            .ok_or("empty --command template")?
            .to_ascii_uppercase();
        Ok(Template { name, args })
    }
}

/// The request mix.
#[derive(Clone, Debug)]
pub enum Workload {
    /// SET and GET of `key:` keys, `set` SETs for every `get` GETs.
    SetGet {
        /// SETs per cycle.
        set: u32,
        /// GETs per cycle.
        get: u32,
    },
    /// MGET of `keys` keys.
    Mget {
        /// Keys per MGET (1..=64).
        keys: usize,
    },
    /// INCR of `counter:` keys.
    Incr,
    /// LPUSH and LPOP on `list:` keys.
    List {
        /// LPUSHes per cycle.
        push: u32,
        /// LPOPs per cycle.
        pop: u32,
    },
    /// HSET and HGET on `hash:` keys, `fields` fields each.
    Hash {
        /// HSETs per cycle.
        set: u32,
        /// HGETs per cycle.
        get: u32,
        /// Distinct fields per hash.
        fields: u64,
    },
    /// ZADD and ZRANGE 0 9 on `zset:` keys.
    Zset {
        /// ZADDs per cycle.
        add: u32,
        /// ZRANGEs per cycle.
        range: u32,
        /// Distinct members per sorted set.
        members: u64,
    },
    /// The `--command` template.
    Custom(Template),
}

impl Workload {
    /// Name for reports.
    pub fn describe(&self) -> String {
        match self {
            Workload::SetGet { set, get } => format!("set:get {set}:{get}"),
            Workload::Mget { keys } => format!("mget x{keys}"),
            Workload::Incr => "incr".into(),
            Workload::List { push, pop } => format!("lpush:lpop {push}:{pop}"),
            Workload::Hash { set, get, fields } => {
                format!("hset:hget {set}:{get} ({fields} fields)")
            }
            Workload::Zset {
                add,
                range,
                members,
            } => {
                format!("zadd:zrange {add}:{range} ({members} members)")
            }
            Workload::Custom(t) => format!("custom {}", t.name),
        }
    }
}

/// Parses a `W:R` ratio such as `1:10`.
pub fn parse_ratio(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("bad ratio {s:?} (WRITES:READS, e.g. 1:10)");
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    let a: u32 = a.trim().parse().map_err(|_| bad())?;
    let b: u32 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 && b == 0 {
        return Err(bad());
    }
    Ok((a, b))
}

/// What a correct reply to one request looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `+OK`.
    Ok,
    /// A bulk string of the given length range, or null when `may_be_null`.
    Value {
        /// Null allowed (key not loaded by this run).
        may_be_null: bool,
        /// Check the length against the value size (the key was loaded by this run).
        check_len: bool,
    },
    /// An array of `n` values; bit i of `loaded` set means key i was loaded (not null, length checked).
    Values {
        /// Number of keys asked for.
        n: u8,
        /// Loaded-key mask.
        loaded: u64,
    },
    /// An integer >= `min`.
    Int {
        /// Smallest acceptable value.
        min: i64,
    },
    /// An integer in 0..=1 (HSET/ZADD of one field/member).
    ZeroOrOne,
    /// An array (possibly empty) of bulk strings.
    BulkArray,
    /// Anything but an error.
    NotError,
}

/// Why a reply was not accepted.
#[derive(Clone, Debug, PartialEq)]
pub enum Bad {
    /// The server answered with an error reply.
    ErrorReply(String),
    /// Wrong type or length.
    Wrong(String),
}

/// Checks a reply against its expectation.
pub fn validate(exp: Expect, reply: &Reply, size: ValueSize) -> Result<(), Bad> {
    if let Reply::Error(e) = reply {
        return Err(Bad::ErrorReply(e.clone()));
    }
    let wrong = || Bad::Wrong(format!("expected {exp:?}, got {reply:?}"));
    let len_ok = |n: usize| n >= size.min && n <= size.max;
    match exp {
        Expect::Ok => match reply {
            Reply::Simple(true) => Ok(()),
            _ => Err(wrong()),
        },
        Expect::Value {
            may_be_null,
            check_len,
        } => match reply {
            Reply::Bulk(None) if may_be_null => Ok(()),
            Reply::Bulk(Some(n)) if !check_len || len_ok(*n) => Ok(()),
            _ => Err(wrong()),
        },
        Expect::Values { n, loaded } => match reply {
            Reply::Array(Some(items)) if items.len() == n as usize => {
                for (i, it) in items.iter().enumerate() {
                    let was_loaded = loaded & (1 << i) != 0;
                    match it {
                        Reply::Bulk(None) if !was_loaded => {}
                        Reply::Bulk(Some(l)) if !was_loaded || len_ok(*l) => {}
                        _ => return Err(wrong()),
                    }
                }
                Ok(())
            }
            _ => Err(wrong()),
        },
        Expect::Int { min } => match reply {
            Reply::Int(v) if *v >= min => Ok(()),
            _ => Err(wrong()),
        },
        Expect::ZeroOrOne => match reply {
            Reply::Int(0 | 1) => Ok(()),
            _ => Err(wrong()),
        },
        Expect::BulkArray => match reply {
            Reply::Array(Some(items))
                if items.iter().all(|i| matches!(i, Reply::Bulk(Some(_)))) =>
            {
                Ok(())
            }
            _ => Err(wrong()),
        },
        Expect::NotError => Ok(()),
    }
}

/// Everything a generator needs, shared by every connection.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// The request mix.
    pub workload: Workload,
    /// Key choice.
    pub distribution: Distribution,
    /// Number of distinct keys.
    pub keyspace: u64,
    /// Prefix of string keys (`key:`).
    pub key_prefix: String,
    /// Value sizes.
    pub value_size: ValueSize,
    /// Keys `0..loaded` were filled by `--load` in this run.
    pub loaded: u64,
}

/// Width of the zero-padded key number, as in `key:%012d`.
pub const KEY_DIGITS: usize = 12;

/// Per-connection request generator.
pub struct Generator {
    cfg: GenConfig,
    zipf: Option<Zipf>,
    rng: Rng,
    seq: u64,
    cycle: u64,
    data: Vec<u8>,
    key: Vec<u8>,
    field: Vec<u8>,
}

impl Generator {
    /// A generator for connection `conn` of `nconns`; `seed` makes runs reproducible.
    pub fn new(cfg: GenConfig, conn: u64, nconns: u64, seed: u64) -> Result<Self, String> {
        let zipf = match cfg.distribution {
            Distribution::Zipf(t) => Some(Zipf::new(cfg.keyspace, t)?),
            _ => None,
        };
        // Printable filler so captured traffic stays readable.
        let data: Vec<u8> = (0..cfg.value_size.max)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        let seq = cfg.keyspace / nconns.max(1) * conn;
        Ok(Generator {
            cfg,
            zipf,
            rng: Rng::new(seed.wrapping_mul(0x1000_0001).wrapping_add(conn)),
            seq,
            cycle: conn,
            data,
            key: Vec::with_capacity(64),
            field: Vec::with_capacity(32),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    /// Next key index in `0..keyspace`.
    pub fn next_index(&mut self) -> u64 {
        let n = self.cfg.keyspace.max(1);
        match &self.zipf {
            Some(z) => z.sample(&mut self.rng) - 1,
            None => match self.cfg.distribution {
                Distribution::Sequential => {
                    let k = self.seq % n;
                    self.seq = self.seq.wrapping_add(1);
                    k
                }
                _ => self.rng.below(n),
            },
        }
    }

    fn value_len(&mut self) -> usize {
        let s = self.cfg.value_size;
        s.min + self.rng.below((s.max - s.min) as u64 + 1) as usize
    }

    fn make_key(&mut self, prefix: &str, idx: u64) {
        self.key.clear();
        self.key.extend_from_slice(prefix.as_bytes());
        resp::push_padded(&mut self.key, idx, KEY_DIGITS);
    }

    /// Picks the write or the read of a `w:r` mix, in a fixed interleaving.
    fn is_write(&mut self, w: u32, r: u32) -> bool {
        let period = (w + r) as u64;
        let pos = self.cycle % period;
        self.cycle = self.cycle.wrapping_add(1);
        // Spread writes evenly over the cycle instead of bunching them.
        (pos * w as u64) % period < w as u64
    }

    /// Appends a `SET key:<idx> <value>` (the load phase uses this too).
    pub fn push_set(&mut self, out: &mut Vec<u8>, idx: u64) {
        let prefix = std::mem::take(&mut self.cfg.key_prefix);
        self.make_key(&prefix, idx);
        self.cfg.key_prefix = prefix;
        let len = self.value_len();
        resp::encode(out, &[b"SET", &self.key, &self.data[..len]]);
    }

    /// Appends the next request to `out` and says what it is and what its reply must be.
    pub fn next(&mut self, out: &mut Vec<u8>) -> (Op, Expect) {
        match self.cfg.workload.clone_shallow() {
            Shallow::SetGet(w, r) => {
                let idx = self.next_index();
                if self.is_write(w, r) {
                    self.push_set(out, idx);
                    (Op::Set, Expect::Ok)
                } else {
                    let prefix = std::mem::take(&mut self.cfg.key_prefix);
                    self.make_key(&prefix, idx);
                    self.cfg.key_prefix = prefix;
                    resp::encode(out, &[b"GET", &self.key]);
                    let loaded = idx < self.cfg.loaded;
                    (
                        Op::Get,
                        Expect::Value {
                            may_be_null: !loaded,
                            check_len: loaded,
                        },
                    )
                }
            }
            Shallow::Mget(n) => {
                resp::push_array_header(out, n + 1);
                resp::push_bulk(out, b"MGET");
                let mut loaded = 0u64;
                for i in 0..n {
                    let idx = self.next_index();
                    if idx < self.cfg.loaded {
                        loaded |= 1 << i;
                    }
                    let prefix = std::mem::take(&mut self.cfg.key_prefix);
                    self.make_key(&prefix, idx);
                    self.cfg.key_prefix = prefix;
                    resp::push_bulk(out, &self.key);
                }
                (Op::Mget, Expect::Values { n: n as u8, loaded })
            }
            Shallow::Incr => {
                let idx = self.next_index();
                self.make_key("counter:", idx);
                resp::encode(out, &[b"INCR", &self.key]);
                (Op::Incr, Expect::Int { min: i64::MIN })
            }
            Shallow::List(w, r) => {
                let idx = self.next_index();
                self.make_key("list:", idx);
                if self.is_write(w, r) {
                    let len = self.value_len();
                    resp::encode(out, &[b"LPUSH", &self.key, &self.data[..len]]);
                    (Op::Lpush, Expect::Int { min: 1 })
                } else {
                    resp::encode(out, &[b"LPOP", &self.key]);
                    (
                        Op::Lpop,
                        Expect::Value {
                            may_be_null: true,
                            check_len: true,
                        },
                    )
                }
            }
            Shallow::Hash(w, r, fields) => {
                let idx = self.next_index();
                self.make_key("hash:", idx);
                self.field.clear();
                self.field.extend_from_slice(b"f:");
                resp::push_uint(&mut self.field, self.rng.below(fields.max(1)));
                if self.is_write(w, r) {
                    let len = self.value_len();
                    resp::encode(out, &[b"HSET", &self.key, &self.field, &self.data[..len]]);
                    (Op::Hset, Expect::ZeroOrOne)
                } else {
                    resp::encode(out, &[b"HGET", &self.key, &self.field]);
                    (
                        Op::Hget,
                        Expect::Value {
                            may_be_null: true,
                            check_len: true,
                        },
                    )
                }
            }
            Shallow::Zset(w, r, members) => {
                let idx = self.next_index();
                self.make_key("zset:", idx);
                if self.is_write(w, r) {
                    self.field.clear();
                    self.field.extend_from_slice(b"m:");
                    resp::push_uint(&mut self.field, self.rng.below(members.max(1)));
                    let mut score = Vec::with_capacity(8);
                    resp::push_uint(&mut score, self.rng.below(1_000_000));
                    resp::encode(out, &[b"ZADD", &self.key, &score, &self.field]);
                    (Op::Zadd, Expect::ZeroOrOne)
                } else {
                    resp::encode(out, &[b"ZRANGE", &self.key, b"0", b"9"]);
                    (Op::Zrange, Expect::BulkArray)
                }
            }
            Shallow::Custom => {
                let idx = self.next_index();
                let prefix = std::mem::take(&mut self.cfg.key_prefix);
                self.make_key(&prefix, idx);
                self.cfg.key_prefix = prefix;
                let len = self.value_len();
                let Workload::Custom(t) = &self.cfg.workload else {
                    unreachable!("Shallow::Custom comes from Workload::Custom")
                };
                resp::push_array_header(out, t.args.len());
                let mut arg = Vec::with_capacity(64);
                for pieces in &t.args {
                    arg.clear();
                    for p in pieces {
                        match p {
                            Piece::Lit(l) => arg.extend_from_slice(l),
                            Piece::Key => arg.extend_from_slice(&self.key),
                            Piece::Data => arg.extend_from_slice(&self.data[..len]),
                        }
                    }
                    resp::push_bulk(out, &arg);
                }
                (Op::Custom, Expect::NotError)
            }
        }
    }
}

/// A copy of the workload's parameters without the template (so `next` can borrow `self` mutably).
enum Shallow {
    SetGet(u32, u32),
    Mget(usize),
    Incr,
    List(u32, u32),
    Hash(u32, u32, u64),
    Zset(u32, u32, u64),
    Custom,
}

impl Workload {
    fn clone_shallow(&self) -> Shallow {
        match *self {
            Workload::SetGet { set, get } => Shallow::SetGet(set, get),
            Workload::Mget { keys } => Shallow::Mget(keys),
            Workload::Incr => Shallow::Incr,
            Workload::List { push, pop } => Shallow::List(push, pop),
            Workload::Hash { set, get, fields } => Shallow::Hash(set, get, fields),
            Workload::Zset {
                add,
                range,
                members,
            } => Shallow::Zset(add, range, members),
            Workload::Custom(_) => Shallow::Custom,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(workload: Workload) -> GenConfig {
        GenConfig {
            workload,
            distribution: Distribution::Uniform,
            keyspace: 100,
            key_prefix: "key:".into(),
            value_size: ValueSize { min: 4, max: 4 },
            loaded: 50,
        }
    }

    #[test]
    fn ratio_interleaves_exactly() {
        let mut g = Generator::new(cfg(Workload::SetGet { set: 1, get: 10 }), 0, 1, 1).unwrap();
        let mut out = Vec::new();
        let sets = (0..1100).filter(|_| g.next(&mut out).0 == Op::Set).count();
        assert_eq!(sets, 100);
        assert_eq!(parse_ratio("1:10").unwrap(), (1, 10));
        assert!(parse_ratio("0:0").is_err() && parse_ratio("x").is_err());
    }

    #[test]
    fn template_and_sizes_parse() {
        let t = Template::parse("set __key__ pre__data__").unwrap();
        assert_eq!(t.name, "SET");
        assert_eq!(t.args[2], vec![Piece::Lit(b"pre".to_vec()), Piece::Data]);
        let mut g = Generator::new(cfg(Workload::Custom(t)), 0, 1, 1).unwrap();
        let mut out = Vec::new();
        g.next(&mut out);
        assert!(out.starts_with(b"*3\r\n$3\r\nset\r\n$16\r\nkey:0000000000"));
        assert!(out.ends_with(b"$7\r\npreabcd\r\n"));
        assert_eq!(
            ValueSize::parse("16-64").unwrap(),
            ValueSize { min: 16, max: 64 }
        );
        assert!(ValueSize::parse("64-16").is_err());
    }

    #[test]
    fn validation() {
        let s = ValueSize { min: 4, max: 4 };
        let loaded = Expect::Value {
            may_be_null: false,
            check_len: true,
        };
        assert!(validate(loaded, &Reply::Bulk(Some(4)), s).is_ok());
        assert!(validate(loaded, &Reply::Bulk(Some(5)), s).is_err());
        assert!(validate(loaded, &Reply::Bulk(None), s).is_err());
        assert!(matches!(
            validate(Expect::Ok, &Reply::Error("ERR x".into()), s),
            Err(Bad::ErrorReply(_))
        ));
        let m = Expect::Values { n: 2, loaded: 1 };
        assert!(validate(
            m,
            &Reply::Array(Some(vec![Reply::Bulk(Some(4)), Reply::Bulk(None)])),
            s
        )
        .is_ok());
        assert!(validate(
            m,
            &Reply::Array(Some(vec![Reply::Bulk(None), Reply::Bulk(None)])),
            s
        )
        .is_err());
    }

    #[test]
    fn sequential_keys_wrap() {
        let mut c = cfg(Workload::Incr);
        c.distribution = Distribution::Sequential;
        c.keyspace = 3;
        let mut g = Generator::new(c, 0, 1, 1).unwrap();
        let v: Vec<u64> = (0..5).map(|_| g.next_index()).collect();
        assert_eq!(v, [0, 1, 2, 0, 1]);
    }
}
