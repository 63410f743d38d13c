//! The UDP upper-case server: answers every datagram, to its sender, with the
//! same datagram upper-cased (ASCII letters only; other bytes pass as they are).
//!
//! A port of the `udp_服务端` of seed `003_53eaec948bc5f072.txt`
//! (`recvfrom`, then `sendto(data.upper(), addr)`, in a loop; the same
//! server its `socketserver.ThreadingUDPServer` section builds), on the
//! seed's port 8080. Python's `bytes.upper()` touches only ASCII letters
//! too, so the replies are the same byte for byte.
//!
//! ```text
//! cargo run --release --example udp_upper_server
//! cargo run --release --example udp_upper_server -- --port 0
//! echo -n hello | nc -u -w1 127.0.0.1 8080
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr
//! (`RUST_LOG=debug` shows each datagram, as the seed's `print` did).

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use reactor::{DatagramProtocol, DatagramTransport};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "UDP upper-case server: replies to each datagram with it upper-cased"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// UDP port to listen on (0 picks a free one); 8080 is the seed's.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::UdpListenArgs,
}

struct Upper {
    /// Kept across datagrams so answering does not allocate once it has
    /// grown to the largest datagram seen.
    reply: Vec<u8>,
}

impl DatagramProtocol for Upper {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        common::logs::datagram(from, data.len());
        self.reply.clear();
        self.reply
            .extend(data.iter().map(|b| b.to_ascii_uppercase()));
        t.write_to(&self.reply, from);
    }
}

fn serve(args: &Args) -> Result<(), String> {
    common::serve_udp(&args.host, args.port, &args.listen, |reactor, endpoint| {
        Ok(reactor
            .listen_datagram_on(endpoint, Upper { reply: Vec::new() })?
            .local_addr())
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("udp_upper_server", serve(&args))
}
