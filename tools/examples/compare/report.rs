//! The table on stdout and the CSV file: one line per model and count,
//! medians over the rounds with their spread.

use crate::summary::{Spread, Summary};

/// What `table`'s columns mean, printed above it.
pub const TABLE_LEGEND: &str = "medians over the rounds; spr%: (max - min) / median over the \
     rounds; cpu_s/M: server CPU seconds per million messages; rss_MiB: server RSS with the \
     connections open; B/conn: its growth per connection";

/// `spread`'s range over its median as a table cell: "-" where the median
/// is zero (a spread of nothing).
fn percent(spread: &Spread) -> String {
    let p = spread.percent();
    if p.is_finite() {
        format!("{p:.1}")
    } else {
        "-".into()
    }
}

/// The aligned table, one line per model and count.
pub fn table(summaries: &[Summary]) -> String {
    let mut out = format!(
        "{:<8} {:>6} {:>10} {:>6} {:>8} {:>8} {:>6} {:>8} {:>9} {:>8} {:>6} {:>8} {:>6} {:>8} {:>7}\n",
        "model",
        "conns",
        "msgs/s",
        "spr%",
        "p50_us",
        "p99_us",
        "spr%",
        "cpu_s/M",
        "peak_MiB",
        "rss_MiB",
        "spr%",
        "B/conn",
        "spr%",
        "threads",
        "errors"
    );
    for s in summaries {
        out.push_str(&format!(
            "{:<8} {:>6} {:>10.0} {:>6} {:>8.1} {:>8.1} {:>6} {:>8.2} {:>9.1} {:>8.1} {:>6} {:>8.0} {:>6} {:>8} {:>7}\n",
            s.model.name(),
            s.conns,
            s.msgs_per_s.median,
            percent(&s.msgs_per_s),
            s.p50_us.median,
            s.p99_us.median,
            percent(&s.p99_us),
            s.cpu_s_per_million.median,
            s.peak_rss_kb.median / 1024.0,
            s.loaded_rss_kb.median / 1024.0,
            percent(&s.loaded_rss_kb),
            s.mem_per_conn_bytes.median,
            percent(&s.mem_per_conn_bytes),
            s.threads.median,
            s.errors
        ));
    }
    out
}

/// The run's parameters, repeated on every CSV line.
pub struct CsvParams {
    pub size: u32,
    pub secs: f64,
    pub load_procs: u32,
    pub rounds: u32,
}

/// The summaries as CSV, with a header line: each figure's median under
/// the figure's name, and for the main ones its range over the rounds
/// under `NAME_min` and `NAME_max`.
pub fn csv(summaries: &[Summary], params: &CsvParams) -> String {
    let mut out = String::from(
        "model,conns,size,secs,load_procs,rounds,msgs,msgs_per_s,p50_us,p99_us,errors,connected,\
         cpu_s_per_million_msgs,peak_rss_kb,idle_rss_kb,loaded_rss_kb,mem_per_conn_bytes,threads,\
         msgs_per_s_min,msgs_per_s_max,p50_us_min,p50_us_max,p99_us_min,p99_us_max,\
         cpu_s_per_million_msgs_min,cpu_s_per_million_msgs_max,loaded_rss_kb_min,loaded_rss_kb_max,\
         mem_per_conn_bytes_min,mem_per_conn_bytes_max\n",
    );
    for s in summaries {
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.0},{:.0},{:.1},{:.1},{},{},{:.3},{:.0},{:.0},{:.0},{:.0},{:.0},\
             {:.0},{:.0},{:.1},{:.1},{:.1},{:.1},{:.3},{:.3},{:.0},{:.0},{:.0},{:.0}\n",
            s.model.name(),
            s.conns,
            params.size,
            params.secs,
            params.load_procs,
            params.rounds,
            s.msgs.median,
            s.msgs_per_s.median,
            s.p50_us.median,
            s.p99_us.median,
            s.errors,
            s.connected,
            s.cpu_s_per_million.median,
            s.peak_rss_kb.median,
            s.idle_rss_kb.median,
            s.loaded_rss_kb.median,
            s.mem_per_conn_bytes.median,
            s.threads.median,
            s.msgs_per_s.min,
            s.msgs_per_s.max,
            s.p50_us.min,
            s.p50_us.max,
            s.p99_us.min,
            s.p99_us.max,
            s.cpu_s_per_million.min,
            s.cpu_s_per_million.max,
            s.loaded_rss_kb.min,
            s.loaded_rss_kb.max,
            s.mem_per_conn_bytes.min,
            s.mem_per_conn_bytes.max,
        ));
    }
    out
}
