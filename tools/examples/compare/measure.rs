//! One measurement: a server in a fresh process, the load against it, and
//! what /proc says about the server meanwhile.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{children, procfs, Model};

/// One measurement: a model at a connection count.
#[derive(Debug, Clone)]
pub struct Row {
    pub model: Model,
    pub conns: u32,
    pub msgs: u64,
    pub msgs_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub errors: u64,
    /// Connections the load processes made.
    pub connected: u32,
    pub cpu_s_per_million: f64,
    pub peak_rss_kb: u64,
    pub idle_rss_kb: u64,
    pub loaded_rss_kb: u64,
    pub threads: u64,
}

impl Row {
    /// Server memory per connection: loaded minus idle RSS, over the count.
    pub fn mem_per_conn_bytes(&self) -> f64 {
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
pub struct Setup {
    pub dir: PathBuf,
    pub host: IpAddr,
    pub port: u16,
    pub size: u32,
    pub secs: f64,
    pub load_procs: u32,
    pub clk_tck: f64,
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
pub fn measure(setup: &Setup, model: Model, conns: u32) -> Result<(Row, Vec<String>), String> {
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
pub fn unreachable(model: Model, conns: u32, load_procs: u32, nofile: u64) -> Option<String> {
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
