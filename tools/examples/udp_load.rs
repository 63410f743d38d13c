//! A load generator for UDP echo servers, written on this reactor.
//!
//! Opens `--clients` UDP endpoints (each bound to a free loopback port and
//! connected to `--host:--port`). Each one keeps `--window` requests of
//! `--size` bytes in flight (1 by default: lock-step): it checks every
//! answer byte for byte against the requests in flight, records its
//! round-trip time, and sends a new request for each one resolved, for
//! `--secs` seconds (from `--start-at`, a UNIX time, if given: how
//! `bench/udp.sh` makes several load processes time the same window). A
//! request not answered within `--timeout` seconds counts as `lost` and a
//! new one takes its place. Then it prints one line:
//!
//! ```text
//! clients=N size=M window=W secs=D msgs=X msgs_per_s=Y p50_us=.. p99_us=.. lost=L errors=E late=K
//! ```
//!
//! `msgs` counts correct answers. `errors` counts answers that matched no
//! request (wrong length or contents; the oldest request in flight is then
//! given up on), ICMP refusals, and (`--unconnected`) datagrams from
//! anywhere but the server; `late` counts answers to requests already
//! answered or given up on (a timeout that was too short, or a duplicated
//! datagram), which are otherwise ignored. If no request was answered at all
//! it says so on stderr and exits 1.
//!
//! Why a window: a lock-step client has one datagram at the server at a
//! time, so ten of them give a server at most ten datagrams per wake-up,
//! and mostly fewer; a server (DNS, QUIC, games, metrics) with many busy
//! clients sees more. A window of W per client is the load of W times as
//! many lock-step clients, from as many sockets as `--clients` says. With
//! `--unconnected`, a client's refills (one per answer of a batch the
//! reactor read together) reach the kernel in one call, so the load costs
//! less per datagram than the server it measures, which it must: on a small
//! machine the two share the CPU.
//!
//! Single-threaded (one reactor), so it takes one core at most. Run a server
//! and then, for example:
//!
//! ```text
//! cargo run --release --example udp_load -- --port 7000 --clients 10 --secs 5
//! ```

#[path = "../../examples/common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::load::{fill_message, parse_secs, parse_unix_time, until_unix_time, Histogram};
use reactor::{DatagramProtocol, DatagramTransport, Reactor};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Request/answer load for a UDP echo server, on the reactor"
)]
struct Args {
    /// Server host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long, default_value_t = 7000, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Client endpoints, each with `--window` requests in flight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    clients: u32,
    /// Requests each client keeps in flight (1: lock-step request/answer).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    window: u32,
    /// Leave the client sockets unconnected and address every request: the
    /// reactor then hands a client's refills to the kernel in one call (a
    /// GSO run), so the load costs less CPU per datagram than the server it
    /// measures. ICMP refusals are not seen (a dead server shows as lost
    /// requests); answers from elsewhere count as errors.
    #[arg(long)]
    unconnected: bool,
    /// Bytes per datagram (65507 at most, the IPv4 limit).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_507))]
    size: u32,
    /// Seconds of request/answer.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    secs: f64,
    /// Seconds to wait for an answer before counting the request lost.
    #[arg(long, default_value = "0.2", value_parser = parse_secs)]
    timeout: f64,
    /// Send the first requests at this UNIX time (seconds), so that load
    /// processes started together time the same window. If it has passed,
    /// start at once, with a warning.
    #[arg(long, value_parser = parse_unix_time)]
    start_at: Option<f64>,
}

/// Timer tags.
const TIMEOUT: u64 = 0;
const START: u64 = 1;

/// How many of a client's previous requests an unexpected answer is checked
/// against before it counts as an error rather than late.
const LATE_WINDOW: u64 = 8;

/// What every client adds to.
struct Totals {
    msgs: u64,
    lost: u64,
    late: u64,
    errors: u64,
    hist: Histogram,
    /// The time is up: what arrives now is not counted.
    done: bool,
    ended: Option<Instant>,
    /// A client could not connect its socket; the run is void.
    fatal: Option<String>,
}

type Shared = Rc<RefCell<Totals>>;

/// One request of a client's window.
struct Flight {
    /// Its bytes; allocated once, refilled for every request in this slot.
    data: Vec<u8>,
    sent_at: Instant,
    /// Answered (or given up on), waiting for older ones to be resolved.
    resolved: bool,
}

