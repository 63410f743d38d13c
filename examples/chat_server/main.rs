//! Twisted's classic chat server on the reactor: a client's first line is
//! its name; after that each line it sends reaches every other member as
//! `NAME: LINE`, and members are told when someone joins or leaves.
//!
//! Built the way `TSServProtocol` (section 2.7 of seed
//! `004_1074fc63d98d4db4.txt`) is, plus the shared state Twisted's chat keeps
//! in its factory: here an `Rc<RefCell<Room>>` every protocol holds a clone of.
//!
//! ```text
//! cargo run --release --example chat_server
//! nc 127.0.0.1 8123        # in two or more terminals
//! cargo run --release --example chat_server -- --tls-cert cert.pem --tls-key key.pem
//! openssl s_client -quiet -CAfile cert.pem -connect 127.0.0.1:8123
//! ```
//!
//! With `--tls-cert` and `--tls-key` it serves TLS only, on the same port.
//!
//! Each connection is a [`LineReceiver`] with its default line ending:
//! lines end with `\n` (a `\r` before it is dropped), as `nc`, telnet and
//! Python clients send them, and may be at most 64 KiB; empty lines are not
//! passed on. A speaker's lines that must wait (see below) are held through
//! the receiver's raw mode and handed back with `set_line_mode_with`. A name is 1 to 32 bytes and
//! unique. Prints `listening on ADDR` on stdout once bound; logs go to stderr.
//!
//! # Members that do not read
//!
//! What the room sends a member waits in the server until the member's
//! client reads it: its *backlog*. A member that stops reading must cost
//! bounded memory and slow nobody else down, so:
//!
//! - A backlog never passes `--max-backlog` (1 MiB): a line that would take
//!   it past is not written, and the member is disconnected instead. The
//!   reactor's own cap ([`ListenOptions::write_buffer_limit`]) is set to the
//!   same figure; the room never reaches it.
//! - A member whose backlog is over its high watermark (64 KiB) and whose
//!   client takes not one byte of it for a whole `--slow-timeout` (5 s) is
//!   disconnected. The room looks every `--slow-timeout` once a member is
//!   over, so that happens one to two of them after it fell behind.
//! - Disconnecting a member queues `* you are disconnected: not reading`
//!   after its backlog (room for that line is always kept), gives its
//!   client `--slow-timeout` more to read both, and resets the connection
//!   after that; the others see `* NAME left`; the server logs one warning.
//! - A speaker whose next lines already wait in the server while some member
//!   is over its high watermark is registered as that member's producer
//!   ([`Reactor::register_producer`]): it is paused, its further input left
//!   in the kernel, until each such member drains below its low watermark
//!   or is disconnected. So a flood is paced by the slowest member rather
//!   than buffered, and by a member that does not read for at most twice
//!   `--slow-timeout`.
//! - A member that sends a line at a time is never paused on another
//!   member's account: its line is queued for everyone at once. (Its own
//!   reading pauses while its own backlog is over the high watermark, as
//!   the reactor does by default: a member that does not read cannot talk.)
//! - A speaker relays at most 4,096 lines-times-members per turn of the
//!   reactor, and resumes a turn after it was paced, so the others are read
//!   and relayed in between.
//!
//! Concretely, "nobody else is slowed" means, as tests/chat_server.rs checks
//! it: while one member never reads and another, named with 32 bytes, sends
//! 512 KiB of one-letter lines (9 MiB relayed to each member, more than the
//! kernel holds for a client that does not read), two members trading lines
//! get each line within 200 ms, the flood reaches them whole and in order,
//! the silent member is disconnected within twice `--slow-timeout`, and the
//! server's peak resident memory grows by less than 8 MiB. Measured with
//! release builds: 0.5 MiB, where the server before these rules grew by
//! 7.4 MiB and kept the silent member's backlog for as long as it stayed;
//! and issue 12's member with a 4,000-byte name sending 64 KiB of empty
//! lines grew it by 246 MiB (now the name is refused, and empty lines are
//! not relayed).
//!
//! The room itself (`room.rs`: members, relaying, the rules above) is a
//! module of its own so that `tests/chat_room.rs` runs it on a
//! [`MemoryReactor`](reactor::testing::MemoryReactor): no socket, the clock
//! moved by hand.

#[path = "../common/mod.rs"]
mod common;
mod room;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reactor::ListenOptions;
use room::{ChatFactory, Limits, MAX_LINE};

#[derive(Parser, Debug)]
#[command(
    version,
    after_help = common::logs::LOG_HELP,
    about = "Chat server: the first line is your name, every later line goes to the others"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8123)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
    /// Most bytes the server holds for one member that its client has not
    /// read yet; a line that would pass it disconnects the member instead.
    /// At least 131072, twice the longest line.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = backlog_bytes)]
    max_backlog: usize,
    /// Seconds a member's backlog may stay over 64 KiB without its client
    /// reading a byte of it before the member is disconnected; also how long
    /// a disconnected member gets to read the rest. Fractions allowed.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = positive_seconds)]
    slow_timeout: Duration,
    #[command(flatten)]
    tls: common::tls::TlsArgs,
}

fn backlog_bytes(s: &str) -> Result<usize, String> {
    let bytes: usize = s.parse().map_err(|e| format!("{e}"))?;
    if bytes < 2 * MAX_LINE {
        return Err(format!("must be at least {}", 2 * MAX_LINE));
    }
    Ok(bytes)
}

/// A timeout flag: seconds, fractions allowed, more than zero.
fn positive_seconds(s: &str) -> Result<Duration, String> {
    let timeout = common::parse_duration(s)?;
    if timeout.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(timeout)
}

fn serve(args: &Args) -> Result<(), String> {
    let limits = Limits {
        max_backlog: args.max_backlog,
        slow_timeout: args.slow_timeout,
    };
    let tls = args.tls.server_config(&[])?;
    common::serve_on(&args.host, args.port, &args.listen, |reactor, endpoint| {
        let options = ListenOptions {
            write_buffer_limit: limits.max_backlog,
            ..ListenOptions::default()
        };
        let factory = ChatFactory::new(limits);
        common::tls::listen_on(reactor, endpoint, tls, factory, options)
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("chat_server", serve(&args))
}
