//! `percore-bench compare`: several result files side by side, and an SVG of their latency percentiles.

use std::path::Path;

use plotters::prelude::*;

use crate::report::{fmt_latency, CmdReport, Report};

/// Reads one result file.
pub fn load(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a percore-bench result: {e}", path.display()))
}

/// The named command of a report (`ALL` = the totals).
pub fn pick<'a>(r: &'a Report, command: &str) -> Option<&'a CmdReport> {
    if command.eq_ignore_ascii_case("ALL") {
        Some(&r.totals)
    } else {
        r.commands
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(command))
    }
}

/// Display name of a run: its label, else the file name.
pub fn run_name(r: &Report, path: &Path) -> String {
    if r.label.is_empty() {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        r.label.clone()
    }
}

/// A table of the runs with each one's ratio to the first (ops/s and p99.9).
pub fn table(runs: &[(String, Report)], command: &str) -> String {
    let mut s = format!(
        "{:<24} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>9} {:>9}\n",
        format!("run ({command})"),
        "ops/s",
        "p50",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "errors",
        "ops/s ×",
        "p99.9 ×"
    );
    let base = runs.first().and_then(|(_, r)| pick(r, command)).cloned();
    for (name, r) in runs {
        let Some(c) = pick(r, command) else {
            s.push_str(&format!("{name:<24} (no {command} replies)\n"));
            continue;
        };
        let l = &c.latency_us;
        let (ro, rl) = match &base {
            Some(b) if b.ops_per_sec > 0.0 && b.latency_us.p99_9 > 0.0 => {
                (c.ops_per_sec / b.ops_per_sec, l.p99_9 / b.latency_us.p99_9)
            }
            _ => (f64::NAN, f64::NAN),
        };
        s.push_str(&format!(
            "{name:<24} {:>12.0} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>9.2} {:>9.2}\n",
            c.ops_per_sec,
            fmt_latency(l.p50),
            fmt_latency(l.p99),
            fmt_latency(l.p99_9),
            fmt_latency(l.p99_99),
            fmt_latency(l.max),
            c.errors + c.bad_replies,
            ro,
            rl
        ));
    }
    s
}

/// Plots latency (log µs) against percentile on a "number of nines" axis, one line per run.
pub fn svg(
    runs: &[(String, Report)],
    command: &str,
    title: &str,
    out: &Path,
) -> Result<(), String> {
    // x = log10(1 / (1 - p)): 0 = p0, 1 = p90, 2 = p99, 3 = p99.9 ...
    let series: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .filter_map(|(name, r)| {
            let c = pick(r, command)?;
            let pts: Vec<(f64, f64)> = c
                .percentiles
                .iter()
                .filter(|p| p[0] < 100.0 && p[1] > 0.0)
                .map(|p| (-(1.0 - p[0] / 100.0).log10(), p[1]))
                .collect();
            (!pts.is_empty()).then(|| (name.clone(), pts))
        })
        .collect();
    if series.is_empty() {
        return Err(format!("no run has {command} latencies to plot"));
    }
    let xmax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(1.0f64, f64::max)
        .ceil()
        .max(2.0);
    let ymin = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(f64::INFINITY, f64::min)
        .max(0.1);
    let ymax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0f64, f64::max)
        .max(ymin * 10.0);
    let err = |e: &dyn std::fmt::Display| format!("svg: {e}");
    let root = SVGBackend::new(out, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..xmax, (ymin / 1.5..ymax * 1.5).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .y_desc("latency (µs)")
        .x_labels(xmax as usize + 1)
        .x_label_formatter(&|x| {
            let nines = x.round() as i32;
            if nines == 0 {
                "0%".into()
            } else {
                let p = 100.0 * (1.0 - 10f64.powi(-nines));
                let s = format!("{p:.*}", (nines - 2).max(0) as usize);
                format!("{s}%")
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
