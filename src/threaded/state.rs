//! What a threaded server shares between its owner, its handles and its
//! threads: whether it is stopping, how to wake its accept (or receive)
//! loop, and the registry of its worker threads.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::error;
use mio::event::Source;
use mio::{Events, Interest, Poll, Token, Waker};

use super::options::ThreadedOptions;
use super::workers::Workers;
use crate::ListenerStats;

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);

/// The state every thread of one server can reach.
pub(crate) struct ServerState {
    stopping: AtomicBool,
    /// Wakes the loop blocked in [`Waiter::wait`]; the workers hold it too,
    /// to have the loop join them as they finish.
    waker: Arc<Waker>,
    pub(crate) workers: Arc<Workers>,
    /// Connections closed at once for being over the connection limit.
    refused: AtomicU64,
}

impl ServerState {
    /// Counts a connection refused for being over the connection limit.
    pub(crate) fn count_refusal(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections being served (threads running, lingering closes
    /// included) and connections refused so far.
    pub(crate) fn listener_stats(&self) -> ListenerStats {
        ListenerStats {
            open: self.workers.live(),
            refused: self.refused.load(Ordering::Relaxed),
            ..ListenerStats::default()
        }
    }

    /// Whether `stop` was called.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stops the server: the accept loop is woken and returns, no worker
    /// starts any more, and every live worker is woken (its socket shut
    /// down). Returns at once; joining is the owner's job. Only the first
    /// call does anything.
    pub(crate) fn stop(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(e) = self.waker.wake() {
            // The loop still sees the flag at its next wake-up.
            error!("cannot wake the accept loop: {e}");
        }
        self.workers.close_all();
    }
}

/// A poll on one socket that [`ServerState::stop`] can interrupt: how a blocking
/// server's accept (or receive) loop waits without a timeout and still
/// stops at once.
pub(crate) struct Waiter {
    poll: Poll,
    events: Events,
}

impl Waiter {
    /// Watches `source` for readability; returns the waiter and a new state
    /// whose `stop` wakes it, with an empty registry of workers (named and
    /// sized after `options`) whose every return wakes it too, so that the
    /// loop joins them promptly.
    pub(crate) fn new(
        source: &mut impl Source,
        options: &ThreadedOptions,
    ) -> io::Result<(Waiter, Arc<ServerState>)> {
        let poll = Poll::new()?;
        poll.registry()
            .register(source, SOCKET, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let workers = Arc::new(Workers::new(
            options.thread_name.clone(),
            options.stack_size,
            Arc::clone(&waker),
        ));
        let state = Arc::new(ServerState {
            stopping: AtomicBool::new(false),
            waker,
            workers,
            refused: AtomicU64::new(0),
        });
        let waiter = Waiter {
            poll,
            events: Events::with_capacity(4),
        };
        Ok((waiter, state))
    }

    /// Blocks until the socket may be readable, the server stops, a worker
    /// returns, or `timeout` passes. The socket is registered
    /// edge-triggered: the caller must take everything ready (to
    /// `WouldBlock`) before waiting again.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            other => other,
        }
    }
}

/// Shuts a threaded server down from any thread: a signal handler's thread,
/// a test, or one of the server's own connections.
#[derive(Clone)]
pub struct ServerHandle {
    state: Arc<ServerState>,
}

impl ServerHandle {
    pub(crate) fn new(state: Arc<ServerState>) -> Self {
        ServerHandle { state }
    }

    /// Stops accepting and closes every connection. Returns at once; the
    /// server's owner joins its threads (`ThreadedServer::wait`,
    /// `ThreadedServer::shutdown`, or `serve_forever` returning).
    pub fn shutdown(&self) {
        self.state.stop();
    }

    /// For a TCP server: the connections it is serving (threads running,
    /// lingering closes included) and those it refused for being over
    /// [`ThreadedOptions::max_connections`]. For a UDP server, `open` is
    /// its running handler threads and `refused` is 0.
    pub fn listener_stats(&self) -> ListenerStats {
        self.state.listener_stats()
    }

    /// Whether the server was told to shut down.
    pub fn is_shutting_down(&self) -> bool {
        self.state.is_stopping()
    }
}
