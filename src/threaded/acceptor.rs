//! The accept loop of the threaded stream servers (TCP or UNIX): a
//! non-blocking listener under a [`Waiter`], handing out blocking streams.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use log::{debug, error, warn};
use socket2::{Domain, Socket, Type};

use super::options::ThreadedOptions;
use super::state::{ServerState, Waiter};
use super::stream::{Accepted, Listening};
use crate::address::{Address, UnixAddress};
use crate::rules::{concerns_only_this_connection, log_refusal, ACCEPT_RETRY};

/// A bound, listening socket and the poll its loop waits in.
pub(crate) struct Acceptor {
    listener: Listening,
    waiter: Waiter,
    addr: Address,
    /// [`ThreadedOptions::max_connections`].
    max_connections: Option<usize>,
    /// The limit refused a connection since one was last admitted: the
    /// burst's warning has been logged.
    warned_full: bool,
}

impl Acceptor {
    /// Binds and listens on `addr` (SO_REUSEADDR, `options.backlog`), and
    /// makes the server state whose `stop` ends [`run`](Acceptor::run).
    pub(crate) fn bind(
        addr: SocketAddr,
        options: &ThreadedOptions,
    ) -> io::Result<(Acceptor, Arc<ServerState>)> {
        // A name that would make spawning panic is refused here, before
        // anything (start_factory included) has run.
        options.check()?;
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(options.backlog)?;
        let listener = Listening::Tcp(mio::net::TcpListener::from_std(socket.into()));
        Acceptor::with(listener, options)
    }

    /// Binds and listens on the UNIX socket `addr` (its file's mode,
    /// stale files and removal as the reactor's `listen_unix`), and makes
    /// the server state as [`bind`](Acceptor::bind) does.
    pub(crate) fn bind_unix(
        addr: &UnixAddress,
        options: &ThreadedOptions,
    ) -> io::Result<(Acceptor, Arc<ServerState>)> {
        options.check()?;
        let (listener, file) = crate::unix::listen(addr, options.backlog, options.file_mode)?;
        let listener = Listening::Unix {
            socket: mio::net::UnixListener::from_std(listener),
            _file: file,
        };
        Acceptor::with(listener, options)
    }

    fn with(
        mut listener: Listening,
        options: &ThreadedOptions,
    ) -> io::Result<(Acceptor, Arc<ServerState>)> {
        let addr = listener.local_addr()?;
        let (waiter, state) = Waiter::new(&mut listener, options)?;
        let acceptor = Acceptor {
            listener,
            waiter,
            addr,
            max_connections: options.max_connections,
            warned_full: false,
        };
        Ok((acceptor, state))
    }

    /// Where it listens, with the real port when port 0 was asked for.
    pub(crate) fn address(&self) -> &Address {
        &self.addr
    }

    /// The bound IP address (`0.0.0.0:0` for a UNIX listener, which has
    /// none).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
            .socket_addr()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Accepts connections until `state` stops, handing each one, in
    /// blocking mode, to `serve`. A connection over the connection limit
    /// (counting `state`'s live workers) is closed at once instead, logged
    /// and counted, as the reactor does. Errors that concern one connection
    /// skip it; running out of descriptors or memory leaves the client in
    /// the kernel's backlog and retries every 100 ms, as the reactor does.
    /// Finished workers are joined whenever the loop wakes, and a worker
    /// wakes it when it returns.
    pub(crate) fn run(&mut self, state: &ServerState, mut serve: impl FnMut(Accepted)) {
        let mut backing_off = false;
        while !state.is_stopping() {
            let timeout = backing_off.then_some(ACCEPT_RETRY);
            if let Err(e) = self.waiter.wait(timeout) {
                error!(
                    "waiting for connections on {} failed: {e}; no longer accepting",
                    self.addr
                );
                return;
            }
            state.workers.reap();
            loop {
                if state.is_stopping() {
                    return;
                }
                match self.listener.accept() {
                    Ok(accepted) => {
                        let peer = &accepted.peer;
                        if backing_off {
                            backing_off = false;
                            warn!("accepting on {} again", self.addr);
                        }
                        if self.is_full(state) {
                            // Accepted and closed at once: the client learns
                            // now, rather than waiting in the backlog. Counted
                            // first, so the count includes a client that has
                            // seen its end-of-file.
                            state.count_refusal();
                            log_refusal(
                                &mut self.warned_full,
                                peer,
                                "the connection limit",
                                &self.addr,
                            );
                            drop(accepted);
                            continue;
                        }
                        self.warned_full = false;
                        // mio accepts non-blocking sockets; workers block.
                        if let Err(e) = accepted.stream.set_nonblocking(false) {
                            warn!("connection from {peer} dropped: {e}");
                            continue;
                        }
                        serve(accepted);
                        state.workers.reap();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if concerns_only_this_connection(&e) => {
                        debug!("accept on {} skipped a connection: {e}", self.addr);
                    }
                    Err(e) => {
                        if !backing_off {
                            backing_off = true;
                            warn!(
                                "accept on {} failed: {e}; retrying every {} ms",
                                self.addr,
                                ACCEPT_RETRY.as_millis()
                            );
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Whether the server already serves as many connections as it may.
    /// Only this loop adds workers, so the count cannot grow between this
    /// check and `serve`.
    fn is_full(&self, state: &ServerState) -> bool {
        self.max_connections
            .is_some_and(|max| state.workers.live() >= max)
    }
}
