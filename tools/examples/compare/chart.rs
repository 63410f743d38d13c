//! The SVG chart, readable on its own: the run's parameters above four
//! panels (throughput, p99 latency, server memory in total and per
//! connection, each against connections), how the figures were taken and
//! how much the rounds disagreed below. Each model's line joins its
//! medians over the rounds; a shaded band and error bars span each point's
//! smallest to largest round.
//!
//! Log axes run from the decade at or below the smallest value drawn to the
//! decade at or above the largest, and every decade between is labelled
//! (with 2 and 5 between decades where the axis spans three decades or
//! fewer), so that no line sits where the axis says nothing.

use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::summary::{Spread, Summary};
use crate::Model;

/// What the run was: printed above the panels.
pub struct Params {
    pub size: u32,
    pub secs: f64,
    pub rounds: u32,
    pub load_procs: u32,
    /// Cores this machine offers (what `available_parallelism` says).
    pub cpus: usize,
    /// The processor's name from /proc/cpuinfo, if it says.
    pub cpu_model: Option<String>,
    pub host: IpAddr,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn color(model: Model) -> RGBColor {
    match model {
        Model::Reactor => RGBColor(31, 119, 180),
        Model::Threads => RGBColor(214, 39, 40),
        Model::Tokio => RGBColor(44, 160, 44),
    }
}

/// What each model is, for the title line.
fn what(model: Model) -> &'static str {
    match model {
        Model::Reactor => "reactor (this crate, one thread)",
        Model::Threads => "threads (a thread per connection)",
        Model::Tokio => "tokio (current-thread runtime)",
    }
}

/// "1 round", "3 rounds".
pub fn rounds_text(rounds: u32) -> String {
    if rounds == 1 {
        "1 round".into()
    } else {
        format!("{rounds} rounds")
    }
}

/// `v` in at most four significant digits and no trailing zeros: "5000",
/// "12.5", "0.5", "0.02", "0".
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let scale = 10f64.powi(3 - v.abs().log10().floor() as i32);
    format!("{}", (v * scale).round() / scale)
}

/// A log axis over `lo..=hi` (both positive): its range, from the decade
/// at or below `lo` to the decade at or above `hi` with a little room, the
/// labelled points (every decade, and 2 and 5 times each when the span is
/// three decades or fewer) and the light grid lines (2 to 9 times each).
fn decade_axis(lo: f64, hi: f64) -> (Range<f64>, Vec<f64>, Vec<f64>) {
    let first = lo.log10().floor() as i32;
    let last = (hi.log10().ceil() as i32).max(first + 1);
    let mut bold = Vec::new();
    let mut light = Vec::new();
    for e in first..=last {
        let decade = 10f64.powi(e);
        bold.push(decade);
        if e < last {
            if last - first <= 3 {
                bold.extend([2.0 * decade, 5.0 * decade]);
            }
            light.extend((2..=9).map(|m| f64::from(m) * decade));
        }
    }
    let range = 10f64.powi(first) / 1.2..10f64.powi(last) * 1.2;
    (range, bold, light)
}

/// A figure the panels plot, and how its axis is drawn.
struct Panel {
    caption: &'static str,
    y_desc: &'static str,
    /// A log axis, or a linear one from zero.
    log: bool,
    /// A y key point as its label.
    label: fn(f64) -> String,
    value: fn(&Summary) -> Spread,
}

/// Memory per connection in KiB.
fn per_conn_kib(s: &Summary) -> Spread {
    let b = s.mem_per_conn_bytes;
    Spread {
        min: b.min / 1024.0,
        median: b.median / 1024.0,
        max: b.max / 1024.0,
    }
}

const PANELS: [Panel; 4] = [
    Panel {
        caption: "Throughput",
        y_desc: "echoed messages per second",
        log: false,
        label: |v| {
            if v >= 1e6 {
                format!("{}M", short(v / 1e6))
            } else if v >= 1e3 {
                format!("{}k", short(v / 1e3))
            } else {
                short(v)
            }
        },
        value: |s| s.msgs_per_s,
    },
    Panel {
        caption: "Round-trip latency, 99th percentile",
        y_desc: "p99 round trip (log scale)",
        log: true,
        label: |v| {
            if v >= 1e6 {
                format!("{} s", short(v / 1e6))
            } else if v >= 1e3 {
                format!("{} ms", short(v / 1e3))
            } else {
                format!("{} µs", short(v))
            }
        },
        value: |s| s.p99_us,
    },
    Panel {
        caption: "Server memory in total, connections open",
        y_desc: "server RSS (log scale)",
        log: true,
        label: |v| format!("{} MiB", short(v)),
        value: |s| {
            let kb = s.loaded_rss_kb;
            Spread {
                min: kb.min / 1024.0,
                median: kb.median / 1024.0,
                max: kb.max / 1024.0,
            }
        },
    },
    Panel {
        caption: "Server memory per connection",
        y_desc: "RSS growth per connection (log scale)",
        log: true,
        label: |v| format!("{} KiB", short(v)),
        value: per_conn_kib,
    },
];

