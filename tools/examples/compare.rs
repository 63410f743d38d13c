//! Reactor or threads? Measures the same echo protocol served three ways and
//! prints the difference: `echo_server --model reactor` (one thread, this
//! crate's reactor), `echo_server --model threads` (a thread per connection,
//! [`reactor::threaded`]) and `tokio_echo_server` (tokio's current-thread
//! runtime, the baseline a Rust user would otherwise pick).
//!
//! Each server runs in a child process of its own, fresh for every
//! measurement, driven by `echo_load` processes (`--load-procs`, each taking
//! a share of the connections and all starting at the same moment). For
//! every model and connection count it reports:
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
//! the rows and a chart (throughput and memory against connections). A
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

#[path = "../../examples/common/mod.rs"]
mod common;

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitCode, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser, Debug)]
#[command(
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
    /// Write the rows to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Draw throughput and memory against connections into this SVG file.
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

/// Reading a process's figures from /proc.
mod procfs {
    /// A field of `/proc/PID/status` in its own unit (kB for memory).
    pub fn status_field(pid: u32, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// User + system CPU time of `pid` so far, in clock ticks.
    pub fn cpu_ticks(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces; fields resume after its ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    }

    /// Clock ticks per second from `getconf CLK_TCK`, or 100 (Linux's
    /// value nearly everywhere) and a note if that fails.
    pub fn clock_ticks() -> (f64, Option<String>) {
        let asked = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|&hz| hz > 0.0);
        match asked {
            Some(hz) => (hz, None),
            None => (
                100.0,
                Some("getconf CLK_TCK failed; assuming 100 ticks per second".into()),
            ),
        }
    }
}

