//! A load generator for echo servers, written on this reactor.
//!
//! Opens `--conns` connections to `--host:--port`. Each one sends an
//! `--size`-byte message, waits until all of it has come back (in however many
//! pieces), checks it byte for byte, records the round-trip time and sends the
//! next, for `--secs` seconds counted from the moment every connection
//! attempt has finished (or from `--start-at`, a UNIX time, if that is
//! later: how `bench/echo.sh` makes several load processes time the same
//! window). Then it prints one line:
//!
//! ```text
//! conns=C size=M secs=D msgs=N msgs_per_s=X p50_us=.. p99_us=.. errors=E
//! ```
//!
//! `errors` counts echoed messages that differed from what was sent, failed
//! connection attempts, and connections lost before the end. If no
//! connection could be made at all it says so on stderr and exits 1.
//!
//! With `--idle` it only opens the connections and holds them: once every
//! attempt has finished it prints `connected K` (K connections up) and
//! waits for end-of-file on stdin, or `--hold-secs`, before exiting. This is
//! for measuring a server's memory per idle connection (`bench/echo.sh`).
//!
//! Single-threaded (one reactor), so it takes one core at most. With
//! `--io-uring` the same ping-pong is driven through io_uring instead
//! (`uring.rs`): it costs less CPU per message than an epoll server doing the
//! same work, so one core of it
//! keeps a server busy, which is what `bench/echo.sh` needs to measure the
//! server rather than the load. Run a server and then, for example:
//!
//! ```text
//! cargo run --release --example echo_load -- --port 7000 --conns 50 --size 512 --secs 5
//! ```

#[path = "../../../examples/common/mod.rs"]
mod common;
#[cfg(target_os = "linux")]
mod uring;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::load::{fill_message, parse_secs, parse_unix_time, until_unix_time, Histogram};
use reactor::{ClientFactory, ConnectionId, Factory, Protocol, Reactor, Reason, Transport};

#[derive(Parser, Debug)]
#[command(version, about = "Ping-pong load for an echo server, on the reactor")]
struct Args {
    /// Server host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long, default_value_t = 7000, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Connections to open.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    conns: u32,
    /// Bytes per message.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    size: u32,
    /// Seconds of ping-pong, once every connection attempt has finished.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    secs: f64,
    /// Seconds each connection attempt may take.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    connect_timeout: f64,
    /// Connection attempts under way at once (keeps the server's accept
    /// backlog from overflowing when thousands are opened).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_pending: u32,
    /// Only open the connections and hold them idle; print `connected K`.
    #[arg(long)]
    idle: bool,
    /// With --idle: exit after this many seconds even if stdin stays open.
    #[arg(long, value_parser = parse_secs)]
    hold_secs: Option<f64>,
    /// Start the timed run at this UNIX time (seconds), once connected, so
    /// that load processes started together time the same window. If
    /// connecting takes longer, the run starts at once, with a warning.
    #[arg(long, value_parser = parse_unix_time)]
    start_at: Option<f64>,
    /// Drive the ping-pong through io_uring instead of the reactor: the
    /// load then costs less CPU per message than the server, so one core
    /// of it can keep a server busy (Linux 6.1+; see `uring.rs`).
    /// Connections are opened one at a time, and --max-pending is unused.
    #[arg(long, conflicts_with = "idle")]
    io_uring: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connection attempts under way.
    Connecting,
    /// Connected, waiting for `--start-at`.
    Waiting,
    /// Ping-pong (or, with --idle, holding).
    Running,
    /// The time is up; what arrives now is not counted.
    Done,
}

/// One client connection's message in flight.
struct Slot {
    id: Option<ConnectionId>,
    /// The message in flight; allocated once, refilled for every message.
    expected: Vec<u8>,
    /// Bytes of it echoed so far.
    got: usize,
    seq: u64,
    sent_at: Instant,
    /// Some echoed byte differed.
    bad: bool,
}

/// Everything the run shares: the connections' slots and the counters.
struct Bench {
    addr: SocketAddr,
    size: usize,
    conns: u32,
    connect_timeout: Duration,
    max_pending: u32,
    secs: f64,
    idle: bool,
    hold: Option<Duration>,
    start_at: Option<f64>,
    slots: Vec<Slot>,
    next_to_connect: u32,
    pending: u32,
    connected: u32,
    failed: u32,
    live: u32,
    msgs: u64,
    errors: u64,
    first_failure: Option<String>,
    hist: Histogram,
    phase: Phase,
    started: Option<Instant>,
    ended: Option<Instant>,
    /// Exit with failure (nothing connected).
    fatal: bool,
}

type Shared = Rc<RefCell<Bench>>;

/// Builds the protocol for connection `idx` and hears how its attempt went.
struct ConnFactory {
    idx: u32,
    bench: Shared,
}

impl Factory for ConnFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new(Pinger {
            idx: self.idx,
            bench: Rc::clone(&self.bench),
        })
    }
}

