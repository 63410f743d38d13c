//! `socketserver`-style TCP servers: a [`RequestHandler`] with `setup`,
//! `handle` and `finish` gets the blocking stream of one connection, served
//! one at a time ([`TcpServer`]) or each on a thread of its own
//! ([`ThreadingTcpServer`]). Python's `socketserver.TCPServer` and
//! `ThreadingTCPServer`.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;

use log::{debug, error, warn};

use super::acceptor::Acceptor;
use super::options::ThreadedOptions;
use super::state::{ServerHandle, ServerState};
use super::stream::BlockingStream;
use crate::address::Address;

/// What serves one connection, as Python's `BaseRequestHandler`.
///
/// A new handler is made for every connection. The server calls `setup`;
/// if it succeeds, `handle`, then `finish` whether `handle` failed or not;
/// then it shuts the stream's writing side and closes it. An error
/// returned from any of them is logged with the client's address, and a
/// panic is caught and logged: either ends this connection only.
pub trait RequestHandler {
    /// Prepares for `handle` (Python's `setup`); does nothing by default.
    fn setup(&mut self, request: &mut TcpStream, client: SocketAddr) -> io::Result<()> {
        let _ = (request, client);
        Ok(())
    }

    /// Serves the connection: reads requests from `request` and writes
    /// answers to it, blocking as long as it likes (Python's `handle`).
    /// A read returns end-of-file when the server shuts down.
    fn handle(&mut self, request: &mut TcpStream, client: SocketAddr) -> io::Result<()>;

    /// Cleans up after `handle` (Python's `finish`); does nothing by default.
    fn finish(&mut self, request: &mut TcpStream, client: SocketAddr) -> io::Result<()> {
        let _ = (request, client);
        Ok(())
    }
}

/// Python's `socketserver.TCPServer`: serves one connection at a time, on the
/// thread that calls [`serve_forever`](TcpServer::serve_forever); the next
/// client waits in the listen backlog until the current one is done.
pub struct TcpServer<F> {
    acceptor: Acceptor,
    state: Arc<ServerState>,
    make_handler: F,
}

impl<F, H> TcpServer<F>
where
    F: FnMut() -> H,
    H: RequestHandler,
{
    /// Binds and listens on `addr` (port 0 picks a free port); `make_handler`
    /// makes the handler for each connection.
    pub fn bind(addr: SocketAddr, make_handler: F) -> io::Result<Self> {
        Self::bind_with(addr, make_handler, ThreadedOptions::default())
    }

    /// [`bind`](TcpServer::bind) with explicit options (only the backlog
    /// matters here: no thread is started; a thread name holding a NUL
    /// byte is still refused, with `InvalidInput`).
    pub fn bind_with(
        addr: SocketAddr,
        make_handler: F,
        options: ThreadedOptions,
    ) -> io::Result<Self> {
        let (acceptor, state) = Acceptor::bind(addr, &options)?;
        Ok(TcpServer {
            acceptor,
            state,
            make_handler,
        })
    }

    /// The bound address, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr()
    }

    /// A handle that stops [`serve_forever`](TcpServer::serve_forever) from
    /// another thread (Python's `server.shutdown()`); the connection being
    /// served is shut down too, so its handler's reads see end-of-file.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle::new(Arc::clone(&self.state))
    }

    /// Accepts and serves connections, one at a time, until shut down.
    pub fn serve_forever(mut self) {
        let state = Arc::clone(&self.state);
        let make_handler = &mut self.make_handler;
        self.acceptor.run(&state, |accepted| {
            // A TcpServer binds TCP only.
            let (BlockingStream::Tcp(stream), Address::Ip(client)) =
                (accepted.stream, accepted.peer)
            else {
                return;
            };
            let wake = match stream.try_clone() {
                Ok(wake) => wake,
                Err(e) => {
                    warn!("connection from {client} dropped: {e}");
                    return;
                }
            };
            let Ok(id) = state.workers.track(Some(BlockingStream::Tcp(wake))) else {
                debug!("connection from {client} dropped: shutting down");
                return;
            };
            process_request(make_handler, stream, client);
            state.workers.untrack(id);
        });
        state.stop();
    }
}

