//! Listening sockets passed to this process by socket activation: systemd's
//! `LISTEN_FDS`/`LISTEN_PID` protocol (`sd_listen_fds(3)`), which
//! [`crate::restart`] speaks too when it hands sockets to a new process.
//!
//! The rules, as `sd_listen_fds(unset_environment = 0)` applies them:
//! - The sockets are descriptors 3, 4, … (`LISTEN_FDS` of them), and they
//!   are this process's only if `LISTEN_PID` is its pid (otherwise they
//!   were meant for a parent, and are left alone).
//! - They are taken once, when an endpoint first asks: each is made
//!   close-on-exec (a program this one starts does not inherit them
//!   unasked). The variables are left as they are: removing them would
//!   write the environment while other threads (a resolver in
//!   `getaddrinfo`) may read it, which C's `getenv` does not guard, and a
//!   child cannot mistake them for its own since `LISTEN_PID` names this
//!   process, not the child.
//! - Each socket is claimed by at most one endpoint: by index
//!   (`systemd:N`), or by the address it is bound to (a `tcp:`, `tls:` or
//!   `unix:` endpoint that would bind that address takes it instead, as
//!   nginx and gunicorn reuse inherited sockets; a port of 0 takes any port
//!   on the same address). What is never claimed stays open, unused.

use std::io;
use std::mem::ManuallyDrop;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError};

use log::{debug, warn};
use socket2::{Domain, Socket, Type};

use crate::address::UnixAddress;

/// The first descriptor socket activation passes.
pub(crate) const LISTEN_FDS_START: RawFd = 3;
/// How many sockets were passed.
pub(crate) const LISTEN_FDS: &str = "LISTEN_FDS";
/// The most inherited sockets taken: far more than any service listens on,
/// and small enough that a wrong `LISTEN_FDS` cannot make the start look
/// at billions of descriptors (each costs a few system calls and a slot).
const MAX_LISTEN_FDS: RawFd = 1024;
/// The pid they were passed to.
pub(crate) const LISTEN_PID: &str = "LISTEN_PID";
/// Their names (systemd's `FileDescriptorName=`); a successor is started without them.
pub(crate) const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";

/// What this process inherited, once taken from the environment.
enum Inherited {
    /// Not looked at yet.
    Unread,
    /// What each passed descriptor is now, by index.
    Taken(Vec<Passed>),
    /// None were passed to this process: why, for `systemd:N`'s error.
    NoneFor(String),
}

/// One descriptor passed by socket activation.
enum Passed {
    /// A listening socket no endpoint has claimed yet.
    Ready(Socket),
    /// Claimed by an endpoint.
    Claimed,
    /// Not a listening stream socket: why, for `systemd:N`'s error.
    Unusable(String),
}

static INHERITED: Mutex<Inherited> = Mutex::new(Inherited::Unread);

/// Takes the inherited sockets from the environment if not done yet, then
/// runs `f` on them.
fn with_inherited<T>(f: impl FnOnce(&mut Inherited) -> T) -> T {
    let mut inherited = INHERITED.lock().unwrap_or_else(PoisonError::into_inner);
    if matches!(*inherited, Inherited::Unread) {
        *inherited = read_environment();
    }
    f(&mut inherited)
}

/// `sd_listen_fds(0)`: reads the variables, and takes the descriptors if
/// they are this process's.
fn read_environment() -> Inherited {
    let pid = std::env::var(LISTEN_PID).ok();
    let fds = std::env::var(LISTEN_FDS).ok();
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Inherited::NoneFor(
            "no socket was passed to this process (LISTEN_FDS and LISTEN_PID are not both set: \
             start it from a systemd socket unit or with systemd-socket-activate)"
                .into(),
        );
    };
    let me = std::process::id();
    if pid.trim().parse::<u32>().ok() != Some(me) {
        return Inherited::NoneFor(format!(
            "the sockets passed (LISTEN_FDS={fds}) were meant for process {pid} (LISTEN_PID), \
             not this one ({me})"
        ));
    }
    let count: RawFd = match fds.trim().parse() {
        Ok(n) if (0..=MAX_LISTEN_FDS).contains(&n) => n,
        Ok(n) if n > MAX_LISTEN_FDS => {
            return Inherited::NoneFor(format!(
                "LISTEN_FDS={n} is more sockets than the {MAX_LISTEN_FDS} this process takes"
            ))
        }
        _ => return Inherited::NoneFor(format!("LISTEN_FDS={fds:?} is not a count of sockets")),
    };
    let passed = (LISTEN_FDS_START..LISTEN_FDS_START + count)
        .map(|fd| match adopt(fd) {
            Ok(socket) => {
                debug!(
                    "inherited listening socket {} (descriptor {fd})",
                    describe(&socket)
                );
                Passed::Ready(socket)
            }
            Err(why) => {
                warn!("descriptor {fd} passed by LISTEN_FDS cannot be used: {why}");
                Passed::Unusable(why)
            }
        })
        .collect();
    Inherited::Taken(passed)
}

