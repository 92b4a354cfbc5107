//! Latency histograms and counters per command, per executor, merged at the end.

use hdrhistogram::Histogram;

use crate::workload::{Op, NOPS};

/// Highest latency recorded exactly (ns); slower replies are clamped to it (and still counted).
pub const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds, 3 significant digits, 1 ns .. 60 s.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static histogram bounds are valid")
}

/// Counters and latencies of one command.
#[derive(Clone, Debug)]
pub struct CmdStats {
    /// Latencies (ns) of replies received in the measurement window.
    pub hist: Histogram<u64>,
    /// Error replies (`-ERR ...`).
    pub errors: u64,
    /// Replies of the wrong type or length.
    pub bad: u64,
}

impl Default for CmdStats {
    fn default() -> Self {
        CmdStats {
            hist: new_histogram(),
            errors: 0,
            bad: 0,
        }
    }
}

impl CmdStats {
    /// Records one reply's latency.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
    }

    /// Adds another command's counts (histogram bounds are identical by construction).
    pub fn merge(&mut self, other: &CmdStats) {
        self.hist.add(&other.hist).expect("histograms share bounds");
        self.errors += other.errors;
        self.bad += other.bad;
    }

    /// Replies recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }
}

/// Everything one executor (or the whole run, after merging) measured.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Indexed by [`Op::index`]; `None` until the op is first seen.
    pub per_op: Vec<Option<CmdStats>>,
    /// First few error / bad-reply descriptions, for the operator.
    pub samples: Vec<String>,
}

impl Stats {
    /// Empty stats.
    pub fn new() -> Self {
        Stats {
            per_op: vec![None; NOPS],
            samples: Vec::new(),
        }
    }

    /// The stats slot of `op`.
    #[inline]
    pub fn op(&mut self, op: Op) -> &mut CmdStats {
        self.per_op[op.index()].get_or_insert_with(CmdStats::default)
    }

    /// True while fewer than 10 failures are kept (so callers skip formatting the rest).
    pub fn wants_samples(&self) -> bool {
        self.samples.len() < 10
    }

    /// Keeps a description of a failure (at most 10).
    pub fn sample(&mut self, what: String) {
        if self.wants_samples() {
            self.samples.push(what);
        }
    }

    /// Adds another executor's stats.
    pub fn merge(&mut self, other: &Stats) {
        if self.per_op.len() < NOPS {
            self.per_op.resize(NOPS, None);
        }
        for (mine, theirs) in self.per_op.iter_mut().zip(&other.per_op) {
            if let Some(t) = theirs {
                mine.get_or_insert_with(CmdStats::default).merge(t);
            }
        }
        for s in &other.samples {
            self.sample(s.clone());
        }
    }

    /// All commands together.
    pub fn total(&self) -> CmdStats {
        let mut all = CmdStats::default();
        for s in self.per_op.iter().flatten() {
            all.merge(s);
        }
        all
    }

    /// Total error replies plus bad replies.
    pub fn failures(&self) -> u64 {
        self.per_op.iter().flatten().map(|s| s.errors + s.bad).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_keeps_percentiles() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        for i in 1..=1000u64 {
            a.op(Op::Get).record(i * 1000);
        }
        for i in 1001..=2000u64 {
            b.op(Op::Get).record(i * 1000);
        }
        b.op(Op::Set).record(5);
        b.op(Op::Set).errors = 2;
        let mut m = Stats::new();
        m.merge(&a);
        m.merge(&b);
        let get = m.per_op[Op::Get.index()].as_ref().unwrap();
        assert_eq!(get.count(), 2000);
        let p50 = get.hist.value_at_quantile(0.5);
        assert!((999_000..=1_001_000).contains(&p50), "p50 {p50}");
        let max = get.hist.max();
        assert!((1_999_000..=2_001_000).contains(&max), "max {max}");
        assert_eq!(m.per_op[Op::Set.index()].as_ref().unwrap().count(), 1);
        assert_eq!(m.failures(), 2);
        let t = m.total();
        assert_eq!(t.count(), 2001);
        assert_eq!(t.errors, 2);
        // Merging is order-independent.
        let mut n = Stats::new();
        n.merge(&b);
        n.merge(&a);
        assert_eq!(n.total().hist, t.hist);
    }

    #[test]
    fn outliers_are_clamped_not_lost() {
        let mut s = CmdStats::default();
        s.record(0);
        s.record(u64::MAX);
        assert_eq!(s.count(), 2);
    }
}
