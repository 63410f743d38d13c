//! `socketserver`-style UDP servers: a [`DatagramHandler`] gets one datagram,
//! its sender's address and the server's socket to answer through, handled
//! one at a time ([`UdpServer`]) or each on a thread of its own
//! ([`ThreadingUdpServer`], up to a bound on its threads). Python's
//! `socketserver.UDPServer` and `ThreadingUDPServer`, whose handlers find
//! the same three things in `self.request` and `self.client_address`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use log::{debug, error, warn};

use super::options::ThreadedOptions;
use super::state::{ServerHandle, ServerState, Waiter};
use super::stream_server::report;

/// Larger than the largest UDP payload (65,507 bytes over IPv4), so no
/// datagram is truncated (Python's `max_packet_size` is 8192).
const DATAGRAM_BUFFER: usize = 64 * 1024;

/// What serves one datagram, as Python's `BaseRequestHandler` under a UDP
/// server. A new handler is made for every datagram; `setup`, then (if it
/// succeeded) `handle` and `finish` run in order. Errors and panics are
/// logged with the client's address and end this datagram's handling only.
pub trait DatagramHandler {
    /// Prepares for `handle`; does nothing by default.
    fn setup(&mut self, client: SocketAddr) -> io::Result<()> {
        let _ = client;
        Ok(())
    }

    /// Serves one datagram: `data` is the whole datagram (possibly empty),
    /// `socket` the server's own socket, to answer with
    /// `socket.send_to(reply, client)`. The socket is non-blocking: a send
    /// that finds its buffer full fails with `WouldBlock` (the datagram is
    /// dropped, as UDP allows) rather than stalling the server.
    fn handle(&mut self, data: &[u8], client: SocketAddr, socket: &UdpSocket) -> io::Result<()>;

    /// Cleans up after `handle`; does nothing by default.
    fn finish(&mut self, client: SocketAddr) -> io::Result<()> {
        let _ = client;
        Ok(())
    }
}

/// A bound UDP socket and the poll its receive loop waits in.
struct Receiver {
    socket: Arc<UdpSocket>,
    /// A second descriptor of the same socket, registered with the poll;
    /// `socket` is the one read and handed to handlers.
    _registered: mio::net::UdpSocket,
    waiter: Waiter,
    addr: SocketAddr,
}

impl Receiver {
    fn bind(
        addr: SocketAddr,
        options: &ThreadedOptions,
    ) -> io::Result<(Receiver, Arc<ServerState>)> {
        options.check()?;
        let socket = UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let mut registered = mio::net::UdpSocket::from_std(socket.try_clone()?);
        let (waiter, state) = Waiter::new(&mut registered, options)?;
        let receiver = Receiver {
            socket: Arc::new(socket),
            _registered: registered,
            waiter,
            addr,
        };
        Ok((receiver, state))
    }

    /// Receives datagrams until `state` stops, handing each to `serve`.
    /// Finished workers are joined whenever the loop wakes, and a worker
    /// wakes it when it returns.
    fn run(
        &mut self,
        state: &ServerState,
        mut serve: impl FnMut(&[u8], SocketAddr, &Arc<UdpSocket>),
    ) {
        let mut buf = vec![0; DATAGRAM_BUFFER];
        while !state.is_stopping() {
            if let Err(e) = self.waiter.wait(None) {
                error!(
                    "waiting for datagrams on {} failed: {e}; no longer serving",
                    self.addr
                );
                return;
            }
            state.workers.reap();
            while !state.is_stopping() {
                match self.socket.recv_from(&mut buf) {
                    Ok((n, client)) => {
                        serve(&buf[..n], client, &self.socket);
                        state.workers.reap();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // An ICMP error for an earlier send, or a signal: go on.
                    Err(e) => debug!("receive on {} failed: {e}", self.addr),
                }
            }
        }
    }
}

/// Python's `socketserver.UDPServer`: handles one datagram at a time on the
/// thread that calls [`serve_forever`](UdpServer::serve_forever).
pub struct UdpServer<F> {
    receiver: Receiver,
    state: Arc<ServerState>,
    make_handler: F,
}

impl<F, H> UdpServer<F>
where
    F: FnMut() -> H,
    H: DatagramHandler,
{
    /// Binds a UDP socket to `addr` (port 0 picks a free port).
    pub fn bind(addr: SocketAddr, make_handler: F) -> io::Result<Self> {
        let (receiver, state) = Receiver::bind(addr, &ThreadedOptions::default())?;
        Ok(UdpServer {
            receiver,
            state,
            make_handler,
        })
    }

    /// The bound address, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.receiver.addr
    }

