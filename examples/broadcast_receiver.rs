//! The broadcast receiver: prints every datagram that reaches its port, with
//! the address it came from. Pair it with the `broadcast_sender` example.
//!
//! A port of the receiving half of section 三 (UDP套接字广播, UDP broadcast)
//! of seed `000_52dec2213283d72d.txt`, which binds `0.0.0.0:6475` and prints
//! `从<addr>接受广播:<msg>` ("broadcast received from <addr>: <msg>") for
//! each datagram. Here the port is the seed's, but the default host is
//! loopback, so nothing off this machine
//! is heard unless asked for: to hear real broadcasts, bind the wildcard
//! address (`--host 0.0.0.0`); a socket bound to one unicast address only
//! receives datagrams sent to that address. The seed also sets SO_BROADCAST
//! here; that option only governs sending, so the receiver leaves it alone.
//!
//! ```text
//! cargo run --release --example broadcast_receiver
//! cargo run --release --example broadcast_receiver -- --host 0.0.0.0 --port 6475
//! cargo run --release --example broadcast_sender   # in another terminal
//! ```
//!
//! Unlike the servers, which print only `listening on ADDR`, this prints
//! after that line one `from ADDR: MESSAGE` line per datagram on stdout
//! (the message as UTF-8, invalid bytes replaced), since showing them is its
//! whole job. With `--count N` it exits 0 after N datagrams; without, it runs
//! until killed. Logs and errors go to stderr.

mod common;

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use reactor::{DatagramProtocol, DatagramTransport, Reactor};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Broadcast receiver: prints `from ADDR: MESSAGE` for each datagram",
    after_help = "Seed 000's receiver binds 0.0.0.0:6475 to hear broadcasts from the whole \
                  network; the same here is:\n  broadcast_receiver --host 0.0.0.0 --port 6475\n\
                  or, as an endpoint (whose interface defaults to 0.0.0.0):\n  \
                  broadcast_receiver --listen udp:6475\n\
                  The default, 127.0.0.1:6475, hears only this machine."
)]
struct Args {
    /// Host name or IP address to listen on (0.0.0.0 to hear broadcasts
    /// from the network).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// UDP port to listen on (0 picks a free one); the seed's is 6475.
    #[arg(long, default_value_t = 6475)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::UdpListenArgs,
    /// Exit (status 0) after this many datagrams; by default, run until killed.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

struct Receiver {
    /// Datagrams still to print before exiting, if bounded.
    remaining: Option<u64>,
    /// Why the program should exit with status 1, read once `run` returns.
    failure: Rc<RefCell<Option<String>>>,
}

impl DatagramProtocol for Receiver {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        let message = String::from_utf8_lossy(data);
        let mut out = io::stdout().lock();
        // Flushed per datagram: whoever reads a pipe sees each one as it comes.
        if let Err(e) = writeln!(out, "from {from}: {message}").and_then(|()| out.flush()) {
            *self.failure.borrow_mut() = Some(format!("cannot write to stdout: {e}"));
            stop(t);
            return;
        }
        if let Some(remaining) = &mut self.remaining {
            *remaining -= 1;
            if *remaining == 0 {
                stop(t);
            }
        }
    }
}

fn stop(t: &mut dyn DatagramTransport) {
    // Stopping the reactor alone would let the rest of this wake-up's batch
    // of datagrams through, and past `--count`; closing the endpoint ends
    // the batch.
    t.stop_listening();
    if let Some(reactor) = t.reactor() {
        reactor.stop();
    }
}

fn run(args: &Args) -> Result<(), String> {
    let endpoint = args.listen.endpoint(&args.host, args.port)?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let failure = Rc::new(RefCell::new(None));
    let receiver = Receiver {
        remaining: args.count,
        failure: Rc::clone(&failure),
    };
    let udp = reactor
        .listen_datagram_on(&endpoint, receiver)
        .map_err(|e| common::hints::cannot_listen(endpoint.bind_addr(), &e))?;
    common::announce(udp.local_addr())?;
    reactor.run().map_err(|e| format!("reactor failed: {e}"))?;
    match failure.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("broadcast_receiver", run(&args))
}
