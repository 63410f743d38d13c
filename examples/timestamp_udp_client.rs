//! The UDP timestamp client: sends each line typed on standard input, as one
//! datagram, to the `timestamp_udp_server` and prints the stamped reply, one
//! line at a time.
//!
//! A port of the UDP client in section 2.4 of seed `004_1074fc63d98d4db4.txt`:
//! the same lock-step (send a line, wait for its reply, then read the next),
//! and an empty line or end of input ends it. Where the seed blocks in
//! `raw_input` and then in `recvfrom`, this client reads standard input on a
//! thread of its own, handing each line to the reactor with
//! `ReactorHandle::call_from_thread`, and waits for the reply with a reactor
//! timer: UDP may lose the datagram or the reply, and the seed would then
//! wait forever. After `--timeout` seconds without a reply it says so on
//! stderr and goes on with the next line.
//!
//! Each line goes out on a fresh connected UDP socket, closed once its reply
//! (or its timeout) is in, like the seed `002_3c91646919f6c3d0.txt`'s UDP
//! client makes one socket per message. Two reasons: a late reply to an
//! earlier line then reaches a closed socket and can never be taken for the
//! current line's; and the reactor offers no way to send on an existing UDP
//! endpoint from outside its protocol's callbacks, where a line from the
//! stdin thread arrives. Being connected, the socket hears only the server,
//! and learns of a closed server port (ICMP port unreachable).
//!
//! ```text
//! cargo run --release --example timestamp_udp_server &
//! cargo run --release --example timestamp_udp_client
//! printf 'one\ntwo\n' | cargo run --release --example timestamp_udp_client -- --timeout 0.5
//! ```
//!
//! Replies go to stdout (after a `> ` prompt when stdin is a terminal);
//! missing replies and errors go to stderr. The exit status is 1 if the
//! server's port is closed (or on another error), 0 otherwise.

mod common;

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use clap::Parser;
use log::debug;
use reactor::{DatagramProtocol, DatagramTransport, Reactor, ReactorHandle, TimerId};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "UDP timestamp client: sends stdin line by line, prints each reply"
)]
struct Args {
    /// Host name or IP address of the UDP timestamp server.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// UDP port of the timestamp server.
    #[arg(long, default_value_t = 21567)]
    port: u16,
    #[command(flatten)]
    connect: common::endpoint::UdpConnectArgs,
    /// Seconds to wait for each reply before giving up on it and going on
    /// with the next line (a plain number, fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = common::parse_duration)]
    timeout: Duration,
}

/// What every line's exchange needs. `Send`, as it travels with each line
/// from the stdin thread to the reactor.
#[derive(Clone)]
struct Client {
    server: SocketAddr,
    timeout: Duration,
    /// Asks the stdin thread for the next line.
    next_line: Sender<()>,
    /// Why the program should exit with status 1, read once `run` returns.
    failure: Arc<Mutex<Option<String>>>,
}

impl Client {
    fn fail(&self, reactor: &mut Reactor, why: String) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        reactor.stop();
    }

    /// Sends `line` and waits for its reply, on a socket of its own.
    fn exchange(self, reactor: &mut Reactor, line: Vec<u8>) {
        let local = match self.server.ip() {
            IpAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            IpAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let on_error = self.clone();
        let exchange = Exchange {
            client: self,
            line,
            timer: None,
        };
        if let Err(e) = reactor.listen_udp(local, exchange) {
            on_error.fail(reactor, format!("cannot open a UDP socket: {e}"));
        }
    }
}

/// One line's round trip.
struct Exchange {
    client: Client,
    line: Vec<u8>,
    /// The pending reply timeout; `None` once the reply or the timeout came,
    /// so whichever comes second is ignored.
    timer: Option<TimerId>,
}

impl Exchange {
    /// Closes this line's socket and asks for the next line.
    fn done(&mut self, t: &mut dyn DatagramTransport) {
        t.stop_listening();
        // The stdin thread is gone only after it has asked to stop.
        let _ = self.client.next_line.send(());
    }

    fn fail(&mut self, t: &mut dyn DatagramTransport, why: String) {
        self.timer = None;
        if let Some(reactor) = t.reactor() {
            self.client.fail(reactor, why);
        }
    }
}

impl DatagramProtocol for Exchange {
    fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
        let server = self.client.server;
        if let Err(e) = t.connect(server) {
            return self.fail(t, format!("cannot connect a UDP socket to {server}: {e}"));
        }
        let dropped = t.dropped();
        t.write(&self.line);
        if t.dropped() != dropped {
            // Too long for one datagram, or no route: no reply is coming.
            eprintln!("timestamp_udp_client: could not send that line (RUST_LOG=debug says why)");
            return self.done(t);
        }
        self.timer = Some(t.call_later(self.client.timeout, 0));
    }

    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], _: SocketAddr) {
        let Some(timer) = self.timer.take() else {
            debug!("ignored a reply that came too late");
            return;
        };
        t.cancel_timer(timer);
        let mut out = io::stdout().lock();
        if let Err(e) = out
            .write_all(data)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
        {
            drop(out);
            return self.fail(t, format!("cannot write to stdout: {e}"));
        }
        drop(out);
        self.done(t);
    }

    fn connection_refused(&mut self, t: &mut dyn DatagramTransport) {
        let why = format!(
            "no timestamp server at {} (connection refused)",
            self.client.server
        );
        self.fail(t, why);
    }

    fn timer_fired(&mut self, t: &mut dyn DatagramTransport, _tag: u64) {
        if self.timer.take().is_none() {
            return;
        }
        eprintln!(
            "timestamp_udp_client: no reply within {} s",
            self.client.timeout.as_secs_f64()
        );
        self.done(t);
    }
}

/// Runs on its own thread, so a blocking read of stdin never stalls the
/// reactor. Reads a line only when asked, which keeps the client in lock-step.
fn read_lines(requests: Receiver<()>, client: Client, reactor: ReactorHandle) {
    let mut stdin = common::LineReader::new();
    for () in requests {
        let line = stdin.next_line();
        let Some(line) = line else {
            reactor.stop();
            return;
        };
        let client = client.clone();
        reactor.call_from_thread(move |r| client.exchange(r, line));
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("timestamp_udp_client", run(&args))
}

fn run(args: &Args) -> Result<(), String> {
    let server = args.connect.addr(&args.host, args.port)?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let handle = reactor
        .handle()
        .map_err(|e| format!("cannot create the reactor's handle: {e}"))?;
    let (next_line, requests) = channel();
    let failure = Arc::new(Mutex::new(None));
    let client = Client {
        server,
        timeout: args.timeout,
        next_line: next_line.clone(),
        failure: Arc::clone(&failure),
    };
    // Not joined: it may be blocked reading stdin when the program ends, and
    // returning from main ends it.
    thread::spawn(move || read_lines(requests, client, handle));
    // The first line; the rest are asked for as replies (or timeouts) come.
    let _ = next_line.send(());
    reactor.run().map_err(|e| format!("reactor failed: {e}"))?;
    let failure = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
