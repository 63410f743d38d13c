//! The UDP timestamp server: answers every datagram, to its sender, with that
//! datagram prefixed by the local time, `[YYYY-MM-DD HH:MM:SS] `.
//!
//! A port of the UDP server in section 2.4 of seed `004_1074fc63d98d4db4.txt`
//! (`udpSerSock.recvfrom` / `sendto` in a loop). Talk to it with the
//! `timestamp_udp_client` example, or with `nc -u 127.0.0.1 21567`.
//!
//! ```text
//! cargo run --release --example timestamp_udp_server
//! cargo run --release --example timestamp_udp_server -- --port 0
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr
//! (`RUST_LOG=debug` shows each datagram, as the seed's `print` did).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use chrono::{Datelike, Timelike};
use clap::Parser;
use log::info;
use reactor::{DatagramProtocol, DatagramTransport};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "UDP timestamp server: replies to each datagram with `[time] datagram`"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// UDP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 21567)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::UdpListenArgs,
}

struct TsServ {
    /// The reply under construction. Kept across datagrams so that, once it
    /// has grown to the largest datagram seen, answering allocates nothing.
    reply: Vec<u8>,
}

impl DatagramProtocol for TsServ {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        let now = chrono::Local::now();
        self.reply.clear();
        // Fields rather than `now.format(..)`: chrono renders a format
        // through a temporary String, and this path should not allocate.
        // Writing into a Vec cannot fail.
        let _ = write!(
            self.reply,
            "[{:04}-{:02}-{:02} {:02}:{:02}:{:02}] ",
            now.year(),
            now.month(),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        self.reply.extend_from_slice(data);
        t.write_to(&self.reply, from);
        // At info: the seed prints this line for every datagram.
        info!("...received from and returned to: {from}");
    }
}

fn serve(args: &Args) -> Result<(), String> {
    common::serve_udp(&args.host, args.port, &args.listen, |reactor, endpoint| {
        Ok(reactor
            .listen_datagram_on(endpoint, TsServ { reply: Vec::new() })?
            .local_addr())
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("timestamp_udp_server", serve(&args))
}