/// Child processes that cannot outlive this program.
mod children {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, MutexGuard, PoisonError};

    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    use super::*;

    /// Every child not yet killed, by pid: the children of the [`Guard`]s,
    /// and what the signal thread kills.
    static LIVE: Mutex<BTreeMap<u32, Child>> = Mutex::new(BTreeMap::new());

    /// The registry, also after a panic elsewhere (nothing panics while
    /// holding it).
    fn live() -> MutexGuard<'static, BTreeMap<u32, Child>> {
        LIVE.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Kills every child and exits when SIGINT, SIGTERM or SIGHUP arrives,
    /// with 128 + the signal's number, as a shell reports a process killed
    /// by it. The signals are handled on a thread of their own (signal-hook's
    /// handler only wakes it through a pipe), which kills and reaps every
    /// registered child while holding the registry, so that no child starts
    /// after the sweep (spawning holds the registry too), then exits
    /// without releasing it. Call before starting any child.
    pub fn kill_all_on_signals() -> Result<(), String> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| format!("cannot handle SIGINT, SIGTERM and SIGHUP: {e}"))?;
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let Some(signal) = signals.forever().next() else {
                    return;
                };
                let mut live = live();
                for child in live.values_mut() {
                    let _ = child.kill();
                }
                for child in live.values_mut() {
                    let _ = child.wait();
                }
                eprintln!(
                    "\ncompare: stopped by signal {signal}; {} child process(es) killed",
                    live.len()
                );
                std::process::exit(128 + signal);
            })
            .map(drop)
            .map_err(|e| format!("cannot start the signal thread: {e}"))
    }

    /// A child process killed and reaped when dropped, on every path out
    /// (an error, a panic): no server or load outlives a measurement. The
    /// child itself lives in the registry, where a signal finds it too.
    pub struct Guard {
        pid: u32,
        pub stdout: Option<JoinHandle<Vec<u8>>>,
        pub stderr: Option<JoinHandle<Vec<u8>>>,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            self.kill();
        }
    }

    impl Guard {
        pub fn pid(&self) -> u32 {
            self.pid
        }

        /// Whether the child has exited.
        pub fn exited(&mut self) -> bool {
            live()
                .get_mut(&self.pid)
                .map_or(true, |child| matches!(child.try_wait(), Ok(Some(_))))
        }

        /// Kills and reaps the child (if it still runs) and forgets it.
        /// Under the registry's lock, so that a signal thread that finds it
        /// gone from the registry knows it killed already.
        pub fn kill(&mut self) {
            let mut live = live();
            if let Some(mut child) = live.remove(&self.pid) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        /// What the child wrote on stderr, once it has exited.
        pub fn stderr_text(&mut self) -> String {
            text(self.stderr.take())
        }

        /// What the child wrote on stdout, once it has exited.
        pub fn stdout_text(&mut self) -> String {
            text(self.stdout.take())
        }
    }

    /// Starts `cmd` (stdin from /dev/null, stdout and stderr piped) and
    /// registers it, holding the registry throughout: a signal thread
    /// either sees it registered or has already ended the program. Returns
    /// its pid and its stdout and stderr.
    fn start(cmd: &mut Command) -> Result<(u32, ChildStdout, ChildStderr), String> {
        let mut live = live();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let pid = child.id();
        live.insert(pid, child);
        Ok((
            pid,
            stdout.expect("stdout is piped"),
            stderr.expect("stderr is piped"),
        ))
    }

    fn text(reader: Option<JoinHandle<Vec<u8>>>) -> String {
        reader
            .and_then(|r| r.join().ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Reads `from` to its end on a thread of its own.
    fn drain(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
        thread::spawn(move || {
            let mut all = Vec::new();
            let _ = from.read_to_end(&mut all);
            all
        })
    }

    /// Starts `cmd` with stdout and stderr collected in the background.
    pub fn spawn(cmd: &mut Command) -> Result<Guard, String> {
        let (pid, stdout, stderr) = start(cmd)?;
        Ok(Guard {
            pid,
            stdout: Some(drain(stdout)),
            stderr: Some(drain(stderr)),
        })
    }

    /// Starts a server and waits (at most 10 s) for its `listening on ADDR`.
    pub fn start_server(cmd: &mut Command) -> Result<(Guard, SocketAddr), String> {
        let (pid, stdout, stderr) = start(cmd)?;
        let (tx, rx) = channel();
        let stdout = thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = tx.send(first);
            let mut rest = Vec::new();
            let _ = lines.read_to_end(&mut rest);
            rest
        });
        let mut guard = Guard {
            pid,
            stdout: Some(stdout),
            stderr: Some(drain(stderr)),
        };
        let first = first_line(&rx);
        let addr = first
            .as_deref()
            .and_then(|line| line.trim_end().strip_prefix("listening on "))
            .and_then(|addr| addr.parse().ok());
        match addr {
            Some(addr) => Ok((guard, addr)),
            None => {
                guard.kill();
                Err(format!(
                    "{:?} did not say where it listens (first line {first:?}): {}",
                    cmd.get_program(),
                    guard.stderr_text().trim()
                ))
            }
        }
    }

    fn first_line(rx: &Receiver<String>) -> Option<String> {
        rx.recv_timeout(Duration::from_secs(10))
            .ok()
            .filter(|l| !l.is_empty())
    }
}

/// One measurement: a model at a connection count.
#[derive(Debug, Clone)]
struct Row {
    model: Model,
    conns: u32,
    msgs: u64,
    msgs_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    /// Connections the load processes made.
    connected: u32,
    cpu_s_per_million: f64,
    peak_rss_kb: u64,
    idle_rss_kb: u64,
    loaded_rss_kb: u64,
    threads: u64,
}

impl Row {
    /// Server memory per connection: loaded minus idle RSS, over the count.
    fn mem_per_conn_bytes(&self) -> f64 {
        self.loaded_rss_kb.saturating_sub(self.idle_rss_kb) as f64 * 1024.0
            / f64::from(self.connected.max(1))
    }
}

/// The combined result line of the load processes.
#[derive(Debug, Default)]
struct LoadResult {
    msgs: u64,
    msgs_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    failed_connects: u32,
    notes: Vec<String>,
}

impl LoadResult {
    /// Adds one echo_load's result line (`conns=.. msgs=.. p50_us=..`):
    /// counts and rates add up, latencies keep the largest (the histograms
    /// are not merged; the max is an honest upper bound).
    fn add_line(&mut self, line: &str) -> Result<(), String> {
        let mut seen = 0;
        for (key, value) in line.split_whitespace().filter_map(|f| f.split_once('=')) {
            let number = || {
                value
                    .parse::<f64>()
                    .map_err(|_| format!("bad {key} in {line:?}"))
            };
            match key {
                "msgs" => self.msgs += number()? as u64,
                "msgs_per_s" => self.msgs_per_s += number()?,
                "p50_us" => self.p50_us = self.p50_us.max(number()?),
                "p99_us" => self.p99_us = self.p99_us.max(number()?),
                "errors" => self.errors += number()? as u64,
                _ => continue,
            }
            seen += 1;
        }
        if seen == 5 {
            Ok(())
        } else {
            Err(format!("echo_load printed {line:?}"))
        }
    }
}