impl ClientFactory for ConnFactory {
    fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
        {
            let mut b = self.bench.borrow_mut();
            b.pending -= 1;
            b.failed += 1;
            b.errors += 1;
            if b.first_failure.is_none() {
                b.first_failure = Some(reason.to_string());
            }
        }
        advance(&self.bench, reactor);
    }
}

/// Starts more connection attempts, up to `max_pending` at once; once every
/// attempt has finished, starts the run.
fn advance(bench: &Shared, reactor: &mut Reactor) {
    loop {
        let (idx, addr, timeout) = {
            let mut b = bench.borrow_mut();
            if b.next_to_connect >= b.conns || b.pending >= b.max_pending {
                break;
            }
            let idx = b.next_to_connect;
            b.next_to_connect += 1;
            b.pending += 1;
            (idx, b.addr, b.connect_timeout)
        };
        let factory = ConnFactory {
            idx,
            bench: Rc::clone(bench),
        };
        let id = reactor.connect_tcp(addr, factory, timeout);
        bench.borrow_mut().slots[idx as usize].id = Some(id);
    }
    let all_done = {
        let b = bench.borrow();
        b.phase == Phase::Connecting && b.next_to_connect == b.conns && b.pending == 0
    };
    if all_done {
        start(bench, reactor);
    }
}

/// Every attempt has finished: begin the run, now or at `--start-at` (or,
/// idle, announce and hold).
fn start(bench: &Shared, reactor: &mut Reactor) {
    let mut b = bench.borrow_mut();
    b.phase = Phase::Running;
    if b.connected == 0 {
        eprintln!(
            "echo_load: could not connect to {}: {}",
            b.addr,
            b.first_failure.as_deref().unwrap_or("no connection made")
        );
        b.fatal = true;
        b.phase = Phase::Done;
        reactor.stop();
        return;
    }
    if b.idle {
        let mut out = io::stdout().lock();
        // Those still up: one may have been lost while others connected.
        let _ = writeln!(out, "connected {}", b.live);
        let _ = out.flush();
        drop(out);
        if let Some(hold) = b.hold {
            reactor.call_later(hold, |r| r.stop());
        }
        match reactor.handle() {
            Ok(handle) => {
                std::thread::spawn(move || {
                    let mut sink = [0u8; 256];
                    let mut stdin = io::stdin().lock();
                    while !matches!(stdin.read(&mut sink), Ok(0) | Err(_)) {}
                    handle.stop();
                });
            }
            Err(e) => eprintln!("echo_load: cannot watch stdin: {e}"),
        }
        return;
    }
    if let Some(at) = b.start_at {
        match until_unix_time(at) {
            Ok(wait) => {
                b.phase = Phase::Waiting;
                let bench = Rc::clone(bench);
                reactor.call_later(wait, move |r| begin(&bench, r));
                return;
            }
            Err(late) => eprintln!(
                "echo_load: connecting ended {:.0} ms after --start-at; the run starts late",
                late.as_secs_f64() * 1e3
            ),
        }
    }
    drop(b);
    begin(bench, reactor);
}

/// Sends each connection's first message and schedules the end.
fn begin(bench: &Shared, reactor: &mut Reactor) {
    let mut b = bench.borrow_mut();
    b.phase = Phase::Running;
    let now = Instant::now();
    b.started = Some(now);
    if b.live == 0 {
        // Every connection was lost while waiting for --start-at.
        drop(b);
        finish(bench);
        reactor.stop();
        return;
    }
    let size = b.size;
    for (idx, slot) in b.slots.iter_mut().enumerate() {
        let Some(id) = slot.id.filter(|&id| reactor.is_connected(id)) else {
            continue;
        };
        slot.expected = vec![0; size];
        fill_message(&mut slot.expected, idx as u32, 0);
        slot.sent_at = now;
        reactor.write_to(id, &slot.expected);
    }
    let secs = Duration::from_secs_f64(b.secs);
    let bench = Rc::clone(bench);
    reactor.call_later(secs, move |r| {
        finish(&bench);
        r.stop();
    });
}

fn finish(bench: &Shared) {
    let mut b = bench.borrow_mut();
    if b.phase != Phase::Done {
        b.phase = Phase::Done;
        b.ended = Some(Instant::now());
    }
}

/// One connection's side of the ping-pong.
struct Pinger {
    idx: u32,
    bench: Shared,
}

