//! The line timestamp server: answers every line it receives with that line
//! prefixed by the local time, `[YYYY-MM-DD HH:MM:SS] `.
//!
//! A port of `MyRequestHandler`, the `socketserver.StreamRequestHandler` of
//! section 2.6 of seed `004_1074fc63d98d4db4.txt`, onto
//! [`reactor::framing::LineReceiver`], on the seed's port 21567 (the same as
//! `timestamp_server`'s: run one at a time, or pass `--port`). The seed's
//! `rfile.readline()` keeps the line ending and writes it back; so does this
//! server: `hi\n` gets `[…] hi\n`, and `hi\r\n` (telnet, the seed's client)
//! gets `[…] hi\r\n`. Unlike the seed, which answers one line and hangs up,
//! the connection stays open for more lines until the client closes it. A
//! last line with no line ending gets no reply.
//!
//! A line may be at most 64 KiB (a trailing `\r` counts); a longer one
//! closes the connection.
//!
//! ```text
//! cargo run --release --example line_timestamp_server
//! cargo run --release --example line_timestamp_server -- --port 0
//! nc 127.0.0.1 21567
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

mod common;

use std::process::ExitCode;

use clap::Parser;
use log::info;
use reactor::framing::{LineHandler, LineReceiver, Lines};
use reactor::Reason;

#[derive(Parser, Debug)]
#[command(about = "Line timestamp server: replies to each line with `[time] line`")]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 21567 is the seed's.
    #[arg(long, default_value_t = 21567)]
    port: u16,
}

/// Longest line accepted, without its `\n`.
const MAX_LINE: usize = 64 * 1024;

struct Stamp;

impl LineHandler for Stamp {
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        info!("...connected from: {}", lines.transport().peer_addr());
    }

    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        let stamp = chrono::Local::now()
            .format("[%Y-%m-%d %H:%M:%S] ")
            .to_string();
        // `line` lacks only the `\n`: a `\r` before it is still in the reply.
        // Stamp, line and `\n` go out in one vectored write, uncopied.
        lines
            .transport()
            .write_vectored(&[stamp.as_bytes(), line, b"\n"]);
    }

    fn connection_lost(&mut self, lines: &mut Lines<'_>, _reason: &Reason, unfinished: &[u8]) {
        if !unfinished.is_empty() {
            info!(
                "{}: {} bytes after the last line ending got no reply",
                lines.transport().peer_addr(),
                unfinished.len()
            );
        }
    }
}

fn serve(args: &Args) -> Result<(), String> {
    common::serve(&args.host, args.port, |reactor, addr| {
        let listener = reactor.listen_tcp(addr, || {
            LineReceiver::new(Stamp)
                .with_delimiter(b"\n")
                .with_max_length(MAX_LINE)
        })?;
        Ok(listener.local_addr())
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("line_timestamp_server", serve(&args))
}
