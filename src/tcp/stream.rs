//! A connection's socket, and a listener's, TCP or UNIX, each behind one
//! type, so that the
//! connection machinery (reads, the write path, flow control, closes,
//! lingering, timeouts, the TLS layer) serves both. Each call is a match on
//! two variants: no allocation, no extra system call.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use socket2::SockRef;

use super::peer::Peer;
use crate::address::Address;
use crate::unix::{PeerCredentials, SocketFile};

/// A connected (or connecting) stream socket.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Shuts down one or both directions (our FIN, for `Shutdown::Write`).
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// The socket's pending error (SO_ERROR), taken.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Unix(s) => s.take_error(),
        }
    }

    /// Our end's address.
    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(Address::Ip),
            Stream::Unix(s) => s.local_addr().map(|a| Address::Unix((&a).into())),
        }
    }

    /// Whether a connect has completed: `NotConnected` while it is still
    /// under way (the peer's address is known exactly once it is).
    pub(crate) fn check_connected(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(drop),
            Stream::Unix(s) => s.peer_addr().map(drop),
        }
    }

    /// TCP_NODELAY. A UNIX socket has no Nagle algorithm (what is written
    /// is queued for the peer at once), so there is nothing to set: `Ok`.
    pub(crate) fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(nodelay),
            Stream::Unix(_) => Ok(()),
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

impl Read for &Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

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
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
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
