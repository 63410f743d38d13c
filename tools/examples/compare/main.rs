//! Reactor or threads? Measures the same echo protocol served three ways and
//! prints the difference: `echo_server --model reactor` (one thread, this
//! crate's reactor), `echo_server --model threads` (a thread per connection,
//! [`reactor::threaded`]) and `tokio_echo_server` (tokio's current-thread
//! runtime, the baseline a Rust user would otherwise pick).
//!
//! Each server runs in a child process of its own, fresh for every
//! measurement, driven by `echo_load` processes (`--load-procs`, each taking
//! a share of the connections and all starting at the same moment). Every
//! model and connection count is measured `--rounds` times (the models
//! taking turns within a round), and each figure is reported as its median
//! over the rounds with its smallest and largest value. For every model and
//! connection count it reports:
//!
//! - messages per second (summed over the load processes) and the p50 and
//!   p99 round-trip latency (the largest of the processes' figures);
//! - server CPU seconds per million messages (user + system time from
//!   `/proc/PID/stat` before and after the run, over `getconf CLK_TCK`);
//! - the server's peak RSS (VmHWM) and its memory per connection: the
//!   largest VmRSS seen while the connections were open, minus VmRSS before
//!   the load connected, over the connection count;
//! - the server's thread count while loaded (`/proc/PID/status` Threads).
//!
//! It prints an aligned table on stdout, and with `--csv` and `--svg` writes
//! the rows and a chart meant to be read on its own (see [`chart`]:
//! throughput, p99 latency and memory in total and per connection against
//! connections, the run's parameters printed above them). A
//! progress bar runs on stderr. The open-file limit is raised to the hard
//! limit first (children inherit it); a count that the limit (or the
//! process limit, for the threads model) cannot reach is skipped with a
//! note. Every run is bounded in time, all traffic stays on loopback, and
//! every child is killed when this program exits: on an error, a panic, or
//! SIGINT, SIGTERM or SIGHUP (then it exits with 128 + the signal's number,
//! 130, 143 or 129). SIGKILL, or another signal that kills this program
//! outright, still leaves them running.
//!
//! Build the siblings first; they are looked for next to this binary:
//!
//! ```text
//! cargo build --release --workspace --examples
//! target/release/examples/compare --conns 1,10,100,1000,5000 --secs 5 \
//!     --csv /tmp/compare.csv --svg /tmp/compare.svg
//! ```

#[path = "../../../examples/common/mod.rs"]
mod common;

mod chart;
mod children;
mod measure;
mod procfs;
mod report;
mod summary;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Compares echo under the reactor, a thread per connection and tokio: \
             throughput, latency, CPU, memory and threads per connection count"
)]
struct Args {
    /// Loopback address the servers listen on and the load connects to.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port each server listens on in turn (0 picks a free one each time).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Models to measure, comma-separated: reactor, threads, tokio.
    #[arg(long, value_delimiter = ',', default_value = "reactor,threads,tokio")]
    models: Vec<Model>,
    /// Connection counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,5000",
          value_parser = clap::value_parser!(u32).range(1..))]
    conns: Vec<u32>,
    /// Bytes per echoed message.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    size: u32,
    /// Seconds of ping-pong per measurement.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    secs: f64,
    /// echo_load processes per measurement (a single-threaded load process
    /// cannot keep a server busy on its own).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    load_procs: u32,
    /// Measurements of each model at each count (each in a fresh server
    /// process); the table, CSV and chart give the median and the range.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Write the rows to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Draw throughput, p99 latency and memory (in total and per
    /// connection) against connections into this SVG file, with the run's
    /// parameters and the spread over the rounds.
    #[arg(long)]
    svg: Option<PathBuf>,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    common::load::parse_secs(s).and_then(|v| {
        if v <= 600.0 {
            Ok(v)
        } else {
            Err("at most 600 seconds per measurement".into())
        }
    })
}

