//! The acknowledging server: answers every chunk it receives with the
//! fixed bytes `Receve your message!!` (the seed's spelling).
//!
//! A port of the first TCP server of seed `000_52dec2213283d72d.txt`
//! (`data = connfd.recv(1024)`, then `connfd.send(b"Receve your message!!")`,
//! in a loop), on the seed's port 8888. Like the seed, it answers each read,
//! not each message: two messages that arrive together (the seed's "sticky
//! packets", 粘包) get one answer, and a lock-step client such as the
//! seed's gets one answer per message. Unlike the seed, which serves one
//! client at a time, it serves any number at once.
//!
//! ```text
//! cargo run --release --example ack_server
//! cargo run --release --example ack_server -- --port 0
//! python3 client.py     # the seed's client, server_addr = ('127.0.0.1',8888)
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr
//! (`RUST_LOG=debug` shows each message, as the seed's `print` did).

mod common;

use std::process::ExitCode;

use clap::Parser;
use log::debug;
use reactor::{Protocol, Reason, Transport};

#[derive(Parser, Debug)]
#[command(
    version,
    after_help = common::logs::LOG_HELP,
    about = "Acknowledging server: answers each message with `Receve your message!!`"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 8888 is the seed's.
    #[arg(long, default_value_t = 8888)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
}

/// The seed's answer, byte for byte.
const ACK: &[u8] = b"Receve your message!!";

struct Ack;

impl Protocol for Ack {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        common::logs::connected(transport.peer_addr());
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        debug!(
            "{}: received {:?}",
            transport.peer_addr(),
            String::from_utf8_lossy(data)
        );
        transport.write(ACK);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        common::logs::closed(transport.peer_addr(), reason);
    }
}

fn serve(args: &Args) -> Result<(), String> {
    common::serve_on(&args.host, args.port, &args.listen, |reactor, endpoint| {
        reactor.listen_on(endpoint, || Ack)
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("ack_server", serve(&args))
}
