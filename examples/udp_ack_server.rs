//! The UDP acknowledging server: answers every datagram, to its sender,
//! with the fixed bytes `Thank for you msg` (the seed's spelling).
//!
//! A port of the UDP server of seed `000_52dec2213283d72d.txt`
//! (`sockfd.recvfrom(5)`, then `sockfd.sendto(b"Thank for you msg",addr)`,
//! in a loop), on the seed's port 8888 (UDP: it runs beside `ack_server`,
//! which has TCP port 8888). The seed reads at most 5 bytes of each
//! datagram and drops the rest; this server reads the whole datagram, and
//! answers it the same way.
//!
//! ```text
//! cargo run --release --example udp_ack_server
//! cargo run --release --example udp_ack_server -- --port 0
//! echo -n hello | nc -u -w1 127.0.0.1 8888
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr, one
//! `Receive from ADDR: TEXT` line at info per datagram, as the seed prints.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use log::info;
use reactor::{DatagramProtocol, DatagramTransport};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "UDP acknowledging server: answers each datagram with `Thank for you msg`"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// UDP port to listen on (0 picks a free one); 8888 is the seed's.
    #[arg(long, default_value_t = 8888)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::UdpListenArgs,
}

/// The seed's answer, byte for byte.
const ACK: &[u8] = b"Thank for you msg";

struct Ack;

impl DatagramProtocol for Ack {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        info!("Receive from {from}: {}", String::from_utf8_lossy(data));
        t.write_to(ACK, from);
    }
}

fn serve(args: &Args) -> Result<(), String> {
    common::serve_udp(&args.host, args.port, &args.listen, |reactor, endpoint| {
        Ok(reactor.listen_datagram_on(endpoint, Ack)?.local_addr())
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("udp_ack_server", serve(&args))
}
