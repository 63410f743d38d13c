//! The upper-case server: answers every line with the same line upper-cased
//! (ASCII letters only; other bytes, UTF-8 or not, pass as they are); the
//! line `end` closes the connection.
//!
//! A port of the TCP upper-case servers of seeds `001_444414cdf44704f4.txt`
//! (`MyTCPHandler`, `self.request.sendall(self.data.upper())`) and
//! `003_53eaec948bc5f072.txt` (`conn.send(data.upper())`), with the `end`
//! command of seed `002_3c91646919f6c3d0.txt`, on the port of seed 001's
//! `socketserver` version, 9999. The seeds upper-case whatever one `recv`
//! returned; here each whole line is answered once, however TCP split it.
//!
//! A reply keeps the line's ending: `hi\n` gets `HI\n`, `hi\r\n` gets
//! `HI\r\n`. A line that is exactly `end` (before its `\n` or `\r\n`) closes
//! the connection with no reply and no goodbye, as seed 002's server just
//! breaks out of its loop and closes; lines sent after it are ignored. A
//! line may be at most 64 KiB (a trailing `\r` counts); a longer one closes
//! the connection.
//!
//! ```text
//! cargo run --release --example upper_server
//! cargo run --release --example upper_server -- --port 0
//! nc 127.0.0.1 9999
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

mod common;

use std::process::ExitCode;

use clap::Parser;
use log::info;
use reactor::framing::{LineHandler, LineReceiver, Lines};

#[derive(Parser, Debug)]
#[command(about = "Upper-case server: replies to each line upper-cased; the line `end` hangs up")]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 9999 is seed 001's.
    #[arg(long, default_value_t = 9999)]
    port: u16,
}

/// Longest line accepted, without its `\n`.
const MAX_LINE: usize = 64 * 1024;

struct Upper {
    /// Kept across lines so answering does not allocate once it has grown
    /// to the longest line seen.
    reply: Vec<u8>,
}

impl LineHandler for Upper {
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        info!("...connected from: {}", lines.transport().peer_addr());
    }

    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        if line.strip_suffix(b"\r").unwrap_or(line) == b"end" {
            info!("{} said end; closing", lines.transport().peer_addr());
            lines.transport().lose_connection();
            return;
        }
        self.reply.clear();
        self.reply.extend(line.iter().map(u8::to_ascii_uppercase));
        // `line` lacks only the `\n`: a `\r` before it is still in the reply.
        lines.send_line(&self.reply);
    }
}

fn serve(args: &Args) -> Result<(), String> {
    common::serve(&args.host, args.port, |reactor, addr| {
        let listener = reactor.listen_tcp(addr, || {
            LineReceiver::new(Upper { reply: Vec::new() })
                .with_delimiter(b"\n")
                .with_max_length(MAX_LINE)
        })?;
        Ok(listener.local_addr())
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("upper_server", serve(&args))
}