/// A way of serving the echo protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Model {
    /// `echo_server --model reactor`: one thread, the reactor.
    Reactor,
    /// `echo_server --model threads`: a thread per connection.
    Threads,
    /// `tokio_echo_server`: tokio's current-thread runtime.
    Tokio,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Model::Reactor => "reactor",
            Model::Threads => "threads",
            Model::Tokio => "tokio",
        }
    }

    /// The server binary and its arguments, besides --host and --port.
    fn command(self, dir: &Path) -> (PathBuf, &'static [&'static str]) {
        match self {
            Model::Reactor => (dir.join("echo_server"), &["--model", "reactor"]),
            Model::Threads => (dir.join("echo_server"), &["--model", "threads"]),
            Model::Tokio => (dir.join("tokio_echo_server"), &[]),
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Raises the open-file limit to the hard limit; returns the limit now.
fn raise_nofile() -> (u64, Option<String>) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => (limit, None),
        Err(e) => {
            let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
            (soft, Some(format!("cannot raise the open-file limit: {e}")))
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let addr = common::resolve(&args.host, args.port)?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "--host must be a loopback address (the load is aimed at it), not {}",
            addr.ip()
        ));
    }
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .ok_or("cannot tell where this binary lives")?;
    for bin in ["echo_server", "tokio_echo_server", "echo_load"] {
        if !dir.join(bin).exists() {
            return Err(format!(
                "{bin} is not next to this binary in {}: build it with \
                 `cargo build --release --workspace --examples`",
                dir.display()
            ));
        }
    }
    let mut models: Vec<Model> = Vec::new();
    for &model in &args.models {
        if !models.contains(&model) {
            models.push(model);
        }
    }
    let (nofile, nofile_note) = raise_nofile();
    let (clk_tck, clk_note) = procfs::clock_ticks();
    let setup = measure::Setup {
        dir,
        host: addr.ip(),
        port: args.port,
        size: args.size,
        secs: args.secs,
        load_procs: args.load_procs,
        clk_tck,
    };
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let header = format!(
        "echo, {} bytes per message, {} s per run, {}, up to {} echo_load processes; \
         {cpus} CPUs, open-file limit {nofile}, CLK_TCK {clk_tck}",
        args.size,
        args.secs,
        chart::rounds_text(args.rounds),
        args.load_procs
    );
    let rounds = args.rounds as usize;
    let bar = ProgressBar::new((models.len() * args.conns.len() * rounds) as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    for note in nofile_note.iter().chain(&clk_note) {
        bar.println(format!("compare: {note}"));
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    // Models alternate within each round, and rounds at each count, so
    // drift in the machine's load hits them alike.
    for &conns in &args.conns {
        let mut reachable = Vec::new();
        for &model in &models {
            match measure::unreachable(model, conns, args.load_procs, nofile) {
                Some(why) => {
                    bar.println(format!("compare: {why}"));
                    notes.push(why);
                    bar.inc(rounds as u64);
                }
                None => reachable.push(model),
            }
        }
        for round in 1..=rounds {
            for &model in &reachable {
                bar.set_message(format!(
                    "{model} at {conns} connections, round {round} of {rounds}"
                ));
                let (row, run_notes) = measure::measure(&setup, model, conns)?;
                for note in run_notes {
                    let note = format!("{model} at {conns} connections, round {round}: {note}");
                    bar.println(format!("compare: {note}"));
                    notes.push(note);
                }
                rows.push(row);
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    println!("{header}");
    println!("{}", report::TABLE_LEGEND);
    let summaries = summary::summarize(&rows);
    print!("{}", report::table(&summaries));
    for note in &notes {
        println!("note: {note}");
    }
    if let Some(path) = &args.csv {
        let params = report::CsvParams {
            size: args.size,
            secs: args.secs,
            load_procs: args.load_procs,
            rounds: args.rounds,
        };
        std::fs::write(path, report::csv(&summaries, &params))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        let params = chart::Params {
            size: args.size,
            secs: args.secs,
            rounds: args.rounds,
            load_procs: args.load_procs,
            cpus,
            cpu_model: procfs::cpu_model(),
            host: addr.ip(),
        };
        chart::draw_chart(path, &summaries, &models, &params)
            .map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    // Before any child starts, so that none outlives a SIGTERM.
    if let Err(e) = children::kill_all_on_signals() {
        return common::exit_with("compare", Err(e));
    }
    common::exit_with("compare", run(&args))
}
