//! What a connection reads and writes: a TCP socket, or the process's
//! standard input and output ([`Reactor::open_stdio`](crate::Reactor::open_stdio)).
//! Everything above this (buffering, flow control, closes) is the same for
//! both; only what differs at the descriptor is here.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::TcpStream;
use mio::{Registry, Token};

use crate::address::Address;
use crate::reactor::interest;
use crate::stdio::Pipes;

/// A connection's descriptors.
pub(crate) enum Stream {
    Tcp(TcpStream),
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
            Stream::Tcp(stream) => registry.reregister(stream, token, interest(want)),
            Stream::Stdio(_) => Ok(()),
        }
    }

    /// How the connection learns that it may write again.
    pub(crate) fn write_watch(&self) -> WriteWatch {
        match self {
            Stream::Tcp(_) => WriteWatch::Polled,
            Stream::Stdio(pipes) => pipes.write_watch(),
        }
    }

    /// A pending socket error (`SO_ERROR`); pipes have none to report.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(stream) => stream.take_error(),
            Stream::Stdio(_) => Ok(None),
        }
    }

    /// The peer's address, which a connect under way does not have yet.
    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Tcp(stream) => stream.peer_addr(),
            Stream::Stdio(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            Stream::Tcp(stream) => stream.local_addr().map(Address::Ip),
            Stream::Stdio(_) => Ok(Address::Pipe),
        }
    }

    /// Turns Nagle's algorithm off or on; a pipe has none, so that is done.
    pub(crate) fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_nodelay(nodelay),
            Stream::Stdio(_) => Ok(()),
        }
    }

    /// Ends our writing direction: a FIN, or stdout closed.
    pub(crate) fn shutdown_write(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.shutdown(Shutdown::Write),
            Stream::Stdio(pipes) => pipes.close_output(registry),
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Stream {
        Stream::Tcp(stream)
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => (&*stream).read(buf),
            Stream::Stdio(pipes) => pipes.read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => (&*stream).write(buf),
            Stream::Stdio(pipes) => pipes.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
