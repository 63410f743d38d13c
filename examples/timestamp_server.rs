//! The timestamp server: answers every chunk it receives with that chunk
//! prefixed by the local time, `[YYYY-MM-DD HH:MM:SS] `.
//!
//! A port of `TSServProtocol`, the Twisted server in section 2.7 of seed
//! `004_1074fc63d98d4db4.txt`. Talk to it with the `timestamp_client`
//! example, or with `nc 127.0.0.1 21567`.
//!
//! ```text
//! cargo run --release --example timestamp_server
//! cargo run --release --example timestamp_server -- --port 0
//! cargo run --release --example timestamp_server -- --tls-cert cert.pem --tls-key key.pem
//! ```
//!
//! With `--tls-cert` and `--tls-key` it serves TLS only, on the same port
//! (`timestamp_client --tls --ca cert.pem`, or `openssl s_client`). Prints `listening on ADDR` on stdout once bound; logs go to stderr.

mod common;

use std::process::ExitCode;

use clap::Parser;

use reactor::{ListenOptions, Protocol, Reason, Transport};

#[derive(Parser, Debug)]
#[command(
    version,
    after_help = common::logs::LOG_HELP,
    about = "Timestamp server: replies to each message with `[time] message`"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 21567)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
    #[command(flatten)]
    tls: common::tls::TlsArgs,
    #[command(flatten)]
    proxy: common::proxy::ProxyArgs,
}

struct TsServ;

impl Protocol for TsServ {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        common::logs::connected(transport.peer_addr());
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let stamp = chrono::Local::now()
            .format("[%Y-%m-%d %H:%M:%S] ")
            .to_string();
        // Two chunks in one write: the data is never copied next to the stamp.
        transport.write_vectored(&[stamp.as_bytes(), data]);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        common::logs::closed(transport.peer_addr(), reason);
    }
}

fn serve(args: &Args) -> Result<(), String> {
    let tls = args.tls.server_config(&[])?;
    common::serve_on(&args.host, args.port, &args.listen, |reactor, endpoint| {
        let options = args.proxy.apply(ListenOptions::default());
        common::tls::listen_on(reactor, endpoint, tls, || TsServ, options)
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("timestamp_server", serve(&args))
}
