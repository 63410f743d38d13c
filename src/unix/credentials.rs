//! Who is at the other end of a UNIX socket: SO_PEERCRED for a
//! connection; SO_PASSCRED and SCM_CREDENTIALS for the sender of each
//! datagram.

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
        Ok(PeerCredentials::from(cred))
    }
}

impl From<libc::ucred> for PeerCredentials {
    /// The kernel's record; a pid of 0 (not visible here) becomes `None`.
    fn from(cred: libc::ucred) -> PeerCredentials {
        PeerCredentials {
            pid: u32::try_from(cred.pid).ok().filter(|&pid| pid != 0),
            uid: cred.uid,
            gid: cred.gid,
        }
    }
}

/// Makes `socket`, a UNIX datagram socket, receive with each datagram the
/// credentials of the process that sent it (SO_PASSCRED), which
/// [`recv_with_credentials`] reads. Set it before anyone may send: the
/// kernel attaches credentials to a datagram when it is sent, if the
/// receiver asks for them then.
#[cfg(target_os = "linux")]
pub(crate) fn pass_credentials(socket: &impl AsFd) -> io::Result<()> {
    socket2::SockRef::from(socket).set_passcred(true)
}

/// Off Linux there is no SO_PASSCRED: a datagram's sender cannot be told.
#[cfg(not(target_os = "linux"))]
pub(crate) fn pass_credentials(_socket: &impl AsFd) -> io::Result<()> {
    Err(no_datagram_credentials())
}

/// Why [`pass_credentials`] and [`recv_with_credentials`] fail off Linux.
#[cfg(not(target_os = "linux"))]
fn no_datagram_credentials() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a datagram's sender credentials (SO_PASSCRED, SCM_CREDENTIALS) are Linux-only",
    )
}

/// Room for the control messages one datagram may bring: the credentials
/// (`CMSG_SPACE` of a `ucred`: 32 bytes on 64-bit Linux), and a few
/// descriptors a sender may push on us uninvited, which are closed.
#[cfg(target_os = "linux")]
const CONTROL_SPACE: usize = 64;

/// A control-message buffer aligned as a `cmsghdr`, as `recvmsg` needs.
#[cfg(target_os = "linux")]
#[repr(C)]
union Control {
    _header: libc::cmsghdr,
    bytes: [u8; CONTROL_SPACE],
}

// SAFETY: CMSG_SPACE is arithmetic on its argument.
#[cfg(target_os = "linux")]
const _: () = assert!(
    unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::ucred>() as u32) } as usize
        <= CONTROL_SPACE
);

/// Receives one datagram from `socket` (a UNIX datagram socket on which
/// [`pass_credentials`] was set) into `buf`: its length (cut to `buf`'s if
/// longer) and the credentials the kernel recorded for its sender
/// (SCM_CREDENTIALS), `None` if it brought none. A non-blocking socket
/// with nothing queued gives `WouldBlock`. Descriptors sent along
/// (SCM_RIGHTS) are closed at once.
///
/// An unprivileged sender cannot forge these: the kernel fills in its own
/// pid, uid and gid, and refuses others' unless the sender has
/// CAP_SYS_ADMIN (pid) or CAP_SETUID/CAP_SETGID (ids). The pid is `None`
/// when the sender is not visible from our PID namespace.
#[cfg(target_os = "linux")]
pub(crate) fn recv_with_credentials(
    socket: &impl AsFd,
    buf: &mut [u8],
) -> io::Result<(usize, Option<PeerCredentials>)> {
    let fd = socket.as_fd().as_raw_fd();
    let mut control = Control {
        bytes: [0; CONTROL_SPACE],
    };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a msghdr is plain integers and pointers, for which all zeros
    // (null pointers, zero lengths) is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut control as *mut Control).cast();
    msg.msg_controllen = std::mem::size_of::<Control>() as _;
    // SAFETY: `fd` is borrowed from a live socket for the call; `msg`
    // points at `iov` (which points at `buf`, `buf.len()` bytes) and at
    // `control` (`msg_controllen` bytes, aligned as a cmsghdr), all alive
    // and exclusively ours for the call; the kernel writes within those
    // lengths. MSG_CMSG_CLOEXEC: a descriptor pushed on us must not leak
    // into a process we start before it is closed below.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut sender = None;
    // SAFETY: the CMSG_* macros walk the control messages the kernel wrote
    // into `control`, within the `msg_controllen` it set (never more than
    // the buffer's size); each message's payload is read unaligned, and
    // only as far as its `cmsg_len` says it goes.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let data = libc::CMSG_DATA(cmsg);
            let len = (header.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            match (header.cmsg_level, header.cmsg_type) {
                (libc::SOL_SOCKET, libc::SCM_CREDENTIALS)
                    if len >= std::mem::size_of::<libc::ucred>() =>
                {
                    let cred = data.cast::<libc::ucred>().read_unaligned();
                    sender = Some(PeerCredentials::from(cred));
                }
                (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {
                    let fds = data.cast::<libc::c_int>();
                    for i in 0..len / std::mem::size_of::<libc::c_int>() {
                        libc::close(fds.add(i).read_unaligned());
                    }
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, sender))
}

/// Off Linux there is no SCM_CREDENTIALS: see [`pass_credentials`].
#[cfg(not(target_os = "linux"))]
pub(crate) fn recv_with_credentials(
    _socket: &impl AsFd,
    _buf: &mut [u8],
) -> io::Result<(usize, Option<PeerCredentials>)> {
    Err(no_datagram_credentials())
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

    #[test]
    fn a_datagram_brings_its_senders_credentials() {
        let (receiver, sender) = std::os::unix::net::UnixDatagram::pair().unwrap();
        pass_credentials(&receiver).unwrap();
        sender.send(b"hello").unwrap();
        let mut buf = [0u8; 3];
        let (n, cred) = recv_with_credentials(&receiver, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hel", "cut to the buffer");
        let cred = cred.expect("credentials with the datagram");
        assert_eq!(cred, PeerCredentials::of(&receiver).unwrap());
        assert_eq!(cred.pid, Some(std::process::id()));
    }

    #[test]
    fn descriptors_pushed_along_are_closed() {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        use std::io::{IoSlice, Read};
        use std::mem::MaybeUninit;
        use std::os::fd::AsFd;

        let (receiver, sender) = std::os::unix::net::UnixDatagram::pair().unwrap();
        pass_credentials(&receiver).unwrap();
        // One end of a connection, sent over and closed here: the other
        // end reads the end of input only once every copy is closed.
        let (pushed, mut watch) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [pushed.as_fd()];
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(
            &sender,
            &[IoSlice::new(b"fd")],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        drop(pushed);
        let mut buf = [0u8; 8];
        let (n, cred) = recv_with_credentials(&receiver, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"fd");
        assert_eq!(cred.and_then(|c| c.pid), Some(std::process::id()));
        watch.set_nonblocking(true).unwrap();
        assert_eq!(
            watch.read(&mut buf).expect("no copy left open"),
            0,
            "the received copy was closed"
        );
    }
}
