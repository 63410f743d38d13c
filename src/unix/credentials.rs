//! Who is at the other end of a UNIX socket: SO_PEERCRED.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// The credentials of the process at the other end of a UNIX connection,
/// as the kernel recorded them when the connection was made (SO_PEERCRED):
/// for a server, the client's at its `connect`; for a client, the server's
/// at its `listen`. They do not change if that process later changes its
/// ids, and cannot be forged by it.
///
/// Read through [`Transport::peer_credentials`](crate::Transport::peer_credentials),
/// which is `None` for a TCP connection:
///
/// ```
/// use reactor::{PeerCredentials, Protocol, Transport};
///
/// /// Serves only processes of the user running the server.
/// struct SameUserOnly {
///     me: u32,
/// }
/// impl Protocol for SameUserOnly {
///     fn connection_made(&mut self, transport: &mut dyn Transport) {
///         match transport.peer_credentials() {
///             Some(PeerCredentials { uid, .. }) if uid == self.me => {}
///             _ => transport.lose_connection(),
///         }
///     }
///     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
///         transport.write(data);
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The peer's process id; `None` when that process is not visible from
    /// ours (it lives in another PID namespace: a container), which the
    /// kernel reports as 0.
    pub pid: Option<u32>,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

impl PeerCredentials {
    /// The credentials of the peer of `socket`, a connected UNIX stream
    /// socket.
    pub(crate) fn of(socket: &impl AsFd) -> io::Result<PeerCredentials> {
        let fd = socket.as_fd().as_raw_fd();
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `fd` is borrowed from a live socket for the duration of
        // the call; `cred` is a valid, initialized `ucred` that the kernel
        // overwrites, and `len` says its exact size, which SO_PEERCRED
        // never writes past. (socket2 has no SO_PEERCRED getter, and
        // rustix's `UCred` holds the pid as non-zero, which the 0 of a peer
        // in another PID namespace would break.)
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PeerCredentials {
            pid: u32::try_from(cred.pid).ok().filter(|&pid| pid != 0),
            uid: cred.uid,
            gid: cred.gid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_pair_sees_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let cred = PeerCredentials::of(&a).unwrap();
        assert_eq!(cred.pid, Some(std::process::id()));
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        let euid: u32 = uid_line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert_eq!(cred.uid, euid);
    }
}
