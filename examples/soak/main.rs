//! A soak test of the reactor: one process runs the reactor on a thread of
//! its own, serving a TCP echo, a broadcast service (the chat server's
//! pattern: each line a member sends goes to every other member) and a UDP
//! echo, and loads it for `--secs` seconds from threads of plain blocking
//! sockets:
//!
//! - churners: connect, send a message of random size, check its echo,
//!   close; 200 connections a second in all;
//! - 64 idle connections held for the whole run, checked alive at the end;
//! - slow readers: send 2 MiB per connection while reading the echo back
//!   at about 1.6 MB/s; every byte must come back;
//! - writers that never read: they write to the echo until the server
//!   stops reading them and their writes block (each connection must see
//!   that within 3 s), then close and start again;
//! - ping-pong echo traffic, 200 messages of up to 32 KiB a second per
//!   connection;
//! - broadcast members that read everything the others say, checking that
//!   each sender's lines arrive intact, in order and all of them; and deaf
//!   members that never read, which the server must cut off rather than
//!   buffer for without bound;
//! - UDP datagrams of random size, each reply checked.
//!
//! Every `--interval` seconds it prints one line: elapsed time, resident
//! memory now and at its peak, open descriptors, connections served and
//! still open, bytes echoed and relayed (all checked), errors, lost and
//! corrupted bytes, UDP datagrams sent and lost, then what shows the limits
//! at work (non-readers pushed back, deaf members cut off and by what, the
//! most one echo connection held buffered). After the load stops it prints
//! the totals (`end: ...`) and `verdict: PASS` or `verdict: FAIL (why)`
//! (the rules are in `verdict.rs`), and exits 0 or 1. Memory and
//! descriptors are the whole process's, load included: the load's own
//! share is fixed once its threads have started, so what grows is the
//! server's.
//!
//! It is a load tool more than a server, but keeps the examples'
//! convention: its first stdout line is `listening on ADDR` (the TCP echo).
//! Logs, and every unexpected event, go to stderr.
//!
//! ```text
//! cargo run --release --example soak -- --secs 300
//! ```
//!
//! `--inject KIND` (hidden from `--help`, for tests only) breaks the run on
//! purpose so the verdict must be FAIL: `corrupt-byte` flips one byte of an
//! echo before it is checked, `leak-descriptors` keeps 16 sockets open from
//! start to end, `grow-memory` takes 32 MiB after the first report.

#[path = "../common/mod.rs"]
mod common;

mod broadcast_load;
mod counters;
mod load;
mod pattern;
mod probe;
mod server;
mod tcp_load;
mod udp_load;
mod verdict;

use std::net::UdpSocket;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use common::load::parse_secs;
use counters::{Counters, Kind};
use load::Ctx;
use server::Server;
use verdict::{judge, verdict_line, Summary, FD_MARGIN, RSS_MARGIN_KIB};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Soak test: a mixed load against the reactor in one process, \
                   with a report every interval and a verdict at the end"
)]
struct Args {
    /// Seconds of load.
    #[arg(long, default_value = "60", value_parser = parse_secs)]
    secs: f64,
    /// Seconds between report lines.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    interval: f64,
    /// Host name or IP address the in-process services listen on (the load
    /// runs in this process too).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port of the in-process TCP echo (0 picks a free one); the other
    /// services (the echo for writers that never read, the broadcast, the
    /// UDP echo) always take free ports on the same host.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// For tests: break the run on purpose (the verdict must be FAIL).
    #[arg(long, hide = true, value_enum)]
    inject: Option<Inject>,
}

/// A fault `--inject` plants, to show the verdict can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Inject {
    /// Flip one byte of an echo before it is checked.
    CorruptByte,
    /// Hold 16 sockets from the start to the end.
    LeakDescriptors,
    /// Take twice the RSS margin of memory after the first report.
    GrowMemory,
}

/// Sockets `--inject leak-descriptors` holds.
const LEAKED_SOCKETS: usize = 16;

