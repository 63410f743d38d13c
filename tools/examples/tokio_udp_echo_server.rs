//! The baseline for the UDP benchmark: a plain UDP echo server on tokio's
//! current-thread runtime (one thread, like the reactor): one task that
//! receives a datagram into a 64 KiB buffer with `recv_from` and sends it
//! back with `send_to`, forever.
//!
//! ```text
//! cargo run --release --example tokio_udp_echo_server -- --port 0
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr
//! (`RUST_LOG=debug` for per-datagram errors).

#[path = "../../examples/common/mod.rs"]
mod common;

use std::process::ExitCode;

use clap::Parser;
use log::debug;
use tokio::net::UdpSocket;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "UDP echo server on tokio's current-thread runtime (benchmark baseline)"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 7001, next to udp_echo_server's 7000 (point udp_load at it with --port 7001).
    #[arg(long, default_value_t = 7001)]
    port: u16,
}

/// Bytes received at once: room for the largest UDP datagram.
const BUFFER: usize = 64 * 1024;

async fn serve(args: Args) -> Result<(), String> {
    let addr = common::resolve(&args.host, args.port)?;
    let socket = UdpSocket::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = socket
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    common::announce(local)?;
    let mut buf = vec![0u8; BUFFER];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                // An ICMP error about an earlier datagram: keep serving.
                debug!("recv_from failed: {e}");
                continue;
            }
        };
        if let Err(e) = socket.send_to(&buf[..n], from).await {
            debug!("send_to {from} failed: {e}");
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return common::exit_with("tokio_udp_echo_server", Err(e)),
    };
    common::exit_with("tokio_udp_echo_server", runtime.block_on(serve(args)))
}
