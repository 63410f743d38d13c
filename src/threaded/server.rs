//! [`ThreadedServer`]: the reactor's protocols served one thread per
//! connection.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use log::{debug, error, warn};

use super::acceptor::Acceptor;
use super::connection::{self, ThreadFactory};
use super::options::ThreadedOptions;
use super::state::{ServerHandle, ServerState};
use super::stream::Accepted;
use crate::address::{Address, UnixAddress};
use crate::protocol::Factory;

/// Listens on `addr` and serves every connection with a protocol from
/// `factory`, each on a thread of its own, with default [`ThreadedOptions`].
/// See [`ThreadedServer::listen_tcp_with`].
pub fn listen_tcp(addr: SocketAddr, factory: impl Factory + Send) -> io::Result<ThreadedServer> {
    ThreadedServer::listen_tcp_with(addr, factory, ThreadedOptions::default())
}

/// Listens on the UNIX socket `path` (`@name` for a Linux abstract name)
/// and serves every connection as [`listen_tcp`] does, with default
/// [`ThreadedOptions`]. See [`ThreadedServer::listen_unix_with`].
///
/// ```
/// use std::io::{Read, Write};
/// use reactor::protocols::Echo;
/// use reactor::threaded;
///
/// let name = format!("@reactor-doc-threaded-{}", std::process::id());
/// let server = threaded::listen_unix(&name, || Echo)?;
/// assert_eq!(server.address().to_string(), format!("unix:{name}"));
/// let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..])?;
/// # use std::os::linux::net::SocketAddrExt;
/// let mut client = std::os::unix::net::UnixStream::connect_addr(&addr)?;
/// client.write_all(b"hello")?;
/// let mut reply = [0; 5];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"hello");
/// server.shutdown();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn listen_unix(
    path: impl AsRef<Path>,
    factory: impl Factory + Send,
) -> io::Result<ThreadedServer> {
    ThreadedServer::listen_unix_with(path, factory, ThreadedOptions::default())
}

/// A thread-per-connection TCP server running the reactor's
/// [`Protocol`](crate::Protocol)s through a blocking
/// [`Transport`](crate::Transport).
///
/// An accept thread hands each connection to a new thread, which builds the
/// protocol there (from the shared factory, under a lock), calls
/// `connection_made`, then blocks reading and calls `data_received` for
/// every read, and finally `connection_lost`, exactly once, with the same
/// reasons as the reactor. Dropping the server shuts it down.
pub struct ThreadedServer {
    addr: Address,
    state: Arc<ServerState>,
    accept: Option<JoinHandle<()>>,
    /// Taken when the server finishes, to be dropped under a catch.
    factory: Option<Arc<ThreadFactory>>,
}

impl ThreadedServer {
    /// Binds `addr` (port 0 picks a free port), calls the factory's
    /// `start_factory`, and starts accepting on a thread of its own. A
    /// thread name holding a NUL byte is refused (`InvalidInput`) before
    /// `start_factory` runs; once it has run, every error path calls
    /// `stop_factory`.
    ///
    /// The factory must be `Send`: it is shared by the connection threads,
    /// each of which builds its own protocol with it (a `Box<dyn Protocol>`
    /// cannot move between threads, so it is made where it runs). A closure
    /// `|| Echo` qualifies; a factory holding `Rc` state (a
    /// [`SharedFactory`](crate::SharedFactory), a chat room in
    /// `Rc<RefCell<…>>`) does not, and must use `Arc<Mutex<…>>` here.
    pub fn listen_tcp_with(
        addr: SocketAddr,
        factory: impl Factory + Send,
        options: ThreadedOptions,
    ) -> io::Result<ThreadedServer> {
        let bound = Acceptor::bind(addr, &options)?;
        ThreadedServer::serve(bound, factory, options)
    }