/// How long after the deadline the load threads have to stop (a member
/// waits up to 10 s for the others' last lines; reads time out after 5 s).
const FINISH_WAIT: Duration = Duration::from_secs(30);

/// How long after the load stopped the server has to close everything.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the soak; whether it passed.
fn run(args: &Args) -> Result<bool, String> {
    let counters = Arc::new(Counters::default());
    let server = Server::start(
        common::resolve(&args.host, args.port)?,
        Arc::clone(&counters),
    )?;
    common::announce(server.addrs.echo)?;
    log::info!("serving {:?}", server.addrs);
    let fds_start = probe::open_descriptors();
    let mut _held = Vec::new();
    if args.inject == Some(Inject::LeakDescriptors) {
        for _ in 0..LEAKED_SOCKETS {
            _held.push(UdpSocket::bind((server.addrs.udp.ip(), 0)).map_err(|e| e.to_string())?);
        }
    }

    let start = Instant::now();
    let secs = Duration::from_secs_f64(args.secs);
    let interval = Duration::from_secs_f64(args.interval);
    let ctx = Arc::new(Ctx::new(
        Arc::clone(&counters),
        server.addrs,
        start + secs,
        args.inject == Some(Inject::CorruptByte),
    ));
    let workers = load::start(&ctx)?;

    // Resident KiB at the end of the first full interval, and at the last report.
    let (mut rss_first, mut rss_last) = (None, None);
    let mut _taken = Vec::new();
    for k in 1.. {
        let at = (interval * k).min(secs);
        thread::sleep((start + at).saturating_duration_since(Instant::now()));
        let memory = probe::memory();
        println!(
            "{}",
            report_line(at, &counters, memory, probe::open_descriptors())
        );
        let rss = memory.map(|m| m.rss_kib);
        if k == 1 {
            rss_first = rss.filter(|_| at == interval);
            if args.inject == Some(Inject::GrowMemory) {
                _taken = vec![0x5a_u8; 2 * RSS_MARGIN_KIB as usize * 1024];
            }
        } else {
            rss_last = rss;
        }
        if at >= secs {
            break;
        }
    }

    let stuck = load::finish(workers, ctx.deadline + FINISH_WAIT, &counters);
    let fds_end = settle(&counters, fds_start);
    let open_at_end = counters.open();
    let peak = probe::memory().map(|m| m.peak_kib);
    if let Err(e) = server.stop() {
        counters.error(e);
    }
    println!("{}", end_line(&counters, fds_start, fds_end, peak));
    let summary = summarize(&counters, fds_start.zip(fds_end), open_at_end, &stuck);
    let summary = Summary {
        rss_kib: rss_first.zip(rss_last),
        ..summary
    };
    for note in notes(&counters, &summary) {
        println!("note: {note}");
    }
    let reasons = judge(&summary);
    println!("{}", verdict_line(&reasons));
    Ok(reasons.is_empty())
}

/// Waits until the server has closed every connection and the descriptor
/// count is back near where it started (or [`SETTLE_WAIT`] has passed);
/// returns the count then.
fn settle(counters: &Counters, fds_start: Option<usize>) -> Option<usize> {
    let until = Instant::now() + SETTLE_WAIT;
    let settled = || {
        let fds_back = match (fds_start, probe::open_descriptors()) {
            (Some(start), Some(now)) => now <= start + FD_MARGIN,
            _ => true,
        };
        counters.open() == 0 && fds_back
    };
    while !settled() && Instant::now() < until {
        thread::sleep(Duration::from_millis(20));
    }
    probe::open_descriptors()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn or_na(v: Option<impl std::fmt::Display>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| v.to_string())
}

