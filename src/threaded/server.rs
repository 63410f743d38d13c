//! [`ThreadedServer`]: the reactor's protocols served one thread per
//! connection.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use log::{debug, error, warn};

use super::acceptor::Acceptor;
use super::connection::{self, ThreadFactory};
use super::options::ThreadedOptions;
use super::state::{ServerHandle, ServerState};
use crate::protocol::Factory;

/// Listens on `addr` and serves every connection with a protocol from
/// `factory`, each on a thread of its own, with default [`ThreadedOptions`].
/// See [`ThreadedServer::listen_tcp_with`].
pub fn listen_tcp(addr: SocketAddr, factory: impl Factory + Send) -> io::Result<ThreadedServer> {
    ThreadedServer::listen_tcp_with(addr, factory, ThreadedOptions::default())
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
    addr: SocketAddr,
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
        let (mut acceptor, state) = Acceptor::bind(addr, &options)?;
        let addr = acceptor.local_addr();
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
                    acceptor.run(&state, |stream, peer| {
                        start_connection(&state, &factory, stream, peer, read_buffer);
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

    /// The bound address, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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
    stream: TcpStream,
    peer: SocketAddr,
    read_buffer: usize,
) {
    let wake = match stream.try_clone() {
        Ok(wake) => wake,
        Err(e) => {
            warn!("connection from {peer} dropped: {e}");
            return;
        }
    };
    let conn_state = Arc::clone(state);
    let factory = Arc::clone(factory);
    let spawned = state.workers.spawn(Some(wake), move |worker| {
        connection::serve(&conn_state, worker, &factory, stream, peer, read_buffer);
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
