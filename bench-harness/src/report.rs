//! Results: the JSON document, the terminal table and HDR percentile-distribution files.

use std::io::Write;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::CmdStats;

/// Latency summary in microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Fastest reply.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    /// 99.99th percentile.
    #[serde(rename = "p99.99")]
    pub p99_99: f64,
    /// Slowest reply.
    pub max: f64,
}

/// One command's (or all commands') results.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CmdReport {
    /// Command name (`ALL` for the total).
    pub name: String,
    /// Replies measured.
    pub count: u64,
    /// Replies per second over the measured duration.
    pub ops_per_sec: f64,
    /// Error replies.
    pub errors: u64,
    /// Replies of the wrong type or length.
    pub bad_replies: u64,
    /// Percentile summary.
    pub latency_us: Latency,
    /// The percentile distribution: `[percentile (0..=100), latency µs]`, for plots.
    pub percentiles: Vec<[f64; 2]>,
}

/// How the run was configured (echoed so a result file stands alone).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// Client executors.
    pub threads: usize,
    /// CPUs the executors were pinned to (empty = not pinned).
    pub cpus: Vec<usize>,
    /// Connections in total.
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// `closed` or `open`.
    pub mode: String,
    /// Target request rate (open loop), requests/s over all connections.
    pub rate: Option<f64>,
    /// Workload description.
    pub workload: String,
    /// Key distribution.
    pub distribution: String,
    /// Distinct keys.
    pub keyspace: u64,
    /// Value size range `[min, max]` in bytes.
    pub value_size: [usize; 2],
    /// `--duration` seconds, if set.
    pub duration_s: Option<f64>,
    /// `--requests`, if set.
    pub requests: Option<u64>,
    /// Warm-up seconds (not measured).
    pub warmup_s: f64,
    /// Keys filled by `--load`.
    pub load: u64,
    /// spin_before_park of the client executors, µs.
    pub busy_poll_us: Option<u64>,
}

/// The JSON document of one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Always `percore-bench`.
    pub tool: String,
    /// percore-bench version.
    pub version: String,
    /// Free-form name of the run (`--label`), used in comparisons.
    pub label: String,
    /// `host:port` of the server.
    pub target: String,
    /// Unix time of the start.
    pub timestamp: u64,
    /// The configuration.
    pub config: RunInfo,
    /// Measured seconds (after warm-up).
    pub duration_s: f64,
    /// Seconds the `--load` phase took.
    pub load_s: f64,
    /// All commands together.
    pub totals: CmdReport,
    /// Each command.
    pub commands: Vec<CmdReport>,
    /// First few failures, verbatim.
    pub failures: Vec<String>,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Summarizes one histogram.
pub fn cmd_report(name: &str, s: &CmdStats, secs: f64) -> CmdReport {
    let h = &s.hist;
    let empty = h.is_empty();
    let q = |p: f64| {
        if empty {
            0.0
        } else {
            us(h.value_at_quantile(p))
        }
    };
    CmdReport {
        name: name.to_string(),
        count: h.len(),
        ops_per_sec: if secs > 0.0 {
            h.len() as f64 / secs
        } else {
            0.0
        },
        errors: s.errors,
        bad_replies: s.bad,
        latency_us: Latency {
            min: if empty { 0.0 } else { us(h.min()) },
            mean: if empty { 0.0 } else { h.mean() / 1000.0 },
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p99_9: q(0.999),
            p99_99: q(0.9999),
            max: if empty { 0.0 } else { us(h.max()) },
        },
        percentiles: if empty {
            Vec::new()
        } else {
            h.iter_quantiles(5)
                .map(|v| [v.quantile_iterated_to() * 100.0, us(v.value_iterated_to())])
                .collect()
        },
    }
}

