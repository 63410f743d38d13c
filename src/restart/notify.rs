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
use crate::unix::{self, PeerCredentials};

/// The variable naming the socket readiness is sent to.
pub(crate) const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells the process that started this one (or systemd) that it is ready:
/// sends `READY=1` and this process's pid (`MAINPID=`) to `NOTIFY_SOCKET`.
/// The variable stays set (`sd_notify(0, …)`): removing it would write the
/// environment while other threads may read it, and a program this one
/// starts that sent to it too would be ignored by the waiting process,
/// which takes `READY=1` only from this process's pid, as the kernel tells
/// it. Returns whether there was anyone to tell.
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

/// What one datagram on the notification socket says, judged by who sent
/// it ([`hear`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    /// The new process itself says `READY=1`.
    Ready,
    /// The new process says something else (`STATUS=…`, say), or names
    /// another process as its main one (`MAINPID=`): not ready yet.
    NotYet,
    /// Another process sent it (its pid; `None` if the kernel could not
    /// tell one, as for a sender in another PID namespace): ignored, with
    /// a warning.
    Stranger(Option<u32>),
}

/// Judges `message`, sent by `sender` (the credentials the kernel attached
/// to it), while waiting for the new process `successor`.
///
/// The rule is systemd's `NotifyAccess=main`: only the new process itself
/// may say it is ready, as the kernel tells its pid (SCM_CREDENTIALS),
/// which an unprivileged process cannot forge; a process the new one
/// starts (what `NotifyAccess=all` would admit) is a stranger too. So a
/// successor must `exec` its server rather than run it as a child. Its
/// message must hold the line `READY=1`, and a `MAINPID=` line, if any
/// (`notify_ready` sends one), must name the successor as well.
pub(crate) fn hear(message: &[u8], sender: Option<PeerCredentials>, successor: u32) -> Heard {
    let pid = sender.and_then(|s| s.pid);
    if pid != Some(successor) {
        return Heard::Stranger(pid);
    }
    let mainpid = format!("MAINPID={successor}");
    let (mut ready, mut other_main) = (false, false);
    for line in message.split(|b| *b == b'\n') {
        ready |= line == b"READY=1";
        other_main |= line.starts_with(b"MAINPID=") && line != mainpid.as_bytes();
    }
    if ready && !other_main {
        Heard::Ready
    } else {
        Heard::NotYet
    }
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

/// Binds a non-blocking notification socket at abstract `name`, which
/// receives each sender's credentials with its datagram ([`receive`]).
/// They are asked for before the name is given to anyone; a datagram that
/// came before, without them, would be a stranger's.
pub(crate) fn bind(name: &str) -> io::Result<mio::net::UnixDatagram> {
    let addr = UnixAddress::Abstract(name.as_bytes().to_vec()).to_std()?;
    let socket = mio::net::UnixDatagram::bind_addr(&addr)?;
    unix::pass_credentials(&socket)?;
    Ok(socket)
}

/// Receives one datagram from a socket [`bind`] made into `buf`: its length
/// and its sender's credentials, as the kernel recorded them.
pub(crate) fn receive(
    socket: &mio::net::UnixDatagram,
    buf: &mut [u8],
) -> io::Result<(usize, Option<PeerCredentials>)> {
    unix::recv_with_credentials(socket, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pid: u32) -> Option<PeerCredentials> {
        Some(PeerCredentials {
            pid: Some(pid),
            uid: 1000,
            gid: 1000,
        })
    }

    #[test]
    fn ready_is_a_line_of_its_own() {
        assert_eq!(hear(b"READY=1\nMAINPID=7", from(7), 7), Heard::Ready);
        assert_eq!(
            hear(b"STATUS=up\nREADY=1\nMAINPID=7\n", from(7), 7),
            Heard::Ready
        );
        assert_eq!(
            hear(b"READY=1", from(7), 7),
            Heard::Ready,
            "MAINPID is optional"
        );
        assert_eq!(hear(b"READY=1\n", from(7), 7), Heard::Ready);
        assert_eq!(hear(b"READY=1\nMAINPID=8\n", from(7), 7), Heard::NotYet);
        assert_eq!(hear(b"READY=1\nMAINPID=77\n", from(7), 7), Heard::NotYet);
        assert_eq!(hear(b"READY=0\nMAINPID=7\n", from(7), 7), Heard::NotYet);
        assert_eq!(hear(b"NOTREADY=1\nMAINPID=7", from(7), 7), Heard::NotYet);
        assert_eq!(hear(b"STATUS=loading", from(7), 7), Heard::NotYet);
    }

    #[test]
    fn only_the_new_process_itself_is_heard() {
        // A forger naming the successor is told apart by its own pid.
        assert_eq!(
            hear(b"READY=1\nMAINPID=7\n", from(8), 7),
            Heard::Stranger(Some(8))
        );
        // No credentials, or a sender in another PID namespace (pid 0).
        assert_eq!(
            hear(b"READY=1\nMAINPID=7\n", None, 7),
            Heard::Stranger(None)
        );
        let hidden = PeerCredentials {
            pid: None,
            uid: 0,
            gid: 0,
        };
        assert_eq!(hear(b"READY=1\n", Some(hidden), 7), Heard::Stranger(None));
    }

    #[test]
    fn the_kernel_tells_each_datagrams_sender() {
        let name = fresh_name();
        let socket = bind(&name).unwrap();
        let addr = UnixAddress::Abstract(name.into_bytes()).to_std().unwrap();
        let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
        sender.send_to_addr(b"READY=1\nMAINPID=1\n", &addr).unwrap();
        let mut buf = [0u8; 64];
        let (n, cred) = receive(&socket, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nMAINPID=1\n");
        let cred = cred.expect("SO_PASSCRED brings credentials");
        assert_eq!(cred.pid, Some(std::process::id()));
        assert_eq!(hear(&buf[..n], Some(cred), 1), Heard::Stranger(cred.pid));
        let nothing = receive(&socket, &mut buf).unwrap_err();
        assert_eq!(nothing.kind(), io::ErrorKind::WouldBlock);
    }
}
