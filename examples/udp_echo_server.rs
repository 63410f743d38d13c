//! A UDP echo server (RFC 862) on the reactor: every datagram goes straight
//! back to its sender, unchanged. It is the reactor side of the UDP benchmark
//! against `tokio_udp_echo_server` (drive either with `udp_load`), so it is
//! the bare minimum and logs nothing per datagram.
//!
//! ```text
//! cargo run --release --example udp_echo_server -- --port 7000
//! cargo run --release --example udp_load -- --port 7000 --clients 10
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use reactor::{DatagramProtocol, DatagramTransport};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "UDP echo server on the reactor: answers each datagram to its sender"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 7000 is udp_load's default.
    #[arg(long, default_value_t = 7000)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::UdpListenArgs,
}

/// Sends every datagram back where it came from.
struct UdpEcho;

impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        common::logs::datagram(from, data.len());
        t.write_to(data, from);
    }
}

fn serve(args: &Args) -> Result<(), String> {
    common::serve_udp(&args.host, args.port, &args.listen, |reactor, endpoint| {
        Ok(reactor.listen_datagram_on(endpoint, UdpEcho)?.local_addr())
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("udp_echo_server", serve(&args))
}
