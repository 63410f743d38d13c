//! A floor for the UDP benchmark: the cheapest single-threaded UDP echo
//! server there is, one blocking `recv_from` and one `send_to` per datagram
//! on a plain std socket, with no event loop at all (no readiness calls, no
//! non-blocking retries). An event loop does at least this much work per
//! datagram, so what it gains on this server at a given load bounds what
//! any event loop, batched or not, can gain there (see design.md, "UDP
//! request/answer, batched").
//!
//! ```text
//! cargo run --release --example blocking_udp_echo_server -- --port 0
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr
//! (`RUST_LOG=debug` for per-datagram errors).

#[path = "../../examples/common/mod.rs"]
mod common;

use std::net::UdpSocket;
use std::process::ExitCode;

use clap::Parser;
use log::debug;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "UDP echo server with one blocking recv_from and send_to per datagram (benchmark floor)"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 7002, next to tokio_udp_echo_server's 7001.
    #[arg(long, default_value_t = 7002)]
    port: u16,
}

/// Bytes received at once: room for the largest UDP datagram.
const BUFFER: usize = 64 * 1024;

fn serve(args: Args) -> Result<(), String> {
    let addr = common::resolve(&args.host, args.port)?;
    let socket = UdpSocket::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = socket
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    common::announce(local)?;
    let mut buf = vec![0u8; BUFFER];
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) => {
                // An ICMP error about an earlier datagram: keep serving.
                debug!("recv_from failed: {e}");
                continue;
            }
        };
        if let Err(e) = socket.send_to(&buf[..n], from) {
            debug!("send_to {from} failed: {e}");
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("blocking_udp_echo_server", serve(args))
}
