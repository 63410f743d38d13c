//! The rounds of one model at one connection count, summed up: the median
//! of each figure, and its smallest and largest value over the rounds.

use crate::measure::Row;
use crate::Model;

/// A figure over the rounds: its median and its range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (not empty). An even count's median is the
    /// mean of the middle two. NaNs (a rate over no messages) sort last.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            min: v[0],
            median,
            max: v[n - 1],
        }
    }

    /// The range over the median, in percent: how much the rounds
    /// disagree. Zero for a single round, NaN for a zero median.
    pub fn percent(&self) -> f64 {
        (self.max - self.min) / self.median * 100.0
    }
}

/// One model at one connection count, over every round.
#[derive(Debug, Clone)]
pub struct Summary {
    pub model: Model,
    pub conns: u32,
    pub msgs: Spread,
    pub msgs_per_s: Spread,
    pub p50_us: Spread,
    pub p99_us: Spread,
    pub cpu_s_per_million: Spread,
    pub peak_rss_kb: Spread,
    pub idle_rss_kb: Spread,
    pub loaded_rss_kb: Spread,
    pub mem_per_conn_bytes: Spread,
    pub threads: Spread,
    /// The most errors any round saw.
    pub errors: u64,
    /// The fewest connections any round made.
    pub connected: u32,
}

impl Summary {
    /// Sums up `rounds` (not empty, all of one model and count).
    fn of(rounds: &[&Row]) -> Summary {
        let spread = |f: fn(&Row) -> f64| Spread::of(rounds.iter().map(|r| f(r)));
        Summary {
            model: rounds[0].model,
            conns: rounds[0].conns,
            msgs: spread(|r| r.msgs as f64),
            msgs_per_s: spread(|r| r.msgs_per_s),
            p50_us: spread(|r| r.p50_us),
            p99_us: spread(|r| r.p99_us),
            cpu_s_per_million: spread(|r| r.cpu_s_per_million),
            peak_rss_kb: spread(|r| r.peak_rss_kb as f64),
            idle_rss_kb: spread(|r| r.idle_rss_kb as f64),
            loaded_rss_kb: spread(|r| r.loaded_rss_kb as f64),
            mem_per_conn_bytes: spread(Row::mem_per_conn_bytes),
            threads: spread(|r| r.threads as f64),
            errors: rounds.iter().map(|r| r.errors).max().unwrap_or(0),
            connected: rounds.iter().map(|r| r.connected).min().unwrap_or(0),
        }
    }
}

/// One summary per model and count measured, in the order the counts and
/// models were first measured.
pub fn summarize(rows: &[Row]) -> Vec<Summary> {
    let mut keys: Vec<(Model, u32)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.model, r.conns)) {
            keys.push((r.model, r.conns));
        }
    }
    keys.into_iter()
        .map(|(model, conns)| {
            let rounds: Vec<&Row> = rows
                .iter()
                .filter(|r| r.model == model && r.conns == conns)
                .collect();
            Summary::of(&rounds)
        })
        .collect()
}