/// What a measurement needs from the surroundings.
struct Setup {
    dir: PathBuf,
    host: IpAddr,
    port: u16,
    size: u32,
    secs: f64,
    load_procs: u32,
    clk_tck: f64,
}

/// Seconds since the UNIX epoch, for echo_load's --start-at.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Splits `conns` connections over at most `procs` processes.
fn shares(conns: u32, procs: u32) -> Vec<u32> {
    let procs = procs.min(conns);
    (0..procs)
        .map(|i| conns / procs + u32::from(i < conns % procs))
        .collect()
}

/// The largest RSS and thread count seen while the load ran.
#[derive(Default)]
struct Peak {
    rss_kb: u64,
    threads: u64,
}

impl Peak {
    fn sample(&mut self, pid: u32) {
        if let Some(rss) = procfs::status_field(pid, "VmRSS") {
            self.rss_kb = self.rss_kb.max(rss);
        }
        if let Some(threads) = procfs::status_field(pid, "Threads") {
            self.threads = self.threads.max(threads);
        }
    }
}

/// Runs the load against `addr` and samples the server while it runs.
fn run_load(
    setup: &Setup,
    conns: u32,
    addr: SocketAddr,
    server_pid: u32,
) -> Result<(LoadResult, Peak), String> {
    // Time to connect everything before the common start: generous for
    // thousands of connections (a thread each, for one model).
    let delay = 0.5 + f64::from(conns) / 1000.0;
    let start_at = unix_now() + delay;
    let load = setup.dir.join("echo_load");
    let mut procs = Vec::new();
    for share in shares(conns, setup.load_procs) {
        procs.push(children::spawn(
            Command::new(&load)
                .arg("--host")
                .arg(addr.ip().to_string())
                .arg("--port")
                .arg(addr.port().to_string())
                .arg("--conns")
                .arg(share.to_string())
                .arg("--size")
                .arg(setup.size.to_string())
                .arg("--secs")
                .arg(setup.secs.to_string())
                .arg("--start-at")
                .arg(format!("{start_at:.3}"))
                .env("RUST_LOG", "error"),
        )?);
    }
    let limit = Duration::from_secs_f64(delay + setup.secs + 60.0);
    let began = Instant::now();
    let mut peak = Peak::default();
    while !procs.iter_mut().all(children::Guard::exited) {
        if began.elapsed() > limit {
            return Err(format!("the load did not finish within {limit:?}"));
        }
        peak.sample(server_pid);
        // A sampling interval: nothing waits on it.
        thread::sleep(Duration::from_millis(100));
    }
    let mut result = LoadResult::default();
    for proc in &mut procs {
        let stdout = proc.stdout_text();
        let stderr = proc.stderr_text();
        for line in stderr.lines() {
            // "echo_load: F of C connection attempts failed (first: ...)"
            if let Some(failed) = line
                .strip_prefix("echo_load: ")
                .and_then(|l| l.split_once(" of "))
                .and_then(|(f, _)| f.parse::<u32>().ok())
            {
                result.failed_connects += failed;
            }
            result.notes.push(line.to_string());
        }
        let line = stdout
            .lines()
            .next()
            .ok_or_else(|| format!("echo_load printed nothing: {}", stderr.trim()))?;
        result.add_line(line)?;
    }
    Ok((result, peak))
}