    /// [`listen_tcp_with`](ThreadedServer::listen_tcp_with) on the UNIX
    /// socket `path` (`@name` for a Linux abstract name), with the reactor's
    /// rules for its file (see [`Reactor::listen_unix`](crate::Reactor::listen_unix)):
    /// its mode is [`ThreadedOptions::file_mode`], set before it listens; a
    /// stale socket file is replaced, a live one refused (`AddrInUse`), and
    /// a file that is not a socket never removed; the file is removed when
    /// the server finishes. Each protocol's transport reports the peer's
    /// [`peer_credentials`](crate::Transport::peer_credentials).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::fs::PermissionsExt;
    /// use std::os::unix::net::UnixStream;
    /// use reactor::protocols::Echo;
    /// use reactor::threaded::{ThreadedOptions, ThreadedServer};
    ///
    /// let dir = std::env::temp_dir().join(format!("reactor-doc-threaded-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("echo.sock");
    /// let options = ThreadedOptions {
    ///     file_mode: Some(0o600), // only this user may connect
    ///     ..ThreadedOptions::default()
    /// };
    /// let server = ThreadedServer::listen_unix_with(&path, || Echo, options)?;
    /// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    /// let mut client = UnixStream::connect(&path)?;
    /// client.write_all(b"hello")?;
    /// let mut reply = [0; 5];
    /// client.read_exact(&mut reply)?;
    /// assert_eq!(&reply, b"hello");
    /// server.shutdown();
    /// assert!(!path.exists()); // removed when the server finishes
    /// # std::fs::remove_dir(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_unix_with(
        path: impl AsRef<Path>,
        factory: impl Factory + Send,
        options: ThreadedOptions,
    ) -> io::Result<ThreadedServer> {
        let bound = Acceptor::bind_unix(&UnixAddress::new(path), &options)?;
        ThreadedServer::serve(bound, factory, options)
    }

    /// Starts the factory and the accept thread on a bound acceptor.
    fn serve(
        (mut acceptor, state): (Acceptor, Arc<ServerState>),
        factory: impl Factory + Send,
        options: ThreadedOptions,
    ) -> io::Result<ThreadedServer> {
        let addr = acceptor.address().clone();
        let mut factory: Box<dyn Factory + Send> = Box::new(factory);
        if let Err(why) = crate::panic::catch(|| factory.start_factory()) {
            error!("start_factory panicked: {why}");
        }
        let factory: Arc<ThreadFactory> = Arc::new(Mutex::new(factory));
        let accept = {
            let state = Arc::clone(&state);
            let factory = Arc::clone(&factory);
            let read_buffer = options.read_buffer;
            thread::Builder::new()
                .name(format!("{}-accept", options.thread_name))
                .spawn(move || {
                    acceptor.run(&state, |accepted| {
                        start_connection(&state, &factory, accepted, read_buffer);
                    });
                })
        };
        let accept = match accept {
            Ok(accept) => accept,
            Err(e) => {
                retire_factory(factory);
                return Err(e);
            }
        };
        debug!("threaded server listening on {addr}");
        Ok(ThreadedServer {
            addr,
            state,
            accept: Some(accept),
            factory: Some(factory),
        })
    }

    /// The bound IP address, with the real port when port 0 was asked
    /// for (`0.0.0.0:0` for a UNIX server, which has none: see
    /// [`address`](ThreadedServer::address)).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
            .socket_addr()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Where it listens: an IP address and port, or a UNIX socket's name.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::threaded;
    ///
    /// let server = threaded::listen_tcp("127.0.0.1:0".parse().unwrap(), || Echo)?;
    /// assert_eq!(*server.address(), server.local_addr()); // the real port
    /// assert_eq!(server.address().ip(), Some([127, 0, 0, 1].into()));
    /// server.shutdown();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn address(&self) -> &Address {
        &self.addr
    }

    /// Connection threads still running (lingering closes included).
    pub fn connection_count(&self) -> usize {
        self.state.workers.live()
    }

    /// The connections being served and those refused so far for being
    /// over [`ThreadedOptions::max_connections`], as the reactor's
    /// [`Reactor::listener_stats`](crate::Reactor::listener_stats).
    pub fn listener_stats(&self) -> crate::ListenerStats {
        self.state.listener_stats()
    }

    /// A handle that shuts the server down from any thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle::new(Arc::clone(&self.state))
    }

    /// Stops accepting, closes every connection (each protocol gets
    /// `connection_lost` with [`Reason::ReactorStopped`](crate::Reason::ReactorStopped)),
    /// waits for every thread to end, and calls the factory's `stop_factory`.
    pub fn shutdown(mut self) {
        self.state.stop();
        self.finish();
    }

    /// Blocks until a [`ServerHandle`] shuts the server down, then finishes
    /// as [`shutdown`](ThreadedServer::shutdown) does: how a program that
    /// serves until told otherwise waits.
    pub fn wait(mut self) {
        self.finish();
    }

    /// Joins the accept thread (which returns once the server is stopping)
    /// and then every connection thread; runs once.
    fn finish(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        if accept.join().is_err() {
            // The loop itself does not panic; if it did, stop the rest.
            error!("the accept thread of {} panicked", self.addr);
            self.state.stop();
        }
        self.state.workers.join_all();
        if let Some(factory) = self.factory.take() {
            retire_factory(factory);
        }
        debug!("threaded server on {} stopped", self.addr);
    }
}

impl Drop for ThreadedServer {
    fn drop(&mut self) {
        self.state.stop();
        self.finish();
    }
}

/// Starts the thread that serves `stream`, registered with a second
/// descriptor so that shutdown can wake it. A connection that cannot get a
/// thread is closed (the client sees end-of-file) and the server goes on.
fn start_connection(
    state: &Arc<ServerState>,
    factory: &Arc<ThreadFactory>,
    accepted: Accepted,
    read_buffer: usize,
) {
    let peer = accepted.peer.clone();
    let wake = match accepted.stream.try_clone() {
        Ok(wake) => wake,
        Err(e) => {
            warn!("connection from {peer} dropped: {e}");
            return;
        }
    };
    let conn_state = Arc::clone(state);
    let factory = Arc::clone(factory);
    let spawned = state.workers.spawn(Some(wake), move |worker| {
        connection::serve(&conn_state, worker, &factory, accepted, read_buffer);
    });
    if let Err(e) = spawned {
        if state.is_stopping() {
            debug!("connection from {peer} dropped: shutting down");
        } else {
            warn!("connection from {peer} dropped: cannot start its thread: {e}");
        }
    }
}

/// Calls the factory's `stop_factory`, then drops it (if this was its last
/// owner, as it is once every thread has ended) under a catch: its `Drop`
/// is user code too.
fn retire_factory(factory: Arc<ThreadFactory>) {
    {
        let mut factory = factory.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(why) = crate::panic::catch(|| factory.stop_factory()) {
            error!("stop_factory panicked: {why}");
        }
    }
    crate::panic::drop_caught(factory, "the factory");
}
