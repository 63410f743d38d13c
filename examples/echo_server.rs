//! An echo server (RFC 862) on the reactor: every byte received goes straight
//! back. It is the reactor side of the echo benchmark against
//! `tokio_echo_server` (drive either with `echo_load`), so the protocol is
//! the bare minimum and logs nothing per connection.
//!
//! The same `Protocol`/`Factory` shape as `TSServProtocol` in section 2.7 of
//! seed `004_1074fc63d98d4db4.txt`, minus the timestamp.
//!
//! ```text
//! cargo run --release --example echo_server
//! cargo run --release --example echo_load -- --port 7000
//! ```
//!
//! With `--graceful`, SIGINT or SIGTERM stops it the way the seeds' servers
//! stop on Ctrl-C, but without losing a byte: it stops accepting, lets every
//! connection flush what it was sent (for at most `--grace` seconds), closes
//! them cleanly and exits 0; a second signal exits at once.
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

mod common;

use std::process::ExitCode;

use clap::Parser;
// Zero-sized, so idle connections cost the server no protocol memory.
use reactor::protocols::Echo;

#[derive(Parser, Debug)]
#[command(about = "Echo server on the reactor: sends back every byte it receives")]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 7000 is echo_load's default.
    #[arg(long, default_value_t = 7000)]
    port: u16,
    /// Stop gracefully on SIGINT/SIGTERM: flush every connection, then exit 0.
    #[arg(long)]
    graceful: bool,
    /// With --graceful: seconds to wait for connections to flush.
    #[arg(long, value_parser = common::parse_duration, default_value = "5")]
    grace: std::time::Duration,
}

fn serve(args: &Args) -> Result<(), String> {
    common::serve(&args.host, args.port, |reactor, addr| {
        if args.graceful {
            reactor.stop_on_signals()?;
            reactor.set_shutdown_grace(args.grace);
        }
        Ok(reactor.listen_tcp(addr, || Echo)?.local_addr())
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("echo_server", serve(&args))
}
