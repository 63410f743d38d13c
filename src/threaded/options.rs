//! Settings shared by every threaded server.

use std::io;

/// Thread and socket settings for the threaded servers
/// ([`ThreadedServer`](super::ThreadedServer), [`ThreadingTcpServer`](super::ThreadingTcpServer)
/// and the others).
#[derive(Debug, Clone)]
pub struct ThreadedOptions {
    /// Pending connections the kernel queues before `accept` (default 1024,
    /// as the reactor's).
    pub backlog: i32,
    /// Stack size of each worker thread (default [`DEFAULT_STACK_SIZE`]).
    pub stack_size: usize,
    /// Name of the worker threads, as `top -H` shows them (at most 15 bytes
    /// survive on Linux); the accept loop's thread of a
    /// [`ThreadedServer`](super::ThreadedServer) is `NAME-accept`. A name
    /// holding a NUL byte is refused when binding (`InvalidInput`).
    pub thread_name: String,
    /// Bytes each connection thread reads at once (default 64 KiB, the
    /// reactor's read size).
    pub read_buffer: usize,
    /// Most datagrams a [`ThreadingUdpServer`](super::ThreadingUdpServer)
    /// handles on threads of their own at once (default
    /// [`DEFAULT_MAX_DATAGRAM_THREADS`]; `None`: no limit, as Python's
    /// `ThreadingUDPServer`). At the limit, the next datagram is handled on
    /// the receiving thread itself, which receives nothing meanwhile: later
    /// datagrams wait in the socket's receive buffer, and the kernel drops
    /// what does not fit, as UDP allows. `Some(0)` handles every datagram
    /// on the receiving thread, as [`UdpServer`](super::UdpServer) does.
    /// The TCP servers ignore it: a connection cannot wait in a buffer.
    pub max_datagram_threads: Option<usize>,
    /// Most connections a [`ThreadedServer`](super::ThreadedServer) or
    /// [`ThreadingTcpServer`](super::ThreadingTcpServer) serves at once,
    /// which is most connection threads (default
    /// [`DEFAULT_MAX_CONNECTIONS`]; `None`: no limit). A connection counts
    /// until its thread ends, lingering close included. Over the limit, a
    /// new connection is accepted and closed at once, as the reactor's
    /// [`ListenOptions::max_connections`](crate::ListenOptions::max_connections)
    /// does: the client reads end-of-file at once rather than waiting in
    /// the backlog, the first refusal of a burst is logged as a warning
    /// (the rest at debug), and every one is counted
    /// ([`ThreadedServer::listener_stats`](super::ThreadedServer::listener_stats)).
    /// A [`TcpServer`](super::TcpServer) serves one connection at a time
    /// and never reaches a limit above 0.
    pub max_connections: Option<usize>,
    /// For a server on a UNIX socket path ([`listen_unix`](super::listen_unix)):
    /// the socket file's permission bits, set before the socket listens,
    /// as the reactor's [`ListenOptions::file_mode`](crate::ListenOptions::file_mode).
    /// `None` (the default): `0o777` less the process's umask.
    pub file_mode: Option<u32>,
}

/// Default bound on the connections (so threads) a threaded TCP server
/// serves at once: 1024. Each costs a thread: [`DEFAULT_STACK_SIZE`] of
/// address space (256 MiB for 1024), and, as the `compare` example measures, about
/// 22 KiB of RSS and 25 KiB of kernel stack and task, so 1024 connections
/// take about 50 MiB. On a two-core machine, a thousand runnable threads
/// already cost several times the reactor's CPU per message; past that a
/// flood of clients would start threads until the process or container
/// limit (`ulimit -u`, `pids.max`) refuses, failing other work of the
/// process too. 1024 is also the default listen backlog. A server that
/// needs more connections sets its own limit, or uses the reactor.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Default bound on a [`ThreadingUdpServer`](super::ThreadingUdpServer)'s
/// handler threads: 64. Without one, a flood of datagrams to handlers that
/// block starts a thread per datagram until the system refuses (each with
/// [`DEFAULT_STACK_SIZE`] of address space); 64 threads keep 64 handlers
/// blocking at once, and past that the socket buffer absorbs the burst.
pub const DEFAULT_MAX_DATAGRAM_THREADS: usize = 64;

/// Default worker stack: 256 KiB. Rust's default is 2 MiB; a protocol
/// callback needs a few KiB, and printing a panic's backtrace
/// (`RUST_BACKTRACE=full`, which symbolizes it on the panicking thread)
/// needs between 32 and 64 KiB in a debug build (it overflows 32 KiB), so
/// this leaves a wide margin. The stack is reserved address space: only the
/// pages a thread touches count in its memory, so this mostly bounds the
/// address space 10,000 threads take (2.5 GiB rather than 20 GiB).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

impl Default for ThreadedOptions {
    fn default() -> Self {
        ThreadedOptions {
            backlog: 1024,
            stack_size: DEFAULT_STACK_SIZE,
            thread_name: "threaded".to_string(),
            read_buffer: 64 * 1024,
            max_datagram_threads: Some(DEFAULT_MAX_DATAGRAM_THREADS),
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
            file_mode: None,
        }
    }
}

impl ThreadedOptions {
    /// Refuses what would make starting a thread panic later, once the
    /// server runs: a thread name holding a NUL byte.
    pub(crate) fn check(&self) -> io::Result<()> {
        if self.thread_name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("thread name {:?} contains a NUL byte", self.thread_name),
            ));
        }
        Ok(())
    }
}
