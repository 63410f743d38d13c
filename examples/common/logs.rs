//! The log lines every example server writes, worded once: a connection's
//! start and end at `info`, one line per datagram at `debug`, one access
//! line per HTTP request at `info`. The reactor's own `debug` lines name a
//! connection by its id, `#KEY.GEN`: see [`LOG_HELP`].

use std::fmt::Display;
use std::net::SocketAddr;

use log::{debug, info};

/// The `--help` epilogue of every server: where the logs go, what the
/// connection lines look like and what an id such as `#1.2` is.
pub const LOG_HELP: &str = "Logs go to stderr (RUST_LOG=debug shows more): \
`...connected from: ADDR` when a client connects, `ADDR: closed (REASON)` when \
it goes. An id such as #1.2 in a log line names a connection: slot 1 of the \
reactor's table, then a generation the reactor never hands out twice, so a \
closed connection's id never names a new one.";

/// A TCP connection from `peer` began: the seeds' `...connected from:` line.
pub fn connected(peer: impl Display) {
    info!("...connected from: {peer}");
}

/// The connection from `peer` ended, and why.
pub fn closed(peer: impl Display, why: impl Display) {
    info!("{peer}: closed ({why})");
}

/// A datagram of `len` bytes came from `from` (answered, unless said).
pub fn datagram(from: SocketAddr, len: usize) {
    debug!("{from}: datagram of {len} bytes");
}

/// One HTTP request's access line, as in the common log format: who, the
/// method and path (`request`), the status and the body's bytes.
pub fn access(peer: impl Display, request: &str, status: u16, bytes: usize) {
    info!("{peer} \"{request}\" {status} {bytes}");
}

/// Logs the end of a thread-per-connection handler's connection: `done`
/// (what an `Ok` means for this handler) or the error; passes `result` on.
pub fn handled(client: SocketAddr, done: &str, result: std::io::Result<()>) -> std::io::Result<()> {
    match &result {
        Ok(()) => closed(client, done),
        Err(e) => closed(client, e),
    }
    result
}
