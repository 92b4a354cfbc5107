//! Open-loop pacing with coordinated-omission correction, as wrk2 does.
//!
//! Each connection owns a fixed schedule of intended send times. A request's
//! latency runs from its *intended* time, not from when the (possibly late)
//! client got round to sending it: when the server stalls, the requests that
//! should have gone out during the stall are charged the time they waited, so
//! a stall shows in the tail instead of silently lowering the request rate.

use std::time::{Duration, Instant};

/// A fixed-rate schedule of intended send times.
#[derive(Clone, Debug)]
pub struct Schedule {
    start: Instant,
    interval_ns: f64,
    issued: u64,
    end: Instant,
}

impl Schedule {
    /// `rate` requests per second starting at `start` (plus `phase` of one interval in 0..1, to stagger connections), none at or after `end`.
    pub fn new(start: Instant, rate: f64, phase: f64, end: Instant) -> Self {
        let interval_ns = 1e9 / rate.max(1e-9);
        Schedule {
            start: start + Duration::from_nanos((interval_ns * phase.clamp(0.0, 1.0)) as u64),
            interval_ns,
            issued: 0,
            end,
        }
    }

    /// Intended time of the next request.
    pub fn next_due(&self) -> Instant {
        self.start + Duration::from_nanos((self.issued as f64 * self.interval_ns) as u64)
    }

    /// True once every request before `end` was issued.
    pub fn finished(&self) -> bool {
        self.next_due() >= self.end
    }

    /// The intended time of the next request if it is due at `now` (and consumes it).
    pub fn take_due(&mut self, now: Instant) -> Option<Instant> {
        let due = self.next_due();
        if due <= now && due < self.end {
            self.issued += 1;
            Some(due)
        } else {
            None
        }
    }

    /// Requests issued so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }
}

/// Corrected latency in ns: from the intended send time to the reply.
#[inline]
pub fn corrected_latency(intended: Instant, replied: Instant) -> u64 {
    replied.saturating_duration_since(intended).as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::CmdStats;

    /// Simulates one connection at 1000 req/s against a server that answers in
    /// 100 µs but freezes for 500 ms once; pipelining window of 1.
    fn simulate(correct: bool) -> CmdStats {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(2);
        let mut s = Schedule::new(t0, 1000.0, 0.0, end);
        let stall_from = t0 + Duration::from_millis(1000);
        let stall_to = stall_from + Duration::from_millis(500);
        let service = Duration::from_micros(100);
        let mut now = t0;
        let mut stats = CmdStats::default();
        while !s.finished() {
            // Wait for the next intended time if we are early.
            now = now.max(s.next_due());
            let intended = s.take_due(now).unwrap();
            let sent = now;
            let mut done = sent + service;
            if sent < stall_to && done > stall_from {
                done = stall_to + service;
            }
            now = done;
            let from = if correct { intended } else { sent };
            stats.record(corrected_latency(from, done));
        }
        stats
    }

    #[test]
    fn coordinated_omission_is_corrected() {
        let fixed = simulate(true);
        let naive = simulate(false);
        // The schedule issues every request in 2 s at 1000/s either way.
        assert_eq!(fixed.count(), 2000);
        // The naive client sees one slow request; every other looks fast.
        assert!(naive.hist.value_at_quantile(0.99) < 200_000);
        // Corrected: the ~500 requests that should have gone out during the
        // stall carry their wait (500 ms down to ~0), plus the ~55 sent while
        // the client catches up (the backlog drains at 10/ms while 1/ms more
        // fall due), so about a quarter of all requests are slow, p90 is far
        // above the service time and the maximum is the whole stall.
        let p90 = fixed.hist.value_at_quantile(0.90);
        assert!(p90 > 100_000_000, "corrected p90 {p90} ns");
        let max = fixed.hist.max();
        assert!((490_000_000..=510_000_000).contains(&max), "max {max}");
        let over_1ms = fixed.hist.count_between(1_000_000, u64::MAX);
        assert!((540..=570).contains(&over_1ms), "{over_1ms} slow requests");
    }

    #[test]
    fn schedule_paces_and_stops() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 100.0, 0.5, t0 + Duration::from_secs(1));
        assert_eq!(s.take_due(t0), None, "phase delays the first request");
        let late = t0 + Duration::from_millis(35);
        // Behind schedule: everything due is released at once, with its own intended time.
        let mut got = Vec::new();
        while let Some(t) = s.take_due(late) {
            got.push(t.duration_since(t0).as_micros());
        }
        assert_eq!(got, [5000, 15000, 25000, 35000]);
        let mut n = s.issued();
        while s.take_due(t0 + Duration::from_secs(5)).is_some() {
            n += 1;
        }
        assert_eq!(n, 100);
        assert!(s.finished());
    }
}
