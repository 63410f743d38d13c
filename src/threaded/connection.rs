//! One connection's thread: builds the protocol, reads, fires the
//! connection's timers and closes, calling the protocol back in the same
//! order and with the same reasons as the reactor.

use std::io;
use std::net::Shutdown;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, error};

use super::state::ServerState;
use super::stream::Accepted;
use super::transport::{BlockingTransport, Due};
use super::workers::WorkerId;
use crate::protocol::{Factory, Protocol, Timeout};
use crate::reason::Reason;
use crate::rules::{LINGER_DISCARD_LIMIT, LINGER_TIMEOUT};
use crate::transport::{ConnectionId, Transport};

/// A factory shared by a server's connection threads, each building its own
/// protocol under the lock (a `Box<dyn Protocol>` cannot cross threads).
pub(crate) type ThreadFactory = Mutex<Box<dyn Factory + Send>>;

/// How often a connection that is not reading (paused, or half-closed)
/// looks for a reset from its peer.
const ERROR_CHECK: Duration = Duration::from_secs(1);

/// The shortest read timeout: SO_RCVTIMEO cannot be zero (that means none).
const MIN_READ_TIMEOUT: Duration = Duration::from_millis(1);

/// Serves one accepted connection on the calling thread, from
/// `build_protocol` to `connection_lost`.
pub(crate) fn serve(
    state: &ServerState,
    worker: WorkerId,
    factory: &ThreadFactory,
    accepted: Accepted,
    read_buffer: usize,
) {
    let Accepted {
        stream,
        peer,
        credentials,
    } = accepted;
    let protocol = {
        // A panic is caught inside the lock, so it never poisons it; a
        // poisoned lock could only come from elsewhere and is harmless.
        let mut factory = factory.lock().unwrap_or_else(PoisonError::into_inner);
        crate::panic::catch(|| factory.build_protocol_for(&peer))
    };
    let protocol = match protocol {
        Ok(protocol) => protocol,
        Err(why) => {
            error!("{peer}: build_protocol panicked: {why}; connection dropped");
            return;
        }
    };
    let id = connection_id(worker);
    debug!("accepted {id} from {peer} on its own thread");
    let mut conn = Connection {
        protocol,
        transport: BlockingTransport::new(stream, peer, credentials, id),
        state,
        worker,
    };
    let mut buf = vec![0; read_buffer.max(1)];
    conn.call(|p, t| p.connection_made(t));
    let reason = conn.pump(&mut buf);
    conn.close(reason, &mut buf);
}

/// The id a connection's protocol sees: the worker's number, split into the
/// two halves a [`ConnectionId`] holds (generation never 0, as the reactor's).
fn connection_id(worker: WorkerId) -> ConnectionId {
    let n = worker.get();
    ConnectionId::from_parts(n as u32, (n >> 32) as u32 + 1)
}

struct Connection<'c> {
    protocol: Box<dyn Protocol>,
    transport: BlockingTransport,
    state: &'c ServerState,
    worker: WorkerId,
}

