//! What a connection reads and writes: a TCP or UNIX socket, or the
//! process's standard input and output ([`Reactor::open_stdio`](crate::Reactor::open_stdio));
//! and what a listener accepts on: a TCP or UNIX socket. Everything above
//! this (buffering, flow control, closes, lingering, timeouts, the TLS
//! layer) is the same for all of them; only what differs at the descriptor
//! is here, a match per call: no allocation, no extra system call.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use socket2::SockRef;

use super::peer::Peer;
use crate::address::Address;
use crate::reactor::interest;
use crate::stdio::Pipes;
use crate::unix::{PeerCredentials, SocketFile};

/// A connection's descriptors.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Boxed: stdin and stdout with their saved flags are larger than a
    /// socket, and there is at most one such connection.
    Stdio(Box<Pipes>),
}

/// How a connection learns that it may write again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteWatch {
    /// The poll says so (WRITABLE interest, or a registration that has it).
    Polled,
    /// Nothing will say so (a regular file as stdout, which epoll cannot
    /// watch): bytes left after a flush are retried from the leftover queue.
    Retried,
}

impl Stream {
    /// Asks the poll to report writability exactly while `want` holds.
    /// Stdout stays registered for it throughout (its edges while nothing
    /// waits are ignored), so there is nothing to change.
    pub(crate) fn watch_writes(
        &mut self,
        registry: &Registry,
        token: Token,
        want: bool,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => registry.reregister(s, token, interest(want)),
            Stream::Unix(s) => registry.reregister(s, token, interest(want)),
            Stream::Stdio(_) => Ok(()),
        }
    }

    /// How the connection learns that it may write again.
    pub(crate) fn write_watch(&self) -> WriteWatch {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => WriteWatch::Polled,
            Stream::Stdio(pipes) => pipes.write_watch(),
        }
    }

    /// Ends our writing direction: a FIN, or stdout closed.
    pub(crate) fn shutdown_write(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
            Stream::Stdio(pipes) => pipes.close_output(registry),
        }
    }

    /// Shuts down one or both directions of a socket (our FIN, for
    /// `Shutdown::Write`); pipes are closed by [`Pipes::close`] instead.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
            Stream::Stdio(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// A pending socket error (SO_ERROR), taken; pipes have none to report.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Unix(s) => s.take_error(),
            Stream::Stdio(_) => Ok(None),
        }
    }

    /// Our end's address.
    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(Address::Ip),
            Stream::Unix(s) => s.local_addr().map(|a| Address::Unix((&a).into())),
            Stream::Stdio(_) => Ok(Address::Pipe),
        }
    }

    /// Whether a connect has completed: `NotConnected` while it is still
    /// under way (the peer's address is known exactly once it is).
    pub(crate) fn check_connected(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(drop),
            Stream::Unix(s) => s.peer_addr().map(drop),
            Stream::Stdio(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// TCP_NODELAY. A UNIX socket has no Nagle algorithm (what is written
    /// is queued for the peer at once), nor has a pipe: nothing to set, `Ok`.
    pub(crate) fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(nodelay),
            Stream::Unix(_) | Stream::Stdio(_) => Ok(()),
        }
    }

    /// Copies what the socket has received into `buf` without taking it
    /// (MSG_PEEK): the next read returns the same bytes. Pipes cannot.
    pub(crate) fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.peek(buf),
            Stream::Unix(s) => match rustix::net::recv(s, buf, rustix::net::RecvFlags::PEEK) {
                Ok((received, _)) => Ok(received),
                Err(e) => Err(e.into()),
            },
            Stream::Stdio(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// Makes the coming close a reset, so the peer sees an error rather
    /// than a clean end of stream: SO_LINGER 0 on TCP (an RST). A UNIX
    /// socket has no reset and no lingering to turn off: its close is a
    /// reset for the peer (ECONNRESET on its next read, after what it has
    /// not read yet) only when input we never read is still queued on our
    /// side; otherwise the peer reads end-of-file. Nothing to set, then.
    pub(crate) fn reset_on_close(&self) {
        if let Stream::Tcp(s) = self {
            let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Stream {
        Stream::Tcp(stream)
    }
}

impl Read for &Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Stdio(pipes) => pipes.read(buf),
        }
    }
}

impl Write for &Stream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
            Stream::Stdio(pipes) => pipes.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A socket's registration; pipes register themselves ([`Pipes::open`]),
/// and answer `Unsupported` here.
impl Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interests),
            Stream::Unix(s) => s.register(registry, token, interests),
            Stream::Stdio(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interests),
            Stream::Unix(s) => s.reregister(registry, token, interests),
            Stream::Stdio(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
            Stream::Stdio(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }
}

/// A listening socket, TCP or UNIX.
pub(crate) enum ListeningSocket {
    Tcp(TcpListener),
    Unix {
        socket: UnixListener,
        /// Its socket file, if it has one: kept for its `Drop`, which
        /// removes the file once the socket is closed (fields drop in
        /// order). Boxed: a slot is as large as its largest source.
        _file: Option<Box<SocketFile>>,
    },
}

impl ListeningSocket {
    /// Accepts one connection: its socket and its peer. A UNIX peer's
    /// credentials are read now, once (they cannot change).
    pub(crate) fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            ListeningSocket::Tcp(l) => {
                let (stream, addr) = l.accept()?;
                Ok((Stream::Tcp(stream), Peer::Ip(addr)))
            }
            ListeningSocket::Unix { socket: l, .. } => {
                let (stream, addr) = l.accept()?;
                let credentials = PeerCredentials::of(&stream).ok();
                Ok((
                    Stream::Unix(stream),
                    Peer::unix((&addr).into(), credentials),
                ))
            }
        }
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            ListeningSocket::Tcp(l) => l.local_addr().map(Address::Ip),
            ListeningSocket::Unix { socket: l, .. } => {
                l.local_addr().map(|a| Address::Unix((&a).into()))
            }
        }
    }
}

impl Source for ListeningSocket {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            ListeningSocket::Tcp(l) => l.register(registry, token, interests),
            ListeningSocket::Unix { socket: l, .. } => l.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            ListeningSocket::Tcp(l) => l.reregister(registry, token, interests),
            ListeningSocket::Unix { socket: l, .. } => l.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            ListeningSocket::Tcp(l) => l.deregister(registry),
            ListeningSocket::Unix { socket: l, .. } => l.deregister(registry),
        }
    }
}
