//! A shard: the part of the keyspace one core owns, with its counters.

use crate::storage::db::Db;

/// Per-command counters (INFO commandstats), indexed by command id.
#[derive(Clone, Copy, Debug, Default)]
pub struct CmdStat {
    /// Times the command ran.
    pub calls: u64,
    /// Microseconds spent running it.
    pub usec: u64,
    /// Rejected before running (arity, auth, unknown subcommand...).
    pub rejected_calls: u64,
    /// Ran and replied with an error.
    pub failed_calls: u64,
}

/// A shard's state: its databases and its share of the server statistics.
#[derive(Debug)]
pub struct Shard {
    /// This shard's index (= its executor's index in the mesh).
    pub id: usize,
    /// The databases (SELECT n), all with this shard's subset of keys.
    pub dbs: Vec<Db>,
    /// Size limits and encoding thresholds (a copy of the config's).
    pub limits: crate::storage::Limits,
    /// Clients blocked on keys of this shard (BLPOP and friends).
    pub blocking: super::blocking::Registry,
    /// xorshift state for sampling (expiry, RANDOMKEY).
    rng: u64,
}

impl Shard {
    /// A shard with `databases` empty databases.
    pub fn new(id: usize, databases: usize) -> Self {
        let seed = crate::storage::table::hash(&(id as u64).to_le_bytes()) | 1;
        Shard {
            id,
            dbs: (0..databases).map(|_| Db::new()).collect(),
            limits: crate::storage::Limits::default(),
            blocking: super::blocking::Registry::default(),
            rng: seed,
        }
    }

    /// A pseudo-random number (xorshift64*): for sampling, not for security.
    #[inline]
    pub fn rand(&mut self) -> u64 {
        next_rand(&mut self.rng)
    }

    /// The database `db` and a random source, borrowed together.
    pub fn db_and_rng(&mut self, db: usize) -> (&mut Db, impl FnMut() -> u64 + '_) {
        let rng = &mut self.rng;
        (&mut self.dbs[db], move || next_rand(rng))
    }

    /// Keys in database `db` on this shard.
    pub fn dbsize(&self, db: usize) -> usize {
        self.dbs[db].len()
    }
}

/// One step of xorshift64*.
#[inline]
pub fn next_rand(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}