/// Python's `socketserver.ThreadingTCPServer`: every connection is served
/// by its own handler on a thread of its own.
///
/// `make_handler` is shared by the threads and runs on each connection's
/// thread, so the handler itself need not be `Send`. Unlike Python's,
/// shutting down also closes the open connections (their reads see
/// end-of-file) rather than waiting for clients to leave;
/// [`serve_forever`](ThreadingTcpServer::serve_forever) returns once every
/// handler has.
pub struct ThreadingTcpServer<F> {
    acceptor: Acceptor,
    state: Arc<ServerState>,
    make_handler: Arc<F>,
}

impl<F, H> ThreadingTcpServer<F>
where
    F: Fn() -> H + Send + Sync + 'static,
    H: RequestHandler,
{
    /// Binds and listens on `addr` (port 0 picks a free port), with default
    /// [`ThreadedOptions`].
    pub fn bind(addr: SocketAddr, make_handler: F) -> io::Result<Self> {
        Self::bind_with(addr, make_handler, ThreadedOptions::default())
    }

    /// [`bind`](ThreadingTcpServer::bind) with explicit options (backlog,
    /// thread stack size and name). A thread name holding a NUL byte is
    /// refused (`InvalidInput`) here rather than failing when the first
    /// connection's thread starts.
    pub fn bind_with(
        addr: SocketAddr,
        make_handler: F,
        options: ThreadedOptions,
    ) -> io::Result<Self> {
        let (acceptor, state) = Acceptor::bind(addr, &options)?;
        Ok(ThreadingTcpServer {
            acceptor,
            state,
            make_handler: Arc::new(make_handler),
        })
    }

    /// The bound address, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr()
    }

    /// A handle that stops [`serve_forever`](ThreadingTcpServer::serve_forever)
    /// from another thread and closes every open connection.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle::new(Arc::clone(&self.state))
    }

    /// Accepts connections, each served on a new thread, until shut down;
    /// then waits for every handler thread to return.
    pub fn serve_forever(mut self) {
        let state = Arc::clone(&self.state);
        let make_handler = &self.make_handler;
        self.acceptor.run(&state, |accepted| {
            // A ThreadingTcpServer binds TCP only.
            let (BlockingStream::Tcp(stream), Address::Ip(client)) =
                (accepted.stream, accepted.peer)
            else {
                return;
            };
            let wake = match stream.try_clone() {
                Ok(wake) => wake,
                Err(e) => {
                    warn!("connection from {client} dropped: {e}");
                    return;
                }
            };
            let make_handler = Arc::clone(make_handler);
            let spawned = state
                .workers
                .spawn(Some(BlockingStream::Tcp(wake)), move |_| {
                    process_request(&mut || make_handler(), stream, client);
                });
            if let Err(e) = spawned {
                warn!("connection from {client} dropped: cannot start its thread: {e}");
            }
        });
        state.stop();
        state.workers.join_all();
    }
}

/// Serves one connection as Python's `BaseRequestHandler.__init__` and
/// `shutdown_request` do: `setup`, then `handle` and `finish` (the latter
/// even if `handle` failed), then our FIN and the close.
fn process_request<H: RequestHandler>(
    make_handler: &mut impl FnMut() -> H,
    mut stream: TcpStream,
    client: SocketAddr,
) {
    debug!("serving {client}");
    let mut handler = match crate::panic::catch(&mut *make_handler) {
        Ok(handler) => handler,
        Err(why) => {
            error!("{client}: making the request handler panicked: {why}");
            return;
        }
    };
    let request = &mut stream;
    if report(
        client,
        "setup",
        crate::panic::catch(|| handler.setup(request, client)),
    ) {
        report(
            client,
            "handle",
            crate::panic::catch(|| handler.handle(request, client)),
        );
        report(
            client,
            "finish",
            crate::panic::catch(|| handler.finish(request, client)),
        );
    }
    // A handler's `Drop` is user code too: on a one-at-a-time server, a
    // panic in it would otherwise end `serve_forever`.
    crate::panic::drop_caught(handler, "a request handler");
    // The client sees every byte, then end-of-file.
    let _ = stream.shutdown(Shutdown::Write);
}

/// Logs a failed or panicked handler step (TCP or UDP); returns whether it
/// succeeded.
pub(crate) fn report(
    client: SocketAddr,
    step: &str,
    outcome: Result<io::Result<()>, String>,
) -> bool {
    match outcome {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            warn!("{client}: {step} failed: {e}");
            false
        }
        Err(why) => {
            error!("{client}: {step} panicked: {why}");
            false
        }
    }
}
