//! The blocking, thread-per-connection model, for comparison with the
//! reactor and for users coming from Python's `socketserver`.
//!
//! Two layers:
//!
//! - [`listen_tcp`] (and [`listen_unix`], on a UNIX socket) /
//!   [`ThreadedServer`] serve the reactor's own
//!   [`Factory`](crate::Factory) and [`Protocol`](crate::Protocol) objects,
//!   unchanged, one thread per connection, through a blocking
//!   [`Transport`](crate::Transport). `examples/echo_server.rs --model
//!   threads` and `examples/compare.rs` use it to put the two models side by
//!   side.
//! - [`RequestHandler`] with [`TcpServer`] / [`ThreadingTcpServer`], and
//!   [`DatagramHandler`] with [`UdpServer`] / [`ThreadingUdpServer`]:
//!   Python's `socketserver` (`setup`, `handle`, `finish`; a blocking
//!   stream, or a datagram and the socket to answer through).
//!
//! ```
//! use std::io::{Read, Write};
//! use reactor::protocols::Echo;
//! use reactor::threaded;
//!
//! let server = threaded::listen_tcp("127.0.0.1:0".parse().unwrap(), || Echo)?;
//! let mut client = std::net::TcpStream::connect(server.local_addr())?;
//! client.write_all(b"hello")?;
//! let mut reply = [0; 5];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"hello");
//! server.shutdown(); // closes the connection, joins every thread
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How the same protocol runs on threads
//!
//! An accept thread (a non-blocking listener in a mio poll, so that
//! `shutdown` can wake it) starts a thread per connection. That thread
//! builds the protocol, calls `connection_made`, then loops on a blocking
//! `read` into its own 64 KiB buffer, calling `data_received` for each read,
//! and ends with `connection_lost`, exactly once, in the reactor's order and
//! with its reasons: `PeerClosed` for the peer's FIN, `LocalClosed` after
//! `lose_connection` (our FIN, then a lingering close as in the reactor),
//! `Aborted` after `abort_connection` (SO_LINGER 0, a reset),
//! `Error { kind: ConnectionReset, .. }` and the like, and
//! [`Reason::ReactorStopped`](crate::Reason::ReactorStopped) when the server
//! shuts down.
//!
//! **Factories.** A `Box<dyn Protocol>` is not `Send`, so each protocol is
//! built on its own connection's thread; the factory is therefore shared by
//! every thread, must be `Send`, and is called under a `Mutex` (once per
//! connection). A closure `|| Echo` or `|| LineReceiver::new(handler)` is
//! such a factory; one holding `Rc` state (a `SharedFactory`, a chat room in
//! `Rc<RefCell<…>>`) is not, and is refused at compile time. `start_factory`
//! runs when listening starts, `stop_factory` once every thread has ended.
//!
//! **What differs from the reactor's transport** (each documented on
//! the trait method):
//!
//! | method | threaded behaviour |
//! |---|---|
//! | `write`, `write_vectored` | block until the kernel has every byte; an error closes the connection with it as the reason |
//! | `buffered`, `is_write_buffer_full` | always 0 and false: nothing is buffered, so `pause_producing` never runs |
//! | `set_write_watermarks` | ignored, for the same reason |
//! | `call_later`, `cancel_timer` | work: the connection's read waits no longer than its earliest timer (SO_RCVTIMEO), then `timer_fired` runs on the same thread |
//! | `set_idle_timeout`, `set_deadline` | work the same way; an idle timeout also bounds a blocked write (SO_SNDTIMEO): no progress for that long aborts the connection |
//! | `pause_reading`, `resume_reading` | honoured: the thread stops reading; only the protocol's own timers can resume it |
//! | `reactor()` | `None`: writing to other connections, connecting or stopping from a callback needs the reactor |
//!
//! **Shutdown.** [`ThreadedServer::shutdown`] (or a [`ServerHandle`] from
//! any thread) sets a flag and wakes the accept poll; the accept thread
//! returns. Every connection thread is registered with a second descriptor
//! of its socket: `shutdown(SHUT_RDWR)` on it wakes a blocked read (end of
//! file) or write (an error), and the thread gives its protocol
//! `connection_lost(ReactorStopped)`. Then every thread is joined, so none
//! is left behind.
//!
//! **Faults.** A panic in a protocol callback is caught on its thread
//! (`catch_unwind` with `AssertUnwindSafe`: the protocol that panicked is
//! the only state that may be inconsistent, and its connection is aborted
//! and it is dropped), logged with the peer's address, and reported to
//! `connection_lost` as [`Reason::Panicked`](crate::Reason::Panicked); other
//! connections and the server carry on. A connection that cannot get a
//! thread (the system's limit) is closed and logged; so is one whose
//! `build_protocol` panicked.
//!
//! **Threads.** Each connection thread gets [`DEFAULT_STACK_SIZE`] (256 KiB,
//! [`ThreadedOptions::stack_size`]) of stack rather than Rust's 2 MiB: it is
//! address space, of which only the touched pages cost memory, but 10,000
//! connections would otherwise reserve 20 GiB of it. A thread that returns
//! wakes the accept (or receive) loop, which joins it at once, so a burst
//! of connections followed by silence leaves no finished thread's stack
//! mapped. A TCP server serves at most
//! [`ThreadedOptions::max_connections`] connections (so threads) at once
//! (default [`DEFAULT_MAX_CONNECTIONS`], 1024); over that, as the reactor's
//! listener limit does, a new connection is accepted and closed at once,
//! the first refusal of a burst logged as a warning, and every one counted
//! ([`ThreadedServer::listener_stats`], [`ServerHandle::listener_stats`]).
//! A connection's slot frees when its thread ends. A
//! [`ThreadingUdpServer`] runs at most
//! [`ThreadedOptions::max_datagram_threads`] handler threads (default
//! [`DEFAULT_MAX_DATAGRAM_THREADS`], 64); past that it handles a datagram
//! on its receiving thread, and the socket's buffer (then the kernel,
//! dropping) absorbs what arrives meanwhile. A thread name holding a NUL
//! byte is refused when binding, with `InvalidInput`.

mod acceptor;
mod connection;
mod datagram_server;
mod options;
mod server;
mod state;
mod stream;
mod stream_server;
mod transport;
mod workers;

pub use self::datagram_server::{DatagramHandler, ThreadingUdpServer, UdpServer};
pub use self::options::{
    ThreadedOptions, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_DATAGRAM_THREADS, DEFAULT_STACK_SIZE,
};
pub use self::server::{listen_tcp, listen_unix, ThreadedServer};
pub use self::state::ServerHandle;
pub use self::stream_server::{RequestHandler, TcpServer, ThreadingTcpServer};
