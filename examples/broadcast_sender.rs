//! The broadcast sender: sends one message, `--count` times, every
//! `--interval` seconds, to `--dest` with SO_BROADCAST on, then exits 0.
//! Pair it with the `broadcast_receiver` example.
//!
//! A port of the sending half of section 三 (UDP套接字广播, UDP broadcast)
//! of seed `000_52dec2213283d72d.txt`, which sends a small banner to
//! `172.40.71.255:6475` every 2 seconds, forever. The differences:
//!
//! * the default destination is `127.0.0.1:6475` (the receiver's default:
//!   the seed's port on loopback),
//!   so that by default nothing leaves this machine. A real broadcast needs
//!   `--dest`, a broadcast address such as `255.255.255.255:6475` or a
//!   subnet's (`192.168.1.255:6475`), and a local address able to reach it
//!   (`--host 0.0.0.0`): a socket bound to 127.0.0.1 can only send on
//!   loopback;
//! * it stops after `--count` datagrams, and sends the first one at once
//!   rather than after the first interval;
//! * the default message is the seed's banner (`******`, 枷, `******` on
//!   three lines) on one line and in ASCII, 枷 spelled in pinyin, so that
//!   the receiver prints each datagram on one line.
//!
//! ```text
//! cargo run --release --example broadcast_receiver &
//! cargo run --release --example broadcast_sender
//! cargo run --release --example broadcast_sender -- --host 0.0.0.0 --dest 255.255.255.255:6475
//! ```
//!
//! It takes no `--connect udp:...` as the UDP clients do: its `--host` and
//! `--port` say where it sends *from* (what `--connect` would replace), and
//! its destination, a broadcast address, is `--dest IP:PORT`, never a host
//! name to look up.
//!
//! Prints nothing on stdout; logs and errors go to stderr. Exits 1 if a
//! datagram could not be sent (`RUST_LOG=debug` tells why).

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use log::info;
use reactor::{DatagramProtocol, DatagramTransport, Reactor};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Broadcast sender: sends a message to --dest every --interval seconds, --count times"
)]
struct Args {
    /// Local host name or IP address to send from (0.0.0.0 to reach a real
    /// broadcast address; 127.0.0.1 stays on loopback).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Local UDP port to send from (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to send, IP:PORT: a broadcast address such as
    /// 255.255.255.255:6475 or a subnet's x.y.z.255:6475; the default
    /// stays on this machine.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:6475")]
    dest: SocketAddr,
    /// The message each datagram carries.
    #[arg(long, default_value = "****** jia ******")]
    message: String,
    /// Seconds between two datagrams (a plain number, fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = common::parse_duration)]
    interval: Duration,
    /// How many datagrams to send before exiting.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
}

/// Timer tags.
const NEXT: u64 = 0;
const DRAIN: u64 = 1;

/// How often to look again whether the last datagrams have left, in the rare
/// case the kernel's send buffer was full: the transport has no callback for
/// an emptied send queue.
const DRAIN_CHECK: Duration = Duration::from_millis(10);

struct Broadcaster {
    dest: SocketAddr,
    message: Vec<u8>,
    interval: Duration,
    count: u64,
    sent: u64,
    /// Why the program should exit with status 1, read once `run` returns.
    failure: Rc<RefCell<Option<String>>>,
}

impl Broadcaster {
    fn fail(&self, t: &mut dyn DatagramTransport, why: String) {
        *self.failure.borrow_mut() = Some(why);
        stop(t);
    }

    fn send_one(&mut self, t: &mut dyn DatagramTransport) {
        // `write_to` reports nothing; a send the kernel refused (no route,
        // no permission to broadcast) shows only as one more dropped datagram.
        let dropped = t.dropped();
        t.write_to(&self.message, self.dest);
        self.sent += 1;
        if t.dropped() != dropped {
            let why = format!(
                "datagram {} to {} was not sent (RUST_LOG=debug says why)",
                self.sent, self.dest
            );
            return self.fail(t, why);
        }
        info!(
            "sent datagram {} of {} to {}",
            self.sent, self.count, self.dest
        );
        if self.sent < self.count {
            t.call_later(self.interval, NEXT);
        } else {
            self.finish(t);
        }
    }

    /// Exits once nothing is left queued: stopping closes the socket, and
    /// would lose what the kernel has not taken yet.
    fn finish(&mut self, t: &mut dyn DatagramTransport) {
        if t.queued() == 0 {
            stop(t);
        } else {
            t.call_later(DRAIN_CHECK, DRAIN);
        }
    }
}

impl DatagramProtocol for Broadcaster {
    fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
        // Without SO_BROADCAST the kernel refuses to send to a broadcast address.
        if let Err(e) = t.set_broadcast(true) {
            return self.fail(t, format!("cannot turn SO_BROADCAST on: {e}"));
        }
        // Not sent from here: this runs inside `listen_udp`, before
        // `Reactor::run`, which forgets a `stop` made before it starts; with
        // `--count 1` the program would never exit.
        t.call_later(Duration::ZERO, NEXT);
    }

    fn datagram_received(&mut self, _: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        info!("ignored {} bytes from {from}", data.len());
    }

    fn timer_fired(&mut self, t: &mut dyn DatagramTransport, tag: u64) {
        match tag {
            NEXT => self.send_one(t),
            _ => self.finish(t),
        }
    }
}

fn stop(t: &mut dyn DatagramTransport) {
    if let Some(reactor) = t.reactor() {
        reactor.stop();
    }
}

fn run(args: &Args) -> Result<(), String> {
    let local = common::resolve(&args.host, args.port)?;
    if local.is_ipv4() != args.dest.is_ipv4() {
        return Err(format!(
            "cannot send from {local} to {}: not the same IP version",
            args.dest
        ));
    }
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let failure = Rc::new(RefCell::new(None));
    let broadcaster = Broadcaster {
        dest: args.dest,
        message: args.message.clone().into_bytes(),
        interval: args.interval,
        count: args.count,
        sent: 0,
        failure: Rc::clone(&failure),
    };
    reactor
        .listen_udp(local, broadcaster)
        .map_err(|e| common::hints::cannot_listen(local, &e))?;
    // `start_protocol` ran inside `listen_udp`; its `stop` would not outlive
    // the start of `run`, so a failure there is looked at here.
    if let Some(e) = failure.take() {
        return Err(e);
    }
    reactor.run().map_err(|e| format!("reactor failed: {e}"))?;
    match failure.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("broadcast_sender", run(&args))
}
