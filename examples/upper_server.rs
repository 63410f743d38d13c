//! The upper-case server: answers every line with the same line upper-cased
//! (ASCII letters only; other bytes, UTF-8 or not, pass as they are); the
//! line `end` closes the connection.
//!
//! A port of the TCP upper-case servers of seeds `001_444414cdf44704f4.txt`
//! (`MyTCPHandler`, `self.request.sendall(self.data.upper())`) and
//! `003_53eaec948bc5f072.txt` (`conn.send(data.upper())`), with the `end`
//! command of seed `002_3c91646919f6c3d0.txt`, on seed 001's first port,
//! 6999 (its `socketserver` version's 9999 is `socketserver_upper_server`'s).
//! The seeds upper-case whatever one `recv`
//! returned; here each whole line is answered once, however TCP split it.
//!
//! A reply keeps the line's ending: `hi\n` gets `HI\n`, `hi\r\n` gets
//! `HI\r\n`. A line that is exactly `end` (before its `\n` or `\r\n`) closes
//! the connection with no reply and no goodbye, as seed 002's server just
//! breaks out of its loop and closes; lines sent after it are ignored. A
//! line may be at most 64 KiB (a trailing `\r` counts); a longer one closes
//! the connection.
//!
//! # The seeds' clients: text with no line ending
//!
//! The seeds' clients send `input()` text with no line ending and wait for
//! the answer. So bytes after the last `\n` that wait `--unfinished-after`
//! (0.2 s by default) with nothing more arriving are answered as they
//! stand, upper-cased with no line ending added, as the seed servers
//! answer one `recv`; if they are exactly `end`, the connection closes
//! instead. The rest of such a line, sent later, is a line of its own (upper
//! case is byte by byte, so the bytes answered are the same either way).
//! `--unfinished-after 0` makes this a plain line server. Seed 001's
//! clients, unchanged or changed only in their port:
//!
//! ```text
//! cargo run --release --example upper_server
//! python3 client.py      # c.connect(('localhost',6999)), as in the seed
//! cargo run --release --example upper_server -- --port 9999
//! python3 client1.py     # c.connect(('localhost',9999)), as in the seed
//! ```
//!
//! ```text
//! cargo run --release --example upper_server
//! cargo run --release --example upper_server -- --port 0
//! nc 127.0.0.1 6999
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::unfinished::{AnswerUnfinished, Ending, KnowsEnding};
use log::info;
use reactor::framing::{LineHandler, LineReceiver, Lines};
use reactor::Reason;

#[derive(Parser, Debug)]
#[command(
    version,
    after_help = common::logs::LOG_HELP,
    about = "Upper-case server: replies to each line upper-cased; the line `end` hangs up"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 6999 is seed 001's.
    #[arg(long, default_value_t = 6999)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
    /// Seconds bytes with no line ending wait before they are answered as
    /// they stand (the seeds' clients send no newline); 0 never answers
    /// them.
    #[arg(long, value_name = "SECS", default_value = "0.2", value_parser = common::parse_duration)]
    unfinished_after: Duration,
}

/// Longest line accepted, without its `\n`.
const MAX_LINE: usize = 64 * 1024;

struct Upper {
    /// Kept across lines so answering does not allocate once it has grown
    /// to the longest line seen.
    reply: Vec<u8>,
    /// How the line being answered ended.
    ending: Ending,
}

impl KnowsEnding for Upper {
    fn set_ending(&mut self, ending: Ending) {
        self.ending = ending;
    }
}

impl LineHandler for Upper {
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        common::logs::connected(lines.transport().peer_addr());
    }

    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        if line.strip_suffix(b"\r").unwrap_or(line) == b"end" {
            info!("{} said end; closing", lines.transport().peer_addr());
            lines.transport().lose_connection();
            return;
        }
        self.reply.clear();
        self.reply.extend(line.iter().map(u8::to_ascii_uppercase));
        match self.ending {
            // `line` lacks only the `\n`: a `\r` before it is still in the reply.
            Ending::Newline => lines.send_line(&self.reply),
            Ending::Waited => lines.transport().write(&self.reply),
        }
    }

    fn connection_lost(&mut self, lines: &mut Lines<'_>, reason: &Reason, _unfinished: &[u8]) {
        common::logs::closed(lines.transport().peer_addr(), reason);
    }
}

fn serve(args: &Args) -> Result<(), String> {
    common::serve_on(&args.host, args.port, &args.listen, |reactor, endpoint| {
        let after = Some(args.unfinished_after).filter(|after| !after.is_zero());
        reactor.listen_on(endpoint, move || {
            let lines = LineReceiver::new(Upper {
                reply: Vec::new(),
                ending: Ending::Newline,
            })
            .with_delimiter(b"\n")
            .with_max_length(MAX_LINE);
            AnswerUnfinished::new(lines, after)
        })
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("upper_server", serve(&args))
}