/// Measures `model` at `conns` connections in a fresh server process.
fn measure(setup: &Setup, model: Model, conns: u32) -> Result<(Row, Vec<String>), String> {
    let (bin, extra) = model.command(&setup.dir);
    let (mut server, addr) = children::start_server(
        Command::new(&bin)
            .arg("--host")
            .arg(setup.host.to_string())
            .arg("--port")
            .arg(setup.port.to_string())
            .args(extra)
            .env("RUST_LOG", "warn"),
    )?;
    let pid = server.pid();
    let gone = || format!("{model} server (pid {pid}) went away");
    let idle_rss_kb = procfs::status_field(pid, "VmRSS").ok_or_else(gone)?;
    let cpu_before = procfs::cpu_ticks(pid).ok_or_else(gone)?;
    let (load, peak) = run_load(setup, conns, addr, pid)?;
    let cpu_after = procfs::cpu_ticks(pid).ok_or_else(gone)?;
    let peak_rss_kb = procfs::status_field(pid, "VmHWM").ok_or_else(gone)?;
    if server.exited() {
        return Err(format!(
            "{model} server died: {}",
            server.stderr_text().trim()
        ));
    }
    drop(server);
    let cpu_s = (cpu_after - cpu_before) as f64 / setup.clk_tck;
    let row = Row {
        model,
        conns,
        msgs: load.msgs,
        msgs_per_s: load.msgs_per_s,
        p50_us: load.p50_us,
        p99_us: load.p99_us,
        errors: load.errors,
        connected: conns.saturating_sub(load.failed_connects),
        cpu_s_per_million: if load.msgs > 0 {
            cpu_s * 1e6 / load.msgs as f64
        } else {
            f64::NAN
        },
        peak_rss_kb,
        idle_rss_kb,
        loaded_rss_kb: peak.rss_kb.max(idle_rss_kb),
        threads: peak.threads,
    };
    let mut notes = load.notes;
    if row.connected < conns {
        notes.insert(
            0,
            format!(
                "only {} of {conns} connections could be made",
                row.connected
            ),
        );
    }
    Ok((row, notes))
}

/// Why a connection count cannot be reached on this machine, if it cannot.
fn unreachable(model: Model, conns: u32, load_procs: u32, nofile: u64) -> Option<String> {
    // The server holds one descriptor per connection, each load process one
    // per connection of its share; a few dozen more for everything else.
    let server_fds = u64::from(conns) + 64;
    let load_fds = u64::from(conns.div_ceil(load_procs.min(conns))) + 64;
    if server_fds.max(load_fds) > nofile {
        return Some(format!(
            "{conns} connections cannot be reached: the open-file limit is {nofile} \
             (the server needs about {server_fds}); skipped"
        ));
    }
    if model == Model::Threads {
        if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NPROC) {
            if u64::from(conns) + 64 > soft {
                return Some(format!(
                    "threads at {conns} connections cannot be reached: the process \
                     limit (ulimit -u) is {soft}; skipped"
                ));
            }
        }
    }
    None
}

/// The aligned table, one row per measurement.
fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<8} {:>6} {:>10} {:>8} {:>8} {:>10} {:>9} {:>10} {:>8} {:>7}\n",
        "model",
        "conns",
        "msgs/s",
        "p50_us",
        "p99_us",
        "cpu_s/M",
        "peak_MiB",
        "B/conn",
        "threads",
        "errors"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<8} {:>6} {:>10.0} {:>8.1} {:>8.1} {:>10.2} {:>9.1} {:>10.0} {:>8} {:>7}\n",
            r.model.name(),
            r.conns,
            r.msgs_per_s,
            r.p50_us,
            r.p99_us,
            r.cpu_s_per_million,
            r.peak_rss_kb as f64 / 1024.0,
            r.mem_per_conn_bytes(),
            r.threads,
            r.errors
        ));
    }
    out
}

/// The rows as CSV, with a header line.
fn csv(rows: &[Row], setup: &Setup) -> String {
    let mut out = String::from(
        "model,conns,size,secs,load_procs,msgs,msgs_per_s,p50_us,p99_us,errors,connected,\
         cpu_s_per_million_msgs,peak_rss_kb,idle_rss_kb,loaded_rss_kb,mem_per_conn_bytes,threads\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.0},{:.1},{:.1},{},{},{:.3},{},{},{},{:.0},{}\n",
            r.model.name(),
            r.conns,
            setup.size,
            setup.secs,
            setup.load_procs,
            r.msgs,
            r.msgs_per_s,
            r.p50_us,
            r.p99_us,
            r.errors,
            r.connected,
            r.cpu_s_per_million,
            r.peak_rss_kb,
            r.idle_rss_kb,
            r.loaded_rss_kb,
            r.mem_per_conn_bytes(),
            r.threads
        ));
    }
    out
}

