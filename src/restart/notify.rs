//! Readiness, told the way systemd's `Type=notify` services tell it
//! (`sd_notify(3)`): a datagram `READY=1` sent to the UNIX socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` for an abstract name). The process
//! handing its sockets over binds such a socket and waits on it; the new
//! process sends to it once it listens, and so would tell systemd itself
//! when systemd started it.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::address::UnixAddress;

/// The variable naming the socket readiness is sent to.
pub(crate) const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells the process that started this one (or systemd) that it is ready:
/// sends `READY=1` and this process's pid (`MAINPID=`) to `NOTIFY_SOCKET`.
/// The variable stays set (`sd_notify(0, …)`): removing it would write the
/// environment while other threads may read it, and a program this one
/// starts that sent to it too would name its own pid, which the waiting
/// process ignores. Returns whether there was anyone to tell.
///
/// Call it once every endpoint listens (the examples call it right after
/// printing `listening on`): a process that hands its sockets over waits
/// for it before it stops accepting ([`Reactor::hand_over`](crate::Reactor::hand_over)).
///
/// ```
/// // Started by hand, nobody waits: nothing is sent.
/// assert!(!reactor::restart::notify_ready()?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn notify_ready() -> io::Result<bool> {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return Ok(false);
    };
    // `@name` is an abstract name, as everywhere in the crate; a path must
    // be absolute, as sd_notify requires.
    let addr = match UnixAddress::new(&target) {
        UnixAddress::Path(path) if !path.is_absolute() => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{NOTIFY_SOCKET}={:?} is neither a path nor an @abstract name",
                    path.display().to_string()
                ),
            ))
        }
        unix => unix.to_std()?,
    };
    let message = format!("READY=1\nMAINPID={}\n", std::process::id());
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr)?;
    Ok(true)
}

/// Whether a notification's lines include `READY=1` and name `pid` as its
/// sender (`MAINPID=`): a process the successor starts inherits nothing
/// of ours, but one that finds the name (abstract names are listed in
/// `/proc/net/unix`) must at least name the successor. This is a check
/// against mistakes, not an authentication (see design.md, "Restarts").
pub(crate) fn says_ready(message: &[u8], pid: u32) -> bool {
    let mainpid = format!("MAINPID={pid}");
    let (mut ready, mut named) = (false, false);
    for line in message.split(|b| *b == b'\n') {
        ready |= line == b"READY=1";
        named |= line == mainpid.as_bytes();
    }
    ready && named
}

/// A fresh abstract name for a notification socket: this process's pid,
/// the time, and a counter, so two hand-overs never share one.
pub(crate) fn fresh_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "reactor-restart-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Binds a non-blocking notification socket at abstract `name`.
pub(crate) fn bind(name: &str) -> io::Result<mio::net::UnixDatagram> {
    let addr = UnixAddress::Abstract(name.as_bytes().to_vec()).to_std()?;
    mio::net::UnixDatagram::bind_addr(&addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_a_line_of_its_own() {
        assert!(says_ready(b"READY=1\nMAINPID=7", 7));
        assert!(says_ready(b"STATUS=up\nREADY=1\nMAINPID=7\n", 7));
        assert!(!says_ready(b"READY=1", 7), "no sender named");
        assert!(!says_ready(b"READY=1\nMAINPID=8\n", 7), "another process");
        assert!(!says_ready(b"READY=1\nMAINPID=77\n", 7));
        assert!(!says_ready(b"READY=0\nMAINPID=7\n", 7));
        assert!(!says_ready(b"NOTREADY=1\nMAINPID=7", 7));
    }
}