impl Protocol for Pinger {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        let nodelay = transport.set_nodelay(true);
        {
            let mut b = self.bench.borrow_mut();
            b.pending -= 1;
            b.connected += 1;
            b.live += 1;
            b.slots[self.idx as usize].id = Some(transport.id());
            if let Err(e) = nodelay {
                eprintln!("echo_load: cannot set TCP_NODELAY: {e}");
            }
        }
        if let Some(reactor) = transport.reactor() {
            advance(&self.bench, reactor);
        }
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let mut guard = self.bench.borrow_mut();
        let b = &mut *guard;
        if b.phase != Phase::Running || b.idle {
            if b.phase != Phase::Done {
                // Nothing was sent: the server is talking out of turn.
                b.errors += 1;
                transport.abort_connection();
            }
            return;
        }
        let slot = &mut b.slots[self.idx as usize];
        let want = b.size - slot.got;
        if data.len() > want {
            // More came back than was sent: the stream is out of step.
            b.errors += 1;
            transport.abort_connection();
            return;
        }
        if data != &slot.expected[slot.got..slot.got + data.len()] {
            slot.bad = true;
        }
        slot.got += data.len();
        if slot.got < b.size {
            return;
        }
        let now = Instant::now();
        b.hist.record(now - slot.sent_at);
        b.msgs += 1;
        if slot.bad {
            b.errors += 1;
            slot.bad = false;
        }
        slot.got = 0;
        slot.seq += 1;
        fill_message(&mut slot.expected, self.idx, slot.seq);
        slot.sent_at = now;
        transport.write(&slot.expected);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        let stop = {
            let mut b = self.bench.borrow_mut();
            b.live -= 1;
            // An abort is ours, after counting the error that caused it.
            let expected = matches!(reason, Reason::ReactorStopped | Reason::Aborted);
            if b.phase != Phase::Done && !expected {
                b.errors += 1;
                eprintln!("echo_load: connection {} lost: {reason}", self.idx);
            }
            b.live == 0 && b.phase == Phase::Running
        };
        if stop {
            // Nothing left to measure.
            finish(&self.bench);
            if let Some(reactor) = transport.reactor() {
                reactor.stop();
            }
        }
    }
}

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    let addr = match common::resolve(&args.host, args.port) {
        Ok(addr) => addr,
        Err(e) => return common::exit_with("echo_load", Err(e)),
    };
    #[cfg(not(target_os = "linux"))]
    if args.io_uring {
        eprintln!("echo_load: --io-uring needs Linux");
        return ExitCode::FAILURE;
    }
    #[cfg(target_os = "linux")]
    if args.io_uring {
        if args.conns > uring::MAX_CONNS {
            eprintln!(
                "echo_load: --io-uring drives at most {} connections",
                uring::MAX_CONNS
            );
            return ExitCode::FAILURE;
        }
        return uring::run(&uring::Settings {
            addr,
            conns: args.conns,
            size: args.size as usize,
            secs: args.secs,
            connect_timeout: Duration::from_secs_f64(args.connect_timeout),
            start_at: args.start_at,
        });
    }
    let mut reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("echo_load: cannot create the reactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = Instant::now();
    let slots = (0..args.conns)
        .map(|_| Slot {
            id: None,
            expected: Vec::new(),
            got: 0,
            seq: 0,
            sent_at: now,
            bad: false,
        })
        .collect();
    let bench: Shared = Rc::new(RefCell::new(Bench {
        addr,
        size: args.size as usize,
        conns: args.conns,
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
        max_pending: args.max_pending,
        secs: args.secs,
        idle: args.idle,
        hold: args.hold_secs.map(Duration::from_secs_f64),
        start_at: args.start_at,
        slots,
        next_to_connect: 0,
        pending: 0,
        connected: 0,
        failed: 0,
        live: 0,
        msgs: 0,
        errors: 0,
        first_failure: None,
        hist: Histogram::new(),
        phase: Phase::Connecting,
        started: None,
        ended: None,
        fatal: false,
    }));
    advance(&bench, &mut reactor);
    if let Err(e) = reactor.run() {
        eprintln!("echo_load: reactor failed: {e}");
        return ExitCode::FAILURE;
    }
    let b = bench.borrow();
    if b.fatal {
        return ExitCode::FAILURE;
    }
    if b.failed > 0 {
        eprintln!(
            "echo_load: {} of {} connection attempts failed (first: {})",
            b.failed,
            b.conns,
            b.first_failure.as_deref().unwrap_or("?")
        );
    }
    if b.idle {
        return ExitCode::SUCCESS;
    }
    let elapsed = match (b.started, b.ended) {
        (Some(s), Some(e)) => (e - s).as_secs_f64(),
        _ => b.secs,
    };
    print_outcome(&Outcome {
        conns: b.conns,
        size: b.size,
        secs: b.secs,
        msgs: b.msgs,
        elapsed,
        hist: &b.hist,
        errors: b.errors,
    });
    ExitCode::SUCCESS
}

/// What a finished run reports, whichever engine drove it.
pub struct Outcome<'a> {
    pub conns: u32,
    pub size: usize,
    pub secs: f64,
    pub msgs: u64,
    /// Seconds the run actually lasted.
    pub elapsed: f64,
    pub hist: &'a Histogram,
    pub errors: u64,
}

/// Prints the one result line.
pub fn print_outcome(o: &Outcome) {
    println!(
        "conns={} size={} secs={} msgs={} msgs_per_s={:.0} p50_us={:.1} p99_us={:.1} errors={}",
        o.conns,
        o.size,
        o.secs,
        o.msgs,
        common::load::rate(o.msgs, o.elapsed),
        o.hist.quantile(0.50) / 1000.0,
        o.hist.quantile(0.99) / 1000.0,
        o.errors
    );
}