/// The SVG chart: throughput (left) and server memory under load (right)
/// against connections, one line per model, log-scaled counts.
mod chart {
    use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
    use plotters::prelude::*;

    use super::{Model, Row};

    fn color(model: Model) -> RGBColor {
        match model {
            Model::Reactor => RGBColor(31, 119, 180),
            Model::Threads => RGBColor(214, 39, 40),
            Model::Tokio => RGBColor(44, 160, 44),
        }
    }

    /// One panel: `value` of each row against its connection count, with
    /// the values on a log scale if `log_y`.
    fn panel(
        area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
        rows: &[Row],
        models: &[Model],
        caption: &str,
        y_desc: &str,
        log_y: bool,
        value: impl Fn(&Row) -> f64,
    ) -> Result<(), String> {
        let top = rows.iter().map(&value).fold(0.0f64, f64::max).max(1.0);
        if log_y {
            let bottom = rows.iter().map(&value).fold(top, f64::min).max(0.01);
            let y = ((bottom / 1.5)..(top * 1.5)).log_scale();
            draw_panel(area, rows, models, caption, y_desc, y, value)
        } else {
            draw_panel(area, rows, models, caption, y_desc, 0.0..top * 1.15, value)
        }
    }

    fn draw_panel<Y>(
        area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
        rows: &[Row],
        models: &[Model],
        caption: &str,
        y_desc: &str,
        y: Y,
        value: impl Fn(&Row) -> f64,
    ) -> Result<(), String>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let err = |e: DrawingAreaErrorKind<_>| e.to_string();
        let (lo, hi) = rows.iter().fold((f64::MAX, 1.0f64), |(lo, hi), r| {
            (lo.min(f64::from(r.conns)), hi.max(f64::from(r.conns)))
        });
        // Room on both sides, and a range even for a single count.
        let x = (lo / 1.5)..(hi * 1.5);
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(x.log_scale(), y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("connections")
            .y_desc(y_desc)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| {
                if *v >= 10.0 || *v == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .draw()
            .map_err(err)?;
        for &model in models {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.model == model)
                .map(|r| (f64::from(r.conns), value(r)))
                .collect();
            let c = color(model);
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(model.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(err)?;
        Ok(())
    }

    /// Draws both panels into `path`.
    pub fn draw(path: &std::path::Path, rows: &[Row], models: &[Model]) -> Result<(), String> {
        let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(600);
        panel(
            &left,
            rows,
            models,
            "Echo throughput",
            "messages per second",
            false,
            |r: &Row| r.msgs_per_s,
        )?;
        panel(
            &right,
            rows,
            models,
            "Server memory with the connections open",
            "RSS (MiB, log scale)",
            true,
            |r: &Row| r.loaded_rss_kb as f64 / 1024.0,
        )?;
        root.present().map_err(|e| e.to_string())
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
    let setup = Setup {
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
        "echo, {} bytes per message, {} s per run, up to {} echo_load processes; \
         {cpus} CPUs, open-file limit {nofile}, CLK_TCK {clk_tck}",
        args.size, args.secs, args.load_procs
    );
    let bar = ProgressBar::new((models.len() * args.conns.len()) as u64);
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
    // Models alternate at each count, so drift in the machine's load hits
    // them alike.
    for &conns in &args.conns {
        for &model in &models {
            bar.set_message(format!("{model} at {conns} connections"));
            if let Some(why) = unreachable(model, conns, args.load_procs, nofile) {
                bar.println(format!("compare: {why}"));
                notes.push(why);
                bar.inc(1);
                continue;
            }
            let (row, run_notes) = measure(&setup, model, conns)?;
            for note in run_notes {
                let note = format!("{model} at {conns} connections: {note}");
                bar.println(format!("compare: {note}"));
                notes.push(note);
            }
            rows.push(row);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    println!("{header}");
    println!("cpu_s/M: server CPU seconds per million messages; B/conn: server RSS growth per connection under load");
    print!("{}", table(&rows));
    for note in &notes {
        println!("note: {note}");
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, csv(&rows, &setup))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        chart::draw(path, &rows, &models)
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