    /// A handle that stops [`serve_forever`](UdpServer::serve_forever) from
    /// another thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle::new(Arc::clone(&self.state))
    }

    /// Receives and handles datagrams until shut down.
    pub fn serve_forever(mut self) {
        let state = Arc::clone(&self.state);
        let make_handler = &mut self.make_handler;
        self.receiver.run(&state, |data, client, socket| {
            process_datagram(make_handler, data, client, socket);
        });
        state.stop();
    }
}

/// Python's `socketserver.ThreadingUDPServer`: every datagram is handled
/// on a thread of its own (copied there), by a handler made on that thread.
/// A thread per datagram is what Python does; it costs a thread start
/// (tens of microseconds) per datagram, so it suits handlers that block.
///
/// Unlike Python's, the threads are bounded:
/// [`ThreadedOptions::max_datagram_threads`] (default
/// [`DEFAULT_MAX_DATAGRAM_THREADS`](super::DEFAULT_MAX_DATAGRAM_THREADS),
/// 64) handlers run on threads at once. At the limit, the next datagram is
/// handled on the receiving thread itself, and nothing is received until it
/// is done: later datagrams wait in the socket's receive buffer, and what
/// does not fit there is dropped by the kernel. That is the back-pressure,
/// rather than a thread per datagram until the system refuses one.
/// Shutting down waits for every handler, the one on the receiving thread
/// included, to return.
pub struct ThreadingUdpServer<F> {
    receiver: Receiver,
    state: Arc<ServerState>,
    make_handler: Arc<F>,
    max_threads: Option<usize>,
}

impl<F, H> ThreadingUdpServer<F>
where
    F: Fn() -> H + Send + Sync + 'static,
    H: DatagramHandler,
{
    /// Binds a UDP socket to `addr` (port 0 picks a free port), with
    /// default [`ThreadedOptions`].
    pub fn bind(addr: SocketAddr, make_handler: F) -> io::Result<Self> {
        Self::bind_with(addr, make_handler, ThreadedOptions::default())
    }

    /// [`bind`](ThreadingUdpServer::bind) with explicit options (thread
    /// stack size and name, and the bound on handler threads). A thread
    /// name holding a NUL byte is refused (`InvalidInput`).
    pub fn bind_with(
        addr: SocketAddr,
        make_handler: F,
        options: ThreadedOptions,
    ) -> io::Result<Self> {
        let (receiver, state) = Receiver::bind(addr, &options)?;
        Ok(ThreadingUdpServer {
            receiver,
            state,
            make_handler: Arc::new(make_handler),
            max_threads: options.max_datagram_threads,
        })
    }

    /// The bound address, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.receiver.addr
    }

    /// A handle that stops [`serve_forever`](ThreadingUdpServer::serve_forever)
    /// from another thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle::new(Arc::clone(&self.state))
    }

    /// Receives datagrams, each handled on a new thread (or, with
    /// `max_datagram_threads` handlers already running, on this one), until
    /// shut down; then waits for the handler threads to return.
    pub fn serve_forever(mut self) {
        let state = Arc::clone(&self.state);
        let make_handler = &self.make_handler;
        let max_threads = self.max_threads;
        self.receiver.run(&state, |data, client, socket| {
            // Only this thread starts workers, so the count cannot grow
            // between the check and the spawn; it only shrinks.
            if max_threads.is_some_and(|max| state.workers.live() >= max) {
                process_datagram(&mut || make_handler(), data, client, socket);
                return;
            }
            let data = data.to_vec();
            let socket = Arc::clone(socket);
            let make_handler = Arc::clone(make_handler);
            let spawned = state.workers.spawn(None, move |_| {
                process_datagram(&mut || make_handler(), &data, client, &socket);
            });
            if let Err(e) = spawned {
                warn!("datagram from {client} dropped: cannot start its thread: {e}");
            }
        });
        state.stop();
        state.workers.join_all();
    }
}

/// Makes a handler and runs `setup`, `handle` and `finish` for one datagram.
fn process_datagram<H: DatagramHandler>(
    make_handler: &mut impl FnMut() -> H,
    data: &[u8],
    client: SocketAddr,
    socket: &UdpSocket,
) {
    let mut handler = match crate::panic::catch(&mut *make_handler) {
        Ok(handler) => handler,
        Err(why) => {
            error!("{client}: making the datagram handler panicked: {why}");
            return;
        }
    };
    if report(
        client,
        "setup",
        crate::panic::catch(|| handler.setup(client)),
    ) {
        report(
            client,
            "handle",
            crate::panic::catch(|| handler.handle(data, client, socket)),
        );
        report(
            client,
            "finish",
            crate::panic::catch(|| handler.finish(client)),
        );
    }
    // A handler's `Drop` is user code too: on a one-at-a-time server, a
    // panic in it would otherwise end `serve_forever`.
    crate::panic::drop_caught(handler, "a datagram handler");
}