/// The smallest and largest of `values`, or `None` if there are none.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Draws one panel.
fn panel(area: &Area, summaries: &[Summary], models: &[Model], p: &Panel) -> Result<(), String> {
    let conns = summaries.iter().map(|s| f64::from(s.conns));
    let (lo, hi) = bounds(conns).unwrap_or((1.0, 10.0));
    let x = decade_axis(lo, hi);
    let spreads = || summaries.iter().map(p.value);
    if p.log {
        // Zero (memory that did not grow) has no place on a log axis: the
        // axis starts at the smallest positive value's decade, and a zero
        // is drawn on its bottom edge.
        let positive = spreads().flat_map(|s| [s.min, s.max]).filter(|&v| v > 0.0);
        let (lo, hi) = bounds(positive).unwrap_or((0.1, 1.0));
        let (range, bold, light) = decade_axis(lo, hi);
        let floor = range.start;
        let y = range
            .log_scale()
            .with_key_points(bold)
            .with_light_points(light);
        draw(area, summaries, models, p, x, y, floor)
    } else {
        let top = spreads().map(|s| s.max).fold(1.0, f64::max);
        draw(area, summaries, models, p, x, 0.0..top * 1.15, 0.0)
    }
}

/// Draws one panel on the axes given; values below `floor` on it.
fn draw<Y>(
    area: &Area,
    summaries: &[Summary],
    models: &[Model],
    p: &Panel,
    (x_range, x_bold, x_light): (Range<f64>, Vec<f64>, Vec<f64>),
    y: Y,
    floor: f64,
) -> Result<(), String>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let x = x_range
        .log_scale()
        .with_key_points(x_bold)
        .with_light_points(x_light);
    let mut chart = ChartBuilder::on(area)
        .caption(p.caption, ("sans-serif", 19))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(78)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("connections (log scale)")
        .y_desc(p.y_desc)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| (p.label)(*v))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for &model in models {
        let mut of_model: Vec<(f64, Spread)> = summaries
            .iter()
            .filter(|s| s.model == model)
            .map(|s| {
                let v = (p.value)(s);
                let lift = |v: f64| v.max(floor);
                let v = Spread {
                    min: lift(v.min),
                    median: lift(v.median),
                    max: lift(v.max),
                };
                (f64::from(s.conns), v)
            })
            .collect();
        of_model.sort_by(|a, b| a.0.total_cmp(&b.0));
        let c = color(model);
        let spread = of_model.iter().any(|(_, v)| v.max > v.min);
        if spread {
            // The band: along the largest values, back along the smallest.
            let outline: Vec<(f64, f64)> = of_model
                .iter()
                .map(|&(x, v)| (x, v.max))
                .chain(of_model.iter().rev().map(|&(x, v)| (x, v.min)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(outline, c.mix(0.18).filled())))
                .map_err(err)?;
            chart
                .draw_series(
                    of_model
                        .iter()
                        .map(|&(x, v)| ErrorBar::new_vertical(x, v.min, v.median, v.max, c, 8)),
                )
                .map_err(err)?;
        }
        let medians: Vec<(f64, f64)> = of_model.iter().map(|&(x, v)| (x, v.median)).collect();
        chart
            .draw_series(LineSeries::new(medians.clone(), c.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(medians.iter().map(|&m| Circle::new(m, 3, c.filled())))
            .map_err(err)?;
    }
    Ok(())
}

/// The summary whose `value` disagrees most over the rounds, and by how
/// much (percent of the median), among those with a positive median.
fn widest(summaries: &[Summary], value: fn(&Summary) -> Spread) -> Option<(f64, &Summary)> {
    summaries
        .iter()
        .map(|s| (value(s).percent(), s))
        .filter(|(p, _)| p.is_finite())
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// The lines above the panels, after the title and the legend: what was
/// measured, with what.
fn header(params: &Params) -> Vec<String> {
    let cpu = params
        .cpu_model
        .as_deref()
        .map_or(String::new(), |name| format!(", {name}"));
    let spread = if params.rounds > 1 {
        format!(
            "Each point: the median of {} (a fresh server process each); shaded band and bars: \
             smallest to largest round.",
            rounds_text(params.rounds)
        )
    } else {
        "Each point: 1 round (a fresh server process), so no spread is shown (--rounds N).".into()
    };
    vec![
        format!(
            "{}-byte messages, ping-pong for {} s per measurement, {}, up to {} echo_load \
             processes sharing the connections; {} CPUs{cpu}; all on one machine over loopback ({}).",
            params.size,
            params.secs,
            rounds_text(params.rounds),
            params.load_procs,
            params.cpus,
            params.host
        ),
        spread,
    ]
}

/// The lines below the panels: how the figures were taken, and how much
/// the rounds disagreed.
fn footer(summaries: &[Summary], params: &Params) -> Vec<String> {
    let mut lines = vec![
        "Throughput: messages echoed per second, all load processes together. p99: the slowest \
         load process's 99th-percentile round trip."
            .to_string(),
        "Memory in total: the server's largest VmRSS while the connections were open. Per \
         connection: that minus its VmRSS before they connected, over the connections."
            .to_string(),
    ];
    if params.rounds > 1 {
        let mut parts = Vec::new();
        for (name, value) in [
            ("throughput", PANELS[0].value),
            ("p99", PANELS[1].value),
            ("memory in total", PANELS[2].value),
            ("memory per connection", PANELS[3].value),
        ] {
            if let Some((p, s)) = widest(summaries, value) {
                parts.push(format!("{name} {p:.1}% ({} at {})", s.model, s.conns));
            }
        }
        lines.push(format!(
            "Widest spread over the {}, (max - min) / median: {}.",
            rounds_text(params.rounds),
            parts.join(", ")
        ));
    }
    let zeros: Vec<String> = summaries
        .iter()
        .filter(|s| s.mem_per_conn_bytes.min <= 0.0)
        .map(|s| format!("{} at {}", s.model, s.conns))
        .collect();
    if !zeros.is_empty() {
        lines.push(format!(
            "RSS did not grow with the connections in some round of {}: drawn on the bottom \
             edge of the per-connection panel.",
            zeros.join(", ")
        ));
    }
    lines
}

/// Draws the chart into `path`.
pub fn draw_chart(
    path: &Path,
    summaries: &[Summary],
    models: &[Model],
    params: &Params,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let (width, height, top_height, bottom_height) = (1300, 1100, 130, 100);
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, rest) = root.split_vertically(top_height);
    let (grid, bottom) = rest.split_vertically(height - top_height - bottom_height);
    let title: TextStyle = ("sans-serif", 22).into_font().style(FontStyle::Bold).into();
    let text: TextStyle = ("sans-serif", 15).into();
    top.draw_text(
        "Echo under load: the same protocol served by each model, one server process per \
         measurement",
        &title,
        (20, 12),
    )
    .map_err(err)?;
    // One legend for the four panels: each model's color and what it is.
    let mut x = 20;
    for &model in models {
        let c = color(model);
        top.draw(&PathElement::new(
            vec![(x, 53), (x + 28, 53)],
            c.stroke_width(3),
        ))
        .map_err(err)?;
        top.draw(&Circle::new((x + 14, 53), 3, c.filled()))
            .map_err(err)?;
        let label = what(model);
        top.draw_text(label, &text, (x + 36, 45)).map_err(err)?;
        x += 36 + 8 * label.len() as i32 + 40;
    }
    for (i, line) in header(params).iter().enumerate() {
        top.draw_text(line, &text, (20, 74 + 26 * i as i32))
            .map_err(err)?;
    }
    for (p, area) in PANELS.iter().zip(grid.split_evenly((2, 2))) {
        panel(&area, summaries, models, p)?;
    }
    for (i, line) in footer(summaries, params).iter().enumerate() {
        bottom
            .draw_text(line, &text, (20, 10 + 22 * i as i32))
            .map_err(err)?;
    }
    root.present().map_err(err)
}
