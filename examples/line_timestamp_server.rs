//! The line timestamp server: answers every line it receives with that line
//! prefixed by the local time, `[YYYY-MM-DD HH:MM:SS] `.
//!
//! A port of `MyRequestHandler`, the `socketserver.StreamRequestHandler` of
//! section 2.6 of seed `004_1074fc63d98d4db4.txt`, onto
//! [`reactor::framing::LineReceiver`], on port 21568: the seed's 21567 is
//! `timestamp_server`'s default, so pass `--port 21567` for the seed's
//! clients unchanged. The seed's
//! `rfile.readline()` keeps the line ending and writes it back; so does this
//! server: `hi\n` gets `[…] hi\n`, and `hi\r\n` (telnet, the seed's client)
//! gets `[…] hi\r\n`. Unlike the seed, which answers one line and hangs up,
//! the connection stays open for more lines until the client closes it.
//!
//! # The seeds' plain clients: text with no line ending
//!
//! Seed 004's plain TCP client (section 2.3) sends `raw_input()` text with
//! no line ending and waits for the answer. So bytes after the last `\n`
//! that wait `--unfinished-after` (0.2 s by default) with nothing more
//! arriving are answered as they stand, `[…] text` with no line ending
//! added, as the seed's section 2.3 server answers one `recv`. The rest of
//! such a line, sent later, is a line of its own with a stamp of its own.
//! A client that closes right after an unfinished last line gets no
//! answer to it. `--unfinished-after 0` makes this a plain line server.
//!
//! A line may be at most 64 KiB (a trailing `\r` counts); a longer one
//! closes the connection.
//!
//! ```text
//! cargo run --release --example line_timestamp_server
//! cargo run --release --example line_timestamp_server -- --port 0
//! nc 127.0.0.1 21568
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
    about = "Line timestamp server: replies to each line with `[time] line`"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); the seed's is 21567, which
    /// is timestamp_server's default.
    #[arg(long, default_value_t = 21568)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
    /// Seconds bytes with no line ending wait before they are answered as
    /// they stand (the seeds' plain clients send no newline); 0 never
    /// answers them.
    #[arg(long, value_name = "SECS", default_value = "0.2", value_parser = common::parse_duration)]
    unfinished_after: Duration,
}

/// Longest line accepted, without its `\n`.
const MAX_LINE: usize = 64 * 1024;

struct Stamp {
    /// How the line being answered ended.
    ending: Ending,
}

impl KnowsEnding for Stamp {
    fn set_ending(&mut self, ending: Ending) {
        self.ending = ending;
    }
}

impl LineHandler for Stamp {
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        common::logs::connected(lines.transport().peer_addr());
    }

    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        let stamp = chrono::Local::now()
            .format("[%Y-%m-%d %H:%M:%S] ")
            .to_string();
        // `line` lacks only the `\n`: a `\r` before it is still in the reply.
        // Stamp, line and `\n` go out in one vectored write, uncopied.
        let ending: &[u8] = match self.ending {
            Ending::Newline => b"\n",
            Ending::Waited => b"",
        };
        lines
            .transport()
            .write_vectored(&[stamp.as_bytes(), line, ending]);
    }

    fn connection_lost(&mut self, lines: &mut Lines<'_>, reason: &Reason, unfinished: &[u8]) {
        common::logs::closed(lines.transport().peer_addr(), reason);
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
    common::serve_on(&args.host, args.port, &args.listen, |reactor, endpoint| {
        let after = Some(args.unfinished_after).filter(|after| !after.is_zero());
        reactor.listen_on(endpoint, move || {
            let lines = LineReceiver::new(Stamp {
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
    common::exit_with("line_timestamp_server", serve(&args))
}