/// One client endpoint: `window` requests in flight, requests
/// `oldest..next`, request `s` in slot `s % window`.
struct Client {
    idx: u32,
    server: SocketAddr,
    /// Connected to `server` (hears ICMP refusals), or addressing each request.
    connected: bool,
    timeout: Duration,
    totals: Shared,
    flights: Vec<Flight>,
    /// Where an unexpected answer is compared with earlier requests.
    scratch: Vec<u8>,
    /// The oldest request not yet resolved.
    oldest: u64,
    /// The next request to send.
    next: u64,
    /// When the first requests go out.
    start: Instant,
    /// The first requests have gone out.
    running: bool,
}

impl Client {
    fn slot(&self, seq: u64) -> usize {
        (seq % self.flights.len() as u64) as usize
    }

    /// Sends the next request, into the slot the oldest one left.
    fn send(&mut self, t: &mut dyn DatagramTransport, now: Instant) {
        let slot = self.slot(self.next);
        let flight = &mut self.flights[slot];
        fill_message(&mut flight.data, self.idx, self.next);
        flight.sent_at = now;
        flight.resolved = false;
        self.next += 1;
        if self.connected {
            t.write(&flight.data);
        } else {
            t.write_to(&flight.data, self.server);
        }
    }

    /// Moves past the resolved requests at the front of the window, sending
    /// a new request for each.
    fn advance(&mut self, t: &mut dyn DatagramTransport, now: Instant) {
        while self.oldest < self.next && self.flights[self.slot(self.oldest)].resolved {
            self.oldest += 1;
            self.send(t, now);
        }
    }

    /// The unresolved request `data` answers, if any.
    fn answers(&self, data: &[u8]) -> Option<u64> {
        (self.oldest..self.next).find(|&seq| {
            let f = &self.flights[self.slot(seq)];
            !f.resolved && f.data == data
        })
    }

    /// Whether `data` answers a request already resolved: one in the window,
    /// or one of the `LATE_WINDOW` before it (rebuilt in `scratch`).
    fn is_late(&mut self, data: &[u8]) -> bool {
        let in_window = (self.oldest..self.next).any(|seq| {
            let f = &self.flights[self.slot(seq)];
            f.resolved && f.data == data
        });
        in_window
            || (data.len() == self.scratch.len()
                && (self.oldest.saturating_sub(LATE_WINDOW)..self.oldest).any(|old| {
                    fill_message(&mut self.scratch, self.idx, old);
                    data == &*self.scratch
                }))
    }
}

impl DatagramProtocol for Client {
    fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
        if !self.connected {
            t.call_later(self.start.saturating_duration_since(Instant::now()), START);
            return;
        }
        if let Err(e) = t.connect(self.server) {
            self.totals.borrow_mut().fatal =
                Some(format!("cannot connect to {}: {e}", self.server));
            if let Some(r) = t.reactor() {
                r.stop();
            }
            return;
        }
        t.call_later(self.start.saturating_duration_since(Instant::now()), START);
    }

    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        let now = Instant::now();
        let totals = Rc::clone(&self.totals);
        let mut totals = totals.borrow_mut();
        if totals.done {
            return;
        }
        if from != self.server {
            // An unconnected client hears anyone: this is no answer.
            totals.errors += 1;
            return;
        }
        if !self.running {
            // Nothing was sent yet: the server is talking out of turn.
            totals.errors += 1;
            return;
        }
        if let Some(seq) = self.answers(data) {
            let slot = self.slot(seq);
            totals.hist.record(now - self.flights[slot].sent_at);
            totals.msgs += 1;
            self.flights[slot].resolved = true;
        } else if self.is_late(data) {
            totals.late += 1;
            return;
        } else {
            // Garbled or misrouted: the oldest request, which it should
            // most likely have answered, is given up on.
            totals.errors += 1;
            let oldest = self.slot(self.oldest);
            self.flights[oldest].resolved = true;
        }
        drop(totals);
        self.advance(t, now);
    }

    fn connection_refused(&mut self, _: &mut dyn DatagramTransport) {
        // Nobody listens there; the timeout sends the next requests.
        let mut totals = self.totals.borrow_mut();
        if !totals.done {
            totals.errors += 1;
        }
    }

    fn timer_fired(&mut self, t: &mut dyn DatagramTransport, tag: u64) {
        if self.totals.borrow().done {
            return;
        }
        let now = Instant::now();
        if tag == START {
            self.running = true;
            for _ in 0..self.flights.len() {
                self.send(t, now);
            }
            // The timeout is checked lazily: one timer per client, re-armed
            // when it fires, for the oldest request in flight, rather than
            // one set and cancelled per request.
            t.call_later(self.timeout, TIMEOUT);
            return;
        }
        let deadline = self.flights[self.slot(self.oldest)].sent_at + self.timeout;
        if now < deadline {
            t.call_later(deadline - now, TIMEOUT);
            return;
        }
        self.totals.borrow_mut().lost += 1;
        let oldest = self.slot(self.oldest);
        self.flights[oldest].resolved = true;
        self.advance(t, now);
        let deadline = self.flights[self.slot(self.oldest)].sent_at + self.timeout;
        t.call_later(deadline.saturating_duration_since(now), TIMEOUT);
    }
}