impl Connection<'_> {
    /// Runs one protocol callback. A panic in it is caught, logged with the
    /// peer's address, and aborts this connection only.
    fn call(&mut self, f: impl FnOnce(&mut dyn Protocol, &mut dyn Transport)) {
        let protocol = &mut *self.protocol;
        let transport = &mut self.transport;
        if let Err(why) = crate::panic::catch(|| f(protocol, transport)) {
            error!(
                "{}: protocol of connection {} panicked: {why}; aborting it",
                self.transport.peer_addr(),
                self.transport.id()
            );
            self.transport.fail(Reason::Panicked(why));
        }
    }

    /// Reads and fires timers until the connection must end; returns why.
    fn pump(&mut self, buf: &mut [u8]) -> Reason {
        loop {
            if let Some(reason) = self.transport.close_request() {
                // A write that shutdown interrupted failed with EPIPE.
                if matches!(reason, Reason::Error { .. }) && self.state.is_stopping() {
                    return Reason::ReactorStopped;
                }
                return reason;
            }
            if self.state.is_stopping() {
                return Reason::ReactorStopped;
            }
            let next = self.fire_timers();
            if !self.transport.is_open() {
                continue;
            }
            if self.transport.reading_paused || self.transport.read_closed {
                // Only a timer (or shutdown, which unparks) can change that;
                // but a reset from the peer must still end the connection,
                // as the reactor's error event does: checked every second.
                let wait = next.map_or(ERROR_CHECK, |at| {
                    at.saturating_duration_since(Instant::now())
                        .min(ERROR_CHECK)
                });
                thread::park_timeout(wait);
                if let Some(e) = self.transport.take_socket_error() {
                    if self.state.is_stopping() {
                        return Reason::ReactorStopped;
                    }
                    debug!(
                        "connection {} failed while not reading: {e}",
                        self.transport.id()
                    );
                    return Reason::from(e);
                }
                continue;
            }
            let timeout = next.map(|at| {
                at.saturating_duration_since(Instant::now())
                    .max(MIN_READ_TIMEOUT)
            });
            match self.transport.read(buf, timeout) {
                Ok(0) => {
                    if self.state.is_stopping() {
                        return Reason::ReactorStopped;
                    }
                    if self.transport.is_write_shut() {
                        return Reason::PeerClosed;
                    }
                    // User code, so under the guard as every callback.
                    let protocol = &*self.protocol;
                    match crate::panic::catch(|| protocol.allows_half_close()) {
                        Ok(true) => {}
                        Ok(false) => return Reason::PeerClosed,
                        Err(why) => {
                            error!(
                                "{}: allows_half_close of connection {} panicked: {why}; aborting it",
                                self.transport.peer_addr(),
                                self.transport.id()
                            );
                            self.transport.fail(Reason::Panicked(why.clone()));
                            return Reason::Panicked(why);
                        }
                    }
                    self.transport.read_closed = true;
                    self.call(|p, t| p.read_connection_lost(t));
                }
                Ok(n) => self.call(|p, t| p.data_received(t, &buf[..n])),
                // The read timed out: a timer is due.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    if self.state.is_stopping() {
                        return Reason::ReactorStopped;
                    }
                    debug!("read from {} failed: {e}", self.transport.id());
                    return Reason::from(e);
                }
            }
        }
    }

    /// Fires every timer due now, in deadline order; timers they schedule
    /// wait for the next pass, as in the reactor. Returns the next deadline.
    fn fire_timers(&mut self) -> Option<Instant> {
        if self.transport.timers.len() == 0 {
            return None;
        }
        let now = Instant::now();
        let before = self.transport.timers.next_seq();
        while self.transport.is_open() {
            let Some((_, due)) = self.transport.timers.pop_due(now, before) else {
                break;
            };
            match due {
                Due::Protocol(tag) => self.call(|p, t| p.timer_fired(t, tag)),
                Due::IdleCheck => {
                    if self.transport.idle_check_due(now) {
                        self.call(|p, t| p.timeout_connection(t, Timeout::Idle));
                    }
                }
                Due::Deadline => {
                    if self.transport.deadline_fired() {
                        debug!(
                            "connection {} still open after its deadline; aborting",
                            self.transport.id()
                        );
                        self.transport.fail(Reason::Aborted);
                    } else {
                        self.call(|p, t| p.timeout_connection(t, Timeout::Deadline));
                        self.transport.after_deadline_hook();
                    }
                }
            }
        }
        self.transport.timers.next_deadline()
    }

    /// Ends the connection: the socket is closed the way `reason` asks and
    /// `connection_lost` runs, exactly once.
    fn close(mut self, reason: Reason, buf: &mut [u8]) {
        debug!(
            "connection {} to {} closed: {reason}",
            self.transport.id(),
            self.transport.peer_addr()
        );
        // From here on writes are ignored and `is_closing` is true.
        self.transport.fail(reason.clone());
        match reason {
            Reason::Aborted | Reason::Panicked(_) => {
                if let Some(stream) = self.transport.take_stream() {
                    stream.reset_on_close();
                    // The registry's descriptor goes first, so ours is the
                    // last and its close sends the reset now.
                    self.state.workers.release_stream(self.worker);
                    drop(stream);
                }
                self.connection_lost(&reason);
            }
            Reason::LocalClosed => {
                if let Some(stream) = self.transport.stream() {
                    let _ = stream.shutdown(Shutdown::Write);
                }
                self.connection_lost(&reason);
                self.linger(buf);
            }
            // The peer's FIN, an error, or shutdown: the descriptor closes
            // when this thread ends.
            _ => self.connection_lost(&reason),
        }
        // A protocol's `Drop` is user code too.
        crate::panic::drop_caught(self.protocol, "a protocol");
    }

    fn connection_lost(&mut self, reason: &Reason) {
        let protocol = &mut *self.protocol;
        let transport = &mut self.transport;
        if let Err(why) = crate::panic::catch(|| protocol.connection_lost(transport, reason)) {
            error!(
                "{}: connection_lost of connection {} panicked: {why}",
                self.transport.peer_addr(),
                self.transport.id()
            );
        }
    }

    /// After our FIN: reads and discards until the peer's FIN, so that
    /// closing a socket with unread input does not reset the peer and
    /// destroy the end of our last reply (the reactor's lingering close).
    /// Bounded by [`LINGER_TIMEOUT`] and [`LINGER_DISCARD_LIMIT`].
    fn linger(&mut self, buf: &mut [u8]) {
        let Some(stream) = self.transport.stream() else {
            return;
        };
        let until = Instant::now() + LINGER_TIMEOUT;
        let mut discarded = 0;
        while !self.state.is_stopping() && discarded <= LINGER_DISCARD_LIMIT {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match io::Read::read(&mut &*stream, buf) {
                Ok(0) => return,
                Ok(n) => discarded += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        debug!(
            "connection {} closed after lingering ({discarded} bytes discarded)",
            self.transport.id()
        );
    }
}