/// One report line (see the module docs for the fields).
fn report_line(
    at: Duration,
    c: &Counters,
    memory: Option<probe::Memory>,
    fds: Option<usize>,
) -> String {
    let get = Counters::get;
    format!(
        "t={}s rss_mib={} peak_mib={} fds={} conns={} open={} echoed_mib={:.1} relayed_mib={:.1} \
         errors={} lost={} corrupt={} udp_sent={} udp_lost={} pushed_back={} deaf_cut={} \
         cap_cuts={} max_echo_buf_kib={}",
        fmt_secs(at),
        or_na(memory.map(|m| format!("{:.1}", m.rss_kib as f64 / 1024.0))),
        or_na(memory.map(|m| format!("{:.1}", m.peak_kib as f64 / 1024.0))),
        or_na(fds),
        get(&c.served),
        c.open(),
        mib(get(&c.echoed)),
        mib(get(&c.relayed)),
        get(&c.errors),
        get(&c.lost),
        get(&c.corrupt),
        get(&c.udp_sent),
        get(&c.udp_lost),
        get(&c.pushed_back),
        get(&c.deaf_cut),
        get(&c.cap_cuts),
        get(&c.max_echo_buffered) / 1024,
    )
}

fn fmt_secs(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0}")
    } else {
        format!("{secs:.1}")
    }
}

/// The totals once the load has stopped and the server has settled.
fn end_line(
    c: &Counters,
    fds_start: Option<usize>,
    fds_end: Option<usize>,
    peak_kib: Option<u64>,
) -> String {
    let work: Vec<String> = Kind::ALL
        .iter()
        .map(|&k| format!("{}={}", k.name().replace(' ', "_"), c.work(k)))
        .collect();
    format!(
        "end: peak_rss_mib={} fds_start={} fds_end={} open={} conns={} echoed_mib={:.1} \
         relayed_mib={:.1} errors={} lost={} corrupt={} udp_sent={} udp_lost={} udp_bad={} \
         work: {}",
        or_na(peak_kib.map(|k| format!("{:.1}", k as f64 / 1024.0))),
        or_na(fds_start),
        or_na(fds_end),
        c.open(),
        Counters::get(&c.served),
        mib(Counters::get(&c.echoed)),
        mib(Counters::get(&c.relayed)),
        Counters::get(&c.errors),
        Counters::get(&c.lost),
        Counters::get(&c.corrupt),
        Counters::get(&c.udp_sent),
        Counters::get(&c.udp_lost),
        Counters::get(&c.udp_bad),
        work.join(" "),
    )
}

/// The run's figures for the verdict (all but the RSS pair, which the
/// reporter keeps).
fn summarize(
    c: &Counters,
    fds: Option<(usize, usize)>,
    open_at_end: u64,
    stuck: &[Kind],
) -> Summary {
    Summary {
        lost: Counters::get(&c.lost),
        corrupt: Counters::get(&c.corrupt),
        errors: Counters::get(&c.errors),
        udp_sent: Counters::get(&c.udp_sent),
        udp_lost: Counters::get(&c.udp_lost),
        udp_bad: Counters::get(&c.udp_bad),
        fds,
        open_at_end,
        rss_kib: None,
        max_echo_buffered: Counters::get(&c.max_echo_buffered),
        idle_kinds: Kind::ALL
            .iter()
            .filter(|&&k| c.work(k) == 0)
            .map(|k| k.name())
            .collect(),
        stuck_kinds: stuck.iter().map(|k| k.name()).collect(),
    }
}

/// What the verdict does not judge but a reader should know.
fn notes(c: &Counters, summary: &Summary) -> Vec<String> {
    let mut notes = Vec::new();
    if summary.rss_kib.is_none() {
        notes.push("fewer than two full reports: memory growth not judged".into());
    }
    let (cut, capped) = (Counters::get(&c.deaf_cut), Counters::get(&c.cap_cuts));
    if cut != capped {
        notes.push(format!(
            "{cut} deaf members saw their connection end, {capped} were cut by the \
             write-buffer cap (Reason::BufferOverflow); the rest ended otherwise"
        ));
    }
    notes
}