/// Where a client binds: the loopback of the server's family when the
/// server is on loopback, otherwise the family's any-address.
fn bind_addr(server: SocketAddr) -> SocketAddr {
    let ip = match (server.ip(), server.ip().is_loopback()) {
        (IpAddr::V4(_), true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (IpAddr::V4(_), false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (IpAddr::V6(_), true) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (IpAddr::V6(_), false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

fn run(args: &Args) -> Result<(), String> {
    let server = common::resolve(&args.host, args.port)?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let totals: Shared = Rc::new(RefCell::new(Totals {
        msgs: 0,
        lost: 0,
        late: 0,
        errors: 0,
        hist: Histogram::new(),
        done: false,
        ended: None,
        fatal: None,
    }));
    let size = args.size as usize;
    let timeout = Duration::from_secs_f64(args.timeout);
    let local = bind_addr(server);
    let start_in = match args.start_at.map(until_unix_time) {
        None => Duration::ZERO,
        Some(Ok(wait)) => wait,
        Some(Err(late)) => {
            eprintln!(
                "udp_load: started {:.0} ms after --start-at; the run starts late",
                late.as_secs_f64() * 1e3
            );
            Duration::ZERO
        }
    };
    // The clients send their first requests from timers due at `started`,
    // all in the same turn of the loop.
    let started = Instant::now() + start_in;
    for idx in 0..args.clients {
        let flights = (0..args.window)
            .map(|_| Flight {
                data: vec![0; size],
                sent_at: started,
                resolved: false,
            })
            .collect();
        let client = Client {
            idx,
            server,
            connected: !args.unconnected,
            timeout,
            totals: Rc::clone(&totals),
            flights,
            scratch: vec![0; size],
            oldest: 0,
            next: 0,
            start: started,
            running: false,
        };
        reactor
            .listen_udp(local, client)
            .map_err(|e| format!("cannot bind a client to {local}: {e}"))?;
    }
    let shared = Rc::clone(&totals);
    let end = started + Duration::from_secs_f64(args.secs);
    reactor.call_later(end.saturating_duration_since(Instant::now()), move |r| {
        let mut t = shared.borrow_mut();
        t.done = true;
        t.ended = Some(Instant::now());
        r.stop();
    });
    reactor.run().map_err(|e| format!("reactor failed: {e}"))?;
    let t = totals.borrow();
    if let Some(fatal) = &t.fatal {
        return Err(fatal.clone());
    }
    let elapsed = t.ended.map_or(args.secs, |e| (e - started).as_secs_f64());
    let rate = common::load::rate(t.msgs, elapsed);
    println!(
        "clients={} size={} window={} secs={} msgs={} msgs_per_s={:.0} p50_us={:.1} p99_us={:.1} lost={} errors={} late={}",
        args.clients,
        args.size,
        args.window,
        args.secs,
        t.msgs,
        rate,
        t.hist.quantile(0.50) / 1000.0,
        t.hist.quantile(0.99) / 1000.0,
        t.lost,
        t.errors,
        t.late
    );
    if t.msgs == 0 {
        return Err(format!("no request to {server} was answered"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("udp_load", run(&args))
}
