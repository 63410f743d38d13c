//! The threaded servers' sockets, TCP or UNIX, each behind one type: a
//! connection thread's blocking stream, and the accept loop's non-blocking
//! listener.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use mio::event::Source;
use mio::net::{TcpListener, UnixListener};
use mio::{Interest, Registry, Token};
use socket2::SockRef;

use crate::address::Address;
use crate::unix::{PeerCredentials, SocketFile};

/// A connection's socket, in blocking mode.
pub(crate) enum BlockingStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl BlockingStream {
    /// A second descriptor for the same socket.
    pub(crate) fn try_clone(&self) -> io::Result<BlockingStream> {
        match self {
            BlockingStream::Tcp(s) => s.try_clone().map(BlockingStream::Tcp),
            BlockingStream::Unix(s) => s.try_clone().map(BlockingStream::Unix),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            BlockingStream::Tcp(s) => s.shutdown(how),
            BlockingStream::Unix(s) => s.shutdown(how),
        }
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            BlockingStream::Tcp(s) => s.set_read_timeout(timeout),
            BlockingStream::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            BlockingStream::Tcp(s) => s.set_write_timeout(timeout),
            BlockingStream::Unix(s) => s.set_write_timeout(timeout),
        }
    }

    /// The socket's pending error (SO_ERROR), taken.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            BlockingStream::Tcp(s) => s.take_error(),
            BlockingStream::Unix(s) => s.take_error(),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            BlockingStream::Tcp(s) => s.local_addr().map(Address::Ip),
            BlockingStream::Unix(s) => s.local_addr().map(|a| Address::Unix((&a).into())),
        }
    }

    /// Blocking (`false`) or not: the accept loop's sockets come
    /// non-blocking, and connection threads block.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            BlockingStream::Tcp(s) => s.set_nonblocking(nonblocking),
            BlockingStream::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }

    /// TCP_NODELAY; nothing to set on a UNIX socket, which has no Nagle
    /// algorithm (as the reactor's connections).
    pub(crate) fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self {
            BlockingStream::Tcp(s) => s.set_nodelay(nodelay),
            BlockingStream::Unix(_) => Ok(()),
        }
    }

    /// Makes the coming close a reset: SO_LINGER 0 on TCP. A UNIX socket
    /// has no reset: its close makes the peer's next read fail only if
    /// input we never read is still queued (see the reactor's
    /// `Stream::reset_on_close`).
    pub(crate) fn reset_on_close(&self) {
        if let BlockingStream::Tcp(s) = self {
            let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
}

impl Read for &BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BlockingStream::Tcp(s) => (&*s).read(buf),
            BlockingStream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &BlockingStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BlockingStream::Tcp(s) => (&*s).write(buf),
            BlockingStream::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            BlockingStream::Tcp(s) => (&*s).write_vectored(bufs),
            BlockingStream::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection the accept loop took: its socket (blocking), its peer's
/// address and, for a UNIX one, its peer's credentials.
pub(crate) struct Accepted {
    pub(crate) stream: BlockingStream,
    pub(crate) peer: Address,
    pub(crate) credentials: Option<PeerCredentials>,
}

/// The accept loop's listening socket, non-blocking under its poll.
pub(crate) enum Listening {
    Tcp(TcpListener),
    Unix {
        socket: UnixListener,
        /// Kept for its `Drop`, which removes the socket file once the
        /// socket is closed (fields drop in order).
        _file: Option<SocketFile>,
    },
}

impl Listening {
    /// Accepts one connection (its socket still non-blocking).
    pub(crate) fn accept(&self) -> io::Result<Accepted> {
        let accepted = match self {
            Listening::Tcp(l) => {
                let (stream, peer) = l.accept()?;
                Accepted {
                    stream: BlockingStream::Tcp(stream.into()),
                    peer: Address::Ip(peer),
                    credentials: None,
                }
            }
            Listening::Unix { socket, .. } => {
                let (stream, peer) = socket.accept()?;
                let credentials = PeerCredentials::of(&stream).ok();
                Accepted {
                    stream: BlockingStream::Unix(stream.into()),
                    peer: Address::Unix((&peer).into()),
                    credentials,
                }
            }
        };
        Ok(accepted)
    }

    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            Listening::Tcp(l) => l.local_addr().map(Address::Ip),
            Listening::Unix { socket, .. } => {
                socket.local_addr().map(|a| Address::Unix((&a).into()))
            }
        }
    }
}

impl Source for Listening {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Listening::Tcp(l) => l.register(registry, token, interests),
            Listening::Unix { socket, .. } => socket.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Listening::Tcp(l) => l.reregister(registry, token, interests),
            Listening::Unix { socket, .. } => socket.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Listening::Tcp(l) => l.deregister(registry),
            Listening::Unix { socket, .. } => socket.deregister(registry),
        }
    }
}