/// Writes the histogram in HdrHistogram's percentile-distribution text format (values in ms).
pub fn write_hgrm(h: &Histogram<u64>, path: &Path) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let scale = 1e6;
    writeln!(
        f,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / scale;
        if q < 1.0 {
            writeln!(
                f,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            )?;
        } else {
            writeln!(f, "{value:12.3} {q:2.12} {total:10}")?;
        }
    }
    let (mean, sd, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / scale, h.stdev() / scale, h.max() as f64 / scale)
    };
    writeln!(f, "#[Mean    = {mean:12.3}, StdDeviation   = {sd:12.3}]")?;
    writeln!(
        f,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        h.len()
    )?;
    writeln!(
        f,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    )?;
    f.flush()
}

/// Formats a latency in µs with a unit that keeps 3-4 significant digits.
pub fn fmt_latency(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2}s", us / 1e6)
    } else if us >= 1000.0 {
        format!("{:.3}ms", us / 1000.0)
    } else {
        format!("{us:.1}us")
    }
}

/// The terminal table of one run.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{:<10} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
        "command", "replies", "ops/s", "p50", "p90", "p99", "p99.9", "p99.99", "max", "errors"
    ));
    let mut rows: Vec<&CmdReport> = r.commands.iter().collect();
    if r.commands.len() > 1 {
        rows.push(&r.totals);
    }
    for c in rows {
        let l = &c.latency_us;
        s.push_str(&format!(
            "{:<10} {:>12} {:>12.0} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
            c.name,
            c.count,
            c.ops_per_sec,
            fmt_latency(l.p50),
            fmt_latency(l.p90),
            fmt_latency(l.p99),
            fmt_latency(l.p99_9),
            fmt_latency(l.p99_99),
            fmt_latency(l.max),
            c.errors + c.bad_replies
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut s = CmdStats::default();
        for i in 1..=10_000u64 {
            s.record(i * 100);
        }
        s.errors = 1;
        let get = cmd_report("GET", &s, 2.0);
        Report {
            tool: "percore-bench".into(),
            version: "0.1.0".into(),
            label: "t".into(),
            target: "127.0.0.1:1".into(),
            duration_s: 2.0,
            totals: CmdReport {
                name: "ALL".into(),
                ..get.clone()
            },
            commands: vec![get],
            ..Default::default()
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let r = sample();
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        for k in [
            "tool",
            "version",
            "label",
            "target",
            "timestamp",
            "config",
            "duration_s",
            "load_s",
            "totals",
            "commands",
            "failures",
        ] {
            assert!(v.get(k).is_some(), "missing top-level key {k}");
        }
        let get = &v["commands"][0];
        assert_eq!(get["name"], "GET");
        assert_eq!(get["count"], 10_000);
        assert_eq!(get["errors"], 1);
        assert_eq!(get["ops_per_sec"], 5000.0);
        let lat = &get["latency_us"];
        for k in ["min", "mean", "p50", "p90", "p99", "p99.9", "p99.99", "max"] {
            assert!(lat[k].is_number(), "latency_us.{k}");
        }
        let p99 = lat["p99"].as_f64().unwrap();
        assert!((985.0..=995.0).contains(&p99), "p99 {p99}");
        let pts = get["percentiles"].as_array().unwrap();
        assert!(pts.len() > 20);
        assert_eq!(pts.last().unwrap()[0], 100.0);
        for k in [
            "threads",
            "connections",
            "pipeline",
            "mode",
            "rate",
            "workload",
            "keyspace",
            "value_size",
        ] {
            assert!(v["config"].get(k).is_some(), "missing config.{k}");
        }
        // Round trip: compare reads what run writes.
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.commands[0].count, 10_000);
        assert_eq!(back.commands[0].percentiles.len(), pts.len());
        assert!((back.totals.latency_us.p99_9 - r.totals.latency_us.p99_9).abs() < 1e-9);
    }

    #[test]
    fn hgrm_file_has_the_hdr_layout() {
        let mut s = CmdStats::default();
        for i in 1..=1000u64 {
            s.record(i * 1000);
        }
        let dir = std::env::temp_dir().join(format!("pb-hgrm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.hgrm");
        write_hgrm(&s.hist, &p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(
            text.contains("#[Max     =        1.000, Total count    =         1000]"),
            "{text}"
        );
        let last_data = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        assert!(
            last_data.contains("1.000000000000       1000"),
            "{last_data}"
        );
    }
}