/// Takes ownership of descriptor `fd` if it is a listening stream socket,
/// made close-on-exec; anything else is left open and untouched (it is not
/// ours to close: a wrong `LISTEN_FDS` could name the process's own files).
fn adopt(fd: RawFd) -> Result<Socket, String> {
    // SAFETY: `LISTEN_PID` named this process, so descriptors 3.. were
    // passed to it for this purpose and nothing else in the process owns
    // them (the protocol's premise; `sd_listen_fds` does the same). Until
    // checked, the socket is not dropped: closing is left to the owner.
    let socket = ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd) });
    let check = || -> io::Result<Result<(), String>> {
        if socket.r#type()? != Type::STREAM {
            return Ok(Err("not a stream socket".into()));
        }
        if !socket.is_listener()? {
            return Ok(Err("not listening".into()));
        }
        let domain = socket.domain()?;
        if ![Domain::IPV4, Domain::IPV6, Domain::UNIX].contains(&domain) {
            return Ok(Err(format!("a socket of family {domain:?}")));
        }
        socket.set_cloexec(true)?;
        Ok(Ok(()))
    };
    match check() {
        Ok(Ok(())) => Ok(ManuallyDrop::into_inner(socket)),
        Ok(Err(why)) => Err(why),
        Err(e) => Err(format!("not a usable socket: {e}")),
    }
}

/// A socket's bound address, for logs.
fn describe(socket: &Socket) -> String {
    match local(socket) {
        Some(Bound::Ip(addr)) => addr.to_string(),
        Some(Bound::Unix(addr)) => addr.to_string(),
        None => "(address unknown)".into(),
    }
}

/// Where an inherited socket is bound.
pub(crate) enum Bound {
    Ip(SocketAddr),
    Unix(UnixAddress),
}

/// Where `socket` is bound, by its family (`getsockname`).
pub(crate) fn local(socket: &Socket) -> Option<Bound> {
    let addr = socket.local_addr().ok()?;
    if let Some(ip) = addr.as_socket() {
        return Some(Bound::Ip(ip));
    }
    UnixAddress::from_sockaddr(&addr).map(Bound::Unix)
}

/// Claims inherited socket `index` (`systemd:INDEX`).
pub(crate) fn take_index(index: usize) -> io::Result<Socket> {
    with_inherited(|inherited| match inherited {
        Inherited::Unread => unreachable!("read by with_inherited"),
        Inherited::NoneFor(why) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("systemd:{index}: {why}"),
        )),
        Inherited::Taken(passed) => {
            let count = passed.len();
            let unavailable = |why: &str| {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("systemd:{index} (descriptor {}): {why}", fd_of(index)),
                )
            };
            match passed.get_mut(index) {
                Some(slot) => match std::mem::replace(slot, Passed::Claimed) {
                    Passed::Ready(socket) => Ok(socket),
                    Passed::Claimed => Err(unavailable("claimed already by another endpoint")),
                    Passed::Unusable(why) => {
                        let error = unavailable(&why);
                        *slot = Passed::Unusable(why);
                        Err(error)
                    }
                },
                None => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "systemd:{index}: only {count} socket{} passed (LISTEN_FDS={count}; \
                         the first is systemd:0)",
                        if count == 1 { " was" } else { "s were" }
                    ),
                )),
            }
        }
    })
}

/// The descriptor socket `index` arrived on.
fn fd_of(index: usize) -> RawFd {
    LISTEN_FDS_START + index as RawFd
}

/// Claims the first unclaimed inherited IP socket bound to `ip` and `port`
/// (any port when `port` is 0), if one was passed.
pub(crate) fn take_ip(ip: IpAddr, port: u16) -> Option<Socket> {
    take_matching(|bound| match bound {
        Bound::Ip(addr) => addr.ip() == ip && (port == 0 || addr.port() == port),
        Bound::Unix(_) => false,
    })
}

/// Claims the first unclaimed inherited UNIX socket bound to `path`.
pub(crate) fn take_unix(path: &UnixAddress) -> Option<Socket> {
    take_matching(|bound| matches!(bound, Bound::Unix(p) if p == path))
}

fn take_matching(wanted: impl Fn(&Bound) -> bool) -> Option<Socket> {
    with_inherited(|inherited| {
        let Inherited::Taken(passed) = inherited else {
            return None;
        };
        let slot = passed.iter_mut().find(|p| match p {
            Passed::Ready(socket) => local(socket).is_some_and(|b| wanted(&b)),
            Passed::Claimed | Passed::Unusable(_) => false,
        })?;
        match std::mem::replace(slot, Passed::Claimed) {
            Passed::Ready(socket) => Some(socket),
            Passed::Claimed | Passed::Unusable(_) => None,
        }
    })
}

/// An inherited socket as the owned descriptor the listeners take.
pub(crate) fn into_fd(socket: Socket) -> OwnedFd {
    socket.into()
}
